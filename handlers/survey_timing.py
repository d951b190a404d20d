"""What the sweep does to surveys nobody finished: one reminder, then expiry.

The due times are columns of the survey (``reminder_due_at``, ``expires_at``, set when it is first asked),
claimed a page at a time ``FOR UPDATE SKIP LOCKED``, and what was done is stamped in the same transaction
as the messages it queues (one transaction per page, so a morning's backlog never holds SQLite's write
lock for long): a restart or a second replica neither loses nor repeats a reminder. A reminder is unprompted,
so the contact rules (surveys/contact_rules.py) decide it: quiet hours and the weekly cap postpone it
(its due time moves), /stop or an unreachable chat skip it; every decision is stored with its reason
(storage/contacts.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlmodel import Session, col

from handlers import conversation
from handlers.services import Services
from storage import claims, contacts, outbox
from storage.models import Customer, DeliveryStatus, SurveyDelivery, TelegramUser
from storage.outbox import KIND_CLOSED, OutboundCall
from surveys.contact_rules import ContactDecision, ContactKind, ContactReason, decide
from surveys.flow import next_question

_BATCH = 200
_OPEN = (DeliveryStatus.ACTIVE.value, DeliveryStatus.AWAITING_CONTACT.value)


def _claim(
    session: Session, statuses: Sequence[str], due: Any, *, now: datetime
) -> list[tuple[SurveyDelivery, Customer, TelegramUser | None]]:
    deliveries = claims.due_deliveries(session, statuses=statuses, due=due, now=now, limit=_BATCH)
    return claims.customers_of(session, deliveries)


def expire_page(session: Session, services: Services, *, now: datetime) -> tuple[int, bool]:
    """Close one page of open surveys whose SURVEY_EXPIRES_AFTER has passed: unanswered, buttons removed;
    return (messages queued, whether a full page was claimed: more may be due).

    An expired survey still counts as sent for the response rate; a later press on it gets a friendly
    answer and records nothing (handlers/customer_survey.py).
    """
    rows = _claim(session, _OPEN, col(SurveyDelivery.expires_at), now=now)
    queued = sum(_expire(session, delivery, user, now=now) for delivery, _, user in rows)
    return queued, len(rows) == _BATCH


def _expire(session: Session, delivery: SurveyDelivery, user: TelegramUser | None, *, now: datetime) -> int:
    open_question = delivery.current_question_id if delivery.status == DeliveryStatus.ACTIVE.value else None
    key = conversation.question_key(delivery, open_question) if open_question is not None else None
    delivery.status = DeliveryStatus.EXPIRED.value
    delivery.expired_at = now
    delivery.reminder_due_at = None
    session.add(delivery)
    outbox.cancel_delivery(session, _id(delivery.id), kinds=outbox.SURVEY_KINDS)
    message_id = outbox.message_id_of(session, key) if key is not None else None
    if message_id is None or user is None:
        return 0  # never shown (or its send was just cancelled): no keyboard to take away
    _take_buttons_off(session, f"expire:{key}", user.id, message_id, delivery, now=now)
    return 1


def remind_page(session: Session, services: Services, *, now: datetime) -> tuple[int, bool]:
    """Send the one reminder of a page of surveys whose REMINDER_AFTER has passed, if the rules allow it
    now; return (messages queued, whether a full page was claimed)."""
    rows = _claim(session, (DeliveryStatus.ACTIVE.value,), col(SurveyDelivery.reminder_due_at), now=now)
    queued = sum(
        _remind(session, services, delivery, customer, user, now=now) for delivery, customer, user in rows
    )
    return queued, len(rows) == _BATCH


def _remind(
    session: Session,
    services: Services,
    delivery: SurveyDelivery,
    customer: Customer,
    user: TelegramUser | None,
    *,
    now: datetime,
) -> int:
    customer_id = _id(customer.id)
    history = contacts.history(session, customer_id=customer_id, user=user, now=now, zone=customer.time_zone)
    decision = decide(ContactKind.REMINDER, at=now, policy=services.settings.contact_policy, history=history)
    expires_at = delivery.expires_at
    if decision.send_at is not None and expires_at is not None and decision.send_at >= expires_at:
        decision = past_expiry(decision, expires_at)
    event = contacts.record(session, decision, customer_id=customer_id, delivery_id=delivery.id, now=now)
    session.add(delivery)
    if decision.send_at is None:
        delivery.reminder_due_at = None
        return 0
    if decision.send_at > now:
        delivery.reminder_due_at = decision.send_at
        return 0
    delivery.reminder_due_at = None
    delivery.reminded_at = now
    survey = services.survey(delivery.survey_id)
    question = next_question(survey, conversation.recorded_answers(session, delivery))
    if question is None or user is None:
        return 0  # answered meanwhile: the survey completes with the answer's own update
    lang = services.language(delivery.language)
    old_key = conversation.question_key(delivery, question.id)
    old_message_id = outbox.message_id_of(session, old_key)
    outbox.cancel_delivery(session, _id(delivery.id), kinds=(outbox.KIND_QUESTION,))
    intro = services.text(lang, "survey_reminder")
    key = conversation.ask_question(
        session,
        services,
        delivery=delivery,
        question=question,
        chat_id=user.id,
        now=now,
        intro=intro,
        unprompted=conversation.unprompted_flag(customer),
    )
    contacts.sent_through(event, key)
    if old_message_id is not None:
        _take_buttons_off(session, f"reminded:{old_key}", user.id, old_message_id, delivery, now=now)
    return 1


def _take_buttons_off(
    session: Session, key: str, chat_id: int, message_id: int, delivery: SurveyDelivery, *, now: datetime
) -> None:
    """Remove the keyboard of a question nobody may answer there any more."""
    outbox.enqueue(
        session,
        OutboundCall(
            dedupe_key=key,
            kind=KIND_CLOSED,
            method="editMessageReplyMarkup",
            chat_id=chat_id,
            payload={"message_id": message_id},
            delivery_id=delivery.id,
        ),
        now=now,
    )


def past_expiry(decision: ContactDecision, expires_at: datetime) -> ContactDecision:
    """A reminder the rules move past the survey's expiry is not sent at all (``kundenpuls why`` says
    the same)."""
    when = expires_at.isoformat(timespec="minutes")
    return replace(
        decision,
        send_at=None,
        skipped=ContactReason.EXPIRED,
        explanation=f"skipped: {decision.explanation}, but the survey closes at {when} UTC",
    )


def _id(value: int | None) -> int:
    if value is None:
        raise RuntimeError("row has no primary key")
    return value
