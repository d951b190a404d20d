"""What a group of updates reads, loaded in a few statements, and what it writes, written in a few.

The update worker handles up to a few dozen updates in one transaction. Handled one by one, each button
press ran about seven statements: its user, its delivery with the customer, the delivery's answers, the
purchase behind a critic's alert, the answer, the outbox rows. On SQLite each statement cost more in
SQLAlchemy than in the database, and on PostgreSQL each one is a round trip, so the statements, not the
work, decided how many answers a process handled (bench/README.md).

So the worker opens a :class:`GroupRows` on the group's session and loads, for all its updates at once,
the rows their handlers will ask for (one statement per table). The lookups in ``storage.answers``,
``storage.outbox`` and ``handlers.customers`` serve from it, and fall back to their own queries for
anything it does not hold. New answers, outbox rows and case events are collected and written at the end
of the group in one executemany per table, before the "done" marks, in the same transaction.

Why that is safe:

- The worker puts at most one update of each person in a group, so no update in a group reads what
  another one in it writes. A person's second update (a double tap) waits for the next group, which
  loads afresh after this one committed.
- Anything that reads or changes the outbox in the middle of a group (``/stop`` cancelling, a release)
  writes the pending rows first, as the ORM's autoflush would.
- On PostgreSQL the deliveries are loaded ``FOR UPDATE``, in id order, so two processes answering for
  the same survey take turns and never deadlock on each other.
- A duplicate that slipped through (the unique key of an answer or an outbox row) fails the write at the
  end of the group, which rolls the whole group back; the worker then handles its updates one by one.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, col, select

from storage.models import (
    Answer,
    Case,
    CaseEvent,
    Customer,
    OutboxMessage,
    Purchase,
    SurveyDelivery,
    TelegramUser,
)
from storage.upsert import insert_ignoring_duplicates

if TYPE_CHECKING:
    from storage.answers import StoredAnswer
    from storage.case_group import CaseRows

_KEY = "kundenpuls.group_rows"


@dataclass
class GroupRows:
    """Rows loaded for a group of updates, and rows it will write; lives in ``session.info``."""

    users: dict[int, TelegramUser | None] = field(default_factory=dict)
    """Telegram users by id; None: looked for and not there (a first contact)."""
    deliveries: dict[int, tuple[SurveyDelivery, Customer, Purchase] | None] = field(default_factory=dict)
    """Deliveries with their customer and purchase, by delivery id; None: no such delivery."""
    answers: dict[int, list[StoredAnswer]] = field(default_factory=dict)
    """Every answer of each loaded delivery, those of this group included."""
    message_ids: dict[str, int | None] = field(default_factory=dict)
    """The Telegram message each loaded outbox key shows in (``storage.outbox.message_id_of``)."""
    outbox_rows: dict[str, OutboxMessage | None] = field(default_factory=dict)
    """Outbox rows by key, loaded for ``storage.outbox.keep_current`` (cards); None: not queued yet."""
    cases: CaseRows | None = None
    """The cases of the group's deliveries and what their cards show, once a card asked
    (storage/case_group.py)."""
    new_answers: list[dict[str, Any]] = field(default_factory=list)
    new_outbox: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Outbox rows to write, by key in the order queued, so a card queued in the group takes a new
    payload in place."""
    new_case_events: list[dict[str, Any]] = field(default_factory=list)
    """"opened" events of the cases the group opened (written after the cases, which exist already)."""
    new_cases: list[tuple[Case, Callable[[Case], None]]] = field(default_factory=list)
    """Cases the group opens, each with what must happen once it has its id (its card): inserted
    together when the group closes (``storage.cases.open_case``)."""


def open_group(session: Session) -> GroupRows:
    """Start collecting for a group on ``session``; :func:`close_group` writes and ends it."""
    rows = GroupRows()
    session.info[_KEY] = rows
    return rows


def group_of(session: Session) -> GroupRows | None:
    """The group the session handles, or None outside the update worker (jobs, the HTTP API)."""
    found = session.info.get(_KEY)
    return found if isinstance(found, GroupRows) else None


def close_group(session: Session) -> None:
    """Write what the group collected and stop collecting (before the commit; a failed write raises)."""
    try:
        rows = group_of(session)
        if rows is not None:
            _insert_new_cases(session, rows)
        session.flush()
        write_pending(session)
    finally:
        session.info.pop(_KEY, None)


def write_pending(session: Session) -> None:
    """Write the collected answers and outbox rows now; called before anything reads them back."""
    rows = group_of(session)
    if rows is None:
        return
    if rows.new_answers:
        answers, rows.new_answers = rows.new_answers, []
        session.connection().execute(sa.insert(_table(Answer)), answers)
    if rows.new_outbox:
        outbox, rows.new_outbox = list(rows.new_outbox.values()), {}
        insert_ignoring_duplicates(session, _table(OutboxMessage), outbox, conflict_columns=["dedupe_key"])
    if rows.new_case_events:
        events, rows.new_case_events = rows.new_case_events, []
        session.connection().execute(sa.insert(_table(CaseEvent)), events)


_CASES: sa.Table = Case.__table__  # type: ignore[attr-defined]
_CASE_COLUMNS = [column.name for column in _CASES.columns if column.name != "id"]
_INSERT_CASES = sa.insert(_CASES).returning(_CASES.c.id, sort_by_parameter_order=True)
"""Built once: building an INSERT with its values for each case cost more than running it."""
_INSERT_CASES_SQLITE = sa.insert(_CASES).returning(_CASES.c.id)
"""SQLAlchemy keeps ids in parameter order on SQLite only by inserting row by row. It need not: the
writer holds SQLite's one write lock, and a multi-row INSERT gives its rows ascending rowids in the order
of its VALUES, so the returned ids, sorted, are the rows' in order."""


def insert_cases(session: Session, cases: list[Case]) -> None:
    """Insert new cases in one statement and give each its id; they are in the session like loaded ones."""
    values = [{name: getattr(case, name) for name in _CASE_COLUMNS} for case in cases]
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        ids = sorted(connection.execute(_INSERT_CASES_SQLITE, values).scalars().all())
    else:
        ids = list(connection.execute(_INSERT_CASES, values).scalars().all())
    for case, case_id in zip(cases, ids, strict=True):
        case.id = case_id
        make_transient_to_detached(case)
        session.add(case)


def _insert_new_cases(session: Session, rows: GroupRows) -> None:
    """Insert the cases the group opened in one statement, then run what waited for their ids, in order.

    One INSERT per case was a round trip each: on PostgreSQL a burst of critics spent a tenth of the
    worker's time waiting for them (bench/README.md). Should what waited open further cases, they are
    inserted in the next round of this loop.
    """
    while rows.new_cases:
        opening, rows.new_cases = rows.new_cases, []
        insert_cases(session, [case for case, _ in opening])
        for case, then in opening:
            then(case)


def load(
    session: Session, rows: GroupRows, *, user_ids: Collection[int], delivery_ids: Collection[int]
) -> list[int]:
    """Load the users and deliveries (with customer and purchase) a group will ask for; return the ids of
    the deliveries found (``storage.answers.load_answers`` adds their answers)."""
    wanted_users = sorted(set(user_ids) - rows.users.keys())
    if wanted_users:
        found_users = session.exec(select(TelegramUser).where(col(TelegramUser.id).in_(wanted_users))).all()
        rows.users.update(dict.fromkeys(wanted_users))
        rows.users.update({user.id: user for user in found_users})
    wanted_deliveries = sorted(set(delivery_ids) - rows.deliveries.keys())
    if not wanted_deliveries:
        return []
    found = session.exec(
        select(SurveyDelivery, Customer, Purchase)
        .join(Customer, sa.and_(col(Customer.id) == SurveyDelivery.customer_id))
        .join(Purchase, sa.and_(col(Purchase.id) == SurveyDelivery.purchase_id))
        .where(col(SurveyDelivery.id).in_(wanted_deliveries))
        .order_by(col(SurveyDelivery.id))
        .with_for_update(of=SurveyDelivery)
    ).all()
    rows.deliveries.update(dict.fromkeys(wanted_deliveries))
    loaded = {}
    for delivery, customer, purchase in found:
        if delivery.id is not None:
            loaded[delivery.id] = (delivery, customer, purchase)
    rows.deliveries.update(loaded)
    return list(loaded)


def _table(model: type[Any]) -> sa.Table:
    table: sa.Table = model.__table__
    return table
