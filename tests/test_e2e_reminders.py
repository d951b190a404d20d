"""Unfinished surveys: one reminder that goes on where the customer stopped, quiet hours, then expiry.

The sweep's clock is moved by the test (``MovableClock``); everything else is the real bot over HTTP
against the fake Bot API server, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from storage.models import Case, DeliveryStatus
from tests.e2e import STAFF_CHAT, MovableClock, RunningBot, button, local_time, running_bot
from tests.fakes.bot_api_server import FakeUser

ANNA = FakeUser(id=8101, first_name="Anna", language_code="de")
BERLIN = ZoneInfo("Europe/Berlin")
REMINDER = "Kurze Erinnerung"


def _questions_sent(env: RunningBot) -> int:
    """How many messages with buttons the bot sent to Anna (edits not counted)."""
    return sum(1 for r in env.api.requests_for("sendMessage") if "reply_markup" in r.params)


def _reminders(env: RunningBot) -> list[dict[str, object]]:
    return [m for m in env.api.messages_to(ANNA.id) if REMINDER in str(m.get("text"))]


async def _promoter_who_stops_after_the_score(env: RunningBot) -> dict[str, object]:
    """Anna scores 10 and leaves the follow-up question open; return the message that asks it."""
    question = await env.customer_with_survey(ANNA)
    env.api.user_presses_button(ANNA, question, button(question, "10"))
    follow_up = await env.next_step(question)
    assert "gefallen" in str(follow_up["text"])
    await env.bot.sender.drain()
    return follow_up


class TestReminder:
    async def test_one_reminder_goes_on_where_the_customer_stopped(self, database_url: str) -> None:
        """REMINDER_AFTER without an answer: one new message asks the open question (not the score
        again), the old one loses its buttons, and answering the reminder carries the survey on."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock, quiet_hours="") as env:
            follow_up = await _promoter_who_stops_after_the_score(env)
            clock.advance(timedelta(days=1))
            await env.bot.sweep()
            await env.bot.sender.drain()
            assert _reminders(env) == []
            clock.advance(timedelta(days=1, minutes=1))
            await env.bot.sweep()
            reminder = await env.api.wait_for_message(ANNA.id, lambda m: REMINDER in str(m.get("text")))
            assert "gefallen" in str(reminder["text"]) and "weiterempfehlen" not in str(reminder["text"])
            await env.api.wait_for_request(
                "editMessageReplyMarkup", lambda r: r.params.get("message_id") == follow_up["message_id"]
            )
            for _ in range(3):
                clock.advance(timedelta(hours=12))
                await env.bot.sweep()
            await env.bot.sender.drain()
            assert len(_reminders(env)) == 1
            assert env.contact_log() == [("survey", "sent", None), ("reminder", "sent", None)]
            env.api.user_presses_button(ANNA, reminder, button(reminder, "Der Service"))
            await env.next_step(reminder)
            assert [(a.question_id, a.choice) for a in env.answers()][-1] == ("liked", "service")

    async def test_a_reminder_due_at_night_waits_for_the_end_of_quiet_hours(self, database_url: str) -> None:
        """QUIET_HOURS 21:00-09:00 (the default): due at 23:00 in Berlin, it is postponed with that
        reason and goes out at 09:00, once."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock, quiet_hours="21:00-09:00") as env:
            # The survey itself goes by day.
            clock.move_to(local_time(clock.now + timedelta(days=1), BERLIN, 12))
            await _promoter_who_stops_after_the_score(env)
            night = local_time(clock.now + timedelta(days=3), BERLIN, 23)
            clock.move_to(night)
            await env.bot.sweep()
            await env.bot.sender.drain()
            assert _reminders(env) == []
            assert env.contact_log()[1:] == [("reminder", "postponed", "quiet_hours")]
            clock.move_to(local_time(night + timedelta(hours=9), BERLIN, 8, 59))
            await env.bot.sweep()
            await env.bot.sender.drain()
            assert _reminders(env) == []
            clock.move_to(local_time(night + timedelta(hours=9), BERLIN, 9, 0))
            await env.bot.sweep()
            await env.api.wait_for_message(ANNA.id, lambda m: REMINDER in str(m.get("text")))
            assert env.contact_log()[1:] == [
                ("reminder", "postponed", "quiet_hours"),
                ("reminder", "sent", None),
            ]

    async def test_no_reminder_after_stop(self, database_url: str) -> None:
        """A customer who said /stop is not reminded: the survey is stopped, nothing is due."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock, quiet_hours="") as env:
            await _promoter_who_stops_after_the_score(env)
            env.api.user_sends_text(ANNA, "/stop")
            await env.api.wait_for_message(ANNA.id, lambda m: "keine Umfragen" in str(m.get("text")))
            clock.advance(timedelta(days=3))
            await env.bot.sweep()
            await env.bot.sender.drain()
            assert _reminders(env) == []


class TestExpiry:
    async def test_an_unanswered_survey_expires_and_a_late_press_records_nothing(
        self, database_url: str
    ) -> None:
        """SURVEY_EXPIRES_AFTER: the survey closes unanswered, its buttons go, and a press on the old
        message gets a friendly answer, stores nothing and alerts nobody."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock, quiet_hours="") as env:
            question = await env.customer_with_survey(ANNA)
            await env.bot.sender.drain()
            clock.advance(timedelta(days=7, minutes=1))
            await env.bot.sweep()
            await env.api.wait_for_request(
                "editMessageReplyMarkup", lambda r: r.params.get("message_id") == question["message_id"]
            )
            (delivery,) = env.deliveries()
            assert delivery.status == DeliveryStatus.EXPIRED.value
            env.api.user_presses_button(ANNA, question, button(question, "0"), require_button=False)
            await env.api.wait_until(lambda: len(env.api.callback_answers) >= 1)
            assert "abgeschlossen" in str(env.api.callback_answers[-1].get("text"))
            assert env.answers() == []
            with Session(env.engine) as session:
                assert session.exec(select(Case)).all() == []
            await env.bot.sender.drain()
            assert env.api.messages_to(STAFF_CHAT) == []

    async def test_start_after_stop_does_not_bring_back_an_expired_survey(self, database_url: str) -> None:
        """/stop, the survey's time runs out, /start: no survey is asked again."""
        clock = MovableClock()
        async with running_bot(database_url, clock=clock, quiet_hours="") as env:
            await env.customer_with_survey(ANNA)
            env.api.user_sends_text(ANNA, "/stop")
            await env.api.wait_for_message(ANNA.id, lambda m: "keine Umfragen" in str(m.get("text")))
            clock.advance(timedelta(days=8))
            await env.bot.sweep()
            asked_before = _questions_sent(env)
            env.api.user_sends_text(ANNA, "/start")
            await env.api.wait_for_message(ANNA.id, lambda m: "Willkommen zurück" in str(m.get("text")))
            await env.bot.sweep()
            await env.bot.sender.drain()
            assert _questions_sent(env) == asked_before == 1
