"""The record of unprompted contacts: what was sent, skipped or postponed, and why.

The weekly cap counts what this table says was sent, so a restart or a second replica sees the same
history; nothing about a customer's contacts lives in memory.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlmodel import Session, col, func, select

from storage.models import ContactEvent, ContactOutcome, DeliveryStatus, SurveyDelivery, TelegramUser
from surveys.contact_rules import ContactDecision, ContactHistory

WEEK = timedelta(days=7)


def open_survey(session: Session, *, customer_id: int, other_than: int) -> SurveyDelivery | None:
    """Another survey of the customer that is still being answered (one survey at a time)."""
    return session.exec(
        select(SurveyDelivery)
        .where(col(SurveyDelivery.customer_id) == customer_id)
        .where(col(SurveyDelivery.status) == DeliveryStatus.ACTIVE.value)
        .where(col(SurveyDelivery.id) != other_than)
        .limit(1)
    ).first()


def record(
    session: Session,
    decision: ContactDecision,
    *,
    customer_id: int,
    delivery_id: int | None,
    now: datetime,
) -> ContactEvent:
    """Store a decision: sent now, postponed to ``send_at``, or skipped with its reason."""
    reason: str | None
    if decision.skipped is not None:
        outcome, reason = ContactOutcome.SKIPPED, decision.skipped.value
    elif decision.send_at is not None and decision.send_at > now:
        outcome = ContactOutcome.POSTPONED
        reason = decision.postponed[-1].value if decision.postponed else None
    else:
        outcome, reason = ContactOutcome.SENT, None
    event = ContactEvent(
        customer_id=customer_id,
        delivery_id=delivery_id,
        kind=decision.kind.value,
        outcome=outcome.value,
        reason=reason,
        at=now,
        planned_for=decision.send_at,
        detail=decision.explanation,
    )
    session.add(event)
    return event


def history(
    session: Session,
    *,
    customer_id: int,
    user: TelegramUser | None,
    now: datetime,
    other_than: int | None = None,
    zone: str | None = None,
) -> ContactHistory:
    """What the contact rules need to know about a customer: the unprompted messages of the last week,
    their last survey (other than the delivery ``other_than`` being decided), and whether they can and
    want to be reached; ``zone`` is the customer's own time zone when the shop gave one."""
    sent = session.exec(
        select(ContactEvent.at)
        .where(col(ContactEvent.customer_id) == customer_id)
        .where(col(ContactEvent.outcome) == ContactOutcome.SENT.value)
        .where(col(ContactEvent.at) > now - WEEK)
        .order_by(col(ContactEvent.at))
    ).all()
    last_survey = session.exec(
        select(func.max(SurveyDelivery.started_at))
        .where(col(SurveyDelivery.customer_id) == customer_id)
        .where(col(SurveyDelivery.id) != (other_than or 0))
    ).one()
    return ContactHistory(
        proactive_sent=tuple(sent),
        last_survey_at=last_survey,
        paused_until=user.paused_until if user is not None else None,
        stopped=user is not None and user.opted_out_at is not None,
        reachable=user is not None and user.blocked_at is None,
        zone=zone_of(zone),
    )


def zone_of(name: str | None) -> ZoneInfo | None:
    """The customer's stored zone, or None (the shop's TIMEZONE applies) when unknown or unusable here."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
