"""Claiming stored updates: the transaction that handles them holds them, and lets go when it ends."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from storage import inbox
from storage.db import unit_of_work
from storage.models import InboundUpdate, UpdateStatus, utcnow


def _store(engine: Engine, count: int) -> None:
    updates = [{"update_id": 100 + n, "message": {"text": str(n)}} for n in range(count)]
    with unit_of_work(engine) as session:
        inbox.store_updates(session, updates, now=utcnow() - timedelta(seconds=1))


def test_due_updates_are_claimed_oldest_first_and_only_while_pending(engine: Engine) -> None:
    _store(engine, 5)
    with unit_of_work(engine) as session:
        inbox.mark_done(session, [100], now=utcnow())
    with unit_of_work(engine) as session:
        claimed = inbox.lock_due(session, now=utcnow(), limit=3)
        assert [row.update_id for row in claimed] == [101, 102, 103]
        assert inbox.lock_update(session, 100) is None  # handled already
        found = inbox.lock_update(session, 104)
        assert found is not None and found.status == UpdateStatus.PENDING.value


def test_a_second_worker_skips_the_updates_another_one_is_handling(postgres_engine: Engine) -> None:
    _store(postgres_engine, 6)
    with Session(postgres_engine) as first, Session(postgres_engine) as second:
        held = inbox.lock_due(first, now=utcnow(), limit=4)
        others = inbox.lock_due(second, now=utcnow(), limit=4)
        assert [row.update_id for row in held] == [100, 101, 102, 103]
        assert [row.update_id for row in others] == [104, 105]  # not waited for: skipped
        assert inbox.lock_update(second, 100) is None
        second.rollback()
        first.rollback()  # the first worker dies before its commit


def test_updates_of_a_worker_that_died_are_taken_at_once_by_the_next(postgres_engine: Engine) -> None:
    _store(postgres_engine, 3)
    dying = Session(postgres_engine)
    assert len(inbox.lock_due(dying, now=utcnow(), limit=10)) == 3
    dying.connection().invalidate()  # its connection is gone, as when the process is killed
    dying.close()
    with unit_of_work(postgres_engine) as session:
        taken = inbox.lock_due(session, now=utcnow(), limit=10)
        assert [row.update_id for row in taken] == [100, 101, 102]
        inbox.mark_done(session, [row.update_id for row in taken], now=utcnow())
    with Session(postgres_engine) as session:
        rows = [session.get(InboundUpdate, update_id) for update_id in (100, 101, 102)]
        assert all(row is not None and row.status == UpdateStatus.DONE.value for row in rows)
