"""A group of updates renders its critics' cards from one load: same figures, a handful of statements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from storage import cases, outbox, preload
from storage.db import unit_of_work
from storage.models import Case, OutboxMessage, SurveyDelivery
from storage.outbox import KIND_CASE_CARD
from storage.purchases import record_purchase
from surveys.purchase_report import PurchaseReport

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _shop(engine: Engine, customers: int) -> list[int]:
    """Customers with one to three purchases each (one of them over a year ago) and earlier scores;
    returns the delivery of each customer's newest purchase, the one their answer is about."""
    newest = []
    for number in range(customers):
        for order in range(1 + number % 3):
            bought = NOW - timedelta(days=400 if order == 2 else 10 * (2 - order))
            report = PurchaseReport.model_validate(
                {
                    "order_id": f"A-{number}-{order}",
                    "customer_id": f"c-{number}",
                    "telegram_user_id": 1000 + number,
                    "amount": f"{10 * (number + 1) + order}.50",
                    "purchased_at": bought.isoformat(),
                }
            )
            with unit_of_work(engine) as session:
                record_purchase(
                    session=session,
                    report=report,
                    survey_id="post_purchase",
                    survey_delay=timedelta(0),
                    source="api",
                )
    with unit_of_work(engine) as session:
        deliveries = session.exec(select(SurveyDelivery).order_by(col(SurveyDelivery.id))).all()
        by_customer: dict[int, list[SurveyDelivery]] = {}
        for delivery in deliveries:
            by_customer.setdefault(delivery.customer_id, []).append(delivery)
        for found in by_customer.values():
            *earlier, last = found
            for score, delivery in enumerate(earlier, start=3):
                delivery.nps_score = score
                session.add(delivery)
            last.nps_score = 2  # their answer now: excluded from "earlier scores"
            session.add(last)
            newest.append(int(last.id or 0))
    return newest


def _values(session: Session, delivery_ids: list[int]) -> list[cases.CustomerValue]:
    found = [session.get(SurveyDelivery, delivery_id) for delivery_id in delivery_ids]
    return [
        cases.customer_value(session, customer_id=delivery.customer_id, delivery_id=delivery.id, now=NOW)
        for delivery in found
        if delivery is not None
    ]


@contextmanager
def _counting(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _group(session: Session, delivery_ids: list[int]) -> preload.GroupRows:
    group = preload.open_group(session)
    users = [1000 + number for number in range(len(delivery_ids))]
    preload.load(session, group, user_ids=users, delivery_ids=delivery_ids)
    return group


def test_a_group_shows_each_customer_the_figures_a_single_lookup_shows(engine: Engine) -> None:
    deliveries = _shop(engine, 6)
    with Session(engine) as session:
        alone = _values(session, deliveries)
    with unit_of_work(engine) as session:
        _group(session, deliveries)
        grouped = _values(session, deliveries)
        preload.close_group(session)
    assert grouped == alone
    assert [value.purchases for value in alone] == [1, 2, 3, 1, 2, 3]
    assert alone[2].revenue == Decimal("30.50") + Decimal("31.50")  # the year-old purchase is left out
    assert alone[2].previous_scores == [4, 3]  # newest first, their answer now left out
    assert [value.top_customers for value in alone] == [False, False, False, False, True, True]


def test_a_group_reads_its_customers_figures_once_however_many_cards_it_renders(engine: Engine) -> None:
    deliveries = _shop(engine, 12)
    with unit_of_work(engine) as session:
        _group(session, deliveries)
        with _counting(engine) as first:
            _values(session, deliveries[:1])
        with _counting(engine) as others:
            _values(session, deliveries[1:])
        preload.close_group(session)
    assert 0 < len(first) <= 4  # cases, purchases, scores, the revenue ranking
    assert others == []


def test_cases_a_group_opens_are_inserted_together_when_it_closes_and_found_in_the_next(
    engine: Engine,
) -> None:
    deliveries = _shop(engine, 4)
    opened: list[Case] = []
    with unit_of_work(engine) as session:
        _group(session, deliveries)
        assert cases.case_of_delivery(session, deliveries[0]) is None

        def show(case: Case) -> None:
            assert case.id is not None
            shown = outbox.keep_current(
                session,
                key=cases.case_group.card_key(case.id),
                kind=KIND_CASE_CARD,
                chat_id=-100,
                payload={"chat_id": -100, "text": f"card {case.delivery_id}"},
                version=case.card_version,
                delivery_id=case.delivery_id,
                now=NOW,
                new=True,
            )
            assert shown
            opened.append(case)

        with _counting(engine) as during:
            for delivery_id in deliveries:
                delivery = session.get(SurveyDelivery, delivery_id)
                assert delivery is not None
                cases.open_case(
                    session,
                    customer_id=delivery.customer_id,
                    delivery_id=delivery_id,
                    kind="critic",
                    now=NOW,
                    then=show,
                )
                assert cases.opening_in_group(session, delivery_id)
        assert during == [] and opened == []  # nothing is written, and no card rendered, before the end
        with _counting(engine) as closing:
            preload.close_group(session)
        assert [case.delivery_id for case in opened] == deliveries  # in the order they were opened
        assert sum("INSERT INTO cases" in statement for statement in closing) == 1
    with unit_of_work(engine) as session:
        _group(session, deliveries)
        again = [cases.case_of_delivery(session, d) for d in deliveries]
        assert [case.id for case in again if case is not None] == [case.id for case in opened]
        assert all(case is not None and case.card_version == 1 for case in again)
        for case in again:
            assert case is not None
            outbox.keep_current(
                session,
                key=cases.case_group.card_key(int(case.id or 0)),
                kind=KIND_CASE_CARD,
                chat_id=-100,
                payload={"chat_id": -100, "text": f"card {case.delivery_id}, updated"},
                version=2,
                delivery_id=case.delivery_id,
                now=NOW,
            )
        preload.close_group(session)
    with Session(engine) as session:
        cards = session.exec(select(OutboxMessage).order_by(col(OutboxMessage.id))).all()
        assert [card.payload["text"] for card in cards] == [f"card {d}, updated" for d in deliveries]
        assert len(session.exec(select(Case)).all()) == len(deliveries)
        events = [len(cases.events_of(session, int(case.id or 0))) for case in opened]
        assert events == [1] * len(deliveries)
