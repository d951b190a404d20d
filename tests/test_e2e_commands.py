"""Customers' commands: /start, /help, /stop, /language, and the command menu, in both languages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.e2e import button, running_bot
from tests.fakes.bot_api_server import FakeUser

ANNA = FakeUser(id=8001, first_name="Anna", language_code="de")
EMMA = FakeUser(id=8002, first_name="Emma", language_code="en-GB")
PIERRE = FakeUser(id=8003, first_name="Pierre", language_code="fr")


class TestCommandMenu:
    async def test_commands_are_registered_in_both_languages(self, database_url: str) -> None:
        """The bot sets its command menu for German, English and the default."""
        async with running_bot(database_url) as env:
            for lang in ("de", "en", ""):
                names = [c["command"] for c in env.api.commands_for(language_code=lang)]
                assert names == ["start", "help", "language", "pause", "stop", "mydata", "forget"]
            assert "Sprache" in env.api.commands_for(language_code="de")[2]["description"]


class TestLanguages:
    async def test_replies_follow_telegram_language_and_fall_back_to_default(self, database_url: str) -> None:
        """English Telegram users get English, others the DEFAULT_LANGUAGE (German)."""
        async with running_bot(database_url) as env:
            env.api.user_sends_text(EMMA, "/help")
            assert "/language" in (await env.api.wait_for_message(EMMA.id))["text"]
            assert "After a purchase" in env.api.sent_texts(EMMA.id)[0]
            env.api.user_sends_text(PIERRE, "/help")
            assert "Nach einem Einkauf" in (await env.api.wait_for_message(PIERRE.id))["text"]

    async def test_language_command_switches_the_survey_language(self, database_url: str) -> None:
        """/language lets a German Telegram user get the survey in English."""
        async with running_bot(database_url, survey_delay="1h") as env:
            env.api.user_sends_text(ANNA, "/start")
            await env.api.wait_for_message(ANNA.id)
            env.api.user_sends_text(ANNA, "/language")
            choice = await env.api.wait_for_message(ANNA.id)
            env.api.user_presses_button(ANNA, choice, button(choice, "English"))
            confirmed = await env.api.wait_for_message(ANNA.id)
            assert "English" in confirmed["text"]
            response = await env.report_purchase(
                order_id="L-1",
                customer_id="c-anna",
                telegram_user_id=ANNA.id,
                purchased_at=(datetime.now(UTC) - timedelta(hours=2)).isoformat(),
            )
            assert response.status_code == 201
            question = await env.api.wait_for_message(ANNA.id, lambda m: "reply_markup" in m)
            assert "recommend" in question["text"]


class TestStop:
    async def test_stop_ends_messages_and_start_undoes_it(self, database_url: str) -> None:
        """/stop is confirmed and cancels the open survey; /start brings it back at the open question."""
        async with running_bot(database_url) as env:
            question = await env.customer_with_survey(ANNA)
            env.api.user_presses_button(ANNA, question, button(question, "4"))
            await env.next_step(question)
            env.api.user_sends_text(ANNA, "/stop")
            confirmation = await env.api.wait_for_message(ANNA.id)
            assert "/start" in confirmation["text"]
            assert {d.status for d in env.deliveries()} == {"stopped"}
            # The open question loses its buttons, so nothing invites a tap after /stop.
            await env.api.wait_until(
                lambda: all("reply_markup" not in m for m in env.api.messages_to(ANNA.id))
            )
            env.api.user_sends_text(ANNA, "/stop")
            assert "bereits" in (await env.api.wait_for_message(ANNA.id))["text"]

            response = await env.report_purchase(order_id="A-2", customer_id=f"cust-{ANNA.id}")
            assert response.status_code == 201
            await env.bot.sweep()
            await env.bot.sender.drain()
            assert all("reply_markup" not in m for m in env.api.messages_to(ANNA.id)[-2:])

            env.api.user_sends_text(ANNA, "/start")
            await env.api.wait_for_message(ANNA.id, lambda m: "Willkommen zurück" in m["text"])
            again = await env.api.wait_for_message(ANNA.id, lambda m: "reply_markup" in m)
            assert "Hauptgrund" in again["text"]  # the reason question that was open when they stopped
