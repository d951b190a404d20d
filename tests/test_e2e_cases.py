"""A critic's case end to end: one card in the staff chat, kept current, and take, reply, resolve from it."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from handlers.case_card import case_callback_data
from storage.models import Case, CaseEvent
from tests.e2e import STAFF_CHAT, RunningBot, button, running_bot
from tests.fakes.bot_api_server import FakeUser

ANNA = FakeUser(id=9101, first_name="Anna", language_code="de")
BEN = FakeUser(id=9102, first_name="Ben", language_code="de")
MIA = FakeUser(id=9201, first_name="Mia", last_name="Service", language_code="de")
"""Staff."""
OTTO = FakeUser(id=9202, first_name="Otto", language_code="de")
"""In the staff chat, but not staff when STAFF_USER_IDS names only Mia."""


async def _critic_with_comment(env: RunningBot, user: FakeUser, comment: str, order_id: str = "K-1") -> None:
    question = await env.customer_with_survey(user, order_id=order_id)
    env.api.user_presses_button(user, question, button(question, "2"))
    reason = await env.next_step(question)
    env.api.user_presses_button(user, reason, button(reason, "Lieferung"))
    await env.next_step(reason)
    env.api.user_sends_text(user, comment)
    await env.api.wait_for_message(user.id, lambda m: "Dank" in m["text"] and "reply_markup" not in m)


async def _card(env: RunningBot, predicate: Any = None) -> dict[str, Any]:
    """The one card in the staff chat, once it shows what ``predicate`` wants."""
    await env.api.wait_until(
        lambda: (
            len(env.api.messages_to(STAFF_CHAT)) >= 1
            and (predicate is None or predicate(env.api.messages_to(STAFF_CHAT)[0]["text"]))
        )
    )
    return env.api.messages_to(STAFF_CHAT)[0]


def _buttons(card: dict[str, Any]) -> list[str]:
    rows = (card.get("reply_markup") or {}).get("inline_keyboard", [])
    return [str(b["callback_data"]) for row in rows for b in row]


def _case(env: RunningBot) -> Case:
    with Session(env.engine) as session:
        return session.exec(select(Case)).one()


def _events(env: RunningBot) -> list[tuple[str, int | None]]:
    with Session(env.engine) as session:
        events = session.exec(select(CaseEvent).order_by(col(CaseEvent.id))).all()
        return [(event.action, event.actor_id) for event in events]


class TestCaseLoop:
    async def test_one_card_take_reply_answer_and_resolve_all_from_the_staff_chat(
        self, database_url: str
    ) -> None:
        """Critic → one card with reason and comment; Take, Reply (relayed both ways), Resolve, a note."""
        async with running_bot(database_url) as env:
            await _critic_with_comment(env, ANNA, "Das Paket kam nie an.")
            card = await _card(env, lambda text: "nie an" in text)
            assert len(env.api.messages_to(STAFF_CHAT)) == 1
            assert "Anna" in card["text"] and "2/10" in card["text"] and "Lieferung" in card["text"]
            assert "K-1" in card["text"]
            case_id = _case(env).id
            assert case_id is not None
            assert _buttons(card) == [case_callback_data(case_id, a) for a in ("take", "reply", "resolve")]

            env.api.user_presses_button(MIA, card, case_callback_data(case_id, "take"))
            card = await _card(env, lambda text: "übernommen von Mia Service" in text)
            assert case_callback_data(case_id, "take") not in _buttons(card)

            env.api.user_presses_button(MIA, card, case_callback_data(case_id, "reply"))
            card = await _card(env, lambda text: "antwortet" in text)
            env.api.user_writes_in_group(
                MIA, STAFF_CHAT, "Das tut uns leid! Wir schicken es neu.", reply_to=card
            )
            relayed = await env.api.wait_for_message(ANNA.id, lambda m: "schicken es neu" in m["text"])
            assert "Team" in relayed["text"]

            env.api.user_sends_text(ANNA, "Danke, bin gespannt")
            forwarded = await env.api.wait_for_message(STAFF_CHAT, lambda m: "bin gespannt" in m["text"])
            assert forwarded["reply_to_message"]["message_id"] == card["message_id"]
            await env.api.wait_for_message(ANNA.id, lambda m: "weitergegeben" in m["text"])

            env.api.user_presses_button(MIA, card, case_callback_data(case_id, "resolve"))
            card = await _card(env, lambda text: "Gelöst von Mia Service" in text)
            assert _buttons(card) == []
            env.api.user_writes_in_group(MIA, STAFF_CHAT, "Ersatz verschickt", reply_to=card)
            await _card(env, lambda text: "Notiz: Ersatz verschickt" in text)

            case = _case(env)
            assert (case.status, case.assignee_id, case.resolved_by_id) == ("resolved", MIA.id, MIA.id)
            assert case.resolution_note == "Ersatz verschickt"
            assert [action for action, _ in _events(env)] == [
                "opened",
                "taken",
                "reply_started",
                "replied",
                "customer_replied",
                "resolved",
                "note",
            ]
            texts = [str(answer.get("text")) for answer in env.api.callback_answers]
            assert "Sie haben den Fall übernommen." in texts

    async def test_non_staff_presses_and_replies_change_nothing_and_reach_no_customer(
        self, database_url: str
    ) -> None:
        """With STAFF_USER_IDS set, Otto in the staff chat gets a polite refusal; his reply goes nowhere."""
        async with running_bot(database_url, staff_user_ids=(MIA.id,)) as env:
            await _critic_with_comment(env, ANNA, "Zu teuer.")
            card = await _card(env, lambda text: "Zu teuer" in text)
            case_id = _case(env).id
            assert case_id is not None
            for action in ("take", "reply", "resolve"):
                env.api.user_presses_button(OTTO, card, case_callback_data(case_id, action))
            await env.api.wait_until(lambda: len(env.api.callback_answers) >= 2 + 3)
            refusals = [str(a.get("text")) for a in env.api.callback_answers[-3:]]
            assert all("Nur das Team" in text for text in refusals)
            env.api.user_writes_in_group(OTTO, STAFF_CHAT, "Hallo Anna, hier Otto", reply_to=card)
            env.api.user_sends_text(ANNA, "/help")
            await env.api.wait_for_message(ANNA.id, lambda m: "/language" in m["text"])
            await env.bot.sender.drain()

            assert not any("Otto" in text for text in env.api.sent_texts(ANNA.id))
            case = _case(env)
            assert (case.status, case.assignee_id, case.replying_id) == ("open", None, None)
            assert [action for action, _ in _events(env)] == ["opened"]

    async def test_a_card_button_pressed_on_another_message_changes_nothing(self, database_url: str) -> None:
        """The right callback data on a message that is not the case's card is refused."""
        async with running_bot(database_url) as env:
            await _critic_with_comment(env, ANNA, "Kaputt angekommen.")
            await _card(env, lambda text: "Kaputt" in text)
            case_id = _case(env).id
            assert case_id is not None
            question = await env.customer_with_survey(BEN, order_id="K-2")
            env.api.user_presses_button(
                MIA, question, case_callback_data(case_id, "resolve"), require_button=False
            )
            await env.api.wait_until(
                lambda: any("gibt es nicht" in str(a.get("text")) for a in env.api.callback_answers)
            )
            assert _case(env).status == "open"

    async def test_open_lists_unresolved_cases_oldest_first(self, database_url: str) -> None:
        """/open in the staff chat names each open case with its age and who has it."""
        async with running_bot(database_url) as env:
            await _critic_with_comment(env, ANNA, "Erstens.", order_id="O-1")
            await _critic_with_comment(env, BEN, "Zweitens.", order_id="O-2")
            await env.api.wait_until(lambda: len(env.api.messages_to(STAFF_CHAT)) >= 1)
            env.api.user_writes_in_group(MIA, STAFF_CHAT, "/open")
            listing = await env.api.wait_for_message(STAFF_CHAT, lambda m: "Offene Fälle" in m["text"])
            lines = listing["text"].splitlines()[1:]
            assert [line.split(" · ")[1] for line in lines] == ["Anna", "Ben"]

    async def test_a_long_comment_is_shortened_on_the_card_and_sent_in_full_on_request(
        self, database_url: str
    ) -> None:
        """4,000 characters with emoji: the card shows the start, "Full comment" sends all of it."""
        comment = ("Leider sehr enttäuscht 😞 " * 160)[:4000]
        async with running_bot(database_url) as env:
            await _critic_with_comment(env, ANNA, comment)
            card = await _card(env, lambda text: "gekürzt" in text)
            assert len(card["text"]) < 1500
            case_id = _case(env).id
            assert case_id is not None
            env.api.user_presses_button(MIA, card, case_callback_data(case_id, "full"))
            await env.api.wait_until(lambda: len(env.api.messages_to(STAFF_CHAT)) >= 3)
            parts = env.api.messages_to(STAFF_CHAT)[1:]
            shown = "".join(part["text"].split("\n", 1)[1] for part in parts)
            # Telegram trims each message, so spaces where a part ends do not survive; every word does.
            assert shown.split() == comment.split()


class TestCommentSentiment:
    async def test_comments_are_stored_with_their_sentiment_and_language(self, database_url: str) -> None:
        """The comment's own language decides: a German customer's English comment is read as English."""
        async with running_bot(database_url) as env:
            await _critic_with_comment(env, ANNA, "The parcel never arrived and nobody answers my emails.")
            card = await _card(env, lambda text: "never arrived" in text)
            assert "(negativ)" in card["text"]
            comment = next(a for a in env.answers() if a.question_id == "comment")
            assert (comment.sentiment, comment.text_language) == ("negative", "en")
            assert comment.polarity is not None and comment.polarity < 0

    async def test_a_passive_with_a_clearly_negative_comment_opens_a_case(self, database_url: str) -> None:
        """Score 8, but "kam kaputt an, niemand meldet sich": staff get a card, marked as a comment case."""
        async with running_bot(database_url) as env:
            question = await env.customer_with_survey(ANNA, order_id="P-1")
            env.api.user_presses_button(ANNA, question, button(question, "8"))
            await env.next_step(question)
            env.api.user_sends_text(
                ANNA, "Leider kam die Lampe kaputt an und niemand meldet sich. Sehr enttäuschend."
            )
            await env.api.wait_for_message(ANNA.id, lambda m: "Dank" in m["text"] and "reply_markup" not in m)
            card = await _card(env, lambda text: "kaputt" in text)
            assert "8/10 (Passiver)" in card["text"]
            assert _case(env).kind == "negative_comment"

    async def test_a_passives_neutral_suggestion_opens_no_case(self, database_url: str) -> None:
        """A wish is not a complaint: no card."""
        async with running_bot(database_url) as env:
            question = await env.customer_with_survey(ANNA, order_id="P-2")
            env.api.user_presses_button(ANNA, question, button(question, "7"))
            await env.next_step(question)
            env.api.user_sends_text(ANNA, "Bitte nächstes Mal mit weniger Verpackung.")
            await env.api.wait_for_message(ANNA.id, lambda m: "Dank" in m["text"] and "reply_markup" not in m)
            await env.bot.sender.drain()
            assert env.api.messages_to(STAFF_CHAT) == []
            (improve,) = [a for a in env.answers() if a.question_id == "improve"]
            assert improve.sentiment in ("neutral", "positive")


class TestSetup:
    async def test_the_bot_added_to_a_forum_group_names_the_line_for_env(self, database_url: str) -> None:
        """No ids to look up: joining a group, the bot posts STAFF_CHAT_ID=<its id> and says it is a forum."""
        group = {"id": -1001234567890, "type": "supergroup", "title": "Laden-Team", "is_forum": True}
        async with running_bot(database_url) as env:
            bot_user = env.api.bot_user

            def member(status: str) -> dict[str, object]:
                return {"status": status, "user": bot_user}

            env.api.enqueue_update(
                {
                    "my_chat_member": {
                        "chat": group,
                        "from": MIA.to_dict(),
                        "date": 1_700_000_000,
                        "old_chat_member": member("left"),
                        "new_chat_member": member("member"),
                    }
                }
            )
            hello = await env.api.wait_for_message(-1001234567890)
            assert "STAFF_CHAT_ID=-1001234567890" in hello["text"]
            assert "ist ein Forum" in hello["text"]

    async def test_setup_in_the_staff_chat_says_it_is_already_configured(self, database_url: str) -> None:
        """/setup repeats the line; in the configured staff chat it says so."""
        async with running_bot(database_url) as env:
            env.api.user_writes_in_group(MIA, STAFF_CHAT, "/setup")
            answer = await env.api.wait_for_message(STAFF_CHAT)
            assert f"STAFF_CHAT_ID={STAFF_CHAT}" in answer["text"]
            assert "bereits" in answer["text"]


MANAGERS = -1005550001


def _rows_of_kind(env: RunningBot, kind: str) -> list[Any]:
    from storage.models import OutboxMessage

    with Session(env.engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.kind == kind)).all())


class TestEscalationAndRecovery:
    async def test_a_case_nobody_takes_is_escalated_once_also_across_a_restart(
        self, database_url: str
    ) -> None:
        """ALERT_ESCALATE_AFTER passed: the managers hear of it once, however often the sweep runs."""
        settings = {"manager_chat_ids": (MANAGERS,), "alert_escalate_after": "0s"}
        async with running_bot(database_url, **settings) as env:
            await _critic_with_comment(env, ANNA, "Nie wieder.")
            await env.bot.sweep()
            escalation = await env.api.wait_for_message(MANAGERS)
            assert "nicht übernommen" in escalation["text"] and "Anna" in escalation["text"]
            await env.bot.sweep()
            await env.bot.sender.drain()
            assert len(env.api.messages_to(MANAGERS)) == 1
        async with running_bot(database_url, **settings) as env:
            await env.bot.sweep()
            await env.bot.sender.drain()
            assert env.api.messages_to(MANAGERS) == []
            assert len(_rows_of_kind(env, "case_escalation")) == 1
            assert [action for action, _ in _events(env)].count("escalated_untaken") == 1

    async def test_a_taken_case_not_resolved_in_time_is_escalated_with_who_has_it(
        self, database_url: str
    ) -> None:
        """ALERT_RESOLVE_WITHIN passed after Take: one message to the managers naming the assignee."""
        settings = {"manager_chat_ids": (MANAGERS,), "alert_resolve_within": "0s"}
        async with running_bot(database_url, **settings) as env:
            await _critic_with_comment(env, ANNA, "Kaputt.")
            card = await _card(env, lambda text: "Kaputt" in text)
            case_id = _case(env).id
            assert case_id is not None
            env.api.user_presses_button(MIA, card, case_callback_data(case_id, "take"))
            await _card(env, lambda text: "übernommen von" in text)
            await env.bot.sweep()
            escalation = await env.api.wait_for_message(MANAGERS)
            assert "Mia Service" in escalation["text"] and "nicht gelöst" in escalation["text"]

    async def test_the_customer_is_asked_once_whether_it_was_solved_and_the_answer_is_on_the_card(
        self, database_url: str
    ) -> None:
        """RECOVERY_CHECK_AFTER after Resolve: a yes/no question; the answer is stored once and shown."""
        async with running_bot(database_url, recovery_check_after="0s") as env:
            await _critic_with_comment(env, ANNA, "Falsche Größe geliefert.")
            card = await _card(env, lambda text: "Größe" in text)
            case_id = _case(env).id
            assert case_id is not None
            env.api.user_presses_button(MIA, card, case_callback_data(case_id, "resolve"))
            await _card(env, lambda text: "Gelöst von" in text)
            await env.bot.sweep()
            asked = await env.api.wait_for_message(
                ANNA.id, lambda m: "gelöst" in m["text"] and "reply_markup" in m
            )
            await env.bot.sender.drain()
            env.api.user_presses_button(ANNA, asked, f"rec:{case_id}:no")
            await _card(env, lambda text: "nicht gelöst" in text)
            await env.api.wait_until(
                lambda: all(
                    "reply_markup" not in m for m in env.api.messages_to(ANNA.id) if "gelöst" in m["text"]
                )
            )
            env.api.user_presses_button(ANNA, asked, f"rec:{case_id}:yes", require_button=False)
            await env.bot.sweep()
            await env.bot.sender.drain()
            case = _case(env)
            assert case.recovered is False
            assert [action for action, _ in _events(env)].count("recovery_answered") == 1
            assert len(_rows_of_kind(env, "recovery_check")) == 2  # the question and its answered edit
