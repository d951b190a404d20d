"""Tests of the fake Bot API server under load: flood limits, 500s, 429 storms, migrated groups, webhooks.

Delivery code (retries, backoff, group migration, webhook replicas) is only as well tested as the fake is
faithful to Telegram here, so each behaviour is pinned with plain HTTP clients and, where PTB maps an
answer to an exception, with PTB's real ``Bot``.
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import socket
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
import pytest
from aiohttp import web
from telegram import Bot
from telegram.error import ChatMigrated, NetworkError, RetryAfter

from tests.fakes import BucketLimit, FakeBotApi, FakeBotApiThread, FakeUser, FloodLimits

ERIKA = FakeUser(42, "Erika", language_code="de")
GROUP = -100_123
HOOK = "https://kundenpuls.example/tg/hook?replica=any"


class ManualClock:
    """A clock the test moves by hand, so bucket arithmetic does not depend on how fast requests are."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def api(clock: ManualClock) -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(clock=clock, webhook_retry_delay=0.05) as server:
        yield server


@pytest.fixture
async def limited(clock: ManualClock) -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(limits=FloodLimits.telegram(), clock=clock) as server:
        yield server


def client_for(server: FakeBotApi) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{server.base_url}{server.token}")


@pytest.fixture
async def client(api: FakeBotApi) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(api) as http:
        yield http


@pytest.fixture
async def limited_client(limited: FakeBotApi) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(limited) as http:
        yield http


async def send(
    http: httpx.AsyncClient, chat_id: int | str, text: str = "Wie war Ihr Einkauf?"
) -> httpx.Response:
    return await http.post("/sendMessage", json={"chat_id": chat_id, "text": text})


def too_many(retry_after: int) -> dict[str, object]:
    return {
        "ok": False,
        "error_code": 429,
        "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }


# ------------------------------------------------------------------------------------------ flood limits


class TestFloodLimits:
    def test_defaults_are_telegrams_limits(self) -> None:
        """FloodLimits() and FloodLimits.telegram() are 1/s burst 4, 20/min burst 20 and 30/s burst 30."""
        limits = FloodLimits.telegram()
        assert limits == FloodLimits()
        assert limits.private_chat == BucketLimit(rate=1.0, burst=4)
        assert limits.group == BucketLimit(rate=20 / 60, burst=20)
        assert limits.overall == BucketLimit(rate=30.0, burst=30)
        with pytest.raises(ValueError, match="rate > 0"):
            BucketLimit(rate=0, burst=1)

    async def test_limits_are_off_by_default(self, api: FakeBotApi, client: httpx.AsyncClient) -> None:
        """Without limits any number of messages to one chat passes, as existing tests expect."""
        statuses = [(await send(client, ERIKA.id)).status_code for _ in range(10)]
        assert statuses == [200] * 10
        assert api.throttled == []

    async def test_fifth_message_to_a_private_chat_within_a_second_is_refused(
        self, limited: FakeBotApi, limited_client: httpx.AsyncClient
    ) -> None:
        """A private chat takes a burst of 4; the 5th gets Telegram's 429 body with retry_after 1."""
        statuses = [(await send(limited_client, ERIKA.id, f"m{i}")).status_code for i in range(4)]
        refused = await send(limited_client, ERIKA.id, "m4")
        assert statuses == [200] * 4
        assert refused.status_code == 429
        assert refused.json() == too_many(1)
        (throttle,) = limited.throttled
        assert (throttle.bucket, throttle.chat_id, throttle.retry_after) == ("chat", ERIKA.id, 1)
        assert throttle.method == "sendMessage"
        record = limited.requests_for("sendMessage")[-1]
        assert (record.seq, record.status) == (throttle.seq, 429)
        assert limited.sent_texts(ERIKA.id) == ["m0", "m1", "m2", "m3"]

    async def test_group_gets_twenty_messages_a_minute(
        self, limited: FakeBotApi, limited_client: httpx.AsyncClient, clock: ManualClock
    ) -> None:
        """A group takes 20 at once; the 21st waits 3 s, the time 20/min needs for one more token."""
        for _ in range(20):
            assert (await send(limited_client, GROUP)).status_code == 200
        refused = await send(limited_client, GROUP)
        assert refused.json() == too_many(3)
        assert [t.bucket for t in limited.throttled] == ["group"]
        clock.advance(3)
        assert (await send(limited_client, GROUP)).status_code == 200
        assert (await send(limited_client, GROUP)).status_code == 429

    async def test_username_chat_ids_count_as_groups(self, clock: ManualClock) -> None:
        """An @username chat_id is limited by the group bucket, even when the call then fails."""
        limits = FloodLimits(group=BucketLimit(rate=1 / 60, burst=1))
        async with FakeBotApi(limits=limits, clock=clock) as server, client_for(server) as http:
            assert (await send(http, "@kundenpuls_kanal")).status_code == 400  # chat not found, charged
            refused = await send(http, "@kundenpuls_kanal")
        assert refused.json() == too_many(60)
        assert [(t.bucket, t.chat_id) for t in server.throttled] == [("group", "@kundenpuls_kanal")]

    async def test_thirty_first_call_at_once_hits_the_overall_limit(
        self, limited: FakeBotApi, limited_client: httpx.AsyncClient, clock: ManualClock
    ) -> None:
        """31 messages to 31 chats in the same instant: the 31st is refused by the overall bucket."""
        statuses = [(await send(limited_client, 1_000 + i)).status_code for i in range(31)]
        assert statuses == [200] * 30 + [429]
        (throttle,) = limited.throttled
        assert (throttle.bucket, throttle.chat_id, throttle.retry_after) == ("overall", 1_030, 1)
        clock.advance(1 / 30)
        assert (await send(limited_client, 1_030)).status_code == 200

    async def test_refused_calls_consume_no_tokens(self, clock: ManualClock) -> None:
        """Refusals neither drain the overall bucket nor delay the refusing chat's next token."""
        limits = FloodLimits(overall=BucketLimit(rate=0.001, burst=5))
        async with FakeBotApi(limits=limits, clock=clock) as server, client_for(server) as http:
            for _ in range(4):
                assert (await send(http, ERIKA.id)).status_code == 200
            for _ in range(10):
                assert (await send(http, ERIKA.id)).status_code == 429
            assert (await send(http, 43)).status_code == 200  # the 5th overall token was still there
            clock.advance(1)
            assert (await send(http, ERIKA.id)).status_code == 429  # overall now empty
        assert [t.bucket for t in server.throttled] == ["chat"] * 10 + ["overall"]
        assert server.throttled[-1].retry_after == 999  # 1 s of the 1000 s refill has passed

    async def test_edits_and_other_message_calls_share_the_chat_bucket(
        self, limited: FakeBotApi, limited_client: httpx.AsyncClient
    ) -> None:
        """editMessageText, sendChatAction and sendPhoto draw from the same bucket as sendMessage."""
        sent = (await send(limited_client, ERIKA.id, "Frage")).json()["result"]
        edit = {"chat_id": ERIKA.id, "message_id": sent["message_id"], "text": "Frage?"}
        assert (await limited_client.post("/editMessageText", json=edit)).status_code == 200
        action = {"chat_id": ERIKA.id, "action": "typing"}
        assert (await limited_client.post("/sendChatAction", json=action)).status_code == 200
        photo = {"chat_id": ERIKA.id, "photo": "AgACAgIAAxkBAAIBfake"}
        assert (await limited_client.post("/sendPhoto", json=photo)).status_code == 200
        edit["text"] = "Frage!"
        assert (await limited_client.post("/editMessageText", json=edit)).status_code == 429

    async def test_calls_that_send_no_message_are_never_limited(self, clock: ManualClock) -> None:
        """answerCallbackQuery, getUpdates, getMe, setMyCommands and webhook calls pass any limit."""
        tight = BucketLimit(rate=0.001, burst=1)
        limits = FloodLimits(private_chat=tight, group=tight, overall=tight)
        async with FakeBotApi(limits=limits, clock=clock) as server, client_for(server) as http:
            for i in range(10):
                server.enqueue_update({"callback_query": {"id": f"q{i}"}})
            calls: list[tuple[str, dict[str, object]]] = [
                ("answerCallbackQuery", {"callback_query_id": f"q{i}"}) for i in range(10)
            ]
            others: list[tuple[str, dict[str, object]]] = [
                ("getMe", {}),
                ("setMyCommands", {"commands": [{"command": "start", "description": "Los"}]}),
                ("setWebhook", {"url": HOOK}),
                ("deleteWebhook", {}),
                ("getUpdates", {}),
            ]
            for call in others:
                calls.extend([call] * 4)
            statuses = [(await http.post(f"/{method}", json=params)).status_code for method, params in calls]
        assert statuses == [200] * len(calls)
        assert server.throttled == []

    async def test_waiting_retry_after_lets_the_call_pass(self) -> None:
        """On the real clock, a call made retry_after seconds after a 429 is accepted."""
        async with FakeBotApi(limits=FloodLimits.telegram()) as server, client_for(server) as http:
            for _ in range(4):
                await send(http, ERIKA.id)
            refused = await send(http, ERIKA.id)
            retry_after = refused.json()["parameters"]["retry_after"]
            assert retry_after == 1
            await asyncio.sleep(retry_after)
            assert (await send(http, ERIKA.id)).status_code == 200
            assert (await send(http, ERIKA.id)).status_code == 429
        assert [r.status for r in server.requests_for("sendMessage")] == [200] * 4 + [429, 200, 429]

    async def test_limits_can_be_changed_and_removed_while_running(
        self, api: FakeBotApi, client: httpx.AsyncClient
    ) -> None:
        """set_limits() turns limits on with fresh buckets, changes them, and None turns them off."""
        for _ in range(6):
            assert (await send(client, ERIKA.id)).status_code == 200
        api.set_limits(FloodLimits(private_chat=BucketLimit(rate=1.0, burst=1)))
        assert [(await send(client, ERIKA.id)).status_code for _ in range(2)] == [200, 429]
        api.set_limits(FloodLimits.telegram())
        assert [(await send(client, ERIKA.id)).status_code for _ in range(5)] == [200] * 4 + [429]
        api.set_limits(None)
        assert (await send(client, ERIKA.id)).status_code == 200
        assert len(api.throttled) == 2

    async def test_ptb_raises_retry_after(self, limited: FakeBotApi, monkeypatch: pytest.MonkeyPatch) -> None:
        """PTB maps the limiter's 429 to RetryAfter with the advertised wait."""
        monkeypatch.setenv("PTB_TIMEDELTA", "1")  # otherwise PTB 22 warns when retry_after is read
        async with Bot(limited.token, base_url=limited.base_url) as bot:
            for _ in range(4):
                await bot.send_message(ERIKA.id, "ok")
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(ERIKA.id, "zu viel")
        assert caught.value.retry_after == dtm.timedelta(seconds=1)


# ------------------------------------------------------------------------------------ random failures


class TestFailShare:
    async def test_share_of_one_fails_every_message_call_and_stores_nothing(
        self, api: FakeBotApi, client: httpx.AsyncClient
    ) -> None:
        """fail_share(1.0) answers every message call with Telegram's 500 body and stores no message."""
        api.fail_share(1.0)
        answers = [await send(client, ERIKA.id) for _ in range(5)]
        assert {a.status_code for a in answers} == {500}
        assert answers[0].json() == {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        assert (await client.get("/getMe")).status_code == 200
        assert api.sent_texts(ERIKA.id) == []
        assert api.random_failures == [r.seq for r in api.requests_for("sendMessage")]
        api.fail_share(0)
        assert (await send(client, ERIKA.id)).status_code == 200
        assert len(api.random_failures) == 5

    async def test_a_retry_after_a_failure_delivers_the_message_once(self, api: FakeBotApi) -> None:
        """PTB sees a NetworkError; once failures stop, the retried message exists exactly once."""
        api.fail_share(1.0)
        async with Bot(api.token, base_url=api.base_url) as bot:
            with pytest.raises(NetworkError, match="Internal Server Error"):
                await bot.send_message(ERIKA.id, "Danke für Ihren Einkauf")
            api.fail_share(0)
            await bot.send_message(ERIKA.id, "Danke für Ihren Einkauf")
        assert api.sent_texts(ERIKA.id) == ["Danke für Ihren Einkauf"]
        assert [m["message_id"] for m in api.messages_to(ERIKA.id)] == [1]

    async def test_the_same_seed_fails_the_same_calls(self) -> None:
        """A seeded share is reproducible and close to the share asked for."""
        patterns: list[list[int]] = []
        for _ in range(2):
            async with FakeBotApi(validate=False) as server, client_for(server) as http:
                server.fail_share(0.25, 502, "Bad Gateway", seed=7)
                patterns.append([(await send(http, 1_000 + i)).status_code for i in range(200)])
        assert patterns[0] == patterns[1]
        assert set(patterns[0]) == {200, 502}
        assert 25 <= patterns[0].count(502) <= 75

    async def test_methods_narrows_which_calls_fail(self, api: FakeBotApi, client: httpx.AsyncClient) -> None:
        """With methods=..., only those methods fail, and they need not be message calls."""
        api.fail_share(1.0, methods=["editMessageText", "getMe"])
        sent = await send(client, ERIKA.id, "Frage")
        assert sent.status_code == 200
        edit = {"chat_id": ERIKA.id, "message_id": sent.json()["result"]["message_id"], "text": "Neu"}
        assert (await client.post("/editMessageText", json=edit)).status_code == 500
        assert (await client.get("/getMe")).status_code == 500
        assert api.sent_texts(ERIKA.id) == ["Frage"]

    def test_share_must_be_between_zero_and_one(self) -> None:
        """A share outside 0..1 is a mistake in the test and raises at once."""
        with pytest.raises(ValueError, match="between 0 and 1"):
            FakeBotApi(validate=False).fail_share(1.5)


# ------------------------------------------------------------------------------------------ 429 storms


class TestThrottleEverything:
    async def test_every_message_call_in_the_storm_gets_429(
        self, api: FakeBotApi, client: httpx.AsyncClient, clock: ManualClock
    ) -> None:
        """During the storm every chat's message calls get its retry_after; other calls pass."""
        storm = api.throttle_everything(5.0, retry_after=7)
        assert storm is not None and api.storms == [storm]
        assert (await send(client, ERIKA.id)).json() == too_many(7)
        assert (await send(client, GROUP)).json() == too_many(7)
        assert (await client.get("/getMe")).status_code == 200
        clock.advance(4.9)
        assert (await send(client, 43)).status_code == 429
        clock.advance(0.1)
        assert (await send(client, ERIKA.id)).status_code == 200
        inside = [r.status for r in api.requests_for("sendMessage") if storm.covers(r.time)]
        assert inside == [429, 429, 429]
        assert storm.refused == 3
        assert api.throttled == []
        assert api.sent_texts(ERIKA.id) == ["Wie war Ihr Einkauf?"]

    async def test_zero_seconds_ends_a_running_storm(
        self, api: FakeBotApi, client: httpx.AsyncClient, clock: ManualClock
    ) -> None:
        """throttle_everything(0, ...) ends the storm now and its window shows when it ended."""
        storm = api.throttle_everything(60.0, retry_after=30)
        assert (await send(client, ERIKA.id)).status_code == 429
        clock.advance(2)
        assert api.throttle_everything(0, retry_after=30) is None
        assert (await send(client, ERIKA.id)).status_code == 200
        assert storm is not None and (storm.start, storm.end) == (1_000.0, 1_002.0)

    async def test_ptb_sees_retry_after_during_a_storm(
        self, api: FakeBotApi, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """PTB turns the storm's 429 into RetryAfter with the storm's retry_after."""
        monkeypatch.setenv("PTB_TIMEDELTA", "1")  # otherwise PTB 22 warns when retry_after is read
        api.throttle_everything(10.0, retry_after=7)
        async with Bot(api.token, base_url=api.base_url) as bot:
            with pytest.raises(RetryAfter) as caught:
                await bot.send_message(ERIKA.id, "Hallo")
        assert caught.value.retry_after == dtm.timedelta(seconds=7)


# -------------------------------------------------------------------------------------- migrated groups


class TestMigrateChat:
    async def test_old_group_answers_400_with_migrate_to_chat_id(
        self, api: FakeBotApi, client: httpx.AsyncClient
    ) -> None:
        """Message calls to the old group id get Telegram's exact 400 naming the new supergroup."""
        assert (await send(client, -123)).status_code == 200
        api.migrate_chat(-123, -100_456)
        answer = await send(client, -123, "nach dem Upgrade")
        assert answer.status_code == 400
        assert answer.json() == {
            "ok": False,
            "error_code": 400,
            "description": "Bad Request: group chat was upgraded to a supergroup chat",
            "parameters": {"migrate_to_chat_id": -100_456},
        }
        assert api.sent_texts(-123) == ["Wie war Ihr Einkauf?"]

    async def test_ptb_raises_chat_migrated_and_the_new_id_works(self, api: FakeBotApi) -> None:
        """PTB raises ChatMigrated with the new id, and messages to it are stored under that id."""
        api.migrate_chat(-123, -100_456)
        async with Bot(api.token, base_url=api.base_url) as bot:
            with pytest.raises(ChatMigrated) as caught:
                await bot.send_message(-123, "Wochenbericht")
            new_chat_id = caught.value.new_chat_id
            sent = await bot.send_message(new_chat_id, "Wochenbericht")
        assert new_chat_id == -100_456
        assert sent.chat.type == "supergroup"
        assert api.sent_texts(-100_456) == ["Wochenbericht"]
        assert api.sent_texts(-123) == []


# ---------------------------------------------------------------------------------- webhook delivery


@dataclass(frozen=True, slots=True)
class Received:
    path_qs: str
    headers: dict[str, str]
    update: dict[str, Any]


class WebhookReceiver:
    """One replica's webhook endpoint: records each POST and answers scripted statuses, then 200.

    Clearing :attr:`release` holds answers, to see how many deliveries are in flight at once.
    """

    def __init__(self, *statuses: int) -> None:
        self.statuses = deque(statuses)
        self.received: list[Received] = []
        self.release = asyncio.Event()
        self.release.set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.url = ""
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None

    @property
    def update_ids(self) -> list[int]:
        return [r.update["update_id"] for r in self.received]

    async def wait_for_count(self, count: int) -> None:
        """Wait until ``count`` POSTs arrived; the fake is not told about held ones, so it cannot wait."""
        async with asyncio.timeout(5), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(request.path_qs, dict(request.headers), await request.json()))
        async with self._arrived:
            self._arrived.notify_all()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return web.Response(status=self.statuses.popleft() if self.statuses else 200)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        await web.SockSite(self._runner, sock).start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()


def closed_port_url() -> str:
    """An origin nobody listens on, so connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


async def set_webhook(http: httpx.AsyncClient, **params: object) -> None:
    answer = await http.post("/setWebhook", json={"url": HOOK, **params})
    assert answer.json() == {"ok": True, "result": True}


class TestWebhookDelivery:
    async def test_updates_are_posted_with_the_secret_and_confirmed_on_200(
        self, api: FakeBotApi, client: httpx.AsyncClient
    ) -> None:
        """Each update is POSTed as JSON to the hook's path and query, with the secret, then confirmed."""
        first = api.user_sends_text(ERIKA, "/start A-17")  # queued before delivery was switched on
        async with WebhookReceiver() as replica:
            await set_webhook(client, secret_token="geheim")
            api.deliver_webhooks_to([replica.url])
            second = api.user_sends_text(ERIKA, "gut")
            await api.wait_until(lambda: len(api.update_ids_confirmed) == 2, timeout=5)
        assert [r.update for r in replica.received] == [first, second]
        (one, _) = replica.received
        assert one.path_qs == "/tg/hook?replica=any"
        assert one.headers["X-Telegram-Bot-Api-Secret-Token"] == "geheim"
        assert one.headers["Content-Type"] == "application/json"
        assert api.update_ids_confirmed == [1, 2]
        assert api.pending_updates == []
        assert [(d.target, d.update_id, d.status, d.error) for d in api.webhook_deliveries] == [
            (replica.url, 1, 200, None),
            (replica.url, 2, 200, None),
        ]
        assert api.webhook_deliveries[0].url == f"{replica.url}/tg/hook?replica=any"

    async def test_no_secret_header_without_a_secret_token(
        self, api: FakeBotApi, client: httpx.AsyncClient
    ) -> None:
        """Without secret_token in setWebhook the header is left out, as Telegram does."""
        async with WebhookReceiver() as replica:
            await set_webhook(client)
            api.deliver_webhooks_to([replica.url])
            api.user_sends_text(ERIKA, "hallo")
            await api.wait_until(lambda: api.update_ids_confirmed == [1], timeout=5)
        assert "X-Telegram-Bot-Api-Secret-Token" not in replica.received[0].headers

    async def test_error_answers_are_retried_until_2xx(
        self, api: FakeBotApi, client: httpx.AsyncClient
    ) -> None:
        """A 500 and a 404 leave the update pending; it is sent again until a 2xx confirms it once."""
        async with WebhookReceiver(500, 404, 204) as replica:
            await set_webhook(client)
            api.deliver_webhooks_to([replica.url])
            api.user_sends_text(ERIKA, "hallo")
            await api.wait_until(lambda: len(api.webhook_deliveries) == 2, timeout=5)
            info = (await client.get("/getWebhookInfo")).json()["result"]
            await api.wait_until(lambda: api.update_ids_confirmed == [1], timeout=5)
        assert replica.update_ids == [1, 1, 1]
        assert [d.status for d in api.webhook_deliveries] == [500, 404, 204]
        assert [d.delivered for d in api.webhook_deliveries] == [False, False, True]
        assert info["pending_update_count"] == 1
        assert info["last_error_message"] == "Wrong response from the webhook: 404"
        assert abs(info["last_error_date"] - time.time()) < 60

    async def test_connection_errors_are_retried_on_the_next_target(
        self, api: FakeBotApi, client: httpx.AsyncClient
    ) -> None:
        """A replica that is down costs one failed attempt; the retry goes to the next target."""
        dead = closed_port_url()
        async with WebhookReceiver() as replica:
            await set_webhook(client)
            api.deliver_webhooks_to([dead, replica.url])
            api.user_sends_text(ERIKA, "hallo")
            await api.wait_until(lambda: api.update_ids_confirmed == [1], timeout=5)
        failed, delivered = api.webhook_deliveries
        assert (failed.target, failed.status) == (dead, None)
        assert failed.error is not None and "connect" in failed.error.lower()
        assert (delivered.target, delivered.status) == (replica.url, 200)

    async def test_two_targets_receive_updates_alternately(
        self, api: FakeBotApi, client: httpx.AsyncClient
    ) -> None:
        """Targets take turns, like replicas behind a round-robin load balancer."""
        async with WebhookReceiver() as left, WebhookReceiver() as right:
            await set_webhook(client)
            api.deliver_webhooks_to([left.url, right.url])
            for i in range(6):
                api.user_sends_text(ERIKA, f"n{i}")
            await api.wait_until(lambda: len(api.update_ids_confirmed) == 6, timeout=5)
        assert sorted(left.update_ids) == [1, 3, 5]
        assert sorted(right.update_ids) == [2, 4, 6]
        assert sorted(api.update_ids_confirmed) == [1, 2, 3, 4, 5, 6]

    async def test_one_connection_delivers_strictly_in_order(
        self, api: FakeBotApi, client: httpx.AsyncClient
    ) -> None:
        """With max_connections=1 updates arrive one by one, and a failed one is retried before the next."""
        async with WebhookReceiver(200, 500) as replica:
            await set_webhook(client, max_connections=1)
            api.deliver_webhooks_to([replica.url])
            for i in range(4):
                api.user_sends_text(ERIKA, f"n{i}")
            await api.wait_until(lambda: len(api.update_ids_confirmed) == 4, timeout=5)
        assert replica.update_ids == [1, 2, 2, 3, 4]
        assert replica.most_in_flight == 1
        assert api.update_ids_confirmed == [1, 2, 3, 4]

    async def test_no_more_than_max_connections_are_in_flight(
        self, api: FakeBotApi, client: httpx.AsyncClient
    ) -> None:
        """Deliveries the target has not answered yet count against max_connections."""
        async with WebhookReceiver() as replica:
            replica.release.clear()
            await set_webhook(client, max_connections=3)
            api.deliver_webhooks_to([replica.url])
            for i in range(8):
                api.user_sends_text(ERIKA, f"n{i}")
            await replica.wait_for_count(3)
            await asyncio.sleep(0.1)  # time for a fourth delivery, which must not come
            assert sorted(replica.update_ids) == [1, 2, 3]
            replica.release.set()
            await api.wait_until(lambda: len(api.update_ids_confirmed) == 8, timeout=5)
        assert replica.most_in_flight == 3
        assert sorted(replica.update_ids) == list(range(1, 9))

    async def test_nothing_is_posted_without_targets_or_after_delete_webhook(
        self, api: FakeBotApi, client: httpx.AsyncClient
    ) -> None:
        """Delivery needs a webhook and targets; after deleteWebhook updates wait for getUpdates again."""
        async with WebhookReceiver() as replica:
            api.deliver_webhooks_to([replica.url])
            api.user_sends_text(ERIKA, "ohne Webhook")
            await asyncio.sleep(0.1)
            assert replica.received == []
            await set_webhook(client)
            await api.wait_until(lambda: api.update_ids_confirmed == [1], timeout=5)
            assert (await client.post("/deleteWebhook")).json()["result"] is True
            api.user_sends_text(ERIKA, "nach deleteWebhook")
            await asyncio.sleep(0.2)
            assert replica.update_ids == [1]
        (update,) = (await client.post("/getUpdates")).json()["result"]
        assert update["message"]["text"] == "nach deleteWebhook"

    async def test_stop_ends_deliveries_in_flight(self, client: httpx.AsyncClient) -> None:
        """Stopping the server does not wait for a target that never answers."""
        server = FakeBotApi()
        await server.start()
        async with WebhookReceiver() as replica, client_for(server) as http:
            replica.release.clear()
            await set_webhook(http)
            server.deliver_webhooks_to([replica.url])
            server.user_sends_text(ERIKA, "hallo")
            await replica.wait_for_count(1)
            started = time.monotonic()
            await server.stop()
            assert time.monotonic() - started < 2
        assert server.update_ids_confirmed == []
        assert [u["update_id"] for u in server.pending_updates] == [1]
        server.assert_clean()

    async def test_thread_runner_delivers_webhooks_from_its_own_loop(self) -> None:
        """FakeBotApiThread delivers to a receiver on the test's loop; helpers go through call()."""
        runner = FakeBotApiThread()
        server = runner.start()
        try:
            async with WebhookReceiver() as replica, client_for(server) as http:
                await set_webhook(http, secret_token="geheim")
                runner.call(server.deliver_webhooks_to, [replica.url])
                runner.call(server.user_sends_text, ERIKA, "hallo")
                # run() blocks, so it waits in a worker thread while this loop serves the receiver.
                confirmed = server.wait_until(lambda: server.update_ids_confirmed == [1], timeout=5)
                await asyncio.to_thread(runner.run, confirmed, 10)
            assert replica.received[0].headers["X-Telegram-Bot-Api-Secret-Token"] == "geheim"
            assert replica.received[0].update["message"]["text"] == "hallo"
        finally:
            runner.stop()
