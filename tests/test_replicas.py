"""Two replicas on one database never ask the same question twice or send the same message twice."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from bot.jobs import start_due_surveys
from bot.settings import Settings
from handlers.services import Services
from storage import outbox
from storage.db import create_db_engine, unit_of_work
from storage.models import OutboxMessage, SurveyDelivery, utcnow
from storage.pacing import bot_pace
from storage.purchases import record_purchase
from surveys.loader import load_builtin_survey
from surveys.purchase_report import PurchaseReport
from surveys.texts import load_catalogue

CUSTOMERS = 60


def _services() -> Services:
    survey = load_builtin_survey()
    settings = Settings(_env_file=None, default_language="de", quiet_hours="")  # type: ignore[call-arg]
    return Services(settings=settings, surveys={survey.id: survey}, catalogue=load_catalogue())


def _due_purchases(engine: Engine) -> None:
    with unit_of_work(engine) as session:
        for n in range(CUSTOMERS):
            report = PurchaseReport(order_id=f"R-{n}", customer_id=f"c-{n}", telegram_user_id=10_000 + n)
            record_purchase(
                session=session,
                report=report,
                survey_id="post_purchase",
                survey_delay=timedelta(0),
                source="api",
            )


class TestTwoReplicas:
    def test_concurrent_sweeps_ask_each_customer_once(self, engine: Engine) -> None:
        """Two sweeps racing over the same due surveys queue exactly one first question per survey."""
        _due_purchases(engine)
        services = _services()
        url = engine.url.render_as_string(hide_password=False)
        replicas = [create_db_engine(url) for _ in range(2)]
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                asked = list(pool.map(lambda e: start_due_surveys(e, services, now=utcnow()), replicas))
        finally:
            for replica in replicas:
                replica.dispose()
        assert sum(asked) == CUSTOMERS
        with Session(engine) as session:
            questions = session.exec(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "survey_question")
            ).one()
            active = session.exec(
                select(func.count()).select_from(SurveyDelivery).where(SurveyDelivery.status == "active")
            ).one()
        assert (questions, active) == (CUSTOMERS, CUSTOMERS)

    def test_concurrent_senders_claim_disjoint_rows(self, engine: Engine) -> None:
        """Two senders leasing from one outbox never get the same row."""
        _due_purchases(engine)
        start_due_surveys(engine, _services(), now=utcnow())
        url = engine.url.render_as_string(hide_password=False)
        replicas = [create_db_engine(url) for _ in range(2)]

        def claim(args: tuple[Engine, str]) -> list[int]:
            replica, owner = args
            claimed: list[int] = []
            while True:
                with unit_of_work(replica) as session:
                    claim = outbox.claim_due(
                        session,
                        owner=owner,
                        now=utcnow(),
                        lease=timedelta(minutes=5),
                        horizon=timedelta(seconds=1),
                        bot=bot_pace(1000),
                        limit=7,
                    )
                if not claim.calls:
                    return claimed
                claimed.extend(call.row.id for call in claim.calls if call.row.id is not None)

        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                first, second = pool.map(claim, [(replicas[0], "replica-a"), (replicas[1], "replica-b")])
        finally:
            for replica in replicas:
                replica.dispose()
        assert not set(first) & set(second)
        assert len(first) + len(second) == CUSTOMERS
