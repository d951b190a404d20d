"""Cases in a forum staff chat (a topic per case), and a staff group that becomes a supergroup.

End to end over HTTP against the fake Bot API server, which makes topics the way Telegram does: a
``createForumTopic`` posts the topic's first message, and whatever is written in the topic arrives as a
reply to that message.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session, col, select

from handlers.case_card import case_callback_data
from storage.models import Case, CaseEvent, OutboxMessage
from tests.e2e import STAFF_CHAT, RunningBot, button, running_bot
from tests.fakes.bot_api_server import FakeUser

ANNA = FakeUser(id=9301, first_name="Anna <b>&Co</b>", language_code="de")
BEN = FakeUser(id=9302, first_name="Ben", language_code="en")
MIA = FakeUser(id=9401, first_name="Mia", language_code="de")
"""Staff."""
OTTO = FakeUser(id=9402, first_name="Otto", language_code="de")
"""In the staff chat, but not staff (STAFF_USER_IDS names only Mia)."""


async def _critic_with_comment(env: RunningBot, user: FakeUser, comment: str, order_id: str) -> None:
    question = await env.customer_with_survey(user, order_id=order_id)
    env.api.user_presses_button(user, question, button(question, "2"))
    reason = await env.next_step(question)
    reason_button = "Lieferung" if user.language_code == "de" else "Delivery"
    env.api.user_presses_button(user, reason, button(reason, reason_button))
    await env.next_step(reason)
    env.api.user_sends_text(user, comment)
    await env.api.wait_for_message(
        user.id, lambda m: ("Dank" in m["text"] or "Thank" in m["text"]) and "reply_markup" not in m
    )


def _only_case(env: RunningBot) -> Case:
    with Session(env.engine) as session:
        return session.exec(select(Case)).one()


async def _card_in_topic(env: RunningBot, thread_id: int, predicate: Any = None) -> dict[str, Any]:
    """The case's card (the first bot message in its topic), once it shows what ``predicate`` wants."""

    def card() -> dict[str, Any] | None:
        shown = env.api.messages_in_topic(STAFF_CHAT, thread_id)
        if shown and (predicate is None or predicate(shown[0]["text"])):
            return shown[0]
        return None

    await env.api.wait_until(lambda: card() is not None)
    found = card()
    assert found is not None
    return found


class TestCaseTopics:
    async def test_a_case_lives_in_its_own_topic_from_card_to_recovery(self, database_url: str) -> None:
        """Forum staff chat: the critic's case gets a topic named after customer and score; the card,
        Take, Reply (written in the topic, relayed both ways), Resolve, a note and the recovery answer
        all happen there, and nothing of it lands in the General topic."""
        async with running_bot(
            database_url,
            staff_user_ids=(MIA.id,),
            recovery_check_after="0s",
            before_start=lambda api: api.make_forum(STAFF_CHAT),
        ) as env:
            await _critic_with_comment(env, ANNA, "Das Paket kam nie an.", order_id="T-1")
            await env.api.wait_until(lambda: len(env.api.topics(STAFF_CHAT)) == 1)
            topic = env.api.topics(STAFF_CHAT)[0]
            case = _only_case(env)
            assert case.id is not None
            assert topic["name"] == f"Fall #{case.id}: Anna <b>&Co</b> · 2/10"  # plain text: nothing escaped
            thread = int(topic["message_thread_id"])
            card = await _card_in_topic(env, thread, lambda text: "nie an" in text)
            assert "Anna <b>&Co</b>" in card["text"] and "T-1" in card["text"]
            general = [m for m in env.api.messages_to(STAFF_CHAT) if "message_thread_id" not in m]
            assert general == []

            env.api.user_presses_button(MIA, card, case_callback_data(case.id, "take"))
            card = await _card_in_topic(env, thread, lambda text: "übernommen von Mia" in text)
            env.api.user_presses_button(MIA, card, case_callback_data(case.id, "reply"))
            await _card_in_topic(env, thread, lambda text: "antwortet" in text)
            env.api.user_writes_in_group(OTTO, STAFF_CHAT, "Otto meint: egal", thread_id=thread)
            env.api.user_writes_in_group(MIA, STAFF_CHAT, "Wir schicken es neu.", thread_id=thread)
            relayed = await env.api.wait_for_message(ANNA.id, lambda m: "schicken es neu" in m["text"])
            assert "Team" in relayed["text"]

            env.api.user_sends_text(ANNA, "Danke, bin gespannt")
            await env.api.wait_until(
                lambda: any(
                    "bin gespannt" in m["text"] for m in env.api.messages_in_topic(STAFF_CHAT, thread)
                )
            )
            card = await _card_in_topic(env, thread)
            env.api.user_presses_button(MIA, card, case_callback_data(case.id, "resolve"))
            card = await _card_in_topic(env, thread, lambda text: "Gelöst von Mia" in text)
            env.api.user_writes_in_group(MIA, STAFF_CHAT, "Ersatz verschickt", thread_id=thread)
            await _card_in_topic(env, thread, lambda text: "Notiz: Ersatz verschickt" in text)

            await env.bot.sweep()
            asked = await env.api.wait_for_message(
                ANNA.id, lambda m: "gelöst" in m["text"] and "reply_markup" in m
            )
            env.api.user_presses_button(ANNA, asked, f"rec:{case.id}:yes")
            await _card_in_topic(env, thread, lambda text: "Problem gelöst" in text)
            await env.bot.sender.drain()

            case = _only_case(env)
            assert (case.status, case.resolution_note, case.recovered) == (
                "resolved",
                "Ersatz verschickt",
                True,
            )
            with Session(env.engine) as session:
                events = session.exec(select(CaseEvent).order_by(col(CaseEvent.id))).all()
            replies = [event.text for event in events if event.action == "replied"]
            assert replies == ["Wir schicken es neu."]  # Otto's line in the topic reached nobody
            assert not any("egal" in m["text"] for m in env.api.messages_to(ANNA.id))
            general = [m for m in env.api.messages_to(STAFF_CHAT) if "message_thread_id" not in m]
            assert general == []
            assert len(env.api.topics(STAFF_CHAT)) == 1

    async def test_without_the_right_to_manage_topics_cards_go_to_the_general_topic(
        self, database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A forum where the bot may not make topics: the card arrives in General, the log says which
        right to give, and the next case does not try again."""
        async with running_bot(
            database_url,
            expect_errors=True,
            before_start=lambda api: api.make_forum(STAFF_CHAT, can_manage_topics=False),
        ) as env:
            await _critic_with_comment(env, ANNA, "Kam kaputt an.", order_id="T-2")
            await env.api.wait_until(lambda: len(env.api.messages_to(STAFF_CHAT)) == 1)
            await _critic_with_comment(env, BEN, "It arrived broken.", order_id="T-3")
            await env.api.wait_until(lambda: len(env.api.messages_to(STAFF_CHAT)) == 2)
            await env.bot.sender.drain()
            assert all("message_thread_id" not in m for m in env.api.messages_to(STAFF_CHAT))
            assert len(env.api.requests_for("createForumTopic")) == 1
        assert "right to manage topics" in caplog.text

    async def test_a_case_whose_topic_was_deleted_still_reaches_the_staff_in_general(
        self, database_url: str
    ) -> None:
        """Someone deletes the case's topic: the customer's next message about it comes into the General
        topic instead of failing."""
        async with running_bot(
            database_url, staff_user_ids=(MIA.id,), before_start=lambda api: api.make_forum(STAFF_CHAT)
        ) as env:
            await _critic_with_comment(env, BEN, "It arrived broken.", order_id="T-5")
            await env.api.wait_until(lambda: len(env.api.topics(STAFF_CHAT)) == 1)
            thread = int(env.api.topics(STAFF_CHAT)[0]["message_thread_id"])
            case = _only_case(env)
            assert case.id is not None
            card = await _card_in_topic(env, thread)
            env.api.user_presses_button(MIA, card, case_callback_data(case.id, "reply"))
            await _card_in_topic(env, thread, lambda text: "antwortet" in text)
            env.api.user_writes_in_group(MIA, STAFF_CHAT, "Sorry! A new one is on its way.", thread_id=thread)
            await env.api.wait_for_message(BEN.id, lambda m: "on its way" in m["text"])
            await env.bot.sender.drain()

            env.api.delete_topic(STAFF_CHAT, thread)
            env.api.user_sends_text(BEN, "Thanks, got the tracking number")
            forwarded = await env.api.wait_for_message(STAFF_CHAT, lambda m: "tracking number" in m["text"])
            assert "message_thread_id" not in forwarded
            await env.bot.sender.drain()
            with Session(env.engine) as session:
                failed = session.exec(select(OutboxMessage).where(OutboxMessage.status == "failed")).all()
            assert failed == []


class TestStaffChatBecomesAForum:
    async def test_an_open_card_shown_before_the_upgrade_is_shown_again_in_the_new_supergroup(
        self, database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Topics switched on turn the group into a supergroup: the card in the old group can no longer be
        edited or pressed, so it is shown again in the new chat with its current state, and works there."""
        group, supergroup = -4_001_002, -1_004_001_002
        async with running_bot(database_url, staff_chat_id=group, staff_user_ids=(MIA.id,)) as env:
            question = await env.customer_with_survey(ANNA, order_id="T-4")
            env.api.user_presses_button(ANNA, question, button(question, "1"))
            reason = await env.next_step(question)
            await env.api.wait_until(lambda: len(env.api.messages_to(group)) == 1)
            await env.bot.sender.drain()

            env.api.migrate_chat(group, supergroup, forum=True)
            env.api.user_presses_button(ANNA, reason, button(reason, "Lieferung"))  # edits the old card
            await env.next_step(reason)
            card = await env.api.wait_for_message(supergroup, lambda m: "Lieferung" in m["text"])
            case = _only_case(env)
            assert case.id is not None
            env.api.user_presses_button(MIA, card, case_callback_data(case.id, "take"))
            await env.api.wait_until(
                lambda: "übernommen von Mia" in env.api.messages_to(supergroup)[0]["text"]
            )
            env.api.user_presses_button(MIA, card, case_callback_data(case.id, "reply"))
            await env.api.wait_until(lambda: "antwortet" in env.api.messages_to(supergroup)[0]["text"])
            env.api.user_writes_in_group(MIA, supergroup, "Wir melden uns.", reply_to=card)
            await env.api.wait_for_message(ANNA.id, lambda m: "melden uns" in m["text"])
            await env.bot.sender.drain()
            assert len(env.api.messages_to(supergroup)) == 1  # the card, once; its edits in place
            assert len(env.api.messages_to(group)) == 1
        assert f"Set STAFF_CHAT_ID={supergroup}" in caplog.text
