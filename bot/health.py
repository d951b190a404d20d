"""What ``/healthz`` reports beyond "ready": the state every process shares, read from the database.

A load balancer needs only the status code; an operator wants to know why alerts are not arriving. So
the body says whether Telegram has throttled the bot (429s counted over every process), whether a pause
is running, and whether the staff chat accepts messages and how many wait for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from storage import outbox


def delivery_health(session: Session, *, staff_chat_id: int | None, now: datetime) -> dict[str, Any]:
    """Return the delivery part of the health report (JSON-ready)."""
    budget = outbox.bot_budget(session)
    paused_until = budget.paused_until if budget is not None else None
    report: dict[str, Any] = {
        "telegram": {
            "throttled_total": budget.throttled_total if budget is not None else 0,
            "last_throttled_at": _iso(budget.last_throttled_at if budget is not None else None),
            "paused_until": _iso(paused_until) if paused_until is not None and paused_until > now else None,
        },
        "staff_chat": None,
    }
    if staff_chat_id is not None:
        target = outbox.migrations(session).get(staff_chat_id, staff_chat_id)
        state = outbox.chat_state(session, target)
        unreachable_since = state.unreachable_since if state is not None else None
        report["staff_chat"] = {
            "id": target,
            "configured_id": staff_chat_id,
            "reachable": unreachable_since is None,
            "unreachable_since": _iso(unreachable_since),
            "error": state.last_error if state is not None and unreachable_since is not None else None,
            "queued": outbox.queued_for(session, target),
        }
    return report


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
