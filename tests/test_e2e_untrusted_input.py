"""Callback data is never trusted: every odd press leaves one answer (or none) and an answered query."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from storage.models import InboundUpdate, SurveyDelivery
from tests.e2e import STAFF_CHAT, RunningBot, button, running_bot
from tests.fakes.bot_api_server import FakeUser

ANNA = FakeUser(id=6001, first_name="Anna", language_code="de")
MALLORY = FakeUser(id=6002, first_name="Mallory", language_code="en")


async def _all_queries_answered(env: RunningBot, count: int) -> None:
    await env.api.wait_until(lambda: len(env.api.callback_answers) >= count)


class TestUntrustedButtons:
    async def test_double_tap_records_one_answer(self, database_url: str) -> None:
        """Two presses of the same button store the answer once and answer both queries."""
        async with running_bot(database_url) as env:
            question = await env.customer_with_survey(ANNA)
            data = button(question, "10")
            env.api.user_presses_button(ANNA, question, data)
            env.api.user_presses_button(ANNA, question, data)
            await _all_queries_answered(env, 2)
            await env.next_step(question)
            assert [(a.question_id, a.score) for a in env.answers()] == [("nps", 10)]
            texts = [str(answer.get("text")) for answer in env.api.callback_answers]
            assert any("bereits" in text for text in texts)

    async def test_same_update_delivered_twice_is_handled_once(self, database_url: str) -> None:
        """A redelivered update (same update_id) changes nothing the second time."""
        async with running_bot(database_url) as env:
            question = await env.customer_with_survey(ANNA)
            update = env.api.user_presses_button(ANNA, question, button(question, "8"))
            await env.next_step(question)
            env.api.redeliver(update)
            env.api.user_sends_text(ANNA, "/help")  # a later update proves the redelivery was consumed
            await env.api.wait_for_message(ANNA.id, lambda m: "/language" in m["text"])
            assert [(a.question_id, a.score) for a in env.answers()] == [("nps", 8)]
            assert len([m for m in env.api.messages_to(ANNA.id) if "reply_markup" in m]) == 1

    async def test_press_by_another_user_is_refused(self, database_url: str) -> None:
        """Someone pressing a button of another customer's survey records nothing."""
        async with running_bot(database_url) as env:
            question = await env.customer_with_survey(ANNA)
            env.api.user_presses_button(MALLORY, question, button(question, "0"))
            await _all_queries_answered(env, 1)
            assert env.answers() == []
            assert "not meant for you" in str(env.api.callback_answers[0].get("text"))

    async def test_forged_and_malformed_payloads_are_answered_and_ignored(self, database_url: str) -> None:
        """Out-of-range scores, unknown questions, other deliveries and garbage never become answers."""
        async with running_bot(database_url) as env:
            question = await env.customer_with_survey(ANNA)
            delivery_id = button(question, "5").split(":")[1]
            forged = [
                f"a:{delivery_id}:nps:11",
                f"a:{delivery_id}:nps:-1",
                f"a:{delivery_id}:nps:05",
                f"a:{delivery_id}:reason:price",  # a later question, not the open one
                f"a:{delivery_id}:nope:1",
                "a:999999:nps:5",
                "a:1:2",
                "lang:xx",
                "💥" * 16,
                "",
            ]
            for data in forged:
                env.api.user_presses_button(ANNA, question, data or "x", require_button=False)
            await _all_queries_answered(env, len(forged))
            assert env.answers() == []
            # The real button still works afterwards.
            env.api.user_presses_button(ANNA, question, button(question, "5"))
            await env.next_step(question)
            assert [(a.question_id, a.score) for a in env.answers()] == [("nps", 5)]

    async def test_press_on_an_old_question_is_refused(self, database_url: str) -> None:
        """A button on an already answered question cannot change the answer."""
        async with running_bot(database_url) as env:
            question = await env.customer_with_survey(ANNA)
            env.api.user_presses_button(ANNA, question, button(question, "9"))
            await env.next_step(question)
            env.api.user_presses_button(ANNA, question, button(question, "2"), require_button=False)
            await _all_queries_answered(env, 2)
            assert [(a.question_id, a.score, a.nps_category) for a in env.answers()] == [
                ("nps", 9, "promoter")
            ]

    async def test_unexpected_messages_get_a_helpful_answer(self, database_url: str) -> None:
        """Text, unknown commands and stickers all get a reply, never silence."""
        async with running_bot(database_url) as env:
            env.api.user_sends_text(MALLORY, "hello?")
            reply = await env.api.wait_for_message(MALLORY.id)
            assert "/help" in reply["text"]
            env.api.user_sends_text(MALLORY, "/frobnicate")
            assert "/help" in (await env.api.wait_for_message(MALLORY.id))["text"]
            env.api.enqueue_update(
                {
                    "message": {
                        "message_id": 77,
                        "from": MALLORY.to_dict(),
                        "chat": MALLORY.private_chat(),
                        "date": 1_700_000_000,
                        "sticker": {
                            "file_id": "x",
                            "file_unique_id": "y",
                            "type": "regular",
                            "width": 512,
                            "height": 512,
                            "is_animated": False,
                            "is_video": False,
                        },
                    }
                }
            )
            assert "/help" in (await env.api.wait_for_message(MALLORY.id))["text"]

    async def test_button_answer_while_a_text_question_is_open_is_explained(self, database_url: str) -> None:
        """Typing while a button question is open tells the customer to use the buttons."""
        async with running_bot(database_url) as env:
            await env.customer_with_survey(ANNA)
            env.api.user_sends_text(ANNA, "eine 7 bitte")
            reply = await env.api.wait_for_message(ANNA.id)
            assert "Schaltfläche" in reply["text"] or "Button" in reply["text"]
            assert env.answers() == []


class TestFailingHandler:
    async def test_update_that_keeps_failing_is_parked_and_the_customer_told(self, database_url: str) -> None:
        """A handler failing every time is retried, then parked, and the customer told it went wrong."""
        async with running_bot(database_url, expect_errors=True) as env:
            env.bot.worker.retry_base = timedelta(0)
            question = await env.customer_with_survey(ANNA)
            env.api.user_presses_button(ANNA, question, button(question, "8"))
            await env.next_step(question)
            with Session(env.engine) as session:
                # A survey definition that was removed while this survey was open: handling must fail.
                session.execute(sa.update(SurveyDelivery).values(survey_id="retired"))
                session.commit()
            env.api.user_sends_text(ANNA, "Mehr Auswahl")
            apology = await env.api.wait_for_message(ANNA.id)
            assert "schiefgelaufen" in apology["text"] or "Fehler" in apology["text"]
            with Session(env.engine) as session:
                failed = session.exec(select(InboundUpdate).where(InboundUpdate.status == "failed")).all()
            assert len(failed) == 1
            assert failed[0].attempts == 5
            # Nothing else is held up: another customer is served normally.
            env.api.user_sends_text(MALLORY, "/help")
            assert "/language" in (await env.api.wait_for_message(MALLORY.id))["text"]


class TestButtonsOnTheirOwnMessage:
    async def test_a_survey_button_counts_only_on_the_message_that_asks_the_question(
        self, database_url: str
    ) -> None:
        """The right data pressed on another message (the welcome) is refused: no answer, no case."""
        async with running_bot(database_url) as env:
            question = await env.customer_with_survey(ANNA)
            welcome = env.api.messages_to(ANNA.id)[0]
            assert welcome["message_id"] != question["message_id"]
            await env.bot.sender.drain()  # the question's message id is written with its send's outcome
            env.api.user_presses_button(ANNA, welcome, button(question, "0"), require_button=False)
            await _all_queries_answered(env, 1)
            assert "nicht mehr gültig" in str(env.api.callback_answers[0].get("text"))
            env.api.user_presses_button(ANNA, question, button(question, "9"))
            await env.next_step(question)
            assert [(a.question_id, a.score) for a in env.answers()] == [("nps", 9)]
            assert env.api.messages_to(STAFF_CHAT) == []


class TestUntrustedText:
    async def test_markup_in_names_order_ids_and_answers_shows_as_typed(self, database_url: str) -> None:
        """The catalogue escapes every parameter: Telegram accepts the alert and shows what was typed."""
        markup_user = FakeUser(id=6003, first_name="<b>Max</b> & Co", language_code="de")
        async with running_bot(database_url) as env:
            question = await env.customer_with_survey(markup_user, order_id="<i>A</i>&amp;B")
            env.api.user_presses_button(markup_user, question, button(question, "2"))
            await env.next_step(question)
            alert = await env.api.wait_for_message(STAFF_CHAT)
            assert "<b>Max</b> & Co" in alert["text"]
            assert "<i>A</i>&amp;B" in alert["text"]
            assert all(r.status == 200 for r in env.api.requests_for("sendMessage"))

    async def test_an_order_id_with_markup_is_confirmed_as_typed_when_a_start_link_connects_it(
        self, database_url: str
    ) -> None:
        """The reply to /start <token> names the order as typed; it used to render its markup."""
        async with running_bot(database_url) as env:
            response = await env.report_purchase(
                order_id="<i>A</i>&amp;B", customer_id="c-markup", name="Dora"
            )
            token = response.json()["start_link"].rsplit("=", 1)[1]
            env.api.user_sends_text(ANNA, f"/start {token}")
            linked = await env.api.wait_for_message(ANNA.id, lambda m: "<i>A</i>&amp;B" in m["text"])
            assert "reply_markup" not in linked
