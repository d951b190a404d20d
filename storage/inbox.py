"""Incoming Telegram updates, stored before Telegram is told we have them.

The poller writes each batch here and only then confirms it with the next ``getUpdates`` offset, so a
crash between receiving and handling leaves the update in this table instead of losing it. The
``update_id`` primary key makes a redelivered update a no-op.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import InboundUpdate, UpdateStatus
from storage.upsert import insert_ignoring_duplicates

MAX_ATTEMPTS = 5


def store_updates(session: Session, updates: Sequence[dict[str, Any]], *, now: datetime) -> int:
    """Store raw updates (idempotent on ``update_id``); return how many were new."""
    rows = [
        {
            "update_id": int(update["update_id"]),
            "payload": update,
            "status": UpdateStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "received_at": now,
        }
        for update in updates
        if isinstance(update.get("update_id"), int)
    ]
    table = InboundUpdate.__table__  # type: ignore[attr-defined]
    return insert_ignoring_duplicates(session, table, rows, conflict_columns=["update_id"])


def lock_due(session: Session, *, now: datetime, limit: int) -> list[InboundUpdate]:
    """The oldest pending updates that are due, locked until this transaction ends; oldest first.

    The worker claims, handles and marks its updates done in one transaction, so the row lock is the
    claim: another process skips the rows (``SKIP LOCKED`` on PostgreSQL; SQLite's one writer holds
    every row anyway), and a process that dies mid-way releases them at once, where a lease written into
    the rows cost a write per update and kept a dead worker's updates waiting until it ran out. Rows an
    earlier version leased (``locked_until``) are left alone until their lease ends.
    """
    return list(
        session.exec(
            select(InboundUpdate)
            .where(col(InboundUpdate.status) == UpdateStatus.PENDING.value)
            .where(InboundUpdate.next_attempt_at <= now)
            .where(sa.or_(col(InboundUpdate.locked_until).is_(None), col(InboundUpdate.locked_until) < now))
            .order_by(col(InboundUpdate.update_id))
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )


def lock_update(session: Session, update_id: int) -> InboundUpdate | None:
    """One pending update, locked like :func:`lock_due`; None if it is handled or another worker has it."""
    return session.exec(
        select(InboundUpdate)
        .where(col(InboundUpdate.update_id) == update_id)
        .where(col(InboundUpdate.status) == UpdateStatus.PENDING.value)
        .with_for_update(skip_locked=True)
    ).first()


# Built once: it runs for every update, and a reused statement skips SQLAlchemy's per-call rebuilding.
_MARK_DONE = (
    sa.update(InboundUpdate)
    .where(col(InboundUpdate.update_id) == sa.bindparam("done_update_id"))
    .values(
        status=UpdateStatus.DONE.value,
        processed_at=sa.bindparam("done_at"),
        locked_until=None,
        attempts=InboundUpdate.attempts + 1,
    )
)


def mark_done(session: Session, update_ids: Sequence[int], *, now: datetime) -> None:
    """Record that these updates' effects are committed (called inside the same transaction as them)."""
    if update_ids:
        rows = [{"done_update_id": update_id, "done_at": now} for update_id in update_ids]
        # On the session's connection: one executemany, without the ORM's bulk-update bookkeeping.
        session.connection().execute(_MARK_DONE, rows)


def mark_attempt_failed(
    session: Session,
    update_id: int,
    *,
    now: datetime,
    error: str,
    retry_base: timedelta = timedelta(seconds=1),
) -> bool:
    """Count a failed attempt and schedule a retry (after 2, 4, 8 … times ``retry_base``); return True when
    the update has now been given up."""
    row = session.get(InboundUpdate, update_id)
    if row is None:
        return False
    row.attempts += 1
    row.last_error = error[:500]
    row.locked_until = None
    if row.attempts >= MAX_ATTEMPTS:
        row.status = UpdateStatus.FAILED.value
        row.processed_at = now
    else:
        row.next_attempt_at = now + retry_base * 2**row.attempts
    session.add(row)
    return row.status == UpdateStatus.FAILED.value


def mark_unprocessable(session: Session, update_id: int, *, now: datetime, error: str) -> None:
    """Park an update that can never be handled (it does not even parse); kept for inspection."""
    session.execute(
        sa.update(InboundUpdate)
        .where(col(InboundUpdate.update_id) == update_id)
        .values(status=UpdateStatus.FAILED.value, processed_at=now, locked_until=None, last_error=error[:500])
    )


_HANDLED = (UpdateStatus.DONE.value, UpdateStatus.FAILED.value)


def prune_page(session: Session, *, before: datetime, limit: int) -> tuple[int, bool]:
    """Delete up to ``limit`` handled updates that arrived before ``before``, oldest first; return how many
    and whether a full page was found (more may be old enough).

    Only handled ones (done, or given up as failed): an update still waiting is what the worker has yet
    to do, however old. Found by their arrival time's index, so a sweep with nothing old enough reads
    next to nothing. Rows another transaction holds (an erasure scrubbing them) are left for next time.
    """
    found = session.exec(
        select(InboundUpdate.update_id)
        .where(col(InboundUpdate.received_at) < before)
        .where(col(InboundUpdate.status).in_(_HANDLED))
        .order_by(col(InboundUpdate.received_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if found:
        session.execute(sa.delete(InboundUpdate).where(col(InboundUpdate.update_id).in_(list(found))))
    return len(found), len(found) >= limit


def chat_of(payload: dict[str, Any]) -> int | None:
    """Return the private chat an update came from, to tell the person when their update failed."""
    for key in ("message", "edited_message", "callback_query"):
        part = payload.get(key)
        if isinstance(part, dict):
            sender = part.get("from")
            chat = part.get("chat")
            if isinstance(chat, dict) and chat.get("type") == "private" and isinstance(chat.get("id"), int):
                return int(chat["id"])
            if key == "callback_query" and isinstance(sender, dict) and isinstance(sender.get("id"), int):
                return int(sender["id"])
    return None
