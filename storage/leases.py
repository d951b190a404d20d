"""Named leases: a role (polling getUpdates) that exactly one process holds until it stops renewing.

A lease is a row in ``leases`` with an owner and an expiry. Taking it is one conditional statement, so
the database decides between two processes that try at the same moment: on PostgreSQL the second
``UPDATE`` waits for the first one's row lock and then re-checks its ``WHERE`` against the committed row;
on SQLite ``BEGIN IMMEDIATE`` lets only one writer in at a time. A process that dies simply stops
renewing, and its lease runs out.

Timestamps come from the callers' clocks, so the processes sharing a lease need clocks that agree (NTP);
a difference between them shortens or lengthens the lease by as much. Like every query function here,
these never commit: the caller's unit of work does.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Lease, UtcDateTime
from storage.upsert import insert_ignoring_duplicates


def acquire_or_renew(session: Session, *, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
    """Take the lease ``name`` for ``owner`` until ``now + ttl``, or renew it; return True when it is held.

    A free name is inserted; an existing lease is taken only if it has expired or already belongs to
    ``owner``. Renewing keeps ``acquired_at``; taking over resets it.
    """
    expires_at = now + ttl
    table = Lease.__table__  # type: ignore[attr-defined]
    row = {"name": name, "owner": owner, "acquired_at": now, "expires_at": expires_at}
    if insert_ignoring_duplicates(session, table, [row], conflict_columns=["name"]):
        return True
    ours = col(Lease.owner) == owner
    result = session.execute(
        sa.update(Lease)
        .where(col(Lease.name) == name)
        .where(sa.or_(ours, col(Lease.expires_at) <= now))
        .values(
            owner=owner,
            expires_at=expires_at,
            acquired_at=sa.case((ours, col(Lease.acquired_at)), else_=sa.literal(now, UtcDateTime())),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def release(session: Session, *, name: str, owner: str) -> bool:
    """Give up the lease ``name`` if ``owner`` holds it, so another process can take it at once; return
    True when there was one to give up."""
    result = session.execute(sa.delete(Lease).where(col(Lease.name) == name).where(col(Lease.owner) == owner))
    return int(getattr(result, "rowcount", 0) or 0) == 1


def holder(session: Session, *, name: str, now: datetime) -> str | None:
    """Return who holds the lease ``name`` at ``now``, or None when nobody does (absent or expired)."""
    return session.exec(
        select(Lease.owner).where(col(Lease.name) == name).where(col(Lease.expires_at) > now)
    ).first()
