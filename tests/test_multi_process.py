"""Several real ``kundenpuls run`` processes on one PostgreSQL database share the work, and survive a SIGKILL.

The fake Bot API server enforces Telegram's flood limits (its overall bucket raised to SEND_RATE, as a bot
with paid broadcasts would have), so "zero 429s" proves that the processes keep the limits together.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from storage.db import create_db_engine, unit_of_work
from storage.migrate import upgrade_database
from storage.models import OutboxMessage
from storage.purchases import record_purchase
from surveys.purchase_report import PurchaseReport
from tests.e2e import STAFF_CHAT, TOKEN, free_port, process_env
from tests.fakes.bot_api_server import BucketLimit, FakeBotApi, FakeUser, FloodLimits

REPO = Path(__file__).resolve().parents[1]
SEND_RATE = 200
CUSTOMERS = 250
SURVEYS_PER_CUSTOMER = 4  # 1,000 surveys a phase, 2,000 in all
WEBHOOK_URL = "https://kundenpuls.test/telegram/webhook"
WEBHOOK_SECRET = "multi-process-secret"
WAIT = 120.0


class Replica:
    """One ``kundenpuls run`` process; its log goes to a file (a pipe nobody reads could block it)."""

    def __init__(self, name: str, api: FakeBotApi, database_url: str, workdir: Path, **env: str) -> None:
        self.name = name
        self.port = free_port()
        self.log = workdir / f"{name}.log"
        self.env = {**process_env(api.url, database_url, self.port), "SEND_RATE": str(SEND_RATE), **env}
        self.workdir = workdir
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "run", cwd=self.workdir, env=self.env, stdout=log, stderr=log
            )
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                if self.process.returncode is not None:
                    raise AssertionError(f"{self.name} exited: {self.log.read_text()[-3000:]}")
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} did not become ready: {self.log.read_text()[-3000:]}")

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            return dict((await client.get(f"{self.url}/healthz")).json())

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout=30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def errors(self) -> list[str]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line for line in text.splitlines() if " ERROR " in line or "Traceback" in line]


@asynccontextmanager
async def replicas(*members: Replica) -> AsyncIterator[tuple[Replica, ...]]:
    """Start the processes at the same moment (they race on the migrations) and stop them afterwards."""
    try:
        await asyncio.gather(*(member.start() for member in members))
        yield members
    finally:
        await asyncio.gather(*(member.stop() for member in members), return_exceptions=True)


def _seed(database_url: str, phase: str) -> None:
    """Queue 1,000 due surveys: four purchases for each of 250 chats, all due now (four customer
    records per chat and phase, as a shop with several accounts per person has: the contact rules allow
    one survey per customer and SURVEY_COOLDOWN)."""
    engine = create_db_engine(database_url)
    try:
        with unit_of_work(engine) as session:
            for n in range(CUSTOMERS):
                for k in range(SURVEYS_PER_CUSTOMER):
                    record_purchase(
                        session=session,
                        report=PurchaseReport(
                            order_id=f"{phase}-{n}-{k}",
                            customer_id=f"{phase}-c-{n}-{k}",
                            telegram_user_id=900_000 + n,
                        ),
                        survey_id="post_purchase",
                        survey_delay=timedelta(0),
                        source="api",
                    )
    finally:
        engine.dispose()


class QuestionCount:
    """Counts surveys whose first question arrived, reading only requests not seen before (the fake
    re-runs a wait's condition after every request, so a full scan each time would slow it down)."""

    def __init__(self, api: FakeBotApi) -> None:
        self._api = api
        self._seen = 0
        self.deliveries: set[str] = set()

    def __call__(self) -> int:
        requests = self._api.requests
        while self._seen < len(requests) and requests[self._seen].status is not None:
            request = requests[self._seen]
            markup = request.params.get("reply_markup")
            if request.status == 200 and request.method == "sendMessage" and isinstance(markup, dict):
                keys = markup.get("inline_keyboard") or [[{}]]
                self.deliveries.add(str(keys[0][0].get("callback_data", "")).split(":")[1])
            self._seen += 1
        return len(self.deliveries)


def _questions(api: FakeBotApi) -> Counter[str]:
    """How often each survey's first question arrived (its buttons name the delivery)."""
    seen: Counter[str] = Counter()
    for n in range(CUSTOMERS):
        for message in api.messages_to(900_000 + n):
            keys = message.get("reply_markup", {}).get("inline_keyboard", [])
            if keys:
                seen[str(keys[0][0]["callback_data"]).split(":")[1]] += 1
    return seen


def _greet(api: FakeBotApi, first: int, count: int) -> list[FakeUser]:
    users = [FakeUser(id=first + n, first_name=f"Neu {n}", language_code="de") for n in range(count)]
    for user in users:
        api.user_sends_text(user, "/start")
    return users


def _check_queue_order(database_url: str) -> None:
    """Within each chat, messages arrived in the order they were queued."""
    engine = create_db_engine(database_url)
    try:
        with Session(engine) as session:
            rows = session.exec(
                select(OutboxMessage.chat_id, OutboxMessage.id, OutboxMessage.sent_message_id)
                .where(OutboxMessage.status == "sent")
                .order_by(OutboxMessage.id)  # type: ignore[arg-type]
            ).all()
    finally:
        engine.dispose()
    by_chat: dict[int, list[int]] = defaultdict(list)
    for chat_id, _row_id, message_id in rows:
        if chat_id is not None and message_id is not None and chat_id != STAFF_CHAT:
            by_chat[int(chat_id)].append(int(message_id))
    out_of_order = {chat: ids for chat, ids in by_chat.items() if ids != sorted(ids)}
    assert out_of_order == {}


async def _run_phase(
    api: FakeBotApi, members: tuple[Replica, ...], database_url: str, phase: str
) -> tuple[int, int]:
    """Seed 1,000 surveys, SIGKILL a member midway (the poller, if one polls), wait until all arrived.

    Returns how many calls arrived twice, and how many rows the killed process held when it died (the
    only ones that can: sent, perhaps, but not yet recorded).
    """
    counted = QuestionCount(api)
    already = counted()
    doubled_before = sum(count - 1 for count in _questions(api).values())
    _seed(database_url, phase)
    early = _greet(api, 950_000 + 1000 * len(phase) + (0 if phase == "P" else 500), 30)
    await api.wait_until(lambda: counted() - already >= 400, timeout=WAIT)
    healths = [await member.health() for member in members]
    victim, victim_health = next(
        ((m, h) for m, h in zip(members, healths, strict=True) if h.get("polling_here")),
        (members[0], healths[0]),
    )
    await victim.kill()
    at_risk = _leased_by(database_url, str(victim_health["sender"]))
    late = _greet(api, 960_000 + 1000 * len(phase) + (0 if phase == "P" else 500), 30)
    total = CUSTOMERS * SURVEYS_PER_CUSTOMER * (1 if phase == "P" else 2)
    await api.wait_until(lambda: counted() >= total, timeout=WAIT)
    await api.wait_until(lambda: all(api.messages_to(u.id) for u in [*early, *late]), timeout=WAIT)
    doubled = sum(count - 1 for count in _questions(api).values()) - doubled_before  # this phase's only
    doubled += sum(len(api.messages_to(u.id)) - 1 for u in [*early, *late])
    return doubled, at_risk


def _leased_by(database_url: str, owner: str) -> int:
    """How many rows a (dead) sender still held: sent or not, nobody can know, so they go out again."""
    engine = create_db_engine(database_url)
    try:
        with Session(engine) as session:
            rows = session.exec(
                select(OutboxMessage.id)
                .where(OutboxMessage.lease_owner == owner)
                .where(OutboxMessage.status == "pending")
            ).all()
    finally:
        engine.dispose()
    return len(rows)


@pytest.mark.e2e
class TestSeveralProcesses:
    async def test_two_processes_deliver_2000_surveys_once_each_polling_then_by_webhook(
        self, postgres_url: str, tmp_path: Path
    ) -> None:
        """Two processes poll (one at a time) and then serve webhooks behind a round-robin balancer; one
        is SIGKILLed midway each time. Every survey arrives, in queue order per chat, without a 409 or a
        429; only calls the killed process had on their way can arrive twice."""
        engine = create_db_engine(postgres_url)
        upgrade_database(engine)
        engine.dispose()
        limits = FloodLimits(overall=BucketLimit(rate=SEND_RATE, burst=SEND_RATE))
        async with FakeBotApi(token=TOKEN, limits=limits) as api:
            polling = (Replica("a", api, postgres_url, tmp_path), Replica("b", api, postgres_url, tmp_path))
            async with replicas(*polling) as members:
                doubled_polling = await _run_phase(api, members, postgres_url, "P")
                polls = api.requests_for("getUpdates")
            webhook_env = {"WEBHOOK_URL": WEBHOOK_URL, "WEBHOOK_SECRET": WEBHOOK_SECRET}
            hooked = (
                Replica("c", api, postgres_url, tmp_path, **webhook_env),
                Replica("d", api, postgres_url, tmp_path, **webhook_env),
            )
            async with replicas(*hooked) as members:
                api.deliver_webhooks_to([member.url for member in members])
                polls_before = len(api.requests_for("getUpdates"))
                doubled_webhook = await _run_phase(api, members, postgres_url, "WH")
                assert len(api.requests_for("getUpdates")) == polls_before  # nobody polls in webhook mode
            api.assert_clean()
            throttled = list(api.throttled)
            refused = [r for r in api.requests if r.status == 429]

        assert len(_questions(api)) == 2 * CUSTOMERS * SURVEYS_PER_CUSTOMER
        assert [p for p in polls if p.status == 409] == []
        assert throttled == [] and refused == []
        # Only what the killed process held can arrive twice: at-least-once across a SIGKILL.
        assert doubled_polling[0] <= doubled_polling[1]
        assert doubled_webhook[0] <= doubled_webhook[1]
        _check_queue_order(postgres_url)
        for member in (*polling, *hooked):
            assert member.errors() == [], member.log.read_text()[-3000:]
