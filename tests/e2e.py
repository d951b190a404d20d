"""End-to-end harness: the real bot (python-telegram-bot over HTTP) against the fake Bot API server."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from bot.application import KundenpulsBot
from bot.settings import Settings
from storage.models import Answer, ContactEvent, SurveyDelivery
from tests.fakes.bot_api_server import FakeBotApi, FakeUser, FloodLimits

TOKEN = "123456:TEST-token_for-kundenpuls"
INGEST_KEY = "test-ingest-key"
STAFF_CHAT = -100200300


def make_settings(database_url: str, api_url: str, **overrides: Any) -> Settings:
    """Settings for a test bot: no .env, no rate limit, surveys due at once, a free HTTP port."""
    values: dict[str, Any] = {
        "telegram_bot_token": TOKEN,
        "telegram_api_url": api_url,
        "database_url": database_url,
        "staff_chat_id": STAFF_CHAT,
        "ingest_api_key": INGEST_KEY,
        "http_port": 0,
        "survey_delay": "0s",
        "sweep_interval": "1s",
        "send_rate": 1000,
        "default_language": "de",
        # Off, so that a test run at night is not held until 09:00; tests/test_e2e_reminders.py and
        # tests/test_e2e_contact_rules.py switch them on with a moved clock.
        "quiet_hours": "",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_env(api_url: str, database_url: str, http_port: int) -> dict[str, str]:
    """The environment of a ``kundenpuls run`` test process: like make_settings, as variables."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(REPO),
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": api_url,
        "DATABASE_URL": database_url,
        "STAFF_CHAT_ID": str(STAFF_CHAT),
        "INGEST_API_KEY": INGEST_KEY,
        "HTTP_PORT": str(http_port),
        "SURVEY_DELAY": "0s",
        "SWEEP_INTERVAL": "1s",
        "SEND_RATE": "1000",
        "QUIET_HOURS": "",
    }


class MovableClock:
    """The bot's "now" in a test: the real time plus an offset that only the test moves.

    Time keeps flowing (a purchase reported now is due now), and a test jumps days ahead instead of
    sleeping.
    """

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    @property
    def now(self) -> datetime:
        """The clock's time at this moment."""
        return self()

    def advance(self, delta: timedelta) -> datetime:
        """Jump forward; return the new time."""
        self.offset += delta
        return self()

    def move_to(self, moment: datetime) -> datetime:
        """Jump to ``moment`` (forward only: the bot's time never runs backwards)."""
        assert moment >= self(), (moment, self())
        self.offset += moment - self()
        return moment


def local_time(day: datetime, zone: ZoneInfo, hour: int, minute: int = 0) -> datetime:
    """That day's ``hour:minute`` wall-clock time in ``zone``, as UTC (for quiet-hours tests)."""
    local = day.astimezone(zone).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return local.astimezone(UTC)


@dataclass
class RunningBot:
    """A started bot with its fake server, HTTP client and database."""

    api: FakeBotApi
    bot: KundenpulsBot
    http: httpx.AsyncClient
    engine: Engine

    async def next_step(
        self,
        previous: dict[str, Any],
        timeout: float = 10.0,  # noqa: ASYNC109  a deadline that fails the test with a summary, by design
    ) -> dict[str, Any]:
        """Wait until a survey message shows the step after ``previous``; return it."""
        return await next_step(self.api, previous, timeout)

    async def report_purchase(self, **body: Any) -> httpx.Response:
        """POST a purchase to the bot's ingestion API."""
        return await self.http.post(
            "/api/purchases", json=body, headers={"Authorization": f"Bearer {INGEST_KEY}"}
        )

    async def customer_with_survey(self, user: FakeUser, order_id: str = "A-1") -> dict[str, Any]:
        """Report a purchase for a known Telegram user who opened the bot; return the first survey message."""
        self.api.user_sends_text(user, "/start")
        await self.api.wait_for_message(user.id)
        response = await self.report_purchase(
            order_id=order_id, customer_id=f"cust-{user.id}", telegram_user_id=user.id, name=user.first_name
        )
        assert response.status_code == 201, response.text
        return await self.api.wait_for_message(user.id, lambda m: "reply_markup" in m)

    def answers(self) -> list[Answer]:
        """All stored answers."""
        with Session(self.engine) as session:
            return list(session.exec(select(Answer).order_by(Answer.id)).all())  # type: ignore[arg-type]

    def contact_log(self) -> list[tuple[str, str, str | None]]:
        """Every stored contact decision, oldest first: (kind, outcome, reason)."""
        with Session(self.engine) as session:
            rows = session.exec(select(ContactEvent).order_by(ContactEvent.id)).all()  # type: ignore[arg-type]
            return [(row.kind, row.outcome, row.reason) for row in rows]

    def deliveries(self) -> list[SurveyDelivery]:
        """All survey deliveries."""
        with Session(self.engine) as session:
            return list(session.exec(select(SurveyDelivery)).all())


async def next_step(
    api: FakeBotApi,
    previous: dict[str, Any],
    timeout: float = 10.0,  # noqa: ASYNC109  a deadline that fails the test with a summary, by design
) -> dict[str, Any]:
    """Wait until a survey message shows the step after ``previous`` (button answers edit it in place)."""
    chat_id = int(previous["chat"]["id"])

    def current() -> dict[str, Any] | None:
        for message in api.messages_to(chat_id):
            if message["message_id"] == previous["message_id"]:
                return message
        return None

    def changed() -> bool:
        message = current()
        return message is not None and message.get("text") != previous.get("text")

    await api.wait_until(changed, timeout=timeout)
    step = current()
    assert step is not None
    return step


def button(message: dict[str, Any], text: str) -> str:
    """Return the callback data of the button labelled ``text`` under a message."""
    for row in message.get("reply_markup", {}).get("inline_keyboard", []):
        for key in row:
            if key["text"] == text:
                return str(key["callback_data"])
    raise AssertionError(f"no button {text!r} under message: {message.get('text')!r}")


class _ErrorLog(logging.Handler):
    """Collects ERROR records: an end-to-end run that logged an error has hidden a failure."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@asynccontextmanager
async def running_bot(
    database_url: str,
    *,
    expect_errors: bool = False,
    limits: FloodLimits | None = None,
    before_start: Callable[[FakeBotApi], None] | None = None,
    clock: Callable[[], datetime] | None = None,
    **overrides: Any,
) -> AsyncIterator[RunningBot]:
    """Start the fake server and the bot; stop both, check every request against the spec, and fail
    if the bot logged an error. ``limits`` makes the fake enforce Telegram's flood limits;
    ``before_start`` sets up the fake's world (a forum staff chat) before the bot first looks at it."""
    errors = _ErrorLog()
    watched = [logging.getLogger(name) for name in ("bot", "handlers", "storage", "telegram")]
    for logger in watched:
        logger.addHandler(errors)
    try:
        async with FakeBotApi(token=TOKEN, limits=limits) as api:
            if before_start is not None:
                before_start(api)
            settings = make_settings(database_url, api.url, **overrides)
            bot = KundenpulsBot(settings) if clock is None else KundenpulsBot(settings, clock=clock)
            await bot.start()
            try:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bot.http_port}") as http:
                    yield RunningBot(api=api, bot=bot, http=http, engine=bot.engine)
            finally:
                await bot.stop()
            api.assert_clean()
    finally:
        for logger in watched:
            logger.removeHandler(errors)
    if not expect_errors:
        assert not errors.records, [f"{r.name}: {r.getMessage()}" for r in errors.records]
