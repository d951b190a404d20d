"""The report's figures as the database counts them (storage/report_queries.py), against hand-computed
examples, on SQLite and PostgreSQL.

The rows are written the way the bot leaves them (a delivery per purchase, its question in the outbox,
answers with their category); each test builds just the shop its figures need.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.settings import Settings
from storage import report_queries
from storage.models import ContactEvent
from surveys.nps_stats import NpsCounts
from surveys.report_period import weeks_back
from tests.report_shop import BERLIN, IN_WEEK, NOW, WEEK, Shop, with_shop

POLICY = Settings(_env_file=None).contact_policy  # the shipped CHECKIN_AFTER and CHECKIN_FACTOR


class TestNps:
    def test_counts_the_weeks_answers_by_category_without_skipped_ones(self, engine: Engine) -> None:
        """5 promoters, 3 passives, 2 critics in the week; a skipped NPS question and answers just outside
        the week (the end is exclusive, the start inclusive) do not count."""

        def build(shop: Shop) -> None:
            customer = shop.customer()
            for score in (10, 9, 9, 10, 9, 8, 7, 7, 3, 6):
                shop.survey(customer, score=score)
            shop.survey(customer, score=10, started=WEEK.start)  # the first instant of the week counts
            shop.survey(customer, score=0, started=WEEK.end)  # the first instant after it does not
            skipped = shop.survey(customer)
            shop.answer(skipped, "nps", "nps", skipped=True)

        with_shop(engine, build)
        with Session(engine) as session:
            counts = report_queries.nps_counts(session, WEEK.start, WEEK.end)
        assert counts == NpsCounts(promoters=6, passives=3, critics=2)

    def test_no_answers_give_zero_counts(self, engine: Engine) -> None:
        with Session(engine) as session:
            assert report_queries.nps_counts(session, WEEK.start, WEEK.end) == NpsCounts(0, 0, 0)

    def test_the_trend_puts_each_answer_in_its_week_and_keeps_empty_weeks(self, engine: Engine) -> None:
        weeks = weeks_back(NOW, BERLIN, 3)

        def build(shop: Shop) -> None:
            customer = shop.customer()
            shop.survey(customer, score=10, started=weeks[0].start + timedelta(hours=1))
            shop.survey(customer, score=2, started=weeks[2].end - timedelta(seconds=1))
            shop.survey(customer, score=8, started=weeks[2].start)

        with_shop(engine, build)
        with Session(engine) as session:
            trend = report_queries.nps_trend(session, weeks)
        assert [point.counts for point in trend] == [
            NpsCounts(1, 0, 0),
            NpsCounts(0, 0, 0),
            NpsCounts(0, 1, 1),
        ]
        assert [point.period for point in trend] == weeks


class TestSurveys:
    def test_sent_delivered_answered_reminded_skipped_and_undeliverable(self, engine: Engine) -> None:
        """4 surveys asked in the week: 3 reached the customer, 2 were answered, 1 is held (blocked); 1
        reminder; 2 skipped by the cooldown and 1 while paused; 1 due for someone the bot cannot reach."""

        def build(shop: Shop) -> None:
            customer = shop.customer()
            shop.survey(customer, score=9)
            shop.survey(customer, score=4, reminded=IN_WEEK + timedelta(days=2))
            shop.survey(customer, status="expired")
            shop.survey(customer, delivered=False, held=True, status="active")
            shop.survey(customer, started=None, status="awaiting_contact", due=IN_WEEK)
            shop.survey(customer, started=WEEK.start - timedelta(days=3), score=10)  # the week before
            for reason in ("cooldown", "cooldown", "paused"):
                shop.session.add(
                    ContactEvent(
                        customer_id=customer, kind="survey", outcome="skipped", reason=reason, at=IN_WEEK
                    )
                )
            shop.session.add(
                ContactEvent(customer_id=customer, kind="checkin", outcome="skipped", at=IN_WEEK)
            )

        with_shop(engine, build)
        with Session(engine) as session:
            counts = report_queries.survey_counts(session, WEEK.start, WEEK.end)
        assert (counts.sent, counts.delivered, counts.answered, counts.reminded) == (4, 3, 2, 1)
        assert counts.skipped == {"cooldown": 2, "paused": 1}
        assert counts.undeliverable == 2
        assert counts.response_rate == pytest.approx(2 / 3)

    def test_the_rating_average_of_the_week(self, engine: Engine) -> None:
        def build(shop: Shop) -> None:
            customer = shop.customer()
            delivery = shop.survey(customer, score=9)
            shop.answer(delivery, "stars", "rating", score=4)
            other = shop.survey(customer, score=9)
            shop.answer(other, "stars", "rating", score=5)
            skipped = shop.survey(customer, score=9)
            shop.answer(skipped, "stars", "rating", skipped=True)

        with_shop(engine, build)
        with Session(engine) as session:
            assert report_queries.rating(session, WEEK.start, WEEK.end) == (4.5, 2)


class TestCritics:
    def test_reasons_most_frequent_first_and_comments_most_negative_first(self, engine: Engine) -> None:
        def build(shop: Shop) -> None:
            customer = shop.customer()
            for reason, comment, polarity in (
                ("price", "Viel zu teuer und kaputt", -0.8),
                ("price", "Naja", None),
                ("delivery", "Kam spät", -0.2),
                ("price", "Eigentlich ok", 0.1),
            ):
                delivery = shop.survey(customer, score=3)
                shop.answer(delivery, "reason", "choice", choice=reason)
                shop.answer(delivery, "comment", "text", text=comment, polarity=polarity)
            promoter = shop.survey(customer, score=10)
            shop.answer(promoter, "liked", "choice", choice="service")
            shop.answer(promoter, "comment", "text", text="Schrecklich gut", polarity=-0.9)

        with_shop(engine, build)
        with Session(engine) as session:
            reasons = report_queries.critic_reasons(session, WEEK.start, WEEK.end)
            comments = report_queries.critic_comments(session, WEEK.start, WEEK.end)
        assert [(r.question_id, r.option_id, r.count) for r in reasons] == [
            ("reason", "price", 3),
            ("reason", "delivery", 1),
        ]
        assert [c.text for c in comments] == ["Viel zu teuer und kaputt", "Kam spät", "Eigentlich ok"]


class TestCases:
    def test_opened_resolved_open_median_time_and_recovery(self, engine: Engine) -> None:
        """Opened in the week: 3 of an answer (a check-in question does not count); resolved in 1 h and
        3 h (median 2 h); one still open since before the week; 2 recovery answers, 1 solved."""

        def build(shop: Shop) -> None:
            customer = shop.customer()
            shop.case(
                customer,
                opened=IN_WEEK,
                resolved=IN_WEEK + timedelta(hours=1),
                recovered=True,
                recovery_answered=IN_WEEK + timedelta(days=1),
            )
            shop.case(
                customer,
                opened=IN_WEEK,
                resolved=IN_WEEK + timedelta(hours=3),
                recovered=False,
                recovery_answered=IN_WEEK + timedelta(days=1),
            )
            shop.case(customer, opened=IN_WEEK, kind="negative_comment", status="taken")
            shop.case(customer, opened=IN_WEEK, kind="question")
            shop.case(customer, opened=WEEK.start - timedelta(days=10))

        with_shop(engine, build)
        with Session(engine) as session:
            cases = report_queries.case_figures(session, WEEK.start, WEEK.end, now=NOW)
        assert (cases.opened, cases.resolved, cases.still_open) == (3, 2, 2)
        assert [case.opened_at for case in cases.oldest_open] == [WEEK.start - timedelta(days=10), IN_WEEK]
        assert [case.taken for case in cases.oldest_open] == [False, True]
        assert cases.median_time_to_resolve == timedelta(hours=2)
        assert (cases.recovery_answered, cases.recovered, cases.recovery_rate) == (2, 1, 0.5)

    def test_the_median_of_an_odd_number_is_the_middle_one(self, engine: Engine) -> None:
        def build(shop: Shop) -> None:
            customer = shop.customer()
            for hours in (1, 5, 2):
                shop.case(customer, opened=IN_WEEK, resolved=IN_WEEK + timedelta(hours=hours))

        with_shop(engine, build)
        with Session(engine) as session:
            cases = report_queries.case_figures(session, WEEK.start, WEEK.end, now=NOW)
        assert cases.median_time_to_resolve == timedelta(hours=2)

    def test_no_cases_give_no_median_and_no_recovery_rate(self, engine: Engine) -> None:
        with Session(engine) as session:
            cases = report_queries.case_figures(session, WEEK.start, WEEK.end, now=NOW)
        assert (cases.opened, cases.median_time_to_resolve, cases.recovery_rate) == (0, None, None)


class TestRetention:
    def test_repeat_share_revenue_at_risk_top_critics_and_revenue_lost(self, engine: Engine) -> None:
        """A: two purchases (400 + 50), last answer a critic: at risk, and the top customer. B: 300, a
        promoter who bought 10 days ago. C: 20, one visit 40 days ago and silent since (CHECKIN_AFTER 30
        d). D: 80 a year and a half ago, nothing since: lost."""

        def build(shop: Shop) -> None:
            a = shop.customer(last_purchase=NOW - timedelta(days=5), gap=timedelta(days=195))
            shop.purchase(a, NOW - timedelta(days=200), "400.00")
            shop.purchase(a, NOW - timedelta(days=5), "50.00")
            shop.survey(a, score=10, started=NOW - timedelta(days=190))
            shop.survey(a, score=2, started=NOW - timedelta(days=4))
            b = shop.customer(last_purchase=NOW - timedelta(days=10), seen=NOW - timedelta(days=9))
            shop.purchase(b, NOW - timedelta(days=10), "300.00")
            shop.survey(b, score=9, started=NOW - timedelta(days=8))
            c = shop.customer(last_purchase=NOW - timedelta(days=40), seen=NOW - timedelta(days=40))
            shop.purchase(c, NOW - timedelta(days=40), "20.00")
            d = shop.customer(last_purchase=NOW - timedelta(days=540))
            shop.purchase(d, NOW - timedelta(days=540), "80.00")

        with_shop(engine, build)
        with Session(engine) as session:
            figures = report_queries.retention(session, now=NOW, policy=POLICY)
        # The surveys' own purchases (10.00 each, at their start) count too: A 3 more, B 1 more.
        assert figures.customers == 3
        assert figures.repeat_customers == 2  # A (4 purchases) and B (2)
        assert figures.repeat_share == pytest.approx(2 / 3)
        assert (
            figures.revenue
            == Decimal("400.00") + Decimal("50.00") + Decimal("300.00") + Decimal("20.00") + 30
        )
        assert figures.revenue_at_risk == Decimal("450.00") + 20 + Decimal("20.00")  # A (critic) + C (silent)
        assert figures.customers_at_risk == 2
        assert (figures.top_customers, figures.critics_among_top) == (1, 1)
        assert (figures.revenue_lost, figures.customers_lost) == (Decimal("80.00"), 1)
        assert figures.currency == "EUR"

    def test_a_shop_without_purchases_has_no_repeat_share(self, engine: Engine) -> None:
        with Session(engine) as session:
            figures = report_queries.retention(session, now=NOW, policy=POLICY)
        assert (figures.customers, figures.repeat_share, figures.revenue_at_risk) == (0, None, Decimal(0))


def test_the_top_20_percent_are_the_first_ceil_of_a_fifth_by_revenue(engine: Engine) -> None:
    """Six customers: the top 20 % are the first two by revenue (ceil 1.2); critics in places 2 and 3:
    one of them is among the top."""

    def build(shop: Shop) -> None:
        for place, amount in enumerate(("600.00", "500.00", "400.00", "300.00", "200.00", "100.00"), start=1):
            customer = shop.customer(last_purchase=NOW - timedelta(days=1), gap=timedelta(days=30))
            shop.purchase(customer, NOW - timedelta(days=1), amount)
            shop.survey(customer, score=3 if place in (2, 3) else 10, started=NOW - timedelta(hours=2))

    with_shop(engine, build)
    with Session(engine) as session:
        figures = report_queries.retention(session, now=NOW, policy=POLICY)
    assert (figures.customers, figures.top_customers, figures.critics_among_top) == (6, 2, 1)
