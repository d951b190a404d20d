"""The contact rules where a survey is asked: one at a time, SURVEY_COOLDOWN, quiet hours, the weekly cap.

End to end over HTTP against the fake Bot API server, on SQLite and PostgreSQL; the bot's clock is moved
by the test (``MovableClock``) instead of sleeping. The rules themselves have unit tests in
tests/test_contact_rules.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, func, select

from storage.models import DeliveryStatus, OutboxMessage
from storage.outbox import KIND_QUESTION
from tests.e2e import MovableClock, RunningBot, local_time, running_bot
from tests.fakes.bot_api_server import FakeUser

ANNA = FakeUser(id=8201, first_name="Anna", language_code="de")
BERLIN = ZoneInfo("Europe/Berlin")
QUESTION = "weiterempfehlen"


def _questions(env: RunningBot) -> int:
    """How many NPS questions were sent to Anna."""
    return sum(1 for r in env.api.requests_for("sendMessage") if QUESTION in str(r.params.get("text")))


async def _settle(env: RunningBot) -> None:
    await env.bot.worker.drain()
    await env.bot.sweep()
    await env.bot.sender.drain()


class TestOneSurveyAtATime:
    async def test_a_second_order_within_the_cooldown_gets_no_second_survey(self, database_url: str) -> None:
        """Two orders a day apart: one survey; the second is skipped with the reason cooldown."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            await env.customer_with_survey(ANNA, order_id="A-1")
            clock.advance(timedelta(days=1))
            response = await env.report_purchase(
                order_id="A-2", customer_id=f"cust-{ANNA.id}", telegram_user_id=ANNA.id
            )
            assert response.status_code == 201
            await _settle(env)
            assert _questions(env) == 1
            statuses = sorted(d.status for d in env.deliveries())
            assert statuses == [DeliveryStatus.ACTIVE.value, DeliveryStatus.SKIPPED.value]
            assert env.contact_log() == [("survey", "sent", None), ("survey", "skipped", "cooldown")]

    async def test_after_the_cooldown_the_next_order_is_surveyed(self, database_url: str) -> None:
        """SURVEY_COOLDOWN (30 days) after the first survey, a new order gets its own survey."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            await env.customer_with_survey(ANNA, order_id="B-1")
            clock.advance(timedelta(days=31))
            await env.report_purchase(order_id="B-2", customer_id=f"cust-{ANNA.id}", telegram_user_id=ANNA.id)
            await _settle(env)
            await env.api.wait_until(lambda: _questions(env) == 2)
            assert ("survey", "skipped", "cooldown") not in env.contact_log()


class TestQuietHours:
    async def test_a_survey_due_at_night_is_sent_in_the_morning(self, database_url: str) -> None:
        """QUIET_HOURS 21:00-09:00: a survey due at 23:00 waits (stored as postponed) and goes at 09:00."""
        clock = MovableClock()
        async with running_bot(
            database_url, clock=clock, quiet_hours="21:00-09:00", survey_delay="1h"
        ) as env:
            env.api.user_sends_text(ANNA, "/start")
            await env.api.wait_for_message(ANNA.id)
            await env.report_purchase(order_id="N-1", customer_id="c-night", telegram_user_id=ANNA.id)
            night = clock.move_to(local_time(clock.now + timedelta(days=1), BERLIN, 23))
            await _settle(env)
            assert _questions(env) == 0
            assert env.contact_log() == [("survey", "postponed", "quiet_hours")]
            (delivery,) = env.deliveries()
            assert delivery.due_at == local_time(night + timedelta(hours=12), BERLIN, 9)
            clock.move_to(local_time(night + timedelta(hours=12), BERLIN, 9, 1))
            await _settle(env)
            await env.api.wait_until(lambda: _questions(env) == 1)

    async def test_a_customer_who_opens_the_bot_at_night_is_answered_at_once(self, database_url: str) -> None:
        """The survey, asked at noon, waited for Anna to open the bot; her /start at 23:00 is not
        unprompted contact, so the question follows at once."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock, quiet_hours="21:00-09:00") as env:
            noon = clock.move_to(local_time(clock.now + timedelta(days=1), BERLIN, 12))
            env.api.fail_chat(ANNA.id, 403, "Forbidden: bot can't initiate conversation with a user")
            await env.report_purchase(order_id="S-1", customer_id="c-start", telegram_user_id=ANNA.id)
            await _settle(env)
            assert env.contact_log() == [("survey", "sent", None)]
            assert env.api.messages_to(ANNA.id) == []  # Telegram: the bot cannot write first
            clock.move_to(local_time(noon, BERLIN, 23))
            env.api.clear_failures(ANNA.id)
            env.api.user_sends_text(ANNA, "/start")
            await env.api.wait_for_message(ANNA.id, lambda m: QUESTION in str(m.get("text")))
            assert env.contact_log() == [("survey", "sent", None)]


class TestWeeklyCap:
    async def test_a_reminder_the_cap_pushes_past_expiry_is_skipped(self, database_url: str) -> None:
        """MAX_PROACTIVE_PER_WEEK=1: the survey used the week's one message, so its reminder would wait
        until the survey has closed: it is skipped as expired, and the survey expires unreminded."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock, max_proactive_per_week=1) as env:
            await env.customer_with_survey(ANNA, order_id="C-1")
            clock.advance(timedelta(days=2, minutes=1))
            await _settle(env)
            assert env.contact_log() == [("survey", "sent", None), ("reminder", "skipped", "expired")]
            clock.advance(timedelta(days=5))
            await _settle(env)
            assert [d.status for d in env.deliveries()] == [DeliveryStatus.EXPIRED.value]
            assert not [m for m in env.api.messages_to(ANNA.id) if "Erinnerung" in str(m.get("text"))]


class TestRulesAgainAtSendTime:
    async def test_a_question_delayed_into_quiet_hours_by_retries_waits_for_the_morning(
        self, database_url: str
    ) -> None:
        """Decided at 20:59, the survey's question fails to send (500) until after 21:00: the sender
        does not send it at night but holds it until 09:00, then it goes out once."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock, quiet_hours="21:00-09:00") as env:
            env.api.user_sends_text(ANNA, "/start")
            await env.api.wait_for_message(ANNA.id)
            evening = clock.move_to(local_time(clock.now + timedelta(days=1), BERLIN, 20, 59))
            env.api.fail_chat(ANNA.id, 500, "Internal Server Error")
            await env.report_purchase(order_id="R-1", customer_id="c-retry", telegram_user_id=ANNA.id)
            await env.bot.sweep()
            await env.api.wait_until(lambda: len(env.api.requests_for("sendMessage")) >= 2)
            assert env.contact_log() == [("survey", "sent", None)]
            clock.move_to(local_time(evening, BERLIN, 21, 30))
            env.api.clear_failures(ANNA.id)
            await _settle(env)
            await env.bot.sender.drain()
            assert _questions_delivered(env) == 0
            clock.move_to(local_time(evening + timedelta(hours=12), BERLIN, 9, 0))
            env.bot.sender.wake()
            await env.api.wait_until(lambda: _questions_delivered(env) == 1)


class TestRulesCountSendTimes:
    """The weekly cap and SURVEY_COOLDOWN count a message from when it reached the customer: its send
    can lie well after its decision (here: an hour of 500s), and the customer counts what they receive."""

    async def test_the_weekly_cap_counts_the_first_survey_from_when_it_went_out(
        self, database_url: str
    ) -> None:
        """MAX_PROACTIVE_PER_WEEK=1: a survey decided 7 days 30 minutes after the first one was decided,
        but only 6 days 23:30 after it went out, waits until 7 days after that send."""
        clock = MovableClock()
        async with running_bot(
            database_url,
            clock=clock,
            max_proactive_per_week=1,
            survey_cooldown="1d",
            survey_expires_after="3d",
        ) as env:
            decided = clock.now
            sent = await _first_survey_sent_late(env, clock, late=timedelta(hours=1))
            clock.move_to(decided + timedelta(days=7, minutes=30))
            await _settle(env)
            await env.report_purchase(order_id="S-2", customer_id=f"cust-{ANNA.id}", telegram_user_id=ANNA.id)
            await _settle(env)
            assert env.contact_log()[-1] == ("survey", "postponed", "weekly_cap")
            second = max(env.deliveries(), key=lambda d: d.id or 0)
            assert second.status == DeliveryStatus.SCHEDULED.value
            assert second.due_at == sent + timedelta(days=7)
            clock.move_to(sent + timedelta(days=7, seconds=1))
            await _settle(env)
            await env.api.wait_until(lambda: _questions_delivered(env) == 2)

    async def test_the_cooldown_counts_the_last_survey_from_when_it_went_out(self, database_url: str) -> None:
        """SURVEY_COOLDOWN=7d: an order 7 days 30 minutes after the first survey was decided, but within
        7 days of it going out, gets no survey; one after 7 days from the send does."""
        clock = MovableClock()
        async with running_bot(
            database_url, clock=clock, survey_cooldown="7d", survey_expires_after="3d"
        ) as env:
            decided = clock.now
            sent = await _first_survey_sent_late(env, clock, late=timedelta(hours=1))
            clock.move_to(decided + timedelta(days=7, minutes=30))
            await _settle(env)
            await env.report_purchase(order_id="S-2", customer_id=f"cust-{ANNA.id}", telegram_user_id=ANNA.id)
            await _settle(env)
            assert env.contact_log()[-1] == ("survey", "skipped", "cooldown")
            clock.move_to(sent + timedelta(days=7, seconds=1))
            await env.report_purchase(order_id="S-3", customer_id=f"cust-{ANNA.id}", telegram_user_id=ANNA.id)
            await _settle(env)
            await env.api.wait_until(lambda: _questions_delivered(env) == 2)
            assert env.contact_log()[-1] == ("survey", "sent", None)


async def _first_survey_sent_late(env: RunningBot, clock: MovableClock, *, late: timedelta) -> datetime:
    """Anna's first survey, decided now, whose question Telegram refuses (500) for ``late``; return when
    the sender took it through (the row's ``sent_at``)."""
    env.api.user_sends_text(ANNA, "/start")
    await env.api.wait_for_message(ANNA.id)
    env.api.fail_chat(ANNA.id, 500, "Internal Server Error")
    await env.report_purchase(order_id="S-1", customer_id=f"cust-{ANNA.id}", telegram_user_id=ANNA.id)
    await env.bot.sweep()
    await env.api.wait_until(
        lambda: any(r.status == 500 for r in env.api.requests_for("sendMessage")), timeout=10
    )
    clock.advance(late)
    env.api.clear_failures(ANNA.id)
    env.bot.sender.wake()
    await env.api.wait_until(lambda: _questions_delivered(env) == 1)
    await env.bot.sender.drain()
    with Session(env.engine) as session:
        sent = session.exec(
            select(func.min(OutboxMessage.sent_at)).where(OutboxMessage.kind == KIND_QUESTION)
        ).one()
    assert sent is not None and sent >= clock.now - timedelta(minutes=1)
    return sent


def _questions_delivered(env: RunningBot) -> int:
    return sum(
        1
        for r in env.api.requests_for("sendMessage")
        if r.status == 200 and QUESTION in str(r.params.get("text"))
    )


class TestPause:
    async def test_pause_is_confirmed_skips_surveys_and_start_ends_it(self, database_url: str) -> None:
        """/pause: confirmed with its end date, a survey due meanwhile is skipped as "paused", and
        /start ends the pause."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            env.api.user_sends_text(ANNA, "/start")
            await env.api.wait_for_message(ANNA.id)
            env.api.user_sends_text(ANNA, "/pause")
            confirmed = await env.api.wait_for_message(ANNA.id)
            until = (clock.now + timedelta(days=30)).astimezone(BERLIN).strftime("%d.%m.%Y")
            assert until in str(confirmed["text"]) and "/start" in str(confirmed["text"])
            await env.report_purchase(order_id="P-1", customer_id="c-pause", telegram_user_id=ANNA.id)
            await _settle(env)
            assert _questions(env) == 0
            assert env.contact_log() == [("survey", "skipped", "paused")]
            env.api.user_sends_text(ANNA, "/start")
            assert "Willkommen zurück" in str((await env.api.wait_for_message(ANNA.id))["text"])
            await env.report_purchase(order_id="P-2", customer_id="c-pause", telegram_user_id=ANNA.id)
            await _settle(env)
            await env.api.wait_until(lambda: _questions(env) == 1)

    async def test_pause_takes_a_length_and_refuses_what_it_cannot_read(self, database_url: str) -> None:
        """/pause 90d pauses for 90 days; /pause forever says how to write a length."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            env.api.user_sends_text(ANNA, "/start")
            await env.api.wait_for_message(ANNA.id)
            env.api.user_sends_text(ANNA, "/pause 90d")
            until = (clock.now + timedelta(days=90)).astimezone(BERLIN).strftime("%d.%m.%Y")
            assert until in str((await env.api.wait_for_message(ANNA.id))["text"])
            env.api.user_sends_text(ANNA, "/pause forever")
            assert "/pause 30d" in str((await env.api.wait_for_message(ANNA.id))["text"])

    async def test_a_pause_that_has_ended_lets_surveys_through_again(self, database_url: str) -> None:
        """31 days after /pause (30 days) a new order gets its survey without a /start."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock) as env:
            env.api.user_sends_text(ANNA, "/start")
            await env.api.wait_for_message(ANNA.id)
            env.api.user_sends_text(ANNA, "/pause")
            await env.api.wait_for_message(ANNA.id)
            clock.advance(timedelta(days=31))
            await env.report_purchase(order_id="E-1", customer_id="c-end", telegram_user_id=ANNA.id)
            await _settle(env)
            await env.api.wait_until(lambda: _questions(env) == 1)
