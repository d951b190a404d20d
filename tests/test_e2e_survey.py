"""The survey loop end to end: purchase in, survey out, answers stored and classified, staff alerted."""

from __future__ import annotations

from tests.e2e import STAFF_CHAT, button, running_bot
from tests.fakes.bot_api_server import FakeUser


class TestCriticPath:
    async def test_critic_answers_are_stored_classified_and_alerted(self, database_url: str) -> None:
        """A critic's score, reason and comment are stored once each and staff hear about all of them."""
        async with running_bot(database_url) as env:
            anna = FakeUser(id=5001, first_name="Anna <B&B>", language_code="de")
            question = await env.customer_with_survey(anna)
            env.api.user_presses_button(anna, question, button(question, "3"))
            reason = await env.api.wait_for_message(anna.id, lambda m: "reply_markup" in m)
            env.api.user_presses_button(anna, reason, button(reason, "Lieferung"))
            comment = await env.api.wait_for_message(anna.id, lambda m: "reply_markup" in m)
            env.api.user_sends_text(anna, "Das Paket kam zwei Wochen zu spät.")
            await env.api.wait_for_message(anna.id, lambda m: "Dank" in m["text"] and "reply_markup" not in m)
            alert = await env.api.wait_for_message(STAFF_CHAT)
            # The fake parses HTML as Telegram does: the name shows as typed, so it was escaped.
            assert "Anna <B&B>" in alert["text"] and "3/10" in alert["text"] and "A-1" in alert["text"]
            await env.api.wait_for_message(STAFF_CHAT, lambda m: "zu spät" in m["text"])

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
            assert comment["message_id"] != reason["message_id"]
