"""Insert-or-ignore for both databases: the unique key decides, so concurrent writers never duplicate."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session


def insert_ignoring_duplicates(
    session: Session, table: sa.Table, rows: list[dict[str, Any]], *, conflict_columns: list[str]
) -> int:
    """Insert rows, skipping any whose ``conflict_columns`` already exist; return how many were new."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    elif dialect == "sqlite":
        statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    else:  # pragma: no cover - only the two supported databases reach here
        raise NotImplementedError(f"insert-or-ignore is not implemented for {dialect}")
    result = session.execute(statement, rows)
    return max(int(getattr(result, "rowcount", 0) or 0), 0)
