"""``kundenpuls why CUSTOMER_ID``: what the bot plans for a customer next, when, and why; or why nothing.

Everything comes from the database: the customer's surveys with their due, reminder and expiry times,
the stored contact decisions (``contact_events``, each with its reason and explanation), and the
customer's own choices (/stop, /pause). What is planned is run through the same contact rules the sweep
uses (surveys/contact_rules.py), so "quiet hours move it from 06:30" here is what the sweep will do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.settings import Settings
from handlers.checkins import last_activity
from handlers.survey_timing import past_expiry
from storage import contacts
from storage.models import (
    ContactEvent,
    Customer,
    DeliveryStatus,
    OutboxMessage,
    Purchase,
    SurveyDelivery,
    TelegramUser,
)
from surveys.contact_rules import ContactDecision, ContactKind, decide

_RECENT_DECISIONS = 10
Rows = Sequence[tuple[SurveyDelivery, Purchase]]
Show = Callable[[datetime | None], str]


class UnknownCustomer(Exception):
    """No customer with that id."""


@dataclass(frozen=True)
class Explanation:
    """The answer of ``kundenpuls why``: a headline, what is next, the surveys, the recent decisions."""

    headline: str
    next_step: str
    surveys: list[str]
    decisions: list[str]
    checkin: str = ""

    def lines(self) -> list[str]:
        """The answer as printed."""
        out = [self.headline, f"Next: {self.next_step}"]
        if self.checkin:
            out.append(f"Check-in: {self.checkin}")
        if self.surveys:
            out += ["Surveys:", *(f"  {line}" for line in self.surveys)]
        if self.decisions:
            out += ["Recent decisions (newest first):", *(f"  {line}" for line in self.decisions)]
        return out


def explain(engine: Engine, settings: Settings, external_id: str, *, now: datetime) -> Explanation:
    """Explain what is planned for the customer the shop knows as ``external_id``."""
    with Session(engine) as session:
        customer = session.exec(select(Customer).where(Customer.external_id == external_id)).first()
        if customer is None or customer.id is None:
            raise UnknownCustomer(f"no customer with id {external_id!r} (the shop's customer_id)")
        user = session.get(TelegramUser, customer.telegram_user_id) if customer.telegram_user_id else None
        rows = session.exec(
            select(SurveyDelivery, Purchase)
            .join(Purchase, col(Purchase.id) == SurveyDelivery.purchase_id)
            .where(col(SurveyDelivery.customer_id) == customer.id)
            .order_by(col(SurveyDelivery.id).desc())
        ).all()
        events = session.exec(
            select(ContactEvent, OutboxMessage.sent_at)
            .outerjoin(OutboxMessage, col(OutboxMessage.dedupe_key) == col(ContactEvent.outbox_key))
            .where(col(ContactEvent.customer_id) == customer.id)
            .order_by(col(ContactEvent.id).desc())
            .limit(_RECENT_DECISIONS)
        ).all()
        history = contacts.history(
            session, customer_id=customer.id, user=user, now=now, zone=customer.time_zone
        )
    zone = settings.timezone

    def at(moment: datetime | None) -> str:
        return "–" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    who = f"Customer {external_id}" + (f" ({customer.name})" if customer.name else "")
    if user is None:
        state = "has not connected a Telegram chat yet (the bot cannot write first)"
    elif user.opted_out_at is not None:
        state = f"said /stop on {at(user.opted_out_at)}"
    elif user.paused_until is not None and user.paused_until > now:
        state = f"paused (/pause) until {at(user.paused_until)}"
    elif user.blocked_at is not None:
        state = f"blocked the bot on {at(user.blocked_at)}"
    else:
        state = "reachable in Telegram"
    surveys = [
        f"#{delivery.id} order {purchase.order_id}: {delivery.status}; due {at(delivery.due_at)}, "
        f"asked {at(delivery.started_at)}, reminder {at(delivery.reminder_due_at or delivery.reminded_at)}, "
        f"closes {at(delivery.expires_at)}"
        for delivery, purchase in rows
    ]
    decisions = [
        f"{at(event.at)} {event.kind} {event.outcome}"
        + (f" ({event.reason})" if event.reason else "")
        + (f": {event.detail}" if event.detail else "")
        + (f"; went out {at(sent_at)}" if sent_at is not None and at(sent_at) != at(event.at) else "")
        for event, sent_at in events
    ]
    planned = _planned(rows)
    checkin = _checkin(settings, customer, user, at=at)
    if planned is None or (checkin.when is not None and checkin.when < planned[1]):
        if checkin.when is not None:
            decision = decide(
                ContactKind.CHECKIN,
                at=max(checkin.when, now),
                policy=settings.contact_policy,
                history=history,
            )
            next_step = (
                _describe_checkin(checkin, decision, at=at)
                if decision.send_at is not None
                else _nothing_planned(user, rows, now=now, at=at)
            )
            if decision.send_at is None:
                checkin = replace(
                    checkin, line=f"{checkin.line}; it will not be sent: {decision.explanation}"
                )
        else:
            next_step = _nothing_planned(user, rows, now=now, at=at)
    else:
        kind, when, delivery = planned
        decision = decide(kind, at=max(when, now), policy=settings.contact_policy, history=history)
        closes = delivery.expires_at
        if kind is ContactKind.REMINDER and decision.send_at and closes and decision.send_at >= closes:
            decision = past_expiry(decision, closes)
        next_step = _describe(kind, delivery, decision, at=at)
    return Explanation(f"{who}: {state}", next_step, surveys, decisions, checkin.line)


@dataclass(frozen=True)
class _CheckinPlan:
    """When the sweep would check in with the customer (None: not at all), and the rule in words."""

    when: datetime | None
    line: str


def _checkin(settings: Settings, customer: Customer, user: TelegramUser | None, *, at: Show) -> _CheckinPlan:
    """The check-in the sweep would consider, by the same rules as handlers/checkins.py."""
    if customer.checkins_stopped_at is not None:
        return _CheckinPlan(
            None, f'none: the customer said "not interested" on {at(customer.checkins_stopped_at)}'
        )
    activity = last_activity(customer, user)
    if activity is None:
        return _CheckinPlan(None, "none: no purchase yet")
    gap = customer.median_purchase_gap_s
    rhythm = settings.contact_policy.rhythm(timedelta(seconds=gap) if gap is not None else None)
    basis = "last purchase" if activity == customer.last_purchase_at else "last message to the bot"
    rule = f"{rhythm.describe()} since the {basis} on {at(activity)}"
    if customer.checkin_done_at is not None and customer.checkin_done_at >= activity:
        return _CheckinPlan(
            None,
            f"none until the customer buys or writes again: this silence had its check-in on "
            f"{at(customer.checkin_done_at)} ({rule})",
        )
    return _CheckinPlan(activity + rhythm.silent_after, rule)


def _describe_checkin(plan: _CheckinPlan, decision: ContactDecision, *, at: Show) -> str:
    if decision.send_at is None:
        return f"the check-in will not be sent: {decision.explanation}"
    if decision.postponed:
        return f"check-in at {at(decision.send_at)} ({plan.line}); {decision.explanation}"
    return f"check-in at {at(decision.send_at)} ({plan.line})"


def _planned(rows: Rows) -> tuple[ContactKind, datetime, SurveyDelivery] | None:
    """The next unprompted contact the sweep will consider: a due survey or a reminder."""
    candidates: list[tuple[datetime, ContactKind, SurveyDelivery]] = []
    for delivery, _ in rows:
        if delivery.status == DeliveryStatus.SCHEDULED.value:
            candidates.append((delivery.due_at, ContactKind.SURVEY, delivery))
        elif delivery.status == DeliveryStatus.ACTIVE.value and delivery.reminder_due_at is not None:
            candidates.append((delivery.reminder_due_at, ContactKind.REMINDER, delivery))
    if not candidates:
        return None
    when, kind, delivery = min(candidates, key=lambda item: item[0])
    return kind, when, delivery


def _describe(kind: ContactKind, delivery: SurveyDelivery, decision: ContactDecision, *, at: Show) -> str:
    what = "survey" if kind is ContactKind.SURVEY else "reminder"
    if decision.send_at is None:
        return f"the {what} #{delivery.id} will not be sent: {decision.explanation}"
    return f"{what} #{delivery.id} at {at(decision.send_at)}: {decision.explanation}"


def _nothing_planned(user: TelegramUser | None, rows: Rows, *, now: datetime, at: Show) -> str:
    statuses = {delivery.status for delivery, _ in rows}
    if user is not None and user.opted_out_at is not None:
        return "nothing: the customer said /stop (/start undoes it)"
    if DeliveryStatus.AWAITING_CONTACT.value in statuses:
        return "nothing until the customer opens the bot: their survey waits for that"
    if DeliveryStatus.ACTIVE.value in statuses:
        return "nothing: a survey is open and its one reminder was sent or skipped; it closes on its own"
    if not statuses:
        return "nothing: no purchase with a survey yet"
    if user is not None and user.paused_until is not None and user.paused_until > now:
        return f"nothing: paused until {at(user.paused_until)}"
    return "nothing: every survey is finished, expired or skipped (see the decisions below)"
