"""Recording purchases: one survey per order, however often it is reported."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from storage.db import unit_of_work
from storage.models import Customer, SurveyDelivery
from storage.purchases import record_purchase
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
