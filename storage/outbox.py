"""The delivery queue: every message the bot must send is a row here before it is sent.

Rows are written in the same transaction as the change that needs them (an answer, a survey start), so a
message is never lost to a crash and never queued twice (``dedupe_key``). Senders lease rows
(``locked_until`` + ``lease_owner``) so that two senders, in one process or in two replicas, never send the
same row at once, and a crashed sender's rows are picked up again when its lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import OutboxMessage, OutboxStatus, utcnow
from storage.upsert import insert_ignoring_duplicates


@dataclass(frozen=True)
class OutboundCall:
    """One Bot API call to queue."""

    dedupe_key: str
    kind: str
    method: str
    chat_id: int | None
    payload: dict[str, Any]
    delivery_id: int | None = None


def enqueue(session: Session, call: OutboundCall, *, now: datetime | None = None) -> bool:
    """Queue a call unless one with the same ``dedupe_key`` exists; return True when it was new."""
    now = now or utcnow()
    row = {
        "dedupe_key": call.dedupe_key,
        "kind": call.kind,
        "method": call.method,
        "chat_id": call.chat_id,
        "payload": call.payload,
        "delivery_id": call.delivery_id,
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    return insert_ignoring_duplicates(session, table, [row], conflict_columns=["dedupe_key"]) == 1


def claim_due(
    session: Session, *, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[OutboxMessage]:
    """Lease up to ``limit`` due rows, oldest first."""
    free = sa.or_(col(OutboxMessage.locked_until).is_(None), col(OutboxMessage.locked_until) < now)
    candidates = session.exec(
        select(OutboxMessage.id)
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING.value)
        .where(OutboxMessage.next_attempt_at <= now)
        .where(col(OutboxMessage.chat_id).is_not(None))
        .where(free)
        .order_by(col(OutboxMessage.id))
        .limit(limit)
    ).all()
    if not candidates:
        return []
    session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.id).in_(candidates))
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING.value)
        .where(free)
        .values(locked_until=now + lease, lease_owner=owner)
    )
    return list(
        session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.id).in_(candidates))
            .where(col(OutboxMessage.lease_owner) == owner)
            .where(col(OutboxMessage.locked_until) == now + lease)
            .order_by(col(OutboxMessage.id))
        ).all()
    )


def next_due_at(session: Session) -> datetime | None:
    """Return when the next pending row falls due, so the sender can sleep exactly until then."""
    return session.exec(
        select(sa.func.min(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.status == OutboxStatus.PENDING.value
        )
    ).one()


def sent_message_id(session: Session, dedupe_key: str) -> int | None:
    """Return the Telegram message id a queued message got, if it has been sent."""
    return session.exec(
        select(OutboxMessage.sent_message_id).where(col(OutboxMessage.dedupe_key) == dedupe_key)
    ).first()


def release_chat(
    session: Session, chat_id: int, *, from_statuses: tuple[OutboxStatus, ...], now: datetime
) -> int:
    """Put a chat's held rows (blocked, awaiting contact) back in the queue; return how many."""
    result = session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.chat_id) == chat_id)
        .where(col(OutboxMessage.status).in_([status.value for status in from_statuses]))
        .values(status=OutboxStatus.PENDING.value, next_attempt_at=now, locked_until=None, lease_owner=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def hold_chat(session: Session, chat_id: int, *, status: OutboxStatus) -> int:
    """Hold a chat's pending rows (the user blocked the bot) until they are released again."""
    result = session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.chat_id) == chat_id)
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING.value)
        .values(status=status.value, locked_until=None, lease_owner=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def cancel_chat(session: Session, chat_id: int, *, kinds: tuple[str, ...]) -> int:
    """Cancel a chat's unsent rows of the given kinds (the customer said /stop)."""
    result = session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.chat_id) == chat_id)
        .where(col(OutboxMessage.kind).in_(kinds))
        .where(
            col(OutboxMessage.status).in_(
                [OutboxStatus.PENDING.value, OutboxStatus.BLOCKED.value, OutboxStatus.AWAITING_CONTACT.value]
            )
        )
        .values(status=OutboxStatus.CANCELLED.value, locked_until=None, lease_owner=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class SendOutcome:
    """What happened to one leased row; applied to the database in one batch after sending."""

    row_id: int
    status: OutboxStatus
    next_attempt_at: datetime | None = None
    error: str | None = None
    message_id: int | None = None
    count_attempt: bool = True


def apply_outcomes(
    session: Session, rows: dict[int, OutboxMessage], outcomes: list[SendOutcome], *, now: datetime
) -> None:
    """Write the results of a send batch in one executemany (the rows are leased to us, so their
    current values are the ones we read)."""
    if not outcomes:
        return
    parameters = []
    for outcome in outcomes:
        row = rows[outcome.row_id]
        sent = outcome.status is OutboxStatus.SENT
        parameters.append(
            {
                "id": outcome.row_id,
                "status": outcome.status.value,
                "locked_until": None,
                "lease_owner": None,
                "attempts": row.attempts + (1 if outcome.count_attempt else 0),
                "sent_at": now if sent else row.sent_at,
                "sent_message_id": outcome.message_id if sent else row.sent_message_id,
                "next_attempt_at": outcome.next_attempt_at or row.next_attempt_at,
                "last_error": None if sent else (outcome.error or row.last_error or "")[:500] or None,
            }
        )
    session.execute(sa.update(OutboxMessage), parameters)
