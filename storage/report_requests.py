"""Reports that must be sent: the weekly summary per manager chat and occurrence, /report and /export.

A report is asked for in one short transaction (a row here) and built outside any write transaction:
its aggregates over a year of answers and its chart take a second, and on SQLite a second inside the
writer's lock would hold up every customer's answer. The unique ``key`` makes the weekly summary exactly
once per manager and week, whether one process sees the occurrence or three do, before or after a
restart; the lease (``locked_until``) hands a request whose builder died to the next sweep.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import ReportRequest, ReportRequestStatus
from storage.upsert import insert_ignoring_duplicates

KIND_SUMMARY = "summary"
"""The weekly summary (text and chart)."""
KIND_REPORT = "report"
"""/report: the same for the period asked for."""
KIND_EXPORT = "export"
"""/export: the period's answers as a CSV document."""
KIND_BASELINE = "baseline"
"""Not a report: the row that says from which occurrence on summaries are owed (:data:`BASELINE_KEY`)."""
LEASE = datetime.timedelta(minutes=2)
MAX_ATTEMPTS = 5


def ask(
    session: Session,
    *,
    key: str,
    chat_id: int,
    kind: str,
    start: datetime.datetime,
    end: datetime.datetime,
    language: str,
    now: datetime.datetime,
    due_for: datetime.datetime | None = None,
    late: bool = False,
    status: ReportRequestStatus = ReportRequestStatus.PENDING,
) -> bool:
    """Ask for a report unless one was asked for under ``key`` already; True when this call asked."""
    row = {
        "key": key,
        "chat_id": chat_id,
        "kind": kind,
        "period_start": start,
        "period_end": end,
        "language": language,
        "due_for": due_for,
        "late": late,
        "status": status.value,
        "attempts": 0,
        "created_at": now,
    }
    table = ReportRequest.__table__  # type: ignore[attr-defined]
    return insert_ignoring_duplicates(session, table, [row], conflict_columns=["key"]) == 1


BASELINE_KEY = "weekly:baseline"
"""The occurrence that was the latest when this database first saw managers configured: summaries are
owed from the next one on (a new installation does not send last week's summary as a late one)."""


def baseline(session: Session) -> datetime.datetime | None:
    """The occurrence the weekly summaries start after; None before the first sweep with managers."""
    return session.exec(select(ReportRequest.due_for).where(col(ReportRequest.key) == BASELINE_KEY)).first()


def known(session: Session, keys: Iterable[str]) -> set[str]:
    """Which of ``keys`` were asked for already."""
    wanted = list(keys)
    if not wanted:
        return set()
    return set(session.exec(select(ReportRequest.key).where(col(ReportRequest.key).in_(wanted))).all())


def _due(now: datetime.datetime) -> list[sa.ColumnElement[bool]]:
    return [
        col(ReportRequest.status) == ReportRequestStatus.PENDING.value,
        sa.or_(col(ReportRequest.locked_until).is_(None), col(ReportRequest.locked_until) <= now),
    ]


def any_due(session: Session, *, now: datetime.datetime) -> bool:
    """Whether a request waits to be built (nobody holds its lease)."""
    return session.exec(select(ReportRequest.id).where(*_due(now)).limit(1)).first() is not None


def claim(session: Session, *, owner: str, now: datetime.datetime) -> ReportRequest | None:
    """Lease the oldest pending request nobody is building; None when there is none."""
    query = select(ReportRequest).where(*_due(now)).order_by(col(ReportRequest.id)).limit(1)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    request = session.exec(query).first()
    if request is None:
        return None
    request.locked_until = now + LEASE
    request.lease_owner = owner
    request.attempts += 1
    session.add(request)
    return request


def finish(session: Session, request_id: int, *, owner: str, now: datetime.datetime) -> bool:
    """Mark a request done, in the transaction that queues its messages; False when the lease was lost
    (another builder took it over: its messages, under the same outbox keys, are queued once anyway)."""
    result = session.execute(
        sa.update(ReportRequest)
        .where(col(ReportRequest.id) == request_id)
        .where(col(ReportRequest.lease_owner) == owner)
        .where(col(ReportRequest.status) == ReportRequestStatus.PENDING.value)
        .values(status=ReportRequestStatus.DONE.value, done_at=now, locked_until=None, lease_owner=None)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def give_up_or_retry(
    session: Session, request_id: int, error: str, *, owner: str, now: datetime.datetime
) -> bool:
    """After a failed build: try again later (the lease runs out), or give up after MAX_ATTEMPTS; True
    when it was given up."""
    request = session.get(ReportRequest, request_id)
    if request is None or request.lease_owner != owner:
        return False
    request.last_error = error[:500]
    if request.attempts >= MAX_ATTEMPTS:
        request.status = ReportRequestStatus.FAILED.value
        request.locked_until = None
        request.lease_owner = None
    else:
        request.locked_until = now + LEASE * request.attempts
    session.add(request)
    return request.status == ReportRequestStatus.FAILED.value
