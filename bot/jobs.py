"""Scheduled work: the sweep that opens surveys whose time has come, reminds and closes unfinished ones,
and follows up on cases.

What is due lives in the database (``survey_deliveries.due_at``), not in the scheduler, so a restart or a
second replica neither loses nor repeats a survey: each delivery moves out of "scheduled" exactly once,
under a row lock on PostgreSQL and the database lock on SQLite.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from handlers import case_followups as followups
from handlers import cases, conversation, survey_timing
from handlers.services import Services
from storage.db import unit_of_work
from storage.models import Customer, DeliveryStatus, SurveyDelivery, TelegramUser

log = logging.getLogger(__name__)

_SWEEP_BATCH = 200


def start_due_surveys(engine: Engine, services: Services, *, now: datetime) -> int:
    """Open every survey that is due; return how many questions were queued."""
    asked = 0
    while True:
        with unit_of_work(engine) as session:
            rows = session.exec(
                select(SurveyDelivery, Customer, TelegramUser)
                .join(Customer, sa.and_(col(Customer.id) == SurveyDelivery.customer_id))
                .outerjoin(TelegramUser, sa.and_(col(TelegramUser.id) == Customer.telegram_user_id))
                .where(col(SurveyDelivery.status) == DeliveryStatus.SCHEDULED.value)
                .where(SurveyDelivery.due_at <= now)
                .order_by(col(SurveyDelivery.due_at), col(SurveyDelivery.id))
                .limit(_SWEEP_BATCH)
                .with_for_update(of=SurveyDelivery, skip_locked=True)
            ).all()
            for delivery, customer, user in rows:
                if delivery.survey_id not in services.surveys:
                    log.error(
                        "delivery %s names unknown survey %r; leaving it", delivery.id, delivery.survey_id
                    )
                    delivery.status = DeliveryStatus.STOPPED.value
                elif user is None or user.blocked_at is not None:
                    delivery.status = DeliveryStatus.AWAITING_CONTACT.value
                    if delivery.expires_at is None:  # unreachable surveys close on time too
                        delivery.expires_at = now + services.settings.survey_expires_after
                elif user.opted_out_at is not None:
                    delivery.status = DeliveryStatus.STOPPED.value
                else:
                    conversation.start_survey(
                        session, services, delivery=delivery, customer=customer, user=user, now=now
                    )
                    asked += 1
                session.add(delivery)
        if len(rows) < _SWEEP_BATCH:
            return asked


def refresh_stale_cards(engine: Engine, services: Services, *, now: datetime) -> int:
    """Edit case cards that changed while their message was on its way; return how many were queued."""
    with unit_of_work(engine) as session:
        return cases.refresh_stale_cards(session, services, now=now)


def case_followups(engine: Engine, services: Services, *, now: datetime) -> int:
    """Escalations and recovery questions that are due (handlers/case_followups.py)."""
    with unit_of_work(engine) as session:
        return followups.run_due(session, services, now=now)


def remind_and_expire(engine: Engine, services: Services, *, now: datetime) -> int:
    """Reminders and expiry of unfinished surveys (handlers/survey_timing.py)."""
    with unit_of_work(engine) as session:
        return survey_timing.run_due(session, services, now=now)


def sweep(engine: Engine, services: Services, *, now: datetime) -> int:
    """Everything the periodic sweep does; return how many messages it queued."""
    queued = start_due_surveys(engine, services, now=now)
    queued += remind_and_expire(engine, services, now=now)
    queued += refresh_stale_cards(engine, services, now=now)
    return queued + case_followups(engine, services, now=now)
