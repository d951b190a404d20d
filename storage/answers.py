"""Reading and writing survey answers on the answer path, with statements built once.

Every button press reads the delivery's answers and writes one; through the ORM that is an object per row
and a unit-of-work flush per answer, which cost more than the database work itself (bench/README.md).
Answers are written once and never changed, so plain statements on the session's connection do the same
job: the INSERT runs at once (a duplicate fails the transaction right there, as the unique key intends),
and the SELECT returns tuples.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import Session

from storage.models import Answer

_TABLE: sa.Table = Answer.__table__  # type: ignore[attr-defined]
_INSERT = sa.insert(_TABLE)
_OF_DELIVERY = sa.select(
    _TABLE.c.question_id, _TABLE.c.score, _TABLE.c.choice, _TABLE.c.text, _TABLE.c.skipped
).where(_TABLE.c.delivery_id == sa.bindparam("delivery_id"))


class StoredAnswer(NamedTuple):
    """One recorded answer as the survey flow needs it."""

    question_id: str
    score: int | None
    choice: str | None
    text: str | None
    skipped: bool


def answers_of(session: Session, delivery_id: int) -> list[StoredAnswer]:
    """Return the answers recorded for a delivery (those flushed in this session included)."""
    rows = session.connection().execute(_OF_DELIVERY, {"delivery_id": delivery_id})
    return [StoredAnswer(*row) for row in rows]


def insert_answer(session: Session, values: dict[str, Any]) -> None:
    """Store one answer now; raises IntegrityError if the question was already answered."""
    session.connection().execute(_INSERT, values)
