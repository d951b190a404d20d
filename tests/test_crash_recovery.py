"""SIGKILL at the worst moments loses nothing: the database, not memory, holds every survey's state.

The bot runs as a real ``kundenpuls run`` process against the fake Bot API server and is killed with
SIGKILL, then started again on the same database.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import Session, select

from bot.application import FAILPOINT_VARIABLE, HOLD_UPDATES
from bot.sender import LEASE
from storage.db import create_db_engine
from storage.models import Answer
from tests.e2e import INGEST_KEY, STAFF_CHAT, TOKEN, button, free_port, next_step, process_env
from tests.fakes.bot_api_server import FakeBotApi, FakeUser

ANNA = FakeUser(id=9001, first_name="Anna", language_code="de")
REPO = Path(__file__).resolve().parents[1]


class BotProcess:
    """One ``kundenpuls run`` process."""

    def __init__(self, api: FakeBotApi, database_url: str, workdir: Path) -> None:
        self.port = free_port()
        self.env = process_env(api.url, database_url, self.port)
        self.workdir = workdir
        self.process: asyncio.subprocess.Process | None = None

    @asynccontextmanager
    async def running(self, **extra_env: str) -> AsyncIterator[BotProcess]:
        """Start the process, wait until /healthz says ready, and make sure it is gone afterwards."""
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.cli",
            "run",
            cwd=self.workdir,
            env={**self.env, **extra_env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await self._wait_ready()
            yield self
        finally:
            if self.process.returncode is None:
                self.process.kill()
            await self.process.wait()

    async def _wait_ready(self) -> None:
        assert self.process is not None
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                if self.process.returncode is not None:
                    stderr = await self.process.stderr.read() if self.process.stderr else b""
                    raise AssertionError(f"bot exited with {self.process.returncode}: {stderr.decode()}")
                try:
                    response = await client.get(f"http://127.0.0.1:{self.port}/healthz")
                    if response.status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError("bot did not become ready")

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no flushing, nothing graceful."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def report_purchase(self, **body: Any) -> httpx.Response:
        """POST a purchase to this process's API."""
        async with httpx.AsyncClient() as client:
            return await client.post(
                f"http://127.0.0.1:{self.port}/api/purchases",
                json=body,
                headers={"Authorization": f"Bearer {INGEST_KEY}"},
            )


def _answers(database_url: str) -> list[tuple[str, int | None, str | None]]:
    engine = create_db_engine(database_url)
    try:
        with Session(engine) as session:
            rows = session.exec(select(Answer).order_by(Answer.id)).all()  # type: ignore[arg-type]
            return [(row.question_id, row.score, row.choice) for row in rows]
    finally:
        engine.dispose()


class TestCrashRecovery:
    async def test_sigkill_mid_survey_loses_nothing(self, database_url: str, tmp_path: Path) -> None:
        """After SIGKILL and a restart the customer simply answers the next question."""
        async with FakeBotApi(token=TOKEN) as api:
            bot = BotProcess(api, database_url, tmp_path)
            async with bot.running():
                response = await bot.report_purchase(
                    order_id="K-1", customer_id="c-1", telegram_user_id=ANNA.id
                )
                assert response.status_code == 201
                question = await api.wait_for_message(ANNA.id, lambda m: "reply_markup" in m)
                api.user_presses_button(ANNA, question, button(question, "2"))
                reason = await next_step(api, question)
                await bot.kill()
            async with bot.running():
                api.user_presses_button(ANNA, reason, button(reason, "Preis"))
                # The killed sender may not have recorded its last call: that row, and the chat behind
                # it, wait for the lease to run out (bot/sender.py LEASE), then go on.
                comment = await next_step(api, reason, timeout=LEASE.total_seconds() + 15)
                assert "besser" in comment["text"]
            api.assert_clean()
        assert _answers(database_url) == [("nps", 2, None), ("reason", None, "price")]

    async def test_update_acknowledged_but_not_handled_survives_sigkill(
        self, database_url: str, tmp_path: Path
    ) -> None:
        """An answer Telegram already handed over (offset confirmed) is handled after a crash, once."""
        async with FakeBotApi(token=TOKEN) as api:
            bot = BotProcess(api, database_url, tmp_path)
            async with bot.running(**{FAILPOINT_VARIABLE: HOLD_UPDATES}):
                response = await bot.report_purchase(
                    order_id="K-2", customer_id="c-2", telegram_user_id=ANNA.id
                )
                assert response.status_code == 201
                question = await api.wait_for_message(ANNA.id, lambda m: "reply_markup" in m)
                update = api.user_presses_button(ANNA, question, button(question, "9"))
                # Telegram considers the update delivered: the bot asked for updates past it.
                await api.wait_until(lambda: update["update_id"] in api.update_ids_confirmed)
                await bot.kill()
            assert _answers(database_url) == []
            assert api.pending_updates == []
            async with bot.running():
                # As above: the question's own send may be unrecorded, and its chat waits for the lease.
                follow_up = await next_step(api, question, timeout=LEASE.total_seconds() + 15)
                assert "gefallen" in follow_up["text"]
            api.assert_clean()
        assert _answers(database_url) == [("nps", 9, None)]

    async def test_sigkill_before_the_card_is_delivered_sends_it_once_after_the_restart(
        self, database_url: str, tmp_path: Path
    ) -> None:
        """The critic's answer committed, its card still on its way (the staff chat refused it): after
        SIGKILL and a restart the card arrives exactly once, and the survey goes on and edits it."""
        async with FakeBotApi(token=TOKEN) as api:
            bot = BotProcess(api, database_url, tmp_path)
            api.fail_chat(STAFF_CHAT, 403, "Forbidden: bot was kicked from the group chat")
            async with bot.running():
                response = await bot.report_purchase(
                    order_id="K-3", customer_id="c-3", telegram_user_id=ANNA.id
                )
                assert response.status_code == 201
                question = await api.wait_for_message(ANNA.id, lambda m: "reply_markup" in m)
                api.user_presses_button(ANNA, question, button(question, "2"))
                reason = await next_step(api, question)
                await api.wait_until(
                    lambda: any(
                        r.params.get("chat_id") == STAFF_CHAT for r in api.requests_for("sendMessage")
                    )
                )
                await bot.kill()
            assert api.messages_to(STAFF_CHAT) == []
            api.clear_failures(STAFF_CHAT)
            async with bot.running():
                cards = await api.wait_for_message(STAFF_CHAT, timeout=LEASE.total_seconds() + 30)
                assert "2/10" in cards["text"]
                api.user_presses_button(ANNA, reason, button(reason, "Preis"))
                await next_step(api, reason, timeout=LEASE.total_seconds() + 15)
                await api.wait_until(
                    lambda: "Preis" in api.messages_to(STAFF_CHAT)[0]["text"],
                    timeout=LEASE.total_seconds() + 30,
                )
                assert len(api.messages_to(STAFF_CHAT)) == 1
            api.assert_clean()

    async def test_sigterm_stops_cleanly(self, database_url: str, tmp_path: Path) -> None:
        """SIGTERM (systemd, docker stop) ends the bot with exit code 0 and no traceback."""
        async with FakeBotApi(token=TOKEN) as api:
            bot = BotProcess(api, database_url, tmp_path)
            async with bot.running():
                assert bot.process is not None
                bot.process.send_signal(signal.SIGTERM)
                code = await asyncio.wait_for(bot.process.wait(), timeout=30)
                stderr = (await bot.process.stderr.read()).decode() if bot.process.stderr else ""
            assert code == 0, stderr
            assert "Traceback" not in stderr

    async def test_a_dead_part_stops_the_process_so_it_can_be_restarted(
        self, database_url: str, tmp_path: Path
    ) -> None:
        """If polling dies (Telegram revoked the token), the bot exits 1 instead of running half a bot."""
        async with FakeBotApi(token=TOKEN) as api:
            bot = BotProcess(api, database_url, tmp_path)
            async with bot.running():
                assert bot.process is not None
                api.fail_method("getUpdates", 401, "Unauthorized", times=None)
                api.user_sends_text(ANNA, "/start")  # ends the long poll that is waiting now
                code = await asyncio.wait_for(bot.process.wait(), timeout=60)
                stderr = (await bot.process.stderr.read()).decode() if bot.process.stderr else ""
            assert code == 1, stderr
            assert "part of the bot stopped unexpectedly" in stderr
