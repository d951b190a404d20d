"""A small shop's rows written the way the bot leaves them (a delivery per purchase, its question in the
outbox, answers with their category, cases), for the report and export tests."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Engine
from sqlmodel import Session

from storage.db import unit_of_work
from storage.models import Answer, Case, Customer, OutboxMessage, Purchase, SurveyDelivery, TelegramUser
from storage.outbox import KIND_QUESTION
from surveys.nps import classify
from surveys.report_period import last_complete_week

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # Monday 09:00 in Berlin
WEEK = last_complete_week(NOW, BERLIN)  # Monday 2026-11-30 .. Sunday 2026-12-06
IN_WEEK = WEEK.start + timedelta(days=2)


class Shop:
    """Writes a small shop's rows: customers, purchases, surveys with their answers, cases."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._numbers = itertools.count(1)

    def customer(
        self,
        *,
        last_purchase: datetime | None = None,
        gap: timedelta | None = None,
        seen: datetime | None = None,
    ) -> int:
        number = next(self._numbers)
        user_id = None
        if seen is not None:
            user = TelegramUser(id=9000 + number, first_name=f"U{number}", last_seen_at=seen)
            self.session.add(user)
            self.session.flush()
            user_id = user.id
        customer = Customer(
            external_id=f"c-{number}",
            telegram_user_id=user_id,
            last_purchase_at=last_purchase,
            median_purchase_gap_s=int(gap.total_seconds()) if gap is not None else None,
        )
        self.session.add(customer)
        self.session.flush()
        assert customer.id is not None
        return customer.id

    def purchase(self, customer_id: int, at: datetime, amount: str | None = "10.00") -> int:
        number = next(self._numbers)
        purchase = Purchase(
            order_id=f"o-{number}",
            customer_id=customer_id,
            purchased_at=at,
            amount=Decimal(amount) if amount is not None else None,
            link_token=f"t-{number}",
        )
        self.session.add(purchase)
        self.session.flush()
        assert purchase.id is not None
        return purchase.id

    def survey(
        self,
        customer_id: int,
        *,
        started: datetime | None = IN_WEEK,
        score: int | None = None,
        answered: datetime | None = None,
        delivered: bool = True,
        held: bool = False,
        status: str = "completed",
        reminded: datetime | None = None,
        due: datetime | None = None,
    ) -> int:
        purchase_id = self.purchase(customer_id, started or due or IN_WEEK)
        category = classify(score).value if score is not None else None
        delivery = SurveyDelivery(
            purchase_id=purchase_id,
            customer_id=customer_id,
            survey_id="post_purchase",
            status=status,
            due_at=due or started or IN_WEEK,
            started_at=started,
            nps_score=score,
            nps_category=category,
            reminded_at=reminded,
        )
        self.session.add(delivery)
        self.session.flush()
        assert delivery.id is not None
        if delivered or held:
            self.session.add(
                OutboxMessage(
                    dedupe_key=f"ask:{delivery.id}:nps:1",
                    kind=KIND_QUESTION,
                    method="sendMessage",
                    chat_id=1,
                    payload={"text": "?"},
                    delivery_id=delivery.id,
                    status="sent" if delivered else "blocked",
                    sent_at=started if delivered else None,
                )
            )
        if score is not None:
            self.answer(delivery.id, "nps", "nps", at=answered or started or IN_WEEK, score=score)
        return delivery.id

    def answer(
        self,
        delivery_id: int,
        question_id: str,
        question_type: str,
        *,
        at: datetime = IN_WEEK,
        score: int | None = None,
        choice: str | None = None,
        text: str | None = None,
        polarity: float | None = None,
        skipped: bool = False,
    ) -> None:
        self.session.add(
            Answer(
                delivery_id=delivery_id,
                question_id=question_id,
                question_type=question_type,
                score=score,
                choice=choice,
                text=text,
                polarity=polarity,
                skipped=skipped,
                nps_category=classify(score).value if question_type == "nps" and score is not None else None,
                created_at=at,
            )
        )

    def case(
        self,
        customer_id: int,
        *,
        opened: datetime,
        kind: str = "critic",
        resolved: datetime | None = None,
        status: str | None = None,
        recovered: bool | None = None,
        recovery_answered: datetime | None = None,
    ) -> None:
        self.session.add(
            Case(
                customer_id=customer_id,
                kind=kind,
                status=status or ("resolved" if resolved else "open"),
                opened_at=opened,
                resolved_at=resolved,
                recovered=recovered,
                recovery_answered_at=recovery_answered,
            )
        )


def with_shop(engine: Engine, build: Callable[[Shop], None]) -> None:
    """Build a shop in one transaction."""
    with unit_of_work(engine) as session:
        build(Shop(session))
