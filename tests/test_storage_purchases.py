"""Recording purchases: one survey per order, however often it is reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from storage.db import unit_of_work
from storage.models import ContactEvent, Customer, DeliveryStatus, Purchase, SurveyDelivery
from storage.purchases import RecordedPurchase, record_purchase
from surveys.contact_rules import ContactPolicy
from surveys.purchase_report import PurchaseReport

DELAY = timedelta(days=2)


def _record(engine: Engine, **fields: object) -> object:
    report = PurchaseReport.model_validate({"order_id": "A-1", "customer_id": "c-1", **fields})
    with unit_of_work(engine) as session:
        return record_purchase(
            session=session, report=report, survey_id="post_purchase", survey_delay=DELAY, source="api"
        )


class TestRecordPurchase:
    def test_new_order_schedules_one_survey_after_the_delay(self, engine: Engine) -> None:
        """A new order is due for its survey SURVEY_DELAY after the purchase."""
        bought = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
        result = _record(engine, purchased_at=bought.isoformat())
        assert result.created  # type: ignore[attr-defined]
        assert result.survey_due_at == bought + DELAY  # type: ignore[attr-defined]

    def test_same_order_twice_returns_the_first_and_adds_nothing(self, engine: Engine) -> None:
        """Reporting an order again answers with the stored result and never schedules a second survey."""
        first = _record(engine, name="Anna")
        second = _record(engine, name="Anna")
        assert not second.created  # type: ignore[attr-defined]
        assert second.link_token == first.link_token  # type: ignore[attr-defined]
        with Session(engine) as session:
            assert session.exec(select(func.count()).select_from(SurveyDelivery)).one() == 1
            assert session.exec(select(func.count()).select_from(Customer)).one() == 1

    def test_link_token_fits_telegram_deep_links(self, engine: Engine) -> None:
        """The start token uses only A-Za-z0-9_- and stays within 64 characters."""
        token = _record(engine).link_token  # type: ignore[attr-defined]
        assert 16 <= len(token) <= 64
        assert all(ch.isalnum() or ch in "-_" for ch in token)


def _record_with_rules(engine: Engine, order_id: str, purchased_at: datetime) -> RecordedPurchase:
    report = PurchaseReport.model_validate(
        {"order_id": order_id, "customer_id": "c-1", "purchased_at": purchased_at.isoformat()}
    )
    with unit_of_work(engine) as session:
        return record_purchase(
            session=session,
            report=report,
            survey_id="post_purchase",
            survey_delay=DELAY,
            source="csv",
            policy=POLICY,
        )


POLICY = ContactPolicy(
    quiet_hours=None,
    zone=ZoneInfo("Europe/Berlin"),
    survey_cooldown=timedelta(days=30),
    max_proactive_per_week=2,
    survey_max_age=timedelta(days=14),
)


class TestOldPurchases:
    def test_a_purchase_older_than_survey_max_age_is_stored_without_a_survey(self, engine: Engine) -> None:
        """Last year's orders from a CSV count for revenue and rhythm but message nobody; the skip is
        stored with its reason, and reporting the order again says the same."""
        result = _record_with_rules(engine, "OLD-1", datetime.now(UTC) - timedelta(days=15))
        assert result.created and result.survey_skipped is not None
        assert "SURVEY_MAX_AGE" in result.survey_skipped
        again = _record_with_rules(engine, "OLD-1", datetime.now(UTC) - timedelta(days=15))
        assert not again.created and again.survey_skipped == result.survey_skipped
        with Session(engine) as session:
            (delivery,) = session.exec(select(SurveyDelivery)).all()
            assert delivery.status == DeliveryStatus.SKIPPED.value
            events = session.exec(select(ContactEvent)).all()
            assert [(e.kind, e.outcome, e.reason) for e in events] == [("survey", "skipped", "too_old")]
            assert session.exec(select(func.count()).select_from(Purchase)).one() == 1

    def test_a_recent_purchase_gets_its_survey(self, engine: Engine) -> None:
        """Within SURVEY_MAX_AGE the survey is scheduled as usual and nothing is recorded as skipped."""
        result = _record_with_rules(engine, "NEW-1", datetime.now(UTC) - timedelta(days=13))
        assert result.survey_skipped is None
        with Session(engine) as session:
            (delivery,) = session.exec(select(SurveyDelivery)).all()
            assert delivery.status == DeliveryStatus.SCHEDULED.value
            assert session.exec(select(ContactEvent)).all() == []
