"""Insert-or-ignore for both databases: the unique key decides, so concurrent writers never duplicate."""

from __future__ import annotations

from functools import cache
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
    statement = _insert_ignoring(session.get_bind().dialect.name, table, tuple(conflict_columns))
    result = session.execute(statement, rows)
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


@cache
def _insert_ignoring(dialect: str, table: sa.Table, conflict_columns: tuple[str, ...]) -> Any:
    """Build the statement once per table: it sits on the hot path of every answer, and a statement object
    that is reused keeps SQLAlchemy from rebuilding and re-keying it each time."""
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))
    raise NotImplementedError(f"insert-or-ignore is not implemented for {dialect}")  # pragma: no cover


def upsert(
    session: Session,
    table: sa.Table,
    rows: list[dict[str, Any]],
    *,
    conflict_columns: list[str],
    update_columns: list[str],
) -> None:
    """Insert rows, or update ``update_columns`` of those whose ``conflict_columns`` already exist."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        statement: Any = postgresql.insert(table)
    elif dialect == "sqlite":
        statement = sqlite.insert(table)
    else:  # pragma: no cover
        raise NotImplementedError(f"upsert is not implemented for {dialect}")
    statement = statement.on_conflict_do_update(
        index_elements=conflict_columns,
        set_={name: statement.excluded[name] for name in update_columns},
    )
    session.execute(statement, rows)
