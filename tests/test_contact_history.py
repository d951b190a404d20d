"""What the weekly cap and SURVEY_COOLDOWN count: when a message reached the customer, not when it was
decided (storage/contacts.py, on SQLite and PostgreSQL).

A message decided at one moment can go out much later: retries after errors, a 429 pause, the sender
holding it until the morning. The rules are about what the customer receives in any 7 days, so the
history gives each message's send time, counts one still queued as going out now, and forgets one that
was cancelled before anyone saw it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from storage import contacts
from storage.db import unit_of_work
from storage.models import (
    ContactEvent,
    Customer,
    OutboxMessage,
    OutboxStatus,
    Purchase,
    SurveyDelivery,
)
from storage.outbox import KIND_CHECKIN, KIND_QUESTION

NOW = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)


def _customer(session: Session) -> int:
    customer = Customer(external_id="c-1")
    session.add(customer)
    session.flush()
    assert customer.id is not None
    return customer.id


def _contact(
    session: Session,
    customer_id: int,
    *,
    decided: datetime,
    status: OutboxStatus | None,
    sent: datetime | None = None,
    kind: str = KIND_CHECKIN,
    delivery_id: int | None = None,
) -> None:
    """A "sent" decision at ``decided`` and (unless ``status`` is None) the message it queued."""
    key = f"test:{customer_id}:{decided.isoformat()}"
    session.add(
        ContactEvent(
            customer_id=customer_id,
            delivery_id=delivery_id,
            kind="checkin",
            outcome="sent",
            at=decided,
            outbox_key=key if status is not None else None,
        )
    )
    if status is not None:
        session.add(
            OutboxMessage(
                dedupe_key=key,
                kind=kind,
                method="sendMessage",
                chat_id=1,
                payload={"text": "x"},
                delivery_id=delivery_id,
                status=status.value,
                next_attempt_at=decided,
                created_at=decided,
                sent_at=sent,
            )
        )


def _survey(session: Session, customer_id: int, *, started: datetime, status: str) -> int:
    """A survey of the customer started at ``started``; return its delivery id."""
    purchase = Purchase(order_id="o-1", customer_id=customer_id, purchased_at=started, link_token="t-1")
    session.add(purchase)
    session.flush()
    assert purchase.id is not None
    delivery = SurveyDelivery(
        purchase_id=purchase.id,
        customer_id=customer_id,
        survey_id="post_purchase",
        status=status,
        started_at=started,
    )
    session.add(delivery)
    session.flush()
    assert delivery.id is not None
    return delivery.id


def _sent_in_week(engine: Engine) -> tuple[datetime, ...]:
    with Session(engine) as session:
        customer = session.get(Customer, 1)
        assert customer is not None and customer.id is not None
        return contacts.history(session, customer_id=customer.id, user=None, now=NOW).proactive_sent


class TestWeeklyCapCountsSendTimes:
    def test_a_message_counts_from_when_it_went_out(self, engine: Engine) -> None:
        """Decided 7 days and 1 hour ago, sent 2 hours later: still within the week, at its send time."""
        decided = NOW - timedelta(days=7, hours=1)
        with unit_of_work(engine) as session:
            customer_id = _customer(session)
            _contact(
                session,
                customer_id,
                decided=decided,
                status=OutboxStatus.SENT,
                sent=decided + timedelta(hours=2),
            )
        assert _sent_in_week(engine) == (decided + timedelta(hours=2),)

    def test_a_message_still_queued_counts_as_going_out_now(self, engine: Engine) -> None:
        """Decided 8 days ago and still held (the chat refused it): it goes out no earlier than now."""
        with unit_of_work(engine) as session:
            customer_id = _customer(session)
            _contact(session, customer_id, decided=NOW - timedelta(days=8), status=OutboxStatus.BLOCKED)
            _contact(session, customer_id, decided=NOW - timedelta(hours=1), status=OutboxStatus.PENDING)
        assert _sent_in_week(engine) == (NOW, NOW)

    def test_a_message_cancelled_unsent_does_not_count(self, engine: Engine) -> None:
        """A check-in the customer's /stop cancelled before it went out reached nobody."""
        with unit_of_work(engine) as session:
            customer_id = _customer(session)
            _contact(session, customer_id, decided=NOW - timedelta(days=1), status=OutboxStatus.CANCELLED)
        assert _sent_in_week(engine) == ()

    def test_a_decision_that_names_no_message_counts_from_its_decision(self, engine: Engine) -> None:
        """Decisions stored before migration 0010 name no message: they count as they always did."""
        with unit_of_work(engine) as session:
            customer_id = _customer(session)
            _contact(session, customer_id, decided=NOW - timedelta(days=3), status=None)
            _contact(session, customer_id, decided=NOW - timedelta(days=8), status=None)
        assert _sent_in_week(engine) == (NOW - timedelta(days=3),)

    def test_a_message_sent_more_than_a_week_ago_does_not_count(self, engine: Engine) -> None:
        with unit_of_work(engine) as session:
            customer_id = _customer(session)
            decided = NOW - timedelta(days=8)
            _contact(session, customer_id, decided=decided, status=OutboxStatus.SENT, sent=decided)
        assert _sent_in_week(engine) == ()


class TestCooldownCountsSendTimes:
    def test_the_last_survey_is_when_its_first_question_went_out(self, engine: Engine) -> None:
        """Started at noon, its question held by retries until 14:00: the cooldown runs from 14:00."""
        started = NOW - timedelta(days=20)
        with unit_of_work(engine) as session:
            customer_id = _customer(session)
            delivery_id = _survey(session, customer_id, started=started, status="completed")
            _contact(
                session,
                customer_id,
                decided=started,
                status=OutboxStatus.SENT,
                sent=started + timedelta(hours=2),
                kind=KIND_QUESTION,
                delivery_id=delivery_id,
            )
        with Session(engine) as session:
            history = contacts.history(session, customer_id=customer_id, user=None, now=NOW)
        assert history.last_survey_at == started + timedelta(hours=2)

    def test_a_survey_whose_question_never_went_out_counts_from_its_start(self, engine: Engine) -> None:
        started = NOW - timedelta(days=20)
        with unit_of_work(engine) as session:
            customer_id = _customer(session)
            _survey(session, customer_id, started=started, status="expired")
        with Session(engine) as session:
            history = contacts.history(session, customer_id=customer_id, user=None, now=NOW)
        assert history.last_survey_at == started
