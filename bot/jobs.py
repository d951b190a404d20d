"""Scheduled work: the sweep that opens surveys whose time has come, reminds and closes unfinished ones,
checks in with customers who went quiet, and follows up on cases.

What is due lives in the database (``survey_deliveries.due_at``), not in the scheduler, so a restart or a
second replica neither loses nor repeats a survey: each delivery moves out of "scheduled" exactly once,
under a row lock on PostgreSQL and the database lock on SQLite.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot import report_jobs
from handlers import case_followups as followups
from handlers import cases, checkins, conversation, survey_timing
from handlers.services import Services
from storage import claims, contacts, inbox
from storage.db import unit_of_work
from storage.models import ContactEvent, Customer, DeliveryStatus, SurveyDelivery, TelegramUser
from surveys.contact_rules import ContactKind, ContactReason, decide

log = logging.getLogger(__name__)

_SWEEP_BATCH = 200


def start_due_surveys(engine: Engine, services: Services, *, now: datetime) -> int:
    """Open every survey that is due; return how many questions were queued."""
    return _page_by_page(engine, lambda session: _start_due_page(session, services, now=now))


def _start_due_page(session: Session, services: Services, *, now: datetime) -> tuple[int, bool]:
    """Open one page of due surveys; return how many questions were queued and whether a page was full."""
    due = claims.due_deliveries(
        session,
        # asked for by opening the bot first: they answer what the customer just did
        statuses=(DeliveryStatus.REQUESTED.value, DeliveryStatus.SCHEDULED.value),
        due=col(SurveyDelivery.due_at),
        now=now,
        limit=_SWEEP_BATCH,
    )
    rows = claims.customers_of(session, due)
    asked = 0
    for delivery, customer, user in rows:
        if delivery.survey_id not in services.surveys:
            log.error("delivery %s names unknown survey %r; leaving it", delivery.id, delivery.survey_id)
            delivery.status = DeliveryStatus.STOPPED.value
        elif customer.erased_at is not None:  # erasure stops their surveys; this keeps it so
            delivery.status = DeliveryStatus.STOPPED.value
        elif user is None or user.blocked_at is not None:
            delivery.status = DeliveryStatus.AWAITING_CONTACT.value
            if delivery.expires_at is None:  # unreachable surveys close on time too
                delivery.expires_at = now + services.settings.survey_expires_after
        elif user.opted_out_at is not None:
            delivery.status = DeliveryStatus.STOPPED.value
        else:
            allowed, event = _allowed(session, services, delivery, customer, user, now=now)
            if allowed:
                key = conversation.start_survey(
                    session,
                    services,
                    delivery=delivery,
                    customer=customer,
                    user=user,
                    now=now,
                    unprompted=delivery.status == DeliveryStatus.SCHEDULED.value,
                )
                if event is not None:
                    contacts.sent_through(event, key)
                asked += 1
        session.add(delivery)
    return asked, len(rows) >= _SWEEP_BATCH


def _allowed(
    session: Session,
    services: Services,
    delivery: SurveyDelivery,
    customer: Customer,
    user: TelegramUser,
    *,
    now: datetime,
) -> tuple[bool, ContactEvent | None]:
    """Whether a due survey may be asked now, and the decision stored about it (none for a survey the
    customer asked for); a survey that may not is skipped or moved, with the reason stored.

    One survey at a time and SURVEY_COOLDOWN always apply. A survey the customer asked for by opening
    the bot (``REQUESTED``) answers what they just did, so quiet hours and the weekly cap do not hold it.
    """
    customer_id, delivery_id = _id(customer.id), _id(delivery.id)
    history = contacts.history(
        session, customer_id=customer_id, user=user, now=now, other_than=delivery_id, zone=customer.time_zone
    )
    decision = decide(ContactKind.SURVEY, at=now, policy=services.settings.contact_policy, history=history)
    still_open = contacts.open_survey(session, customer_id=customer_id, other_than=delivery_id)
    if still_open is not None:
        since = (still_open.started_at or now).date().isoformat()
        decision = replace(
            decision,
            send_at=None,
            skipped=ContactReason.COOLDOWN,
            explanation=f"skipped: the survey asked on {since} is still open (one survey at a time)",
        )
    if delivery.status == DeliveryStatus.REQUESTED.value and decision.skipped is None:
        return True, None  # an answer to their /start, not an unprompted message: the cap never counts it
    event = contacts.record(session, decision, customer_id=customer_id, delivery_id=delivery_id, now=now)
    if decision.send_at is None:
        delivery.status = DeliveryStatus.SKIPPED.value
        return False, event
    if decision.send_at > now:
        delivery.status = DeliveryStatus.SCHEDULED.value
        delivery.due_at = decision.send_at
        return False, event
    return True, event


def _id(value: int | None) -> int:
    if value is None:
        raise RuntimeError("row has no primary key")
    return value


def refresh_stale_cards(engine: Engine, services: Services, *, now: datetime) -> int:
    """Edit case cards that changed while their message was on its way; return how many were queued."""
    with unit_of_work(engine) as session:
        return cases.refresh_stale_cards(session, services, now=now)


def case_followups(engine: Engine, services: Services, *, now: datetime) -> int:
    """Escalations and recovery questions that are due (handlers/case_followups.py)."""
    with unit_of_work(engine) as session:
        return followups.run_due(session, services, now=now)


def _page_by_page(engine: Engine, page: Callable[[Session], tuple[int, bool]]) -> int:
    """Run ``page`` in its own transaction until it claims less than a full page; return what it queued.

    A transaction per page keeps each one short: SQLite has one writer, and a morning's backlog of
    thousands of due messages in one transaction would hold every customer's answer behind it.
    """
    queued = 0
    while True:
        with unit_of_work(engine) as session:
            count, more = page(session)
        queued += count
        if not more:
            return queued


def expire_surveys(engine: Engine, services: Services, *, now: datetime) -> int:
    """Close unfinished surveys whose time is up (handlers/survey_timing.py)."""
    return _page_by_page(engine, lambda session: survey_timing.expire_page(session, services, now=now))


def remind(engine: Engine, services: Services, *, now: datetime) -> int:
    """The one reminder of unfinished surveys (handlers/survey_timing.py)."""
    return _page_by_page(engine, lambda session: survey_timing.remind_page(session, services, now=now))


def check_in(engine: Engine, services: Services, *, now: datetime) -> int:
    """Check-ins with customers who went quiet (handlers/checkins.py)."""
    return _page_by_page(engine, lambda session: checkins.run_page(session, services, now=now))


_PRUNE_BATCH = 500


def prune_raw_updates(engine: Engine, services: Services, *, now: datetime) -> int:
    """Delete handled raw updates older than RAW_UPDATE_RETENTION, a page per transaction; return how
    many. What customers wrote is kept only as long as it may be needed to look into a problem."""
    before = now - services.settings.raw_update_retention
    return _page_by_page(engine, lambda session: inbox.prune_page(session, before=before, limit=_PRUNE_BATCH))


def sweep(engine: Engine, services: Services, *, now: datetime) -> int:
    """Everything the periodic sweep does; return how many messages it queued. Expiry comes first, so
    that a survey that just closed no longer counts as the customer's open one; check-ins come after the
    surveys and reminders, which count against the same weekly cap and are about a purchase. Pruning
    old raw updates queues nothing and comes last."""
    queued = expire_surveys(engine, services, now=now)
    queued += start_due_surveys(engine, services, now=now)
    queued += remind(engine, services, now=now)
    queued += check_in(engine, services, now=now)
    queued += refresh_stale_cards(engine, services, now=now)
    report_jobs.ask_weekly_summaries(engine, services, now=now)
    queued += report_jobs.deliver_reports(engine, services, now=now)
    queued += case_followups(engine, services, now=now)
    prune_raw_updates(engine, services, now=now)
    return queued
