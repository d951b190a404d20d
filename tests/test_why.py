"""``kundenpuls why``: the right reason for each rule, from what the database holds (SQLite and PostgreSQL).

The sweep runs with a chosen ``now`` instead of the clock; purchases go in the way the API stores them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot import jobs
from bot.settings import Settings
from bot.why import Explanation, UnknownCustomer, explain
from handlers.services import Services
from storage.db import unit_of_work
from storage.models import Customer, OutboxMessage, SurveyDelivery, TelegramUser
from storage.outbox import KIND_QUESTION
from storage.purchases import record_purchase
from surveys.loader import load_builtin_survey
from surveys.purchase_report import PurchaseReport
from surveys.texts import load_catalogue

# A Wednesday in winter: 10:00 in Berlin is 09:00 UTC.
NOON = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
NIGHT = datetime(2026, 12, 2, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
CUSTOMER = "C-42"
TELEGRAM_ID = 4242


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"default_language": "de", "survey_delay": "0s", **overrides}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def _services(settings: Settings) -> Services:
    survey = load_builtin_survey()
    return Services(settings=settings, surveys={survey.id: survey}, catalogue=load_catalogue())


def _purchase(
    engine: Engine, settings: Settings, order_id: str, *, at: datetime, telegram: bool = True
) -> None:
    report = PurchaseReport(
        order_id=order_id,
        customer_id=CUSTOMER,
        name="Anna",
        telegram_user_id=TELEGRAM_ID if telegram else None,
        purchased_at=at,
    )
    with unit_of_work(engine) as session:
        record_purchase(
            session=session,
            report=report,
            survey_id="post_purchase",
            survey_delay=settings.survey_delay,
            source="api",
            policy=settings.contact_policy,
        )


def _user(engine: Engine, **values: Any) -> None:
    with unit_of_work(engine) as session:
        user = session.get(TelegramUser, TELEGRAM_ID)
        assert user is not None
        for name, value in values.items():
            setattr(user, name, value)
        session.add(user)


def _why(engine: Engine, settings: Settings, now: datetime) -> Explanation:
    return explain(engine, settings, CUSTOMER, now=now)


def _text(answer: Explanation) -> str:
    return "\n".join(answer.lines())


class TestWhy:
    def test_an_unknown_customer_is_a_clear_error(self, engine: Engine) -> None:
        """The shop's id that nobody reported: the message names it."""
        with pytest.raises(UnknownCustomer, match="'nobody'"):
            explain(engine, _settings(), "nobody", now=NOON)

    def test_quiet_hours_say_when_the_survey_goes_instead(self, engine: Engine) -> None:
        """A survey due at 23:30 in Berlin: next is the survey at 09:00, moved by quiet hours."""
        settings = _settings()
        _purchase(engine, settings, "A-1", at=NIGHT)
        answer = _why(engine, settings, NIGHT)
        assert answer.next_step.startswith("survey #1 at 2026-12-03 09:00")
        assert "quiet hours 21:00-09:00" in answer.next_step

    def test_a_second_order_within_the_cooldown_shows_the_skip(self, engine: Engine) -> None:
        """The first survey went out; the second order's survey is skipped: cooldown."""
        settings = _settings()
        _purchase(engine, settings, "A-1", at=NOON)
        jobs.start_due_surveys(engine, _services(settings), now=NOON)
        _purchase(engine, settings, "A-2", at=NOON + timedelta(days=1))
        jobs.start_due_surveys(engine, _services(settings), now=NOON + timedelta(days=1))
        text = _text(_why(engine, settings, NOON + timedelta(days=1)))
        assert "survey skipped (cooldown)" in text
        assert "reminder #1 at 2026-12-04 12:00" in text  # what is next: the first survey's reminder

    def test_a_survey_that_went_out_later_than_decided_says_when(self, engine: Engine) -> None:
        """Decided at 12:00, its question held by retries until 14:00 (what the sender stores): the
        decision line names both, and the cap counts 14:00."""
        settings = _settings()
        _purchase(engine, settings, "A-1", at=NOON)
        jobs.start_due_surveys(engine, _services(settings), now=NOON)
        with unit_of_work(engine) as session:
            row = session.exec(select(OutboxMessage).where(OutboxMessage.kind == KIND_QUESTION)).one()
            row.status, row.sent_at, row.sent_message_id = "sent", NOON + timedelta(hours=2), 1
            session.add(row)
        text = _text(_why(engine, settings, NOON + timedelta(hours=3)))
        assert "2026-12-02 12:00 survey sent: sent as asked at 2026-12-02 12:00" in text
        assert "; went out 2026-12-02 14:00" in text

    def test_the_weekly_cap_is_named_when_it_moves_the_reminder(self, engine: Engine) -> None:
        """MAX_PROACTIVE_PER_WEEK=1: the survey used the week; the reminder would wait past expiry."""
        settings = _settings(max_proactive_per_week=1)
        _purchase(engine, settings, "A-1", at=NOON)
        jobs.start_due_surveys(engine, _services(settings), now=NOON)
        answer = _why(engine, settings, NOON + timedelta(hours=1))
        assert answer.next_step.startswith("the reminder #1 will not be sent")
        assert "limit of 1 unprompted message in 7 days" in answer.next_step
        assert "the survey closes at" in answer.next_step

    def test_a_stopped_customer_gets_nothing_and_it_says_so(self, engine: Engine) -> None:
        """/stop: the headline and the next step both say it."""
        settings = _settings()
        _purchase(engine, settings, "A-1", at=NOON)
        _user(engine, opted_out_at=NOON)
        jobs.start_due_surveys(engine, _services(settings), now=NOON)
        answer = _why(engine, settings, NOON)
        assert "said /stop" in answer.headline and "/stop" in answer.next_step

    def test_a_paused_customer_shows_the_pause_and_the_skipped_survey(self, engine: Engine) -> None:
        """/pause: the survey due meanwhile is skipped as paused; the headline says until when."""
        settings = _settings()
        _purchase(engine, settings, "A-1", at=NOON)
        _user(engine, paused_until=NOON + timedelta(days=30))
        jobs.start_due_surveys(engine, _services(settings), now=NOON)
        text = _text(_why(engine, settings, NOON))
        assert "paused (/pause) until 2027-01-01" in text
        assert "survey skipped (paused)" in text

    def test_an_old_purchase_shows_too_old(self, engine: Engine) -> None:
        """Reported more than SURVEY_MAX_AGE after it happened: skipped, too_old, with the age."""
        settings = _settings()
        _purchase(engine, settings, "OLD-1", at=datetime.now(UTC) - timedelta(days=40))
        text = _text(_why(engine, settings, datetime.now(UTC)))
        assert "survey skipped (too_old)" in text and "SURVEY_MAX_AGE" in text

    def test_a_customer_without_telegram_waits_for_the_link(self, engine: Engine) -> None:
        """No Telegram chat connected: unreachable until they open the start link."""
        settings = _settings()
        _purchase(engine, settings, "A-1", at=NOON, telegram=False)
        jobs.start_due_surveys(engine, _services(settings), now=NOON)
        answer = _why(engine, settings, NOON)
        assert "has not connected a Telegram chat" in answer.headline
        assert "until the customer opens the bot" in answer.next_step

    def test_an_expired_survey_leaves_only_the_checkin_planned(self, engine: Engine) -> None:
        """Seven days unanswered: expired, as the survey list shows; next comes the check-in, 30 days
        after the one purchase."""
        settings = _settings(quiet_hours="")
        _purchase(engine, settings, "A-1", at=NOON)
        services = _services(settings)
        jobs.start_due_surveys(engine, services, now=NOON)
        later = NOON + timedelta(days=7, minutes=1)
        jobs.sweep(engine, services, now=later)
        answer = _why(engine, settings, later)
        with Session(engine) as session:
            assert session.exec(select(SurveyDelivery)).one().status == "expired"
        assert "expired" in answer.surveys[0]
        assert answer.next_step == (
            "check-in at 2027-01-01 12:00 (one-time buyer: CHECKIN_AFTER 30 d since the last purchase "
            "on 2026-12-02 12:00)"
        )


class TestWhyCheckin:
    def test_a_repeat_buyers_checkin_shows_the_rhythm_and_the_quiet_hours(self, engine: Engine) -> None:
        """Orders 12 days apart, the last at 06:30: silent 18 days later at 06:30, which quiet hours move
        to 09:00 (the purchases are too old for surveys, so the check-in is next)."""
        settings = _settings(survey_max_age="1h")
        last = datetime(2026, 11, 26, 5, 30, tzinfo=UTC)  # 06:30 in Berlin
        for index, days_before in enumerate((24, 12, 0)):
            _purchase(engine, settings, f"R-{index}", at=last - timedelta(days=days_before))
        now = datetime(2026, 12, 12, 10, tzinfo=UTC)
        answer = _why(engine, settings, now)
        assert answer.next_step == (
            "check-in at 2026-12-14 09:00 (median gap 12 d × 1.5 = 18 d since the last purchase on "
            "2026-11-26 06:30); quiet hours 21:00-09:00 (Europe/Berlin) move it from 06:30 to 09:00 on "
            "2026-12-14"
        )

    def test_not_interested_means_no_checkin(self, engine: Engine) -> None:
        settings = _settings()
        _purchase(engine, settings, "A-1", at=NOON - timedelta(days=20))
        with unit_of_work(engine) as session:
            customer = session.exec(select(Customer)).one()
            customer.checkins_stopped_at = NOON
            session.add(customer)
        answer = _why(engine, settings, NOON)
        assert answer.checkin == 'none: the customer said "not interested" on 2026-12-02 12:00'
        assert "Check-in: none" in _text(answer)

    def test_after_the_checkin_of_a_silence_none_until_they_buy_or_write(self, engine: Engine) -> None:
        """The sweep checked in on day 31; the next needs a purchase or a word first."""
        settings = _settings(quiet_hours="")
        _purchase(engine, settings, "A-1", at=NOON - timedelta(days=20))
        _user(engine, has_started=True, last_seen_at=NOON - timedelta(days=20))
        later = NOON + timedelta(days=11)
        jobs.sweep(engine, _services(settings), now=later)
        answer = _why(engine, settings, later)
        assert answer.checkin.startswith(
            "none until the customer buys or writes again: this silence had its check-in on 2026-12-13 12:00"
        )
        assert "checkin sent" in _text(answer)

    def test_a_checkin_to_a_stopped_customer_is_not_sent_and_it_says_why(self, engine: Engine) -> None:
        settings = _settings()
        _purchase(engine, settings, "A-1", at=NOON - timedelta(days=40))
        _user(engine, has_started=True, last_seen_at=NOON - timedelta(days=40), opted_out_at=NOON)
        answer = _why(engine, settings, NOON)
        assert answer.next_step.startswith("nothing: the customer said /stop")
        assert answer.checkin.endswith("it will not be sent: skipped: the customer said /stop")
