"""The aiohttp client behind python-telegram-bot: real HTTP, PTB's error types, JSON and multipart bodies."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Message
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut
from telegram.request import RequestData
from telegram.request._requestparameter import RequestParameter  # PTB builds these for every call

from bot.telegram_http import AiohttpRequest, _without_token
from tests.fakes.bot_api_server import FakeBotApi, FakeUser

TOKEN = "123456:TEST-telegram-http"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _serve(handler: Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@asynccontextmanager
async def _client_against(handler: Handler) -> AsyncIterator[tuple[AiohttpRequest, str]]:
    """A started client and the root URL of a one-route server answering with ``handler``."""
    runner, url = await _serve(handler)
    request = AiohttpRequest()
    await request.initialize()
    try:
        yield request, url
    finally:
        await request.shutdown()
        await runner.cleanup()


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi(token=TOKEN) as api:
        yield api


@pytest.fixture
async def bot(fake_api: FakeBotApi) -> AsyncIterator[Bot]:
    client = Bot(TOKEN, base_url=f"{fake_api.url}/bot", request=AiohttpRequest(connection_pool_size=2))
    await client.initialize()
    yield client
    await client.shutdown()


async def test_bot_calls_arrive_with_their_json_types_and_pass_the_spec(
    fake_api: FakeBotApi, bot: Bot
) -> None:
    user = FakeUser(id=4711, first_name="Anna")
    fake_api.user_sends_text(user, "/start")
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("9", callback_data="a:1:nps:9")]])

    sent = await bot.send_message(
        chat_id=user.id, text="Wie war's? <b>Ehrlich</b>", parse_mode="HTML", reply_markup=markup
    )

    assert isinstance(sent, Message)
    assert sent.chat.id == user.id
    (request,) = fake_api.requests_for("sendMessage")
    assert request.params["chat_id"] == user.id
    assert request.params["reply_markup"] == markup.to_dict()
    assert request.params["text"] == "Wie war's? <b>Ehrlich</b>"
    fake_api.assert_clean()


async def test_telegram_errors_keep_their_ptb_types(
    fake_api: FakeBotApi, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")  # as the application sets it
    user = FakeUser(id=4712, first_name="Ben")
    fake_api.user_sends_text(user, "/start")
    fake_api.fail_chat(user.id, 403, "Forbidden: bot was blocked by the user")
    with pytest.raises(Forbidden, match="blocked"):
        await bot.send_message(chat_id=user.id, text="Hallo")
    fake_api.fail_method("sendMessage", 400, "Bad Request: chat not found")
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(chat_id=user.id, text="Hallo")
    fake_api.fail_method("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
    with pytest.raises(RetryAfter) as slow_down:
        await bot.send_message(chat_id=user.id, text="Hallo")
    assert slow_down.value.retry_after == timedelta(seconds=3)


async def test_a_server_that_does_not_answer_in_time_raises_timed_out() -> None:
    released = asyncio.Event()

    async def slow(_request: web.Request) -> web.Response:
        await released.wait()
        return web.json_response({"ok": True, "result": True})

    runner, url = await _serve(slow)
    by_default = AiohttpRequest(read_timeout=0.2, write_timeout=0.0)
    by_call = AiohttpRequest(read_timeout=60.0)
    await by_default.initialize()
    await by_call.initialize()
    try:
        with pytest.raises(TimedOut):
            await by_default.post(f"{url}/botX/getMe")
        with pytest.raises(TimedOut):  # a per-call timeout overrides the default
            await by_call.post(f"{url}/botX/getMe", read_timeout=0.2, write_timeout=0.0)
    finally:
        released.set()
        await by_default.shutdown()
        await by_call.shutdown()
        await runner.cleanup()


async def test_a_refused_connection_raises_network_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as raised:
            await request.post(f"http://127.0.0.1:{port}/bot{TOKEN}/getMe")
        assert not isinstance(raised.value, TimedOut)
        assert TOKEN not in str(raised.value)
        assert raised.value.__cause__ is None  # the original error, which may quote the URL, is not chained
    finally:
        await request.shutdown()


async def test_uploads_go_out_as_multipart_with_the_file_and_the_fields() -> None:
    received: dict[str, Any] = {}

    async def record(request: web.Request) -> web.Response:
        received["content_type"] = request.content_type
        form = await request.post()
        document = form["document"]
        assert isinstance(document, web.FileField)
        received["file"] = (document.filename, document.file.read())
        received["chat_id"] = form["chat_id"]
        received["caption"] = form["caption"]
        return web.json_response({"ok": True, "result": True})

    data = RequestData(
        [
            RequestParameter.from_input("chat_id", 42),
            RequestParameter.from_input("caption", "Bericht"),
            RequestParameter.from_input("document", InputFile(b"NPS;42", filename="report.csv")),
        ]
    )
    async with _client_against(record) as (request, url):
        assert await request.post(f"{url}/botX/sendDocument", request_data=data) is True
    assert received == {
        "content_type": "multipart/form-data",
        "file": ("report.csv", b"NPS;42"),
        "chat_id": "42",
        "caption": "Bericht",
    }


async def test_json_body_carries_nested_values_unencoded() -> None:
    bodies: list[Any] = []

    async def record(request: web.Request) -> web.Response:
        assert request.content_type == "application/json"
        bodies.append(json.loads(await request.read()))
        return web.json_response({"ok": True, "result": True})

    markup = {"inline_keyboard": [[{"text": "ä", "callback_data": "x"}]]}
    data = RequestData(
        [RequestParameter.from_input("chat_id", 42), RequestParameter.from_input("reply_markup", markup)]
    )
    async with _client_against(record) as (request, url):
        await request.post(f"{url}/botX/sendMessage", request_data=data)
    assert bodies == [{"chat_id": 42, "reply_markup": markup}]


async def test_calls_before_initialize_or_after_shutdown_are_refused_and_shutdown_is_repeatable() -> None:
    request = AiohttpRequest()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1:9/botX/getMe", "POST")
    await request.initialize()
    await request.shutdown()
    await request.shutdown()
    with pytest.raises(RuntimeError, match="not initialized"):
        await request.do_request("http://127.0.0.1:9/botX/getMe", "POST")


async def test_proxy_settings_from_the_environment_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like PTB's default client, the bot reaches Telegram through HTTP(S)_PROXY when one is set."""
    seen: list[str] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(str(request.url))
        return web.json_response({"ok": True, "result": True})

    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with _client_against(proxy) as (request, url):
        monkeypatch.setenv("HTTP_PROXY", url)
        assert await request.post("http://api.telegram.invalid/botX/getMe") is True
    assert seen == ["http://api.telegram.invalid/botX/getMe"]


async def test_hosts_in_no_proxy_are_reached_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    async def telegram(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True, "result": True})

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("HTTP_PROXY", dead_proxy)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with _client_against(telegram) as (request, url):
        assert await request.post(f"{url}/botX/getMe") is True


def test_a_pool_without_connections_is_rejected() -> None:
    with pytest.raises(ValueError, match="connection_pool_size"):
        AiohttpRequest(connection_pool_size=0)


def test_error_texts_that_quote_the_url_lose_the_token() -> None:
    url = f"https://api.telegram.org/bot{TOKEN}/sendMessage"
    text = _without_token(f"Cannot connect to {url}", url)
    assert TOKEN not in text
    assert text == "Cannot connect to https://api.telegram.org/bot<token>/sendMessage"
