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
from storage.preload import GroupRows, group_of

_TABLE: sa.Table = Answer.__table__  # type: ignore[attr-defined]
_INSERT = sa.insert(_TABLE)
_COLUMNS = (
    _TABLE.c.question_id,
    _TABLE.c.score,
    _TABLE.c.choice,
    _TABLE.c.text,
    _TABLE.c.skipped,
    _TABLE.c.sentiment,
)
_OF_DELIVERY = sa.select(*_COLUMNS).where(_TABLE.c.delivery_id == sa.bindparam("delivery_id"))
_OF_DELIVERIES = sa.select(_TABLE.c.delivery_id, *_COLUMNS).where(
    _TABLE.c.delivery_id.in_(sa.bindparam("delivery_ids", expanding=True))
)


class StoredAnswer(NamedTuple):
    """One recorded answer as the survey flow needs it."""

    question_id: str
    score: int | None
    choice: str | None
    text: str | None
    skipped: bool
    sentiment: str | None = None
    """negative, neutral or positive for a comment (surveys/sentiment); None for other answers."""


def answers_of(session: Session, delivery_id: int) -> list[StoredAnswer]:
    """Return the answers recorded for a delivery (those written in this session included)."""
    group = group_of(session)
    if group is not None and delivery_id in group.answers:
        return list(group.answers[delivery_id])
    rows = session.connection().execute(_OF_DELIVERY, {"delivery_id": delivery_id})
    return [StoredAnswer(*row) for row in rows]


def load_answers(session: Session, group: GroupRows, delivery_ids: list[int]) -> None:
    """Load every answer of these deliveries into a group, in one statement."""
    wanted = [delivery_id for delivery_id in delivery_ids if delivery_id not in group.answers]
    if not wanted:
        return
    for delivery_id in wanted:
        group.answers[delivery_id] = []
    for delivery_id, *answer in session.connection().execute(_OF_DELIVERIES, {"delivery_ids": wanted}):
        group.answers[delivery_id].append(StoredAnswer(*answer))


def insert_answer(session: Session, values: dict[str, Any]) -> None:
    """Store one answer: now, or with its group's other answers at the end of the group.

    A question answered twice fails on the unique key: at once, or when the group is written (which
    rolls the group back, and the worker handles its updates one by one).
    """
    group = group_of(session)
    delivery_id = values["delivery_id"]
    if group is not None and delivery_id in group.answers:
        group.answers[delivery_id].append(
            StoredAnswer(
                values["question_id"],
                values["score"],
                values["choice"],
                values["text"],
                values["skipped"],
                values.get("sentiment"),
            )
        )
        group.new_answers.append(values)
        return
    session.connection().execute(_INSERT, values)
