"""Delivery when Telegram pushes back: 429 storms, flaky 500s, chats that move or refuse, races with /stop."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlmodel import Session, select

from storage.models import OutboxMessage, SurveyDelivery
from tests.e2e import STAFF_CHAT, RunningBot, button, running_bot
from tests.fakes.bot_api_server import FakeUser, FloodLimits

WAIT = 60.0


def _users(count: int, first_id: int) -> list[FakeUser]:
    return [FakeUser(id=first_id + n, first_name=f"Kunde {n}", language_code="de") for n in range(count)]


async def _surveys_for(env: RunningBot, users: list[FakeUser], prefix: str) -> None:
    for n, user in enumerate(users):
        response = await env.report_purchase(
            order_id=f"{prefix}-{n}",
            customer_id=f"{prefix}-c-{n}",
            telegram_user_id=user.id,
            name=user.first_name,
        )
        assert response.status_code == 201, response.text
    await env.bot.sweep()


def _asked(env: RunningBot, user: FakeUser) -> dict[str, Any] | None:
    return next((m for m in env.api.messages_to(user.id) if "reply_markup" in m), None)


def _message_calls(env: RunningBot) -> list[Any]:
    return [r for r in env.api.requests if r.method.startswith(("send", "edit"))]


@pytest.mark.e2e
class TestTooManyRequests:
    async def test_a_429_storm_stops_every_send_for_retry_after_then_all_arrive_once(
        self, database_url: str
    ) -> None:
        """While Telegram answers 429, the bot makes no message call until retry_after has passed; then
        every question arrives exactly once, and the 429s are counted for /healthz."""
        users = _users(12, 810_000)
        async with running_bot(database_url, send_rate=25, limits=FloodLimits.telegram()) as env:
            storm = env.api.throttle_everything(seconds=2.5, retry_after=2)
            assert storm is not None
            await _surveys_for(env, users, "S")
            await env.api.wait_until(lambda: all(_asked(env, u) for u in users), timeout=WAIT)
            health = (await env.http.get("/healthz")).json()

        refused = [r for r in _message_calls(env) if r.status == 429]
        assert refused, "the storm refused nothing"
        for first in refused:
            # Calls already on the way when the 429 came may still land; after that, silence until
            # retry_after (2 s) is over.
            quiet_from, quiet_until = first.time + 0.3, first.time + 2 - 0.05
            assert not [r for r in _message_calls(env) if quiet_from <= r.time < quiet_until]
        for user in users:
            questions = [m for m in env.api.messages_to(user.id) if "reply_markup" in m]
            assert len(questions) == 1
        assert env.api.throttled == []  # the flood limiter itself never had to refuse anything
        assert health["telegram"]["throttled_total"] >= 1

    async def test_at_the_shipped_rate_telegrams_limits_are_never_hit(self, database_url: str) -> None:
        """Forty customers asked at once with SEND_RATE at its default: not a single 429."""
        users = _users(40, 820_000)
        async with running_bot(database_url, send_rate=25, limits=FloodLimits.telegram()) as env:
            await _surveys_for(env, users, "R")
            await env.api.wait_until(lambda: all(_asked(env, u) for u in users), timeout=WAIT)
            health = (await env.http.get("/healthz")).json()
        assert env.api.throttled == []
        assert [r for r in env.api.requests if r.status == 429] == []
        assert health["telegram"]["throttled_total"] == 0


@pytest.mark.e2e
class TestFlakyTelegram:
    async def test_when_5_percent_of_calls_answer_500_every_message_arrives_once(
        self, database_url: str
    ) -> None:
        """With a twentieth of all message calls failing, every step of every survey arrives, none twice."""
        users = _users(30, 830_000)
        async with running_bot(database_url) as env:
            env.api.fail_share(0.05, seed=6)
            await _surveys_for(env, users, "F")
            await env.api.wait_until(lambda: all(_asked(env, u) for u in users), timeout=WAIT)
            for user in users:
                question = _asked(env, user)
                assert question is not None
                env.api.user_presses_button(user, question, button(question, "10"))

            def thanked(user: FakeUser) -> bool:
                return any(
                    "reply_markup" not in m and "✅" in m["text"] for m in env.api.messages_to(user.id)
                )

            def advance() -> bool:
                for user in users:
                    message = _asked(env, user)
                    if message is not None and "✅" in message["text"] and not thanked(user):
                        keys = [k for row in message["reply_markup"]["inline_keyboard"] for k in row]
                        if message["text"] not in pressed.get(user.id, ""):
                            env.api.user_presses_button(user, message, keys[0]["callback_data"])
                            pressed[user.id] = message["text"]
                return all(thanked(u) for u in users)

            pressed: dict[int, str] = {}
            await env.api.wait_until(advance, timeout=WAIT)
            with Session(env.engine) as session:
                statuses = Counter(session.exec(select(SurveyDelivery.status)).all())
                failed = session.exec(select(OutboxMessage).where(OutboxMessage.status == "failed")).all()
        assert env.api.random_failures, "no call failed: the test proves nothing"
        assert statuses == {"completed": len(users)}
        assert failed == []
        delivered = Counter(
            (r.params.get("chat_id"), r.params.get("text")) for r in _message_calls(env) if r.status == 200
        )
        assert max(delivered.values()) == 1


@pytest.mark.e2e
class TestChatsThatChange:
    async def test_alerts_follow_a_staff_group_that_became_a_supergroup(
        self, database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Telegram answers migrate_to_chat_id: queued alerts go to the supergroup, and the log says which
        STAFF_CHAT_ID to set."""
        supergroup = -1009998887770
        users = _users(2, 840_000)
        async with running_bot(database_url) as env:
            env.api.migrate_chat(STAFF_CHAT, supergroup)
            await _surveys_for(env, users, "M")
            await env.api.wait_until(lambda: all(_asked(env, u) for u in users), timeout=WAIT)
            for user in users:
                question = _asked(env, user)
                assert question is not None
                env.api.user_presses_button(user, question, button(question, "2"))
            await env.api.wait_until(lambda: len(env.api.messages_to(supergroup)) == 2, timeout=WAIT)
            await env.bot.sender.drain()
            with Session(env.engine) as session:
                chats = set(
                    session.exec(select(OutboxMessage.chat_id).where(OutboxMessage.kind == "case_card"))
                )
        assert chats == {supergroup}
        assert env.api.messages_to(STAFF_CHAT) == []
        assert f"Set STAFF_CHAT_ID={supergroup}" in caplog.text

    async def test_an_unreachable_staff_chat_keeps_alerts_until_it_is_fixed(
        self, database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A staff chat that answers 403 keeps its alerts waiting (never failed), /healthz says so, and
        once the chat answers again every alert is delivered once."""
        user = FakeUser(id=850_001, first_name="Clara", language_code="de")
        async with running_bot(database_url, expect_errors=True) as env:
            env.api.fail_chat(STAFF_CHAT, 403, "Forbidden: bot was kicked from the supergroup chat")
            question = await env.customer_with_survey(user)
            env.api.user_presses_button(user, question, button(question, "3"))
            await env.next_step(question)
            await env.api.wait_until(
                lambda: any(
                    r.params.get("chat_id") == STAFF_CHAT for r in env.api.requests_for("sendMessage")
                )
            )
            await env.bot.sender.drain()
            health = (await env.http.get("/healthz")).json()
            with Session(env.engine) as session:
                alert = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "case_card")).one()
                assert alert.status == "pending"
            assert health["staff_chat"]["reachable"] is False
            assert health["staff_chat"]["queued"] == 1
            assert "add the bot to that chat again" in caplog.text

            env.api.clear_failures(STAFF_CHAT)
            # The staff chat is retried within seconds (its backoff is short), and then answers.
            await env.api.wait_until(lambda: len(env.api.messages_to(STAFF_CHAT)) == 1, timeout=WAIT)
            await env.bot.sender.drain()
            health = (await env.http.get("/healthz")).json()
        assert health["staff_chat"]["reachable"] is True
        assert len(env.api.messages_to(STAFF_CHAT)) == 1

    async def test_alerts_for_a_wrong_staff_chat_id_go_to_the_corrected_one(
        self, database_url: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """STAFF_CHAT_ID names a chat that does not exist: alerts wait; restarted with the right id, they
        are delivered there, once."""
        user = FakeUser(id=850_002, first_name="Dora", language_code="de")
        wrong = -100123123
        async with running_bot(database_url, expect_errors=True, staff_chat_id=wrong) as env:
            env.api.fail_chat(wrong, 400, "Bad Request: chat not found")
            question = await env.customer_with_survey(user)
            env.api.user_presses_button(user, question, button(question, "0"))
            await env.next_step(question)
            await env.api.wait_until(
                lambda: any(r.params.get("chat_id") == wrong for r in env.api.requests_for("sendMessage"))
            )
            await env.bot.sender.drain()
            health = (await env.http.get("/healthz")).json()
        assert health["staff_chat"]["reachable"] is False
        assert "set STAFF_CHAT_ID to the right chat" in caplog.text
        async with running_bot(database_url) as env:
            alert = await env.api.wait_for_message(STAFF_CHAT)
            assert "0/10" in alert["text"]
            await env.bot.sender.drain()
            assert len(env.api.messages_to(STAFF_CHAT)) == 1
            with Session(env.engine) as session:
                statuses = set(
                    session.exec(select(OutboxMessage.status).where(OutboxMessage.kind == "case_card"))
                )
        assert statuses == {"sent"}


@pytest.mark.e2e
class TestCancelRace:
    async def test_stop_during_a_send_that_then_fails_leaves_the_question_cancelled(
        self, database_url: str
    ) -> None:
        """The question is on its way when the customer says /stop; the send then fails with 502. The
        question stays cancelled: it is not retried, and /stop's confirmation still arrives."""
        erik = FakeUser(id=860_001, first_name="Erik", language_code="de")
        async with running_bot(database_url) as env:
            env.api.user_sends_text(erik, "/start")
            await env.api.wait_for_message(erik.id)
            env.api.hold_chat(erik.id)
            await _surveys_for(env, [erik], "C")
            await env.api.wait_until(
                lambda: any(
                    r.params.get("chat_id") == erik.id and r.status is None
                    for r in env.api.requests_for("sendMessage")
                )
            )
            env.api.user_sends_text(erik, "/stop")
            await env.api.wait_until(lambda: {d.status for d in env.deliveries()} == {"stopped"})
            env.api.fail_chat(erik.id, 502, "Bad Gateway", times=1)
            env.api.release_chat(erik.id)
            confirmation = await env.api.wait_for_message(erik.id)
            assert "/start" in confirmation["text"]
            await env.bot.sender.drain()
            with Session(env.engine) as session:
                question = session.exec(
                    select(OutboxMessage).where(OutboxMessage.kind == "survey_question")
                ).one()
        assert question.status == "cancelled"
        attempts = [r for r in env.api.requests_for("sendMessage") if r.params.get("chat_id") == erik.id]
        assert [r.status for r in attempts] == [200, 502, 200]  # /start reply, the question, /stop's answer
        assert all("reply_markup" not in m for m in env.api.messages_to(erik.id))
