"""The survey loop end to end: purchase in, survey out, answers stored and classified, staff alerted."""

from __future__ import annotations

import pytest

from tests.e2e import STAFF_CHAT, button, running_bot
from tests.fakes.bot_api_server import FakeUser


class TestCriticPath:
    async def test_critic_answers_are_stored_classified_and_alerted(self, database_url: str) -> None:
        """A critic's score, reason and comment are stored once each; staff see all of them on one card."""
        async with running_bot(database_url) as env:
            anna = FakeUser(id=5001, first_name="Anna <B&B>", language_code="de")
            question = await env.customer_with_survey(anna)
            env.api.user_presses_button(anna, question, button(question, "3"))
            reason = await env.next_step(question)
            env.api.user_presses_button(anna, reason, button(reason, "Lieferung"))
            comment = await env.next_step(reason)
            env.api.user_sends_text(anna, "Das Paket kam zwei Wochen zu spät.")
            await env.api.wait_for_message(anna.id, lambda m: "Dank" in m["text"] and "reply_markup" not in m)
            alert = await env.api.wait_for_message(STAFF_CHAT)
            # The fake parses HTML as Telegram does: the name shows as typed, so it was escaped.
            assert "Anna <B&B>" in alert["text"] and "3/10" in alert["text"] and "A-1" in alert["text"]
            await env.api.wait_until(lambda: any("zu spät" in t for t in env.api.sent_texts(STAFF_CHAT)))
            (card,) = env.api.messages_to(STAFF_CHAT)
            assert "Lieferung" in card["text"] and "Anna <B&B>" in card["text"]

            answers = env.answers()
            assert [(a.question_id, a.score, a.choice, a.text) for a in answers] == [
                ("nps", 3, None, None),
                ("reason", None, "delivery", None),
                ("comment", None, None, "Das Paket kam zwei Wochen zu spät."),
            ]
            assert answers[0].nps_category == "critic"
            (delivery,) = env.deliveries()
            assert delivery.status == "completed" and delivery.nps_category == "critic"
            # Answered questions lose their buttons, so they cannot be answered again.
            await env.api.wait_until(
                lambda: all("reply_markup" not in m for m in env.api.messages_to(anna.id))
            )
            # The survey stayed in one message, edited step by step; the thank-you followed the comment.
            assert question["message_id"] == reason["message_id"] == comment["message_id"]
            assert "✅" in env.api.messages_to(anna.id)[-2]["text"]


class TestOtherPaths:
    async def test_promoter_gets_liked_question_and_no_alert(self, database_url: str) -> None:
        """A promoter is asked what they liked most, in English, and staff are not bothered."""
        async with running_bot(database_url) as env:
            emma = FakeUser(id=5002, first_name="Emma", language_code="en")
            question = await env.customer_with_survey(emma)
            assert "recommend" in question["text"]
            env.api.user_presses_button(emma, question, button(question, "10"))
            liked = await env.next_step(question)
            env.api.user_presses_button(emma, liked, button(liked, "The service"))
            done = await env.next_step(liked)
            assert "Thank you" in done["text"] and "reply_markup" not in done
            assert len(env.api.messages_to(emma.id)) == 2  # the /start reply and the one survey message
            answers = env.answers()
            assert [(a.question_id, a.nps_category or a.choice) for a in answers] == [
                ("nps", "promoter"),
                ("liked", "service"),
            ]
            assert env.api.messages_to(STAFF_CHAT) == []

    async def test_passive_can_skip_the_comment(self, database_url: str) -> None:
        """A passive's text question has a Skip button; skipping is stored and completes the survey."""
        async with running_bot(database_url) as env:
            emma = FakeUser(id=5003, first_name="Emma", language_code="en")
            question = await env.customer_with_survey(emma)
            env.api.user_presses_button(emma, question, button(question, "7"))
            improve = await env.next_step(question)
            env.api.user_presses_button(emma, improve, button(improve, "Skip"))
            done = await env.next_step(improve)
            assert "Thank you" in done["text"]
            answers = env.answers()
            assert [(a.question_id, a.skipped) for a in answers] == [("nps", False), ("improve", True)]
            assert env.deliveries()[0].status == "completed"
            assert "skipped" in done["text"]

    async def test_too_long_comment_is_refused_with_the_limit(self, database_url: str) -> None:
        """A comment over the limit is not stored; the customer is told the limit and can try again."""
        async with running_bot(database_url) as env:
            anna = FakeUser(id=5004, first_name="Anna", language_code="de")
            question = await env.customer_with_survey(anna)
            env.api.user_presses_button(anna, question, button(question, "8"))
            await env.next_step(question)
            env.api.user_sends_text(anna, "x" * 4001)
            refusal = await env.api.wait_for_message(anna.id)
            assert "4000" in refusal["text"]
            env.api.user_sends_text(anna, "Schnellerer Versand")
            await env.api.wait_for_message(anna.id, lambda m: "Dank" in m["text"])
            assert [(a.question_id, a.text) for a in env.answers()] == [
                ("nps", None),
                ("improve", "Schnellerer Versand"),
            ]


class TestAlertsWithoutStaffChat:
    async def test_alerts_wait_for_a_staff_chat_and_go_out_once_it_is_set(
        self, database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Without STAFF_CHAT_ID a critic's alert is kept; restarted with it set, it is delivered once."""
        anna = FakeUser(id=5005, first_name="Anna", language_code="de")
        async with running_bot(database_url, staff_chat_id=None) as env:
            question = await env.customer_with_survey(anna)
            env.api.user_presses_button(anna, question, button(question, "1"))
            await env.next_step(question)
            await env.bot.sender.drain()
            assert env.api.requests_for("sendMessage")[-1].params.get("chat_id") != STAFF_CHAT
        assert "STAFF_CHAT_ID is not set" in caplog.text
        async with running_bot(database_url) as env:
            alert = await env.api.wait_for_message(STAFF_CHAT)
            assert "1/10" in alert["text"]
            await env.bot.sender.drain()
            assert len(env.api.messages_to(STAFF_CHAT)) == 1
