"""The record of unprompted contacts: what was sent, skipped or postponed, and why.

The weekly cap counts what this table says was sent, so a restart or a second replica sees the same
history; nothing about a customer's contacts lives in memory. It counts each message at the moment it
reached the customer (its outbox row's ``sent_at``), not the moment it was decided: a retry or the quiet
hours can lie between, and the rule is about what the customer receives.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from storage.models import (
    ContactEvent,
    ContactOutcome,
    DeliveryStatus,
    OutboxMessage,
    SurveyDelivery,
    TelegramUser,
)
from storage.outbox import KIND_QUESTION, UNSENT_STATUSES
from surveys.contact_rules import ContactDecision, ContactHistory

WEEK = timedelta(days=7)
_UNSENT = tuple(status.value for status in UNSENT_STATUSES)


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
    """Store a decision: sent now, postponed to ``send_at``, or skipped with its reason.

    For a message sent now, the caller names the row it queued (``sent_through``) once it has queued it.
    """
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


def sent_through(event: ContactEvent, outbox_key: str | None) -> None:
    """Name the outbox row a "sent" decision queued: its send time is what the weekly cap counts."""
    event.outbox_key = outbox_key


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
    return ContactHistory(
        proactive_sent=_sent_in_week(session, customer_id, now=now),
        last_survey_at=_last_survey_at(session, customer_id, other_than=other_than),
        paused_until=user.paused_until if user is not None else None,
        stopped=user is not None and user.opted_out_at is not None,
        reachable=user is not None and user.blocked_at is None,
        zone=zone_of(zone),
    )


def _sent_in_week(session: Session, customer_id: int, *, now: datetime) -> tuple[datetime, ...]:
    """When the unprompted messages that count against the week's cap reached the customer.

    A message still queued counts as going out now: it goes out no earlier, and a decision that counted
    it at its (earlier) decision time could let a message through that ends up within 7 days of it. One
    that was cancelled unsent (/stop, a reminder asking again) never reached anyone and does not count.
    Decisions that name no message (stored before their messages were linked) count at their decision.
    """
    week_ago = now - WEEK
    rows = session.exec(
        select(ContactEvent.at, OutboxMessage.sent_at, OutboxMessage.status)
        .select_from(ContactEvent)
        .outerjoin(OutboxMessage, col(OutboxMessage.dedupe_key) == col(ContactEvent.outbox_key))
        .where(col(ContactEvent.customer_id) == customer_id)
        .where(col(ContactEvent.outcome) == ContactOutcome.SENT.value)
        .where(
            sa.or_(
                col(ContactEvent.at) > week_ago,
                col(OutboxMessage.sent_at) > week_ago,
                col(OutboxMessage.status).in_(_UNSENT),
            )
        )
    ).all()
    instants: list[datetime] = []
    for decided_at, sent_at, status in rows:
        if sent_at is not None:
            instant = sent_at
        elif status is None:
            instant = decided_at
        elif status in _UNSENT:
            instant = max(decided_at, now)
        else:
            continue  # cancelled or failed unsent
        if instant > week_ago:
            instants.append(instant)
    return tuple(sorted(instants))


def _last_survey_at(session: Session, customer_id: int, *, other_than: int | None) -> datetime | None:
    """When the customer's latest survey was put to them: its first question's send time, else (not
    sent, or sent before send times were looked at) the moment it was started."""
    first_sent = (
        select(func.min(OutboxMessage.sent_at))
        .where(col(OutboxMessage.delivery_id) == col(SurveyDelivery.id))
        .where(col(OutboxMessage.kind) == KIND_QUESTION)
        .correlate(SurveyDelivery)
        .scalar_subquery()
    )
    latest: datetime | None = session.exec(
        select(func.max(func.coalesce(first_sent, SurveyDelivery.started_at)))
        .where(col(SurveyDelivery.customer_id) == customer_id)
        .where(col(SurveyDelivery.started_at).is_not(None))
        .where(col(SurveyDelivery.id) != (other_than or 0))
    ).one()
    return latest


def zone_of(name: str | None) -> ZoneInfo | None:
    """The customer's stored zone, or None (the shop's TIMEZONE applies) when unknown or unusable here."""
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
