"""Webhook mode: Telegram posts each update to us, and it is stored before Telegram hears "200".

With ``WEBHOOK_URL`` set (or ``kundenpuls run --webhook URL``) the bot does not poll. At start every
replica calls ``setWebhook`` with the same URL, secret and update kinds (idempotent, so several replicas
starting at once do no harm), and Telegram POSTs updates to that URL. The handler lives on the same
aiohttp server as the purchase API, so a load balancer in front of several processes can send any post to
any replica: each one stores the update in the shared inbox (idempotent on ``update_id``) and the update
workers take it from there. The webhook is left registered on stop, because other replicas still serve it.

The path rule: the webhook is served at the path of ``WEBHOOK_URL``
(``https://shop.example/kundenpuls/telegram`` → ``POST /kundenpuls/telegram``). A URL without a path, or
with just ``/``, gets :data:`DEFAULT_PATH` appended, both where it is served and in what is registered
(``https://shop.example`` → ``https://shop.example/telegram/webhook``). A reverse proxy forwards that path
unchanged to ``HTTP_HOST:HTTP_PORT``. The path never contains the bot token (a token in a path ends up in
every access log); the ``X-Telegram-Bot-Api-Secret-Token`` header proves that a post comes from Telegram.

Answers: 403 without the right secret (nothing is read or stored), 413 for a body over
:data:`MAX_UPDATE_BYTES`, 400 for anything that is not a JSON object with an integer ``update_id``, 500
when the database cannot take the update (Telegram retries until it gets a 2xx, so nothing is lost), and
200 once the update is committed, also for an ``update_id`` stored before (Telegram redelivers). Logs name
status codes and update ids only, never a body or the secret.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from telegram import Bot
from telegram.error import BadRequest

from bot.http_api import HEALTH_PATH, PURCHASES_PATH
from bot.polling import ALLOWED_UPDATES
from bot.settings import Settings, SettingsError
from storage import inbox
from storage.db import unit_of_work
from storage.models import utcnow

log = logging.getLogger(__name__)

DEFAULT_PATH: Final = "/telegram/webhook"
SECRET_HEADER: Final = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
# Telegram's updates are a few KiB at most (a 4096-character message with entities); 1 MiB is generous
# without letting anyone holding the secret make the bot buffer more.
MAX_UPDATE_BYTES: Final = 1024 * 1024
# Storing runs in the loop's default thread pool, which the bot shares; Telegram opens up to 40
# connections at once, and they must not take every thread and database connection.
MAX_CONCURRENT_STORES: Final = 4
_READ_CHUNK_BYTES: Final = 16 * 1024
_MAX_UPDATE_ID: Final = 2**63 - 1  # the column is a BIGINT
# Letters, digits and the unreserved punctuation: anything else would be percent-encoded by some clients
# and not by others, and aiohttp's router reads braces as placeholders.
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")


class WebhookRefused(Exception):
    """Telegram refused ``setWebhook`` (a host it cannot resolve, a port it does not serve, ...)."""


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """Where Telegram posts: the URL registered with ``setWebhook`` and the path this server answers."""

    url: str
    path: str


def webhook_endpoint(url: str, *, token: str | None = None) -> WebhookEndpoint:
    """Return the URL to register and the path to serve for ``WEBHOOK_URL`` (see the module docstring).

    Raise SettingsError (one line) when the path cannot work: characters outside the plain set, a path the
    purchase API uses already, or the bot token anywhere in the URL.
    """
    if token and token in urllib.parse.unquote(url):
        # The URL is not shown: it contains the token.
        raise SettingsError(
            "WEBHOOK_URL contains the bot token: choose a path without it (the secret header, "
            "WEBHOOK_SECRET, is what proves a post comes from Telegram)"
        )
    parts = urllib.parse.urlsplit(url)
    path = parts.path
    if path in ("", "/"):
        path = DEFAULT_PATH
        url = urllib.parse.urlunsplit(parts._replace(path=path))
    if not _PLAIN_PATH.fullmatch(path):
        raise SettingsError(f"WEBHOOK_URL (got {url!r}): its path may only use letters, digits and - . _ ~ /")
    if path in (PURCHASES_PATH, HEALTH_PATH):
        raise SettingsError(f"WEBHOOK_URL (got {url!r}): the path {path} is taken by the purchase API")
    return WebhookEndpoint(url=url, path=path)


def webhook_for(
    settings: Settings, *, engine: Engine, on_stored: Callable[[], None]
) -> TelegramWebhook | None:
    """Build the webhook in webhook mode, or return None in polling mode.

    Raise SettingsError when WEBHOOK_SECRET is missing or the URL cannot work (the CLI checks both before
    anything starts).
    """
    if settings.webhook_url is None:
        return None
    secret = settings.require_webhook_secret()
    endpoint = webhook_endpoint(settings.webhook_url, token=settings.token)
    return TelegramWebhook(engine=engine, endpoint=endpoint, secret=secret, on_stored=on_stored)


async def use_polling(bot: Bot) -> None:
    """Remove a webhook left from webhook mode, so ``getUpdates`` is not refused with 409.

    Without ``drop_pending_updates``: what Telegram holds for the old webhook is then polled instead.
    """
    await bot.delete_webhook()


class _Refusal(Exception):
    """A post answered with a 4xx JSON error; raised while reading, turned into a response once."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TelegramWebhook:
    """The aiohttp handler for Telegram's posts, and its registration with ``setWebhook``."""

    def __init__(
        self, *, engine: Engine, endpoint: WebhookEndpoint, secret: str, on_stored: Callable[[], None]
    ) -> None:
        if not secret:
            raise ValueError("a webhook without a secret would accept anyone's updates")
        self.endpoint = endpoint
        self._engine = engine
        self._secret = secret
        # Bytes, because compare_digest refuses non-ASCII str.
        self._secret_bytes = secret.encode("utf-8")
        self._on_stored = on_stored
        self._store_slots = asyncio.Semaphore(MAX_CONCURRENT_STORES)

    @property
    def path(self) -> str:
        """The path this server answers Telegram's posts on."""
        return self.endpoint.path

    async def register(self, bot: Bot) -> None:
        """Ask Telegram to post updates here; every replica does it with the same values (idempotent)."""
        try:
            await bot.set_webhook(
                url=self.endpoint.url, secret_token=self._secret, allowed_updates=list(ALLOWED_UPDATES)
            )
        except BadRequest as error:
            raise WebhookRefused(
                f"Telegram refused WEBHOOK_URL {self.endpoint.url}: {error.message}"
            ) from None
        log.info("webhook registered: Telegram posts updates to %s", self.endpoint.url)

    async def handle(self, request: web.Request) -> web.Response:
        """Store the update Telegram posted, then answer 200; refuse a post without the right secret."""
        if not self._has_secret(request):
            log.warning("webhook refused a post without the right secret token (403)")
            return _json({"error": f"missing or wrong {SECRET_HEADER}"}, status=403)
        try:
            update = _parse_update(await _read_body(request))
        except _Refusal as refusal:
            log.warning("webhook refused a post (%d): %s", refusal.status, refusal.message)
            return _json({"error": refusal.message}, status=refusal.status)
        update_id = int(update["update_id"])
        try:
            async with self._store_slots:
                await asyncio.to_thread(self._store, update)
        except SQLAlchemyError as error:
            # The first line names the failure ("connection refused"); the rest would show the statement.
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            log.error(
                "webhook could not store update %d (%s); answered 500, Telegram retries", update_id, reason
            )
            return _json({"error": "the update could not be stored; retry later"}, status=500)
        log.debug("webhook stored update %d", update_id)
        # Woken for a repeated update too: store_updates cannot tell a new row from a known one on every
        # database (its count is 0 on PostgreSQL), and a wake-up with nothing to do costs one query.
        self._wake()
        return _json({"ok": True}, status=200)

    def _has_secret(self, request: web.Request) -> bool:
        given = request.headers.get(SECRET_HEADER)
        if given is None:
            return False
        # surrogateescape keeps odd header bytes distinct instead of failing on them.
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._secret_bytes)

    def _store(self, update: dict[str, Any]) -> None:
        """Commit the update to the inbox, once per update_id (runs in a worker thread)."""
        with unit_of_work(self._engine) as session:
            inbox.store_updates(session, [update], now=utcnow())

    def _wake(self) -> None:
        """Wake the update worker; the update is committed, so a failing hook must not turn into a 500."""
        try:
            self._on_stored()
        except Exception:
            log.exception("waking the update worker failed; it finds the update on its next round")


async def _read_body(request: web.Request) -> bytes:
    too_large = _Refusal(413, f"the body is larger than {MAX_UPDATE_BYTES // 1024} KiB")
    if request.content_length is not None and request.content_length > MAX_UPDATE_BYTES:
        raise too_large
    # Chunked bodies announce no length, so the limit is also enforced while reading.
    raw = bytearray()
    async for chunk in request.content.iter_chunked(_READ_CHUNK_BYTES):
        raw.extend(chunk)
        if len(raw) > MAX_UPDATE_BYTES:
            raise too_large
    return bytes(raw)


def _parse_update(raw: bytes) -> dict[str, Any]:
    try:
        update = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Refusal(400, "the body is not valid JSON (UTF-8)") from None
    if not isinstance(update, dict):
        raise _Refusal(400, "the body must be a JSON object (a Telegram update)")
    update_id = update.get("update_id")
    # bool is an int in Python; JSON's true is not an update id.
    if not isinstance(update_id, int) or isinstance(update_id, bool) or not 0 <= update_id <= _MAX_UPDATE_ID:
        raise _Refusal(400, "the update has no integer update_id")
    return update


def _refuse_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which Python's json accepts but JSON does not."""
    raise ValueError(f"{name} is not JSON")


def _json(data: dict[str, Any], *, status: int) -> web.Response:
    return web.json_response(data, status=status)
