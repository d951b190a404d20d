"""Delivery under Telegram's refusals and outages: held, retried, never lost, never doubled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from storage.models import OutboxMessage, TelegramUser
from tests.e2e import STAFF_CHAT, RunningBot, button, running_bot
from tests.fakes.bot_api_server import FakeUser

ANNA = FakeUser(id=7001, first_name="Anna", language_code="de")
BEN = FakeUser(id=7002, first_name="Ben", language_code="en")
BLOCKED = "Forbidden: bot was blocked by the user"
NO_CONTACT = "Forbidden: bot can't initiate conversation with a user"


def _send_attempts(env: RunningBot, chat_id: int) -> int:
    return sum(1 for r in env.api.requests_for("sendMessage") if r.params.get("chat_id") == chat_id)


async def _purchase(env: RunningBot, user: FakeUser, order_id: str) -> None:
    response = await env.report_purchase(
        order_id=order_id, customer_id=f"c-{user.id}", telegram_user_id=user.id, name=user.first_name
    )
    assert response.status_code == 201, response.text


class TestBlockedCustomer:
    async def test_blocked_customer_is_marked_and_not_retried_until_they_write(
        self, database_url: str
    ) -> None:
        """A 403 'blocked' holds the survey after one attempt, others are served, writing again resumes it."""
        async with running_bot(database_url) as env:
            env.api.user_sends_text(ANNA, "/start")
            await env.api.wait_for_message(ANNA.id)
            env.api.fail_chat(ANNA.id, 403, BLOCKED)
            await _purchase(env, ANNA, "A-1")
            await env.api.wait_until(
                lambda: _send_attempts(env, ANNA.id) == 2
            )  # the /start reply + the survey
            # Ben is served meanwhile, through a whole answer round trip.
            ben_question = await env.customer_with_survey(BEN, order_id="B-1")
            env.api.user_presses_button(BEN, ben_question, button(ben_question, "9"))
            await env.next_step(ben_question)
            await env.bot.sweep()
            await env.bot.sender.drain()
            assert _send_attempts(env, ANNA.id) == 2
            with Session(env.engine) as session:
                anna = session.get(TelegramUser, ANNA.id)
                assert anna is not None and anna.blocked_at is not None
                held = session.exec(select(OutboxMessage).where(OutboxMessage.chat_id == ANNA.id)).all()
                assert {row.status for row in held if row.kind == "survey_question"} == {"blocked"}

            env.api.clear_failures(ANNA.id)
            env.api.user_sends_text(ANNA, "Hallo")
            question = await env.api.wait_for_message(ANNA.id, lambda m: "reply_markup" in m)
            env.api.user_presses_button(ANNA, question, button(question, "7"))
            await env.next_step(question)
            with Session(env.engine) as session:
                anna = session.get(TelegramUser, ANNA.id)
                assert anna is not None and anna.blocked_at is None
            assert [(a.question_id, a.score) for a in env.answers()] == [("nps", 9), ("nps", 7)]


class TestCustomerWhoNeverOpenedTheBot:
    async def test_survey_waits_for_start_then_goes_out(self, database_url: str) -> None:
        """403 "can't initiate conversation" keeps the survey waiting until the customer sends /start."""
        async with running_bot(database_url) as env:
            env.api.fail_chat(ANNA.id, 403, NO_CONTACT)
            await _purchase(env, ANNA, "A-1")
            await env.api.wait_until(lambda: _send_attempts(env, ANNA.id) == 1)
            env.api.clear_failures(ANNA.id)
            env.api.user_sends_text(ANNA, "/start")
            question = await env.api.wait_for_message(ANNA.id, lambda m: "reply_markup" in m)
            assert "empfehlen" in question["text"]

    async def test_deep_link_connects_an_unknown_customer_and_sends_the_survey(
        self, database_url: str
    ) -> None:
        """A customer the shop knows no Telegram id for opens the start link and gets their survey."""
        async with running_bot(database_url) as env:
            response = await env.report_purchase(order_id="D-7", customer_id="c-deep", name="Dora")
            link = response.json()["start_link"]
            assert link.startswith("https://t.me/kundenpuls_test_bot?start=")
            token = link.rsplit("=", 1)[1]
            await env.bot.sweep()
            env.api.user_sends_text(ANNA, f"/start {token}")
            linked = await env.api.wait_for_message(ANNA.id, lambda m: "reply_markup" not in m)
            assert "D-7" in linked["text"]
            question = await env.api.wait_for_message(ANNA.id, lambda m: "reply_markup" in m)
            env.api.user_presses_button(ANNA, question, button(question, "2"))
            alert = await env.api.wait_for_message(STAFF_CHAT)
            assert "Dora" in alert["text"]

    async def test_a_used_link_is_refused_for_another_account(self, database_url: str) -> None:
        """A start token works once: a second Telegram account opening it is told it was used."""
        async with running_bot(database_url) as env:
            response = await env.report_purchase(order_id="D-8", customer_id="c-deep")
            token = response.json()["start_link"].rsplit("=", 1)[1]
            env.api.user_sends_text(ANNA, f"/start {token}")
            await env.api.wait_for_message(ANNA.id, lambda m: "D-8" in m["text"])
            env.api.user_sends_text(BEN, f"/start {token}")
            refused = await env.api.wait_for_message(BEN.id)
            assert "already been used" in refused["text"]
            env.api.user_sends_text(BEN, "/start not-a-real-token")
            assert "invalid" in (await env.api.wait_for_message(BEN.id))["text"]


class TestTelegramTrouble:
    async def test_429_is_retried_after_retry_after_and_others_are_served(self, database_url: str) -> None:
        """A flood-wait delays only that message; it arrives once, and other customers go on."""
        async with running_bot(database_url) as env:
            env.api.user_sends_text(ANNA, "/start")
            await env.api.wait_for_message(ANNA.id)
            env.api.fail_chat(ANNA.id, 429, "Too Many Requests: retry after 1", retry_after=1, times=1)
            await _purchase(env, ANNA, "A-1")
            ben_question = await env.customer_with_survey(BEN, order_id="B-1")
            assert ben_question
            question = await env.api.wait_for_message(ANNA.id, lambda m: "reply_markup" in m)
            attempts = [r for r in env.api.requests_for("sendMessage") if r.params.get("chat_id") == ANNA.id]
            refused, delivered = attempts[-2], attempts[-1]
            assert (refused.status, delivered.status) == (429, 200)
            assert delivered.time - refused.time >= 1.0  # waited for retry_after
            assert question["message_id"] == env.api.messages_to(ANNA.id)[-1]["message_id"]
            assert len([m for m in env.api.messages_to(ANNA.id) if "reply_markup" in m]) == 1

    async def test_a_survey_goes_through_at_the_default_send_rate(self, database_url: str) -> None:
        """With SEND_RATE at its default (25/s), a whole survey and its staff alert go through."""
        async with running_bot(database_url, send_rate=25) as env:
            question = await env.customer_with_survey(ANNA)
            env.api.user_presses_button(ANNA, question, button(question, "4"))
            reason = await env.next_step(question)
            alert = await env.api.wait_for_message(STAFF_CHAT)
            assert "4/10" in alert["text"]
            env.api.user_presses_button(ANNA, reason, button(reason, "Preis"))
            assert "besser" in (await env.next_step(reason))["text"]
            await env.api.wait_until(lambda: len(env.api.callback_answers) == 2)

    async def test_outage_delays_alerts_but_never_loses_or_doubles_them(self, database_url: str) -> None:
        """While the Bot API answers 502 the alert waits in the outbox; then it arrives exactly once."""
        async with running_bot(database_url) as env:
            question = await env.customer_with_survey(ANNA)
            env.api.fail_method("sendMessage", 502, "Bad Gateway", times=3)
            env.api.fail_method("editMessageText", 502, "Bad Gateway", times=2)
            env.api.user_presses_button(ANNA, question, button(question, "1"))
            alert = await env.api.wait_for_message(STAFF_CHAT, timeout=30)
            assert "1/10" in alert["text"]
            await env.next_step(question, timeout=30)
            assert len(env.api.messages_to(STAFF_CHAT)) == 1

    async def test_deleted_survey_message_gets_the_next_question_as_a_new_message(
        self, database_url: str
    ) -> None:
        """If the message to edit is gone, the next step is sent anew instead of being lost."""
        async with running_bot(database_url) as env:
            question = await env.customer_with_survey(ANNA)
            env.api.fail_method("editMessageText", 400, "Bad Request: message to edit not found", times=1)
            env.api.user_presses_button(ANNA, question, button(question, "9"))
            follow_up = await env.api.wait_for_message(ANNA.id, lambda m: "reply_markup" in m)
            assert "gefallen" in follow_up["text"]
            assert follow_up["message_id"] != question["message_id"]


def _membership(user: FakeUser, old: str, new: str, when: int) -> dict[str, object]:
    """A my_chat_member update as Telegram sends it when a user blocks or unblocks the bot."""
    bot_user = {"id": 123456, "is_bot": True, "first_name": "Kundenpuls Test"}

    def member(status: str) -> dict[str, object]:
        return {"status": status, "user": bot_user, **({"until_date": 0} if status == "kicked" else {})}

    return {
        "my_chat_member": {
            "chat": user.private_chat(),
            "from": user.to_dict(),
            "date": when,
            "old_chat_member": member(old),
            "new_chat_member": member(new),
        }
    }


class TestMembershipUpdates:
    async def test_blocking_holds_messages_and_unblocking_releases_them(self, database_url: str) -> None:
        """Telegram's "kicked" update holds the survey without a failed send; "member" sends it."""
        async with running_bot(database_url, survey_delay="1h") as env:
            env.api.user_sends_text(ANNA, "/start")
            await env.api.wait_for_message(ANNA.id)
            env.api.enqueue_update(_membership(ANNA, "member", "kicked", 1_700_000_000))
            await env.api.wait_until(lambda: not env.api.pending_updates)
            await env.bot.worker.drain()
            with Session(env.engine) as session:
                anna = session.get(TelegramUser, ANNA.id)
                assert anna is not None and anna.blocked_at is not None
            response = await env.report_purchase(
                order_id="M-1",
                customer_id="c-m",
                telegram_user_id=ANNA.id,
                purchased_at=(datetime.now(UTC) - timedelta(hours=2)).isoformat(),
            )
            assert response.status_code == 201
            await env.bot.sweep()
            await env.bot.sender.drain()
            assert _send_attempts(env, ANNA.id) == 1  # only the /start reply: nothing tried while blocked
            env.api.enqueue_update(_membership(ANNA, "kicked", "member", 1_700_000_100))
            question = await env.api.wait_for_message(ANNA.id, lambda m: "reply_markup" in m)
            assert "empfehlen" in question["text"]
