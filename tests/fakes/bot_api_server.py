"""A fake Telegram Bot API server that speaks real HTTP, for end-to-end tests and benchmarks.

Why a real server instead of mocking ``telegram.Bot``: the bot under test then runs its production code
unchanged (python-telegram-bot's request encoding, ``getUpdates`` long polling, error mapping, retries),
and every request is checked against the official Bot API spec (:mod:`tests.fakes.bot_api_spec`).
Mocks would only prove that our code calls our mocks.

Typical use::

    async with FakeBotApi() as api:
        app = ApplicationBuilder().token(api.token).base_url(f"{api.url}/bot").build()
        ...  # start polling
        api.user_sends_text(FakeUser(42, "Erika"), "/start")
        reply = await api.wait_for_message(42)

Behaviour follows Telegram where it matters to a bot: replies have the real shapes (dates in seconds,
``message_id`` counted per chat), method names are case-insensitive, updates are confirmed only by a
later ``offset``, a second concurrent ``getUpdates`` ends the first with 409, editing without a change
gives "message is not modified". It is stricter than Telegram on purpose: unknown parameters are
rejected (Telegram ignores them, hiding typos). Every spec violation is answered with 400 *and*
collected in :attr:`FakeBotApi.violations` so a test can fail even if the bot swallowed the error.

Telegram under load, all off unless a test switches it on: ``limits=FloodLimits.telegram()`` (or
:meth:`FakeBotApi.set_limits`) answers 429 with ``retry_after`` like Telegram's flood control (1/s per
private chat with a burst of 4, 20/min per group, 30/s overall; see :class:`FloodLimits`);
:meth:`~FakeBotApi.fail_share` fails a seeded random share of message calls with 500;
:meth:`~FakeBotApi.throttle_everything` answers every message call with 429 for a while;
:meth:`~FakeBotApi.migrate_chat` turns a group into a supergroup (400 with ``migrate_to_chat_id``). With a
webhook set and :meth:`~FakeBotApi.deliver_webhooks_to` naming local targets, updates are POSTed to them
round-robin and retried until a 2xx, as Telegram delivers webhooks to a load balancer.

Forums (supergroups with topics), because they are where bots meet Telegram's surprises:
:meth:`~FakeBotApi.make_forum` turns a supergroup into one (``is_forum`` in its Chat objects and in
``getChat``); ``createForumTopic`` answers a ``ForumTopic`` and posts the "topic created" service message
whose id is the topic's ``message_thread_id``; ``sendMessage`` with ``message_thread_id`` files the
message in that topic (unknown threads answer "message thread not found"); and every topic message that
replies to nothing carries that service message as ``reply_to_message``, in updates and in answers alike.

Everything runs on one event loop and is not thread-safe; :class:`FakeBotApiThread` runs the server on
its own loop for bots in subprocesses or benchmarks, and :meth:`FakeBotApiThread.call` runs helpers
there.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import itertools
import json
import logging
import math
import random
import socket
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, ParamSpec, Self, TypeVar

import aiohttp
from aiohttp import web

from tests.fakes.bot_api_spec import (
    BotApiSpec,
    ParsedText,
    UploadedFile,
    decode_without_spec,
    load_spec,
    parse_formatted_text,
    utf16_len,
)

_LOGGER = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")

JsonDict = dict[str, Any]
ChatId = int | str

DEFAULT_TOKEN = "123456789:AAFakeKundenpulsTestToken_0123456789"
"""A token in Telegram's format (``<bot id>:<secret>``); the bot's user id is the part before the colon."""

_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
_QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_POLL_CONFLICT = (
    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
)
_WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the "
    "webhook first"
)
_BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
# Update kinds Telegram withholds unless a bot asks for them in allowed_updates.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
# Return types of common message methods, for when api.json is missing and cannot tell.
_NO_SPEC_RETURNS: dict[str, tuple[str, ...]] = {
    **{
        name.lower(): ("Message",)
        for name in (
            "sendPhoto", "sendDocument", "sendAudio", "sendVideo", "sendAnimation", "sendVoice",
            "sendVideoNote", "sendSticker", "sendLocation", "sendVenue", "sendContact", "sendPoll",
            "sendDice", "forwardMessage",
        )
    },
    "copymessage": ("MessageId",),
}  # fmt: skip
# Methods that fail_chat() affects: everything that puts something into (or changes it in) the chat.
# They are also the "message calls" that flood limits, fail_share() and throttle_everything() apply to.
_CHAT_WRITE_PREFIXES = ("send", "edit", "copy", "forward")
# Message calls without those prefixes: a new topic posts its "topic created" service message.
_CHAT_WRITE_METHODS = frozenset({"createforumtopic"})
# Reads that fail_chat() affects too (a chat the bot was removed from cannot be looked up either); they
# are not message calls, so flood limits, storms and fail_share() leave them alone.
_CHAT_READ_METHODS = frozenset({"getchat"})
_CHAT_NOT_FOUND = "Bad Request: chat not found"
_NOT_A_FORUM = "Bad Request: the chat is not a forum"
_NO_TOPIC_RIGHTS = "Bad Request: not enough rights to create a topic"
_THREAD_NOT_FOUND = "Bad Request: message thread not found"
# Telegram's colour for a topic created without icon_color (0x6FB9F0, the first of the allowed six).
_DEFAULT_TOPIC_COLOR = 7322096
# Reactions a chat allows per message unless its admins changed it; getChat always reports this.
_MAX_REACTION_COUNT = 11
_MIGRATED = "Bad Request: group chat was upgraded to a supergroup chat"
_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# How long one webhook POST may take before it counts as failed (Telegram's own timeout is not published).
_WEBHOOK_TIMEOUT = 10.0
# A bucket holding 0.9999999999 tokens after float arithmetic still has a whole one.
_TOKEN_EPSILON = 1e-9

BucketName = Literal["chat", "group", "overall"]
"""Which flood bucket refused a call: a private chat's, a group's, or the bot's overall one."""


@dataclass(frozen=True, slots=True)
class FakeUser:
    """A simulated Telegram user; ``language_code`` is optional in real updates, hence ``None`` allowed."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = "de"

    def to_dict(self) -> JsonDict:
        """The ``User`` object as Telegram sends it (absent optional fields are omitted, not null)."""
        data: JsonDict = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name is not None:
            data["last_name"] = self.last_name
        if self.username is not None:
            data["username"] = self.username
        if self.language_code is not None:
            data["language_code"] = self.language_code
        return data

    def private_chat(self) -> JsonDict:
        """The ``Chat`` object of this user's private chat with the bot (chat id == user id)."""
        data: JsonDict = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name is not None:
            data["last_name"] = self.last_name
        if self.username is not None:
            data["username"] = self.username
        return data


@dataclass(slots=True)
class RecordedRequest:
    """One request as the server understood it; ``status`` is ``None`` while it is still being answered."""

    method: str
    params: dict[str, object]
    time: float
    """The server's clock (``time.monotonic()`` by default) at arrival, so benchmarks can measure rates."""
    seq: int
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class BucketLimit:
    """A token bucket: ``burst`` calls at once, refilled continuously at ``rate`` calls per second."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"a bucket needs rate > 0 and burst >= 1, got {self!r}")


@dataclass(frozen=True, slots=True)
class FloodLimits:
    """Telegram's flood control as three token buckets; the default rates are the ones Telegram documents.

    A message call (``send*``, ``edit*``, ``copy*``, ``forward*``, and ``createForumTopic``, which posts a
    service message into the group) needs a token from ``overall`` and
    from its chat's bucket: ``private_chat`` for a positive ``chat_id``, ``group`` for a negative one or
    an ``@username``. Telegram only says "about" 1/s per chat, 20/min per group and 30/s overall and
    publishes no bursts; the bursts here are our assumption (a few quick replies to one chat pass).
    """

    private_chat: BucketLimit = BucketLimit(rate=1.0, burst=4)
    group: BucketLimit = BucketLimit(rate=20 / 60, burst=20)
    overall: BucketLimit = BucketLimit(rate=30.0, burst=30)

    @classmethod
    def telegram(cls) -> FloodLimits:
        """The default limits, named for readability: ``FakeBotApi(limits=FloodLimits.telegram())``."""
        return cls()


@dataclass(frozen=True, slots=True)
class ThrottledCall:
    """A call the flood limiter answered with 429, and which bucket refused it."""

    seq: int
    """:attr:`RecordedRequest.seq` of the refused request."""
    method: str
    chat_id: ChatId | None
    bucket: BucketName
    retry_after: int
    time: float


@dataclass(slots=True)
class StormWindow:
    """One :meth:`FakeBotApi.throttle_everything` period, on the server's clock (like request times)."""

    start: float
    end: float
    retry_after: int
    refused: int = 0
    """How many message calls it answered with 429."""

    def covers(self, moment: float) -> bool:
        """Whether ``moment`` (e.g. a :attr:`RecordedRequest.time`) falls inside the storm."""
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One attempt to POST an update to a webhook target; ``status`` is ``None`` if no answer came."""

    target: str
    url: str
    update_id: int
    status: int | None
    error: str | None
    time: float
    """The server's clock when the attempt started."""

    @property
    def delivered(self) -> bool:
        """Whether the target confirmed the update (any 2xx), as Telegram counts it."""
        return self.status is not None and 200 <= self.status < 300


@dataclass(slots=True)
class _Bucket:
    """A token bucket's state; it is refilled lazily, whenever a call asks it."""

    limit: BucketLimit
    tokens: float
    updated: float

    def wait(self, now: float) -> float:
        """Refill up to ``now`` and return the seconds until a whole token is there (0: it is)."""
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.rate)
        self.updated = max(self.updated, now)
        missing = 1.0 - self.tokens
        return 0.0 if missing <= _TOKEN_EPSILON else missing / self.limit.rate


@dataclass(slots=True)
class _ShareFailure:
    share: float
    error_code: int
    description: str
    methods: frozenset[str] | None
    rng: random.Random = field(repr=False)


@dataclass(slots=True)
class _Forum:
    """A forum supergroup's topics; the bot's ``can_manage_topics`` right decides if it may add some."""

    can_manage_topics: bool
    topics: dict[int, JsonDict] = field(default_factory=dict)
    """``ForumTopic`` objects by ``message_thread_id``, in creation order."""
    created: dict[int, JsonDict] = field(default_factory=dict)
    """Each topic's "topic created" service message, which every message in the topic replies to."""


@dataclass(slots=True)
class _Failure:
    error_code: int
    description: str
    retry_after: int | None
    remaining: int | None


class _ApiError(Exception):
    """Raised by method handlers; becomes Telegram's ``{"ok": false, ...}`` answer."""

    def __init__(
        self,
        error_code: int,
        description: str,
        retry_after: int | None = None,
        *,
        migrate_to_chat_id: int | None = None,
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after
        self.migrate_to_chat_id = migrate_to_chat_id


def _error_body(
    error_code: int,
    description: str,
    retry_after: int | None = None,
    *,
    migrate_to_chat_id: int | None = None,
) -> JsonDict:
    body: JsonDict = {"ok": False, "error_code": error_code, "description": description}
    parameters: JsonDict = {}
    if migrate_to_chat_id is not None:
        parameters["migrate_to_chat_id"] = migrate_to_chat_id
    if retry_after is not None:
        parameters["retry_after"] = retry_after
    if parameters:
        body["parameters"] = parameters
    return body


def _retry_after(seconds: float) -> int:
    """Telegram's ``retry_after``: whole seconds, rounded up, never 0 (0 would invite a busy loop)."""
    return max(1, math.ceil(seconds - _TOKEN_EPSILON))


def _webhook_post_url(target: str, webhook_url: str) -> str:
    """Where to POST: the target's origin plus the registered URL's path and query."""
    parts = urllib.parse.urlsplit(webhook_url)
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return target.rstrip("/") + path


def _json_response(status: int, body: JsonDict) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        content_type="application/json",
    )


def _is_message_call(key: str) -> bool:
    """Whether the (lower-case) method posts into or changes a chat, so load and fail_chat() apply."""
    return key.startswith(_CHAT_WRITE_PREFIXES) or key in _CHAT_WRITE_METHODS


def _without_reply(message: Mapping[str, Any]) -> JsonDict:
    """A copy of ``message`` fit for ``reply_to_message``, which Telegram never nests a second level."""
    return {k: copy.deepcopy(v) for k, v in message.items() if k != "reply_to_message"}


def _update_kind(update: Mapping[str, object]) -> str | None:
    return next((key for key in update if key != "update_id"), None)


def _scope_key(scope: object) -> str:
    """Stable key for a ``BotCommandScope``; the default scope and a missing scope are the same."""
    if not isinstance(scope, dict) or scope.get("type", "default") == "default":
        return "default"
    return json.dumps(scope, sort_keys=True)


def _inline_markup(markup: object) -> JsonDict | None:
    """Only inline keyboards are echoed in Message objects; reply keyboards are not part of a message."""
    if isinstance(markup, dict) and "inline_keyboard" in markup:
        return markup
    return None


class FakeBotApi:
    """The fake Bot API server; see the module docstring for what it mimics and why.

    Use ``async with FakeBotApi() as api:`` (binds ``127.0.0.1`` on a free port) and point the bot at
    ``base_url=f"{api.url}/bot"`` with ``api.token``. Only that token is accepted, which proves the bot
    uses its configuration. State helpers are synchronous and must run on the server's loop.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bot_username: str = "kundenpuls_test_bot",
        bot_first_name: str = "Kundenpuls Test",
        validate: bool = True,
        spec_path: Path | None = None,
        strict_private_chats: bool = False,
        first_update_id: int = 1,
        limits: FloodLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
        webhook_retry_delay: float = 0.2,
    ) -> None:
        """Configure the server; nothing binds until :meth:`start`.

        ``validate=False`` (or a missing spec file) skips spec validation, e.g. to measure the fake's
        own overhead. ``strict_private_chats=True`` answers 403 "bot can't initiate conversation with a
        user" for private chats whose user never wrote to the bot, as Telegram does. ``limits`` turns on
        flood control (``FloodLimits.telegram()``). ``clock`` is what request times, flood buckets and
        storms are measured with; a test can pass a hand-driven clock to make bucket arithmetic exact.
        ``webhook_retry_delay`` is the pause after a failed webhook delivery before the next attempt.
        """
        self.token = token
        self.host = host
        self.port = port
        bot_id_text = token.split(":", 1)[0]
        self.bot_user: JsonDict = {
            "id": int(bot_id_text) if bot_id_text.isdigit() else 123456789,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
        }
        self.spec: BotApiSpec | None = load_spec(spec_path) if validate else None
        self.strict_private_chats = strict_private_chats

        # Recorded traffic.
        self.requests: list[RecordedRequest] = []
        self.violations: list[str] = []
        self.internal_errors: list[str] = []
        self.callback_answers: list[dict[str, object]] = []
        self.uploads: dict[str, bytes] = {}
        """Files bots uploaded (``sendDocument``), by the ``file_id`` of the document they became."""
        self.commands: dict[tuple[str, str], list[JsonDict]] = {}
        self.webhook: dict[str, object] | None = None
        self._by_method: dict[str, list[RecordedRequest]] = {}

        # Chats and messages.
        self._users: dict[int, FakeUser] = {}
        self._messages: dict[tuple[int, int], JsonDict] = {}
        self._user_messages: dict[tuple[int, int], JsonDict] = {}
        self._bot_message_ids: dict[int, list[int]] = {}
        self._sent_log: dict[int, list[JsonDict]] = {}
        self._next_message_id: dict[int, int] = {}
        self._open_callback_queries: set[str] = set()
        self._callback_ids = itertools.count(4_000_000_000_000_000_001)
        self._forums: dict[int, _Forum] = {}
        self._group_titles: dict[int, str] = {}
        """Titles tests gave groups in :meth:`user_writes_in_group`, so getChat reports the same one."""

        # Updates.
        self._next_update_id = first_update_id
        self._pending: deque[JsonDict] = deque()
        self._redeliveries: deque[JsonDict] = deque()
        self._allowed_updates: frozenset[str] | None = None
        self.update_ids_confirmed: list[int] = []
        self.update_ids_dropped: list[int] = []
        self.update_ids_filtered: list[int] = []
        self._updates_event = asyncio.Event()
        self._poll_generation = 0
        self._closing = False

        # Failure injection.
        self._chat_failures: dict[ChatId, _Failure] = {}
        self._method_failures: dict[str, _Failure] = {}
        self._unavailable = False
        self._held_chats: dict[ChatId, asyncio.Event] = {}
        self._share_failure: _ShareFailure | None = None
        self.random_failures: list[int] = []
        """``seq`` of every request that :meth:`fail_share` failed."""
        self._migrations: dict[ChatId, int] = {}

        # Load: flood limits and 429 storms.
        self._clock = clock
        self._limits: FloodLimits | None = None
        self._buckets: dict[tuple[BucketName, ChatId | None], _Bucket] = {}
        self.throttled: list[ThrottledCall] = []
        """Every 429 the flood limiter answered (not those of fail_chat() or storms)."""
        self.storms: list[StormWindow] = []
        self.set_limits(limits)

        # Webhook delivery (see deliver_webhooks_to()).
        self.webhook_retry_delay = webhook_retry_delay
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._webhook_targets: tuple[str, ...] = ()
        self._webhook_turn = itertools.count()
        self._webhook_in_flight: list[JsonDict] = []
        self._webhook_attempts: set[asyncio.Task[None]] = set()
        self._webhook_task: asyncio.Task[None] | None = None
        self._webhook_wakeup = asyncio.Event()
        self._webhook_retry_at = 0.0
        self._webhook_last_error: tuple[int, str] | None = None
        self._webhook_session: aiohttp.ClientSession | None = None

        # Waiting.
        self._activity = asyncio.Condition()
        self._consumed_messages: dict[int, set[int]] = {}
        self._message_cursor: dict[int, int] = {}
        self._consumed_requests: set[int] = set()
        self._request_cursor: dict[str, int] = {}

        self._runner: web.AppRunner | None = None
        self._seq = itertools.count(1)
        self._handlers: dict[str, Callable[[dict[str, object]], Awaitable[object]]] = {
            "getme": self._get_me,
            "getupdates": self._get_updates,
            "deletewebhook": self._delete_webhook,
            "setwebhook": self._set_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "sendmessage": self._send_message,
            "editmessagetext": self._edit_message_text,
            "editmessagereplymarkup": self._edit_message_reply_markup,
            "editmessagecaption": self._edit_message_caption,
            "answercallbackquery": self._answer_callback_query,
            "deletemessage": self._delete_message,
            "getchat": self._get_chat,
            "createforumtopic": self._create_forum_topic,
            "senddocument": self._send_document,
            "sendphoto": self._send_photo,
        }
        self._canonical_names = {
            "getme": "getMe",
            "getupdates": "getUpdates",
            "deletewebhook": "deleteWebhook",
            "setwebhook": "setWebhook",
            "getwebhookinfo": "getWebhookInfo",
            "setmycommands": "setMyCommands",
            "getmycommands": "getMyCommands",
            "deletemycommands": "deleteMyCommands",
            "sendmessage": "sendMessage",
            "editmessagetext": "editMessageText",
            "editmessagereplymarkup": "editMessageReplyMarkup",
            "editmessagecaption": "editMessageCaption",
            "answercallbackquery": "answerCallbackQuery",
            "deletemessage": "deleteMessage",
            "getchat": "getChat",
            "createforumtopic": "createForumTopic",
            "senddocument": "sendDocument",
            "sendphoto": "sendPhoto",
            "sendchataction": "sendChatAction",
            "close": "close",
            "logout": "logOut",
        }

    # ------------------------------------------------------------------------------------------ running

    @property
    def url(self) -> str:
        """Root URL, e.g. ``http://127.0.0.1:PORT``; bots use ``f"{url}/bot"`` as their base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as PTB's ``base_url`` (PTB appends the token itself)."""
        return f"{self.url}/bot"

    @property
    def spec_available(self) -> bool:
        """Whether requests are being validated against the official spec."""
        return self.spec is not None

    async def start(self) -> None:
        """Bind a free port (or ``port``) on ``host`` and start answering."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # handler_cancellation: a bot that abandons a long poll must not leave a handler waiting.
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            self.port = sock.getsockname()[1]
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            sock.close()
            await self._runner.cleanup()
            self._runner = None
            raise
        self._closing = False
        # Idle until a webhook is set and deliver_webhooks_to() named targets; stop() cancels it.
        self._webhook_task = asyncio.create_task(self._run_webhook_delivery(), name="fake webhook delivery")

    async def stop(self) -> None:
        """Release long polls, stop webhook delivery and close the listening socket; safe to call twice."""
        self._closing = True
        self._wake_pollers()
        await self._stop_webhook_delivery()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------------------------------------ HTTP

    async def _not_found(self, request: web.Request) -> web.Response:
        return _json_response(404, _error_body(404, "Not Found"))

    async def _read_params(self, request: web.Request) -> dict[str, object]:
        """Query string plus body, whichever of the three encodings Telegram accepts was used."""
        params: dict[str, object] = dict(request.query)
        if not request.body_exists:
            return params
        if request.content_type == "application/json":
            body = await request.json()
            if not isinstance(body, dict):
                raise _ApiError(400, "Bad Request: JSON body must be an object")
            params.update(body)
            return params
        form = await request.post()
        for name, value in form.items():
            if isinstance(value, web.FileField):
                content = value.file.read()
                params[name] = UploadedFile(value.filename, value.content_type, len(content), content)
            elif isinstance(value, bytes | bytearray):
                params[name] = bytes(value).decode("utf-8", errors="replace")
            else:
                params[name] = value
        return params

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["method"].lower()
        method_spec = self.spec.method(key) if self.spec is not None else None
        if method_spec is not None:
            name = method_spec.name
        else:
            name = self._canonical_names.get(key, request.match_info["method"])
        record = RecordedRequest(name, {}, self._clock(), next(self._seq))
        self.requests.append(record)
        self._by_method.setdefault(name.lower(), []).append(record)
        try:
            status, body = await self._process(request, record, key, known=method_spec is not None)
        except asyncio.CancelledError:
            record.status, record.error = 499, "client went away before the answer"
            raise
        except Exception as exc:  # the fake must answer, and the test must learn why it broke
            _LOGGER.exception("fake Bot API failed on %s", name)
            self.internal_errors.append(f"{name}: {exc!r}")
            status, body = 500, _error_body(500, f"Internal Server Error: {exc!r}")
        record.status = status
        if body is None:
            record.error = "502 Bad Gateway"
        elif not body.get("ok"):
            record.error = str(body.get("description"))
        await self._notify()
        if body is None:
            return web.Response(status=502, body=_BAD_GATEWAY_HTML, content_type="text/html")
        return _json_response(status, body)

    async def _process(
        self, request: web.Request, record: RecordedRequest, key: str, *, known: bool
    ) -> tuple[int, JsonDict | None]:
        """Decode, check and answer one request; ``None`` as body means the HTML 502 page.

        Requests refused for outage or a wrong token are still recorded (with decoded parameters), so
        tests can count a bot's retries during an outage and see which token it used.
        """
        try:
            raw = await self._read_params(request)
        except (ValueError, _ApiError) as exc:
            return 400, _error_body(400, f"Bad Request: can't parse request body: {exc}")
        spec = self.spec
        record.params = spec.decode_params(key, raw) if spec is not None else decode_without_spec(raw)
        if self._unavailable:
            return 502, None
        if request.match_info["token"] != self.token:
            return 401, _error_body(401, "Unauthorized")
        if spec is not None:
            if not known:
                self.violations.append(f"{record.method}: unknown method '{record.method}'")
                # Telegram answers unknown methods with 404, which PTB maps to EndPointNotFound.
                return 404, _error_body(404, "Not Found")
            problems = spec.validate(key, record.params)
            if problems:
                self.violations.extend(problems)
                details = "; ".join(p.split(": ", 1)[1] for p in problems)
                return 400, _error_body(400, f"Bad Request: {details}")
        try:
            await self._wait_while_held(key, record.params)
            self._inject_failure(key, record.params)
            self._apply_load(key, record)
            handler = self._handlers.get(key)
            if handler is not None:
                result = await handler(record.params)
            else:
                result = self._default_result(key, record.params)
        except _ApiError as error:
            body = _error_body(
                error.error_code,
                error.description,
                error.retry_after,
                migrate_to_chat_id=error.migrate_to_chat_id,
            )
            return error.error_code, body
        return 200, {"ok": True, "result": result}

    def _default_result(self, key: str, params: dict[str, object]) -> object:
        """Plausible answer for methods without a dedicated handler, shaped by the spec's return type.

        New messages (``sendPhoto``, ``copyMessage``...) are stored like ``sendMessage``'s; other edits
        (``Message or Boolean``) return the stored message; arrays are empty; everything else is ``true``.
        """
        returns: tuple[str, ...] = _NO_SPEC_RETURNS.get(key, ())
        if self.spec is not None and (method_spec := self.spec.method(key)) is not None:
            returns = method_spec.returns
        if returns == ("Message",) and "chat_id" in params:
            return self._store_bot_message(params, {})
        if returns == ("MessageId",) and "chat_id" in params:
            return {"message_id": self._store_bot_message(params, {})["message_id"]}
        chat_id, message_id = params.get("chat_id"), params.get("message_id")
        if returns and returns[0] == "Message" and isinstance(chat_id, int) and isinstance(message_id, int):
            message = self._messages.get((chat_id, message_id))
            return copy.deepcopy(message) if message is not None else True
        if returns and returns[0].startswith("Array of"):
            return []
        return True

    async def _notify(self) -> None:
        async with self._activity:
            self._activity.notify_all()

    # --------------------------------------------------------------------------------- failure injection

    def hold_chat(self, chat_id: ChatId) -> None:
        """Keep message calls to ``chat_id`` waiting (no answer yet) until :meth:`release_chat`.

        A slow Telegram, or a slow chat: the call is on its way and its outcome unknown, which is when a
        bot's state may change under it (a /stop while the question is being sent). Failures set up with
        :meth:`fail_chat` apply when the call is released.
        """
        self._held_chats.setdefault(chat_id, asyncio.Event())

    def release_chat(self, chat_id: ChatId) -> None:
        """Let held calls to ``chat_id`` go on (they are answered now), and stop holding new ones."""
        event = self._held_chats.pop(chat_id, None)
        if event is not None:
            event.set()

    async def _wait_while_held(self, key: str, params: Mapping[str, object]) -> None:
        chat_id = params.get("chat_id")
        if _is_message_call(key) and isinstance(chat_id, int | str):
            event = self._held_chats.get(chat_id)
            if event is not None:
                await event.wait()

    def fail_chat(
        self,
        chat_id: ChatId,
        error_code: int,
        description: str,
        retry_after: int | None = None,
        times: int | None = None,
    ) -> None:
        """Make sends and edits to ``chat_id`` fail, always (``times=None``) or for the next ``times`` calls.

        Covers ``send*``, ``edit*``, ``copy*``, ``forward*`` and ``createForumTopic`` (e.g. 403
        "Forbidden: bot was blocked by the user", 429 "Too Many Requests: retry after 1" with
        ``retry_after=1``), and ``getChat`` too: a chat the bot was removed from cannot be looked up
        either, so a bot that checks a chat before writing to it meets the failure there. Each of these
        calls counts towards ``times``.
        """
        self._chat_failures[chat_id] = _Failure(error_code, description, retry_after, times)

    def clear_failures(self, chat_id: ChatId | None = None) -> None:
        """Stop failing ``chat_id`` (or every chat and method when ``None``)."""
        if chat_id is None:
            self._chat_failures.clear()
            self._method_failures.clear()
        else:
            self._chat_failures.pop(chat_id, None)

    def fail_method(
        self,
        method: str,
        error_code: int,
        description: str,
        times: int | None = 1,
        retry_after: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` fail (``None``: until cleared)."""
        self._method_failures[method.lower()] = _Failure(error_code, description, retry_after, times)

    def set_unavailable(self, unavailable: bool = True) -> None:
        """Simulate an outage: every request gets nginx's 502 Bad Gateway page, like Telegram's front end."""
        self._unavailable = unavailable

    def _inject_failure(self, key: str, params: Mapping[str, object]) -> None:
        failure = self._method_failures.get(key)
        table: dict[Any, _Failure] = self._method_failures
        table_key: object = key
        if failure is None and (_is_message_call(key) or key in _CHAT_READ_METHODS):
            chat_id = params.get("chat_id")
            if isinstance(chat_id, int | str):
                failure = self._chat_failures.get(chat_id)
                table, table_key = self._chat_failures, chat_id
        if failure is None:
            return
        if failure.remaining is not None:
            failure.remaining -= 1
            if failure.remaining <= 0:
                del table[table_key]
        raise _ApiError(failure.error_code, failure.description, failure.retry_after)

    def fail_share(
        self,
        share: float,
        error_code: int = 500,
        description: str = "Internal Server Error",
        *,
        methods: Iterable[str] | None = None,
        seed: int | None = 0,
    ) -> None:
        """Fail a random ``share`` (0 to 1) of message calls, or of ``methods``; ``fail_share(0)`` stops.

        Telegram's servers occasionally answer 500 and a bot must retry without sending twice: a failed
        call stores nothing, so a retry that succeeds delivers the message once. The draw is from
        ``random.Random(seed)``, so a test sees the same calls fail on every run. Calls failed this way
        are listed in :attr:`random_failures`; they were accepted (and charged) by the flood limiter.
        """
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be between 0 and 1, got {share!r}")
        if share == 0.0:
            self._share_failure = None
            return
        names = frozenset(m.lower() for m in methods) if methods is not None else None
        self._share_failure = _ShareFailure(share, error_code, description, names, random.Random(seed))

    def throttle_everything(self, seconds: float, retry_after: int) -> StormWindow | None:
        """Answer every message call with 429 and ``retry_after`` for the next ``seconds``.

        Telegram does this to a bot that flooded it, whatever the chat. The window is appended to
        :attr:`storms` (on the clock of :attr:`RecordedRequest.time`) so a test can check which calls
        were made inside it. A new storm ends a running one; ``seconds=0`` just ends it. Refused calls
        consume no flood tokens and are not in :attr:`throttled`.
        """
        now = self._clock()
        for storm in self.storms:
            if storm.covers(now):
                storm.end = now
        if seconds <= 0:
            return None
        storm = StormWindow(now, now + seconds, retry_after)
        self.storms.append(storm)
        return storm

    def migrate_chat(self, old_chat_id: int, new_chat_id: int, *, forum: bool = False) -> None:
        """Turn group ``old_chat_id`` into supergroup ``new_chat_id``, as when a group is upgraded.

        From now on every call with ``chat_id=old_chat_id`` answers Telegram's 400 with
        ``parameters.migrate_to_chat_id`` (PTB raises ``ChatMigrated``), ``getChat`` included; the new
        id is an ordinary supergroup whose messages :meth:`messages_to` shows under the new id. That
        covers edits too: Telegram does not let a bot edit (or delete) its messages in the old group
        after the upgrade, so a bot that keeps ``(chat_id, message_id)`` of a status message must send
        a new one in the supergroup rather than expect to edit the old one there (message ids are
        counted per chat and do not carry over).

        ``forum=True`` upgrades straight to a forum (:meth:`make_forum` of the new id, with the
        ``can_manage_topics`` right): enabling topics is what upgrades most groups today.
        """
        self._migrations[old_chat_id] = new_chat_id
        if forum:
            self.make_forum(new_chat_id)

    def make_forum(self, chat_id: int, *, can_manage_topics: bool = True) -> None:
        """Make supergroup ``chat_id`` (an id starting with -100) a forum: a supergroup with topics.

        From now on the Chat objects the fake puts into messages for that chat (the bot's, a user's,
        a callback query's) and ``getChat`` carry ``"is_forum": true``, ``createForumTopic`` works
        there if ``can_manage_topics`` (the bot's administrator right; calling again changes it and
        keeps the topics), and ``message_thread_id`` names a topic. Message id 1 is the chat's own
        first message (the General topic's), so no topic created here gets id 1, as on Telegram.
        """
        if not str(chat_id).startswith("-100"):
            raise ValueError(f"only supergroups (ids starting with -100) can be forums, got {chat_id}")
        forum = self._forums.get(chat_id)
        if forum is None:
            self._forums[chat_id] = _Forum(can_manage_topics)
        else:
            forum.can_manage_topics = can_manage_topics
        self._next_message_id[chat_id] = max(self._next_message_id.get(chat_id, 1), 2)

    def set_limits(self, limits: FloodLimits | None) -> None:
        """Turn flood control on (``FloodLimits.telegram()``), change its limits, or off (``None``).

        Buckets start full, as for a bot that has been quiet for a while.
        """
        self._limits = limits
        self._buckets.clear()

    def _apply_load(self, key: str, record: RecordedRequest) -> None:
        """Migration, storm, flood limits and random failures, in that order; the first to refuse wins.

        A refusal consumes no flood tokens, like on Telegram where only accepted calls count.
        """
        chat_id = record.params.get("chat_id")
        if isinstance(chat_id, int | str) and (new_chat_id := self._migrations.get(chat_id)) is not None:
            raise _ApiError(400, _MIGRATED, migrate_to_chat_id=new_chat_id)
        is_message_call = _is_message_call(key)
        if is_message_call:
            now = self._clock()
            for storm in self.storms:
                if storm.covers(now):
                    storm.refused += 1
                    raise _ApiError(
                        429, f"Too Many Requests: retry after {storm.retry_after}", storm.retry_after
                    )
            self._charge_flood_limits(record, chat_id, now)
        failure = self._share_failure
        if failure is None:
            return
        applies = key in failure.methods if failure.methods is not None else is_message_call
        if applies and failure.rng.random() < failure.share:
            self.random_failures.append(record.seq)
            raise _ApiError(failure.error_code, failure.description)

    def _charge_flood_limits(self, record: RecordedRequest, chat_id: object, now: float) -> None:
        """Take a token from the overall and the chat's bucket, or answer 429 and take none."""
        limits = self._limits
        if limits is None:
            return
        keys: list[tuple[BucketName, ChatId | None]] = [("overall", None)]
        chat: ChatId | None = None
        if isinstance(chat_id, int | str):
            chat = chat_id
            keys.append(("chat" if isinstance(chat_id, int) and chat_id > 0 else "group", chat_id))
        buckets: list[tuple[BucketName, _Bucket]] = []
        for name, bucket_key in keys:
            bucket = self._buckets.get((name, bucket_key))
            if bucket is None:
                limit = {"overall": limits.overall, "chat": limits.private_chat, "group": limits.group}[name]
                bucket = self._buckets[(name, bucket_key)] = _Bucket(limit, float(limit.burst), now)
            buckets.append((name, bucket))
        # Ask every bucket (each refills), then refuse for the one that needs longest to have a token.
        wait, refused_by = max((bucket.wait(now), name) for name, bucket in buckets)
        if wait > 0:
            retry_after = _retry_after(wait)
            self.throttled.append(
                ThrottledCall(record.seq, record.method, chat, refused_by, retry_after, record.time)
            )
            raise _ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)
        for _, bucket in buckets:
            bucket.tokens -= 1.0

    # ---------------------------------------------------------------------------------- chats, messages

    def _resolve_chat(self, chat_id: object) -> int:
        if isinstance(chat_id, int):
            return chat_id
        # Usernames ("@shop") would need a directory of chats; the bot under test addresses users by id.
        raise _ApiError(400, "Bad Request: chat not found")

    def _chat_object(self, chat_id: int) -> JsonDict:
        user = self._users.get(chat_id)
        if user is not None:
            return user.private_chat()
        if chat_id > 0:
            return {"id": chat_id, "type": "private", "first_name": f"User {chat_id}"}
        return self._group_chat(chat_id)

    def _group_chat(self, chat_id: int) -> JsonDict:
        """A group's ``Chat`` object, the same in every message and in getChat (one title per chat)."""
        chat: JsonDict = {
            "id": chat_id,
            "type": "supergroup" if str(chat_id).startswith("-100") else "group",
            "title": self._group_titles.get(chat_id, f"Group {chat_id}"),
        }
        if chat_id in self._forums:
            chat["is_forum"] = True
        return chat

    def _topic_thread(self, chat_id: int, params: Mapping[str, object]) -> int | None:
        """The topic a send names with ``message_thread_id``, or 400 like Telegram if there is none.

        Non-forum chats (private chats and plain supergroups included) and the General topic (id 1,
        which is addressed by leaving the parameter out) have no thread a bot can name here.
        """
        thread_id = params.get("message_thread_id")
        if thread_id is None:
            return None
        forum = self._forums.get(chat_id)
        if not isinstance(thread_id, int) or forum is None or thread_id not in forum.topics:
            raise _ApiError(400, _THREAD_NOT_FOUND)
        return thread_id

    def _inherited_thread(self, chat_id: int, replied: Mapping[str, Any] | None) -> int | None:
        """The topic of the message replied to, in a forum: Telegram files a reply in its topic."""
        forum = self._forums.get(chat_id)
        if forum is None or replied is None or not replied.get("is_topic_message"):
            return None
        thread_id = replied.get("message_thread_id")
        return thread_id if isinstance(thread_id, int) and thread_id in forum.topics else None

    def _put_in_topic(self, message: JsonDict, chat_id: int, thread_id: int) -> None:
        """Add the thread fields; a message that replies to nothing replies to the topic's creation."""
        message["message_thread_id"] = thread_id
        message["is_topic_message"] = True
        if "reply_to_message" not in message:
            message["reply_to_message"] = _without_reply(self._forums[chat_id].created[thread_id])

    def _new_message_id(self, chat_id: int) -> int:
        message_id = self._next_message_id.get(chat_id, 1)
        self._next_message_id[chat_id] = message_id + 1
        return message_id

    def _store_bot_message(self, params: Mapping[str, object], content: JsonDict) -> JsonDict:
        chat_id = self._resolve_chat(params.get("chat_id"))
        if self.strict_private_chats and chat_id > 0 and chat_id not in self._users:
            raise _ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        thread_id = self._topic_thread(chat_id, params)
        message: JsonDict = {
            "message_id": self._new_message_id(chat_id),
            "from": self.bot_user,
            "chat": self._chat_object(chat_id),
            "date": int(time.time()),
        }
        caption = params.get("caption")
        if isinstance(caption, str) and "text" not in content:
            parsed = self._parse(caption, params.get("parse_mode"))
            content = {**content, "caption": parsed.text}
            if parsed.entities:
                content["caption_entities"] = parsed.entities
        message.update(content)
        reply_to = params.get("reply_parameters")
        original: JsonDict | None = None
        if isinstance(reply_to, dict) and isinstance(reply_to.get("message_id"), int):
            original = self._messages.get((chat_id, reply_to["message_id"])) or self._user_messages.get(
                (chat_id, reply_to["message_id"])
            )
            if original is not None:
                message["reply_to_message"] = _without_reply(original)
        if thread_id is None:
            thread_id = self._inherited_thread(chat_id, original)
        if thread_id is not None:
            self._put_in_topic(message, chat_id, thread_id)
        markup = _inline_markup(params.get("reply_markup"))
        if markup is not None:
            message["reply_markup"] = markup
        self._messages[(chat_id, message["message_id"])] = message
        self._bot_message_ids.setdefault(chat_id, []).append(message["message_id"])
        self._sent_log.setdefault(chat_id, []).append(message)
        return message

    def _parse(self, text: str, parse_mode: object) -> ParsedText:
        parsed = parse_formatted_text(text, parse_mode if isinstance(parse_mode, str) else None)
        if parsed.errors:
            # Only reachable without the spec: with it, validation rejected the request already.
            raise _ApiError(400, f"Bad Request: can't parse entities: {parsed.errors[0]}")
        return parsed

    def _find_message(self, params: Mapping[str, object], *, action: str) -> JsonDict | None:
        """The stored bot message an edit/delete targets; ``None`` for inline messages."""
        if "inline_message_id" in params:
            return None
        chat_id, message_id = params.get("chat_id"), params.get("message_id")
        if not isinstance(chat_id, int) or not isinstance(message_id, int):
            raise _ApiError(400, f"Bad Request: message identifier is not specified for message to {action}")
        message = self._messages.get((chat_id, message_id))
        if message is None:
            if action == "edit" and (chat_id, message_id) in self._user_messages:
                raise _ApiError(400, "Bad Request: message can't be edited")
            raise _ApiError(400, f"Bad Request: message to {action} not found")
        if action == "edit" and "forum_topic_created" in message:
            raise _ApiError(400, "Bad Request: message can't be edited")  # a service message
        return message

    def _apply_edit(self, message: JsonDict, changes: Mapping[str, object]) -> JsonDict:
        """Apply ``changes`` (``None`` removes a field) or fail like Telegram when nothing would change."""
        if all(message.get(key) == value for key, value in changes.items()):
            raise _ApiError(400, _NOT_MODIFIED)
        for key, value in changes.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        message["edit_date"] = int(time.time())
        return message

    # ----------------------------------------------------------------------------------- method handlers

    async def _get_me(self, params: dict[str, object]) -> object:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _send_message(self, params: dict[str, object]) -> object:
        parsed = self._parse(str(params.get("text", "")), params.get("parse_mode"))
        content: JsonDict = {"text": parsed.text}
        entities = parsed.entities or params.get("entities")
        if entities:
            content["entities"] = entities
        return self._store_bot_message(params, content)

    async def _send_document(self, params: dict[str, object]) -> object:
        """A document: an upload becomes a file with a new ``file_id``; a string names a known one."""
        document = params.get("document")
        if isinstance(document, UploadedFile):
            file_id = f"doc-{len(self.uploads) + 1}"
            self.uploads[file_id] = document.content
            name, mime_type = document.filename, document.content_type
        elif isinstance(document, str) and document in self.uploads:
            file_id, name, mime_type = document, "file", "application/octet-stream"
        else:
            raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        content: JsonDict = {
            "document": {
                "file_id": file_id,
                "file_unique_id": f"u{file_id}",
                "file_name": name,
                "mime_type": mime_type,
                "file_size": len(self.uploads[file_id]),
            }
        }
        return self._store_bot_message(params, content)

    async def _send_photo(self, params: dict[str, object]) -> object:
        """A photo: an upload (a PNG or JPEG, else Telegram's IMAGE_PROCESS_FAILED) becomes one ``PhotoSize``
        (Telegram makes several; one is enough here) whose bytes a test can read like a document's."""
        photo = params.get("photo")
        if isinstance(photo, str) and photo:
            return self._default_result("sendphoto", params)  # a file_id or URL: stored like any message
        if not isinstance(photo, UploadedFile):
            raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if not photo.content.startswith(b"\x89PNG") and not photo.content.startswith(b"\xff\xd8"):
            raise _ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
        file_id = f"photo-{len(self.uploads) + 1}"
        self.uploads[file_id] = photo.content
        size = {"file_id": file_id, "file_unique_id": f"u{file_id}", "width": 1200, "height": 900}
        content: JsonDict = {"photo": [{**size, "file_size": len(photo.content)}]}
        return self._store_bot_message(params, content)

    def document_content(self, message: Mapping[str, Any]) -> bytes:
        """The bytes of the file a bot message carries as its ``document``."""
        return self.uploads[str(message["document"]["file_id"])]

    async def _edit_message_text(self, params: dict[str, object]) -> object:
        message = self._find_message(params, action="edit")
        parsed = self._parse(str(params.get("text", "")), params.get("parse_mode"))
        if message is None:
            return True
        if "text" not in message:
            raise _ApiError(400, "Bad Request: there is no text in the message to edit")
        entities = parsed.entities or params.get("entities") or None
        # Like Telegram: an edit without reply_markup removes the inline keyboard.
        markup = _inline_markup(params.get("reply_markup"))
        return self._apply_edit(message, {"text": parsed.text, "entities": entities, "reply_markup": markup})

    async def _edit_message_caption(self, params: dict[str, object]) -> object:
        message = self._find_message(params, action="edit")
        caption = params.get("caption")
        parsed = self._parse(caption if isinstance(caption, str) else "", params.get("parse_mode"))
        if message is None:
            return True
        changes: dict[str, object] = {
            "caption": parsed.text or None,
            "caption_entities": parsed.entities or None,
            "reply_markup": _inline_markup(params.get("reply_markup")),
        }
        return self._apply_edit(message, changes)

    async def _edit_message_reply_markup(self, params: dict[str, object]) -> object:
        message = self._find_message(params, action="edit")
        if message is None:
            return True
        return self._apply_edit(message, {"reply_markup": _inline_markup(params.get("reply_markup"))})

    async def _delete_message(self, params: dict[str, object]) -> object:
        chat_id, message_id = params.get("chat_id"), params.get("message_id")
        if isinstance(chat_id, int) and isinstance(message_id, int):
            if self._messages.pop((chat_id, message_id), None) is not None:
                return True
            if self._user_messages.pop((chat_id, message_id), None) is not None:
                return True
        raise _ApiError(400, "Bad Request: message to delete not found")

    async def _get_chat(self, params: dict[str, object]) -> object:
        """``ChatFullInfo`` of a chat the bot knows, or 400 "chat not found" like Telegram.

        Known are private chats of users who wrote to the bot and every group or supergroup: the fake
        takes any group id for one the bot is a member of, as ``sendMessage`` does (a chat that does not
        exist is made with :meth:`fail_chat`). The fields Telegram always
        sends (``accent_color_id``, ``max_reaction_count``, ``accepted_gift_types``) are there, since
        python-telegram-bot refuses to build a ``ChatFullInfo`` without them.
        """
        chat_id = self._resolve_chat(params.get("chat_id"))
        if chat_id > 0:
            user = self._users.get(chat_id)
            if user is None:
                raise _ApiError(400, _CHAT_NOT_FOUND)
            info = user.private_chat()
        else:
            info = self._group_chat(chat_id)
        # Users accept gifts; groups cannot receive any. Without a chosen colour Telegram derives one.
        gifts = chat_id > 0
        info["accent_color_id"] = abs(chat_id) % 7
        info["max_reaction_count"] = _MAX_REACTION_COUNT
        info["accepted_gift_types"] = {
            "unlimited_gifts": gifts,
            "limited_gifts": gifts,
            "unique_gifts": gifts,
            "premium_subscription": gifts,
            "gifts_from_channels": gifts,
        }
        return info

    async def _create_forum_topic(self, params: dict[str, object]) -> object:
        """A new topic and its "topic created" service message, whose id is the topic's thread id.

        Telegram checks the forum before the right; the name's 1-128 characters are the spec's to
        check. The service message is the bot's but not listed in :meth:`messages_to`: tests wait for
        what the bot says, not for Telegram's bookkeeping.
        """
        chat_id = self._resolve_chat(params.get("chat_id"))
        forum = self._forums.get(chat_id)
        if forum is None:
            raise _ApiError(400, _NOT_A_FORUM)
        if not forum.can_manage_topics:
            raise _ApiError(400, _NO_TOPIC_RIGHTS)
        color = params.get("icon_color")
        created: JsonDict = {
            "name": str(params.get("name", "")),
            "icon_color": color if isinstance(color, int) else _DEFAULT_TOPIC_COLOR,
        }
        emoji = params.get("icon_custom_emoji_id")
        if isinstance(emoji, str) and emoji:
            created["icon_custom_emoji_id"] = emoji
        thread_id = self._new_message_id(chat_id)
        service: JsonDict = {
            "message_id": thread_id,
            "from": self.bot_user,
            "chat": self._chat_object(chat_id),
            "date": int(time.time()),
            "message_thread_id": thread_id,
            "forum_topic_created": created,
            "is_topic_message": True,
        }
        forum.topics[thread_id] = {"message_thread_id": thread_id, **created}
        forum.created[thread_id] = service
        self._messages[(chat_id, thread_id)] = service
        return copy.deepcopy(forum.topics[thread_id])

    async def _answer_callback_query(self, params: dict[str, object]) -> object:
        query_id = params.get("callback_query_id")
        if query_id not in self._open_callback_queries:
            raise _ApiError(400, _QUERY_INVALID)
        self._open_callback_queries.discard(str(query_id))
        self.callback_answers.append(dict(params))
        return True

    async def _set_my_commands(self, params: dict[str, object]) -> object:
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        commands = params.get("commands")
        self.commands[key] = (
            [dict(c) for c in commands if isinstance(c, dict)] if isinstance(commands, list) else []
        )
        return True

    async def _get_my_commands(self, params: dict[str, object]) -> object:
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        return self.commands.get(key, [])

    async def _delete_my_commands(self, params: dict[str, object]) -> object:
        key = (_scope_key(params.get("scope")), str(params.get("language_code") or ""))
        self.commands.pop(key, None)
        return True

    async def _set_webhook(self, params: dict[str, object]) -> object:
        url = params.get("url")
        if not url:
            self.webhook = None
            return True
        if not isinstance(url, str) or not url.startswith("https://"):
            raise _ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook = dict(params)
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            # Like getUpdates' parameter: it decides which update kinds are queued from now on.
            self._allowed_updates = frozenset(str(a) for a in allowed) or None
        if params.get("drop_pending_updates"):
            self._drop_pending()
        self._webhook_retry_at = 0.0
        self._webhook_last_error = None
        self._webhook_wakeup.set()
        return True

    async def _delete_webhook(self, params: dict[str, object]) -> object:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._drop_pending()
        self._webhook_wakeup.set()
        return True

    async def _get_webhook_info(self, params: dict[str, object]) -> object:
        info: JsonDict = {
            "url": str(self.webhook["url"]) if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self.webhook:
            info["max_connections"] = self._max_connections(self.webhook)
            if "allowed_updates" in self.webhook:
                info["allowed_updates"] = self.webhook["allowed_updates"]
            if self._webhook_last_error is not None:
                info["last_error_date"], info["last_error_message"] = self._webhook_last_error
        return info

    async def _get_updates(self, params: dict[str, object]) -> object:
        if self.webhook is not None:
            raise _ApiError(409, _WEBHOOK_CONFLICT)
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()  # an older poll still waiting now ends with 409, like on Telegram
        offset = params.get("offset")
        if isinstance(offset, int) and offset != 0:
            self._confirm(offset)
        # Waiters see the confirmation, and tests can tell that a long poll is now parked.
        await self._notify()
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(str(a) for a in allowed) or None
        limit_param = params.get("limit")
        limit = min(max(limit_param, 1), 100) if isinstance(limit_param, int) else 100
        timeout_param = params.get("timeout")
        timeout = float(timeout_param) if isinstance(timeout_param, int | float) else 0.0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise _ApiError(409, _POLL_CONFLICT)
            batch = self._take_batch(limit)
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._closing:
                return batch
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._updates_event.wait(), remaining)

    # ----------------------------------------------------------------------------------------- updates

    def _wake_pollers(self) -> None:
        """Wake every waiting long poll, and webhook delivery if it is on; callable from sync helpers."""
        event, self._updates_event = self._updates_event, asyncio.Event()
        event.set()
        if self.webhook is not None and self._webhook_targets:
            self._webhook_wakeup.set()

    def _confirm(self, offset: int) -> None:
        """Forget updates below ``offset`` (Telegram's acknowledgement); a negative offset keeps the tail."""
        pending = self._pending
        if offset < 0:
            while len(pending) > -offset:
                self.update_ids_confirmed.append(pending.popleft()["update_id"])
            return
        while pending and pending[0]["update_id"] < offset:
            self.update_ids_confirmed.append(pending.popleft()["update_id"])

    def _drop_pending(self) -> None:
        self.update_ids_dropped.extend(u["update_id"] for u in self._pending)
        self._pending.clear()
        self._redeliveries.clear()

    def _take_batch(self, limit: int) -> list[JsonDict]:
        batch: list[JsonDict] = []
        while self._redeliveries and len(batch) < limit:
            batch.append(self._redeliveries.popleft())
        batch.extend(itertools.islice(self._pending, limit - len(batch)))
        return batch

    def enqueue_update(self, raw: JsonDict) -> JsonDict:
        """Queue a hand-made (possibly malformed) update for ``getUpdates``.

        Without ``update_id`` the next id is assigned; an explicit id is kept (ids below the queue head
        are inserted in order). Callback query ids in it become answerable. Update kinds the bot did not
        opt into via ``allowed_updates`` are not queued, like on Telegram (see ``update_ids_filtered``).
        """
        update = dict(raw)
        if "update_id" not in update:
            update["update_id"] = self._next_update_id
        update_id = update["update_id"]
        if isinstance(update_id, int):
            self._next_update_id = max(self._next_update_id, update_id + 1)
        query = update.get("callback_query")
        if isinstance(query, dict) and isinstance(query.get("id"), str):
            self._open_callback_queries.add(query["id"])
        kind = _update_kind(update)
        allowed = self._allowed_updates
        if kind is not None and (kind not in allowed if allowed else kind in _OPT_IN_UPDATES):
            self.update_ids_filtered.append(update_id)
            return update
        if self._pending and isinstance(update_id, int) and update_id < self._pending[-1]["update_id"]:
            ordered = sorted([*self._pending, update], key=lambda u: int(u["update_id"]))
            self._pending = deque(ordered)
        else:
            self._pending.append(update)
        self._wake_pollers()
        return update

    def redeliver(self, update: JsonDict) -> JsonDict:
        """Deliver ``update`` again with the same ``update_id``, even if the bot already confirmed it.

        Telegram does this when an acknowledgement is lost (a crash between fetching and confirming, a
        webhook answered too late); bots must process each update id only once.
        """
        again = copy.deepcopy(update)
        self._redeliveries.append(again)
        query = again.get("callback_query")
        if isinstance(query, dict) and isinstance(query.get("id"), str):
            self._open_callback_queries.add(query["id"])
        self._wake_pollers()
        return again

    def user_sends_text(self, user: FakeUser, text: str) -> JsonDict:
        """The user writes ``text`` in their private chat; commands get a ``bot_command`` entity.

        The entity covers only the command word (``/start`` in ``/start abc``), as Telegram's does.
        """
        self._users[user.id] = user
        message: JsonDict = {
            "message_id": self._new_message_id(user.id),
            "from": user.to_dict(),
            "chat": user.private_chat(),
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0] if text.strip() else text
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
        self._user_messages[(user.id, message["message_id"])] = message
        return self.enqueue_update({"message": message})

    def user_writes_in_group(
        self,
        user: FakeUser,
        chat_id: int,
        text: str,
        *,
        reply_to: Mapping[str, Any] | None = None,
        title: str = "Team",
        thread_id: int | None = None,
    ) -> JsonDict:
        """The user writes ``text`` in a group (a supergroup when the id starts with -100), optionally as a
        reply to a message there, which the update carries as it is stored now (edits applied).

        In a forum, ``thread_id`` puts the message into that topic (it must exist: created with
        ``createForumTopic``), and so does replying to a message in a topic. A topic message then
        carries ``message_thread_id``, ``is_topic_message`` and, when it replies to nothing, the
        topic's "topic created" service message as ``reply_to_message``: that is what Telegram
        sends, and a bot must not take it for a reply the user chose. The message is remembered, so
        the bot can reply to it (and its reply lands in the same topic).
        """
        forum = self._forums.get(chat_id)
        if thread_id is not None and (forum is None or thread_id not in forum.topics):
            raise ValueError(f"chat {chat_id} has no topic {thread_id}; create it with createForumTopic")
        self._users[user.id] = user
        self._group_titles[chat_id] = title
        message: JsonDict = {
            "message_id": self._new_message_id(chat_id),
            "from": user.to_dict(),
            "chat": self._group_chat(chat_id),
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
        current: Mapping[str, Any] | None = None
        if reply_to is not None:
            key = (chat_id, int(reply_to["message_id"]))
            current = self._messages.get(key) or self._user_messages.get(key) or dict(reply_to)
            message["reply_to_message"] = _without_reply(current)
        if thread_id is None:
            thread_id = self._inherited_thread(chat_id, current)
        if thread_id is not None:
            self._put_in_topic(message, chat_id, thread_id)
        self._user_messages[(chat_id, message["message_id"])] = message
        return self.enqueue_update({"message": message})

    def user_presses_button(
        self,
        user: FakeUser,
        message: Mapping[str, Any],
        callback_data: str,
        *,
        require_button: bool = True,
    ) -> JsonDict:
        """The user presses an inline button under a bot ``message``.

        The update carries the message as it is stored now (edits applied). With ``require_button`` the
        message must currently show a button with that ``callback_data``; pass ``False`` to simulate
        stale or forged data.
        """
        self._users[user.id] = user
        chat_id = int(message["chat"]["id"])
        current = self._messages.get((chat_id, int(message["message_id"]))) or dict(message)
        if require_button:
            keyboard = (current.get("reply_markup") or {}).get("inline_keyboard", [])
            offered = [b.get("callback_data") for row in keyboard for b in row]
            if callback_data not in offered:
                raise AssertionError(
                    f"message {current.get('message_id')} in chat {chat_id} shows no button with "
                    f"callback_data {callback_data!r}; it offers {offered!r}"
                )
        query_id = str(next(self._callback_ids))
        self._open_callback_queries.add(query_id)
        shown = copy.deepcopy(current)
        if chat_id in self._forums and isinstance(shown.get("chat"), dict):
            shown["chat"]["is_forum"] = True  # the chat as it is now, even if it became a forum later
        query: JsonDict = {
            "id": query_id,
            "from": user.to_dict(),
            "message": shown,
            "chat_instance": str(-(abs(chat_id) * 1_000 + 7)),
            "data": callback_data,
        }
        return self.enqueue_update({"callback_query": query})

    @property
    def pending_updates(self) -> list[JsonDict]:
        """Updates queued and not yet confirmed (by a ``getUpdates`` offset or a webhook's 2xx)."""
        return [*self._redeliveries, *self._pending]

    # ---------------------------------------------------------------------------------- webhook delivery

    def deliver_webhooks_to(self, targets: Iterable[str]) -> None:
        """POST updates to these local origins (e.g. ``http://127.0.0.1:8443``) while a webhook is set.

        The registered webhook URL is a public https:// address that does not exist in tests, so the
        test names where it really leads: its path and query are appended to each target. Several
        targets are used round-robin, like a load balancer in front of replicas. An empty list stops.

        Like Telegram: the body is the update as JSON, the ``secret_token`` given to ``setWebhook``
        comes back in ``X-Telegram-Bot-Api-Secret-Token``, an update counts as delivered (confirmed,
        no longer pending) only on a 2xx answer, and anything else is retried after
        ``webhook_retry_delay`` on the next target, until a 2xx. Updates are sent in order with at most
        ``max_connections`` (``setWebhook``, default 40) in flight; while a retry waits, nothing newer
        is sent. Each attempt is recorded in :attr:`webhook_deliveries`.
        """
        checked = tuple(t.rstrip("/") for t in targets)
        for target in checked:
            if not target.startswith(("http://", "https://")):
                raise ValueError(f"webhook target must be an http(s):// origin, got {target!r}")
        self._webhook_targets = checked
        self._webhook_wakeup.set()

    @staticmethod
    def _max_connections(webhook: Mapping[str, object]) -> int:
        value = webhook.get("max_connections")
        return min(max(value, 1), 100) if isinstance(value, int) else 40

    async def _run_webhook_delivery(self) -> None:
        """Start deliveries whenever something changed; runs from :meth:`start` to :meth:`stop`."""
        loop = asyncio.get_running_loop()
        while not self._closing:
            self._webhook_wakeup.clear()
            delay = self._dispatch_webhooks(loop.time())
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that arrives as the event is set,
            # which is exactly what stop() does, and the task would then wait forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._webhook_wakeup.wait()

    def _dispatch_webhooks(self, now: float) -> float | None:
        """Start attempts while connections are free; returns the seconds until a retry is due, if any."""
        webhook, targets = self.webhook, self._webhook_targets
        if webhook is None or not targets or self._closing:
            return None
        if now < self._webhook_retry_at:
            return self._webhook_retry_at - now
        url, secret = str(webhook["url"]), webhook.get("secret_token")
        limit = self._max_connections(webhook)
        while len(self._webhook_in_flight) < limit and (update := self._next_undelivered()) is not None:
            target = targets[next(self._webhook_turn) % len(targets)]
            self._webhook_in_flight.append(update)
            attempt = asyncio.create_task(
                self._deliver_update(update, target, _webhook_post_url(target, url), secret),
                name=f"fake webhook delivery of update {update.get('update_id')}",
            )
            self._webhook_attempts.add(attempt)
            attempt.add_done_callback(self._webhook_attempts.discard)
        return None

    def _next_undelivered(self) -> JsonDict | None:
        """The oldest pending update not in flight (redeliveries first, as getUpdates hands them out)."""
        for update in itertools.chain(self._redeliveries, self._pending):
            if not any(update is busy for busy in self._webhook_in_flight):
                return update
        return None

    async def _deliver_update(self, update: JsonDict, target: str, url: str, secret: object) -> None:
        """POST one update, then confirm it on a 2xx or schedule the retry."""
        started = self._clock()
        try:
            status, error = await self._post_update(update, url, secret)
        except Exception as exc:  # a bug in the fake must fail the test, not stop delivery silently
            _LOGGER.exception("fake webhook delivery failed")
            self.internal_errors.append(f"webhook delivery: {exc!r}")
            status, error = None, repr(exc)
        finally:
            self._webhook_in_flight = [u for u in self._webhook_in_flight if u is not update]
        attempt = WebhookDelivery(target, url, update["update_id"], status, error, started)
        self.webhook_deliveries.append(attempt)
        if attempt.delivered:
            self._forget_delivered(update)
        else:
            self._webhook_retry_at = asyncio.get_running_loop().time() + self.webhook_retry_delay
            message = f"Wrong response from the webhook: {status}" if status is not None else str(error)
            self._webhook_last_error = (int(time.time()), message)
        self._webhook_wakeup.set()
        await self._notify()

    async def _post_update(self, update: JsonDict, url: str, secret: object) -> tuple[int | None, str | None]:
        """The target's HTTP status, or ``None`` and why no answer came."""
        if self._webhook_session is None:
            timeout = aiohttp.ClientTimeout(total=_WEBHOOK_TIMEOUT)
            self._webhook_session = aiohttp.ClientSession(timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if isinstance(secret, str) and secret:
            headers[_SECRET_HEADER] = secret
        body = json.dumps(update, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        try:
            async with self._webhook_session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status, None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    def _forget_delivered(self, update: JsonDict) -> None:
        """Remove a confirmed update from the queues (it may be gone already: drop_pending_updates)."""
        for queue in (self._redeliveries, self._pending):
            for index, queued in enumerate(queue):
                if queued is update:
                    del queue[index]
                    self.update_ids_confirmed.append(update["update_id"])
                    return

    async def _stop_webhook_delivery(self) -> None:
        tasks = [*self._webhook_attempts]
        if self._webhook_task is not None:
            tasks.append(self._webhook_task)
            self._webhook_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._webhook_attempts.clear()
        self._webhook_in_flight.clear()
        if self._webhook_session is not None:
            session, self._webhook_session = self._webhook_session, None
            await session.close()

    # ------------------------------------------------------------------------------------- state helpers

    def messages_to(self, chat_id: int) -> list[JsonDict]:
        """The bot's messages in ``chat_id`` as they are now (edits applied, deletions gone), oldest first."""
        ids = self._bot_message_ids.get(chat_id, [])
        return [copy.deepcopy(m) for i in ids if (m := self._messages.get((chat_id, i))) is not None]

    def topics(self, chat_id: int) -> list[JsonDict]:
        """The forum's ``ForumTopic`` objects as ``createForumTopic`` returned them, in creation order."""
        forum = self._forums.get(chat_id)
        return [copy.deepcopy(t) for t in forum.topics.values()] if forum is not None else []

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """A member deletes a topic in their client: it and its messages are gone (bots get no update),
        and calls naming it answer "message thread not found", replies to its messages "not found"."""
        forum = self._forums[chat_id]
        del forum.topics[thread_id]
        forum.created.pop(thread_id, None)
        for key, message in list(self._messages.items()):
            if key[0] == chat_id and message.get("message_thread_id") == thread_id:
                del self._messages[key]

    def messages_in_topic(self, chat_id: int, thread_id: int) -> list[JsonDict]:
        """The bot's messages in one topic, as :meth:`messages_to` shows them (not the service message)."""
        return [
            m
            for m in self.messages_to(chat_id)
            if m.get("is_topic_message") and m.get("message_thread_id") == thread_id
        ]

    def sent_texts(self, chat_id: int) -> list[str]:
        """Texts of :meth:`messages_to` (as displayed: markup parsed, edits applied)."""
        return [str(m["text"]) for m in self.messages_to(chat_id) if "text" in m]

    def requests_for(self, method: str) -> list[RecordedRequest]:
        """All requests of ``method`` (case-insensitive), including rejected ones, in arrival order."""
        return list(self._by_method.get(method.lower(), []))

    def commands_for(
        self, scope: Mapping[str, object] | None = None, language_code: str = ""
    ) -> list[JsonDict]:
        """Commands the bot set for ``scope`` (``None``: default scope) and ``language_code``."""
        return list(self.commands.get((_scope_key(scope), language_code), []))

    def assert_clean(self) -> None:
        """Fail if the bot violated the spec or crashed the fake; call at the end of e2e tests."""
        if self.violations or self.internal_errors:
            raise AssertionError(
                f"Bot API violations: {self.violations!r}; fake server errors: {self.internal_errors!r}"
            )

    # ------------------------------------------------------------------------------------------ waiting

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,  # noqa: ASYNC109  a deadline that fails the test with a summary, by design
    ) -> None:
        """Wait until ``predicate()`` holds; it is re-checked after every request the server answers."""
        await self._wait(lambda: True if predicate() else None, timeout, lambda: "condition never held")

    async def wait_for_message(
        self,
        chat_id: int,
        predicate: Callable[[JsonDict], bool] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109  a deadline that fails the test with a summary, by design
    ) -> JsonDict:
        """The oldest message the bot sent to ``chat_id`` that no earlier call returned (and that matches).

        Consuming instead of "next after now" means a reply that arrived before the test started waiting
        is not missed. Returns a copy with the message's current state.
        """

        def find() -> JsonDict | None:
            log = self._sent_log.get(chat_id, [])
            consumed = self._consumed_messages.setdefault(chat_id, set())
            cursor = self._message_cursor.get(chat_id, 0)
            found = None
            for message in itertools.islice(log, cursor, None):
                if message["message_id"] not in consumed and (predicate is None or predicate(message)):
                    consumed.add(message["message_id"])
                    found = copy.deepcopy(message)
                    break
            while cursor < len(log) and log[cursor]["message_id"] in consumed:
                cursor += 1
            self._message_cursor[chat_id] = cursor
            return found

        def describe() -> str:
            texts = [m.get("text", m.get("caption")) for m in self._sent_log.get(chat_id, [])]
            return (
                f"no {'matching ' if predicate else ''}new message to chat {chat_id}; it received {texts!r}"
            )

        return await self._wait(find, timeout, describe)

    async def wait_for_request(
        self,
        method: str,
        predicate: Callable[[RecordedRequest], bool] | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109  a deadline that fails the test with a summary, by design
    ) -> RecordedRequest:
        """The oldest answered request of ``method`` that no earlier call returned (and that matches)."""
        key = method.lower()

        def find() -> RecordedRequest | None:
            records = self._by_method.get(key, [])
            cursor = self._request_cursor.get(key, 0)
            found = None
            for record in itertools.islice(records, cursor, None):
                if record.status is None or record.seq in self._consumed_requests:
                    continue
                if predicate is None or predicate(record):
                    self._consumed_requests.add(record.seq)
                    found = record
                    break
            while cursor < len(records) and records[cursor].seq in self._consumed_requests:
                cursor += 1
            self._request_cursor[key] = cursor
            return found

        def describe() -> str:
            seen = [(r.params, r.status) for r in self._by_method.get(key, [])][-10:]
            return f"no {'matching ' if predicate else ''}new {method} request; last ones: {seen!r}"

        return await self._wait(find, timeout, describe)

    async def _wait(self, find: Callable[[], _T | None], seconds: float, describe: Callable[[], str]) -> _T:
        """Re-run ``find`` after every answered request until it returns something or time runs out."""
        try:
            async with asyncio.timeout(seconds), self._activity:
                while (found := find()) is None:
                    await self._activity.wait()
                return found
        except TimeoutError:
            raise AssertionError(f"timed out after {seconds}s: {describe()}\n{self._summary()}") from None

    def _summary(self) -> str:
        recent = ", ".join(f"{r.method}->{r.status}" for r in self.requests[-15:])
        return (
            f"requests so far: {len(self.requests)} (last: {recent}); "
            f"pending updates: {len(self._pending)}; violations: {self.violations!r}; "
            f"internal errors: {self.internal_errors!r}"
        )


class FakeBotApiThread:
    """Runs a :class:`FakeBotApi` on its own event loop in a background thread.

    For bots in a subprocess (the test's loop is not the bot's) and for benchmarks (the fake's work must
    not compete with the bot's loop). Server helpers are not thread-safe: run them through :meth:`call`
    (plain functions) or :meth:`run` (coroutines such as ``wait_for_message``).
    """

    def __init__(self, token: str = DEFAULT_TOKEN, **kwargs: Any) -> None:
        """Arguments are those of :class:`FakeBotApi`; nothing starts until :meth:`start`."""
        self._token = token
        self._kwargs = kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: FakeBotApi | None = None

    @property
    def server(self) -> FakeBotApi:
        """The running server; read its state through :meth:`call` while it runs."""
        if self._server is None:
            raise RuntimeError("FakeBotApiThread is not started")
        return self._server

    @property
    def url(self) -> str:
        """Root URL of the running server."""
        return self.server.url

    def start(self, timeout: float = 10.0) -> FakeBotApi:
        """Start the loop thread and the server; returns once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("FakeBotApiThread already started")
        ready: concurrent.futures.Future[FakeBotApi] = concurrent.futures.Future()
        loop = asyncio.new_event_loop()

        def main() -> None:
            asyncio.set_event_loop(loop)
            try:
                server = FakeBotApi(self._token, **self._kwargs)
                loop.run_until_complete(server.start())
            except BaseException as exc:
                ready.set_exception(exc)
                loop.close()
                return
            ready.set_result(server)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=main, name="FakeBotApi", daemon=True)
        self._thread.start()
        try:
            self._server = ready.result(timeout)
        except BaseException:
            self._thread.join(timeout)
            self._thread = self._loop = None
            raise
        return self._server

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server, the loop and the thread; safe to call twice."""
        if self._thread is None or self._loop is None:
            return
        try:
            if self._server is not None:
                self.run(self._server.stop(), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._thread = self._loop = None

    def call(self, fn: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run a synchronous ``fn(*args)`` on the server's loop (thread-safe) and return its result."""
        loop = self._require_loop()
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def invoke() -> None:
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(invoke)
        return future.result()

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        """Run a coroutine (e.g. ``server.wait_for_message(...)``) on the server's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._require_loop()).result(timeout)

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("FakeBotApiThread is not started")
        return self._loop

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
