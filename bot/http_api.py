"""The purchase ingestion API the shop calls after every sale, served inside the bot's own event loop.

The bot already runs an asyncio loop for Telegram, so the API lives in that loop (aiohttp.web) instead of a
second process: one thing to deploy, one database engine, and a new purchase can wake the survey sweep
directly. Database work is synchronous SQLAlchemy, so it runs in a worker thread and never stalls the loop
that also talks to Telegram.

Every answer is JSON, including errors the router produces (404, 405) and unexpected failures (500 without
a traceback). Logs carry status codes and counts only: order ids, customer ids, names and keys stay out.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError

from bot.settings import Settings
from storage.db import unit_of_work
from storage.purchases import RecordedPurchase, record_purchase
from surveys.loader import POST_PURCHASE_SURVEY_ID
from surveys.purchase_report import PurchaseReport, describe_validation_error

if TYPE_CHECKING:
    from bot.webhook import TelegramWebhook

log = logging.getLogger(__name__)

PURCHASES_PATH: Final = "/api/purchases"
HEALTH_PATH: Final = "/healthz"
# A purchase report is a few hundred bytes; 64 KiB leaves room for long names without letting a client
# make the bot buffer megabytes.
MAX_BODY_BYTES: Final = 64 * 1024
STARTING_RETRY_AFTER_SECONDS: Final = 5
_READ_CHUNK_BYTES: Final = 8 * 1024
# Recording runs in the loop's default thread pool, which the bot shares; a burst of reports must not take
# every thread (and database connection) while the bot's own work waits behind it.
MAX_CONCURRENT_RECORDS: Final = 4


class _Reject(Exception):
    """A request the API answers with a 4xx/503 JSON error; raised deep, turned into a response once."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def response(self) -> web.Response:
        return _json({"error": self.message}, status=self.status, headers=self.headers)


class _Reject422(_Reject):
    """Validation problems: the first one as ``error``, all of them as ``problems``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(422, problems[0] if problems else "the purchase is not valid")
        self.problems = problems

    def response(self) -> web.Response:
        return _json({"error": self.message, "problems": self.problems}, status=422)


def _json(data: dict[str, Any], *, status: int, headers: dict[str, str] | None = None) -> web.Response:
    """Answer with a JSON body; aiohttp adds ``charset=utf-8`` to the content type."""
    return web.json_response(data, status=status, headers=headers)


class _PurchaseApi:
    """The request handlers, holding what they need from the bot (engine, settings, bot state)."""

    def __init__(
        self,
        *,
        engine: Engine,
        settings: Settings,
        bot_username: Callable[[], str | None],
        is_ready: Callable[[], bool],
        on_purchase_recorded: Callable[[], None] | None,
        health: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    ) -> None:
        self._health = health
        self._engine = engine
        self._settings = settings
        self._bot_username = bot_username
        self._is_ready = is_ready
        self._on_purchase_recorded = on_purchase_recorded
        self._new_orders = 0
        self._known_orders = 0
        self._record_slots = asyncio.Semaphore(MAX_CONCURRENT_RECORDS)

    async def healthz(self, _request: web.Request) -> web.Response:
        """Report readiness so a load balancer or compose healthcheck waits until the bot can take work,
        and, once ready, what delivery looks like (429s, the staff chat) for whoever reads it."""
        if not self._is_ready():
            return _json({"status": "starting"}, status=503)
        body: dict[str, Any] = {"status": "ok"}
        if self._health is not None:
            try:
                body.update(await self._health())
            except Exception:  # the database is away: still alive, but say that the report is missing
                log.warning("the health report could not be read from the database", exc_info=True)
                body["status"] = "degraded"
        return _json(body, status=200)

    async def post_purchase(self, request: web.Request) -> web.Response:
        """Validate one purchase report and record it idempotently (201 new, 200 already known)."""
        try:
            self._authorize(request)
            body = await self._read_json_object(request)
            report = self._validate(body)
            username = self._bot_username()
            if not username:
                # Without the bot's username there is no start link to hand back; the shop retries.
                raise _Reject(
                    503,
                    "the bot is still starting; try again in a few seconds",
                    headers={"Retry-After": str(STARTING_RETRY_AFTER_SECONDS)},
                )
        except _Reject as reject:
            log.info("purchase API answered %d", reject.status)
            return reject.response()

        async with self._record_slots:
            recorded = await asyncio.to_thread(self._record, report)
        if recorded.created:
            self._new_orders += 1
            log.info("purchase API recorded a new order (%d new since start)", self._new_orders)
            self._notify_recorded()
        else:
            self._known_orders += 1
            log.info("purchase API answered a known order (%d repeats since start)", self._known_orders)
        return _json(
            {
                "customer_id": recorded.customer_id,
                "order_id": recorded.order_id,
                "survey_due_at": None
                if recorded.survey_skipped
                else recorded.survey_due_at.astimezone(UTC).isoformat(),
                **({"survey_skipped": recorded.survey_skipped} if recorded.survey_skipped else {}),
                "start_link": f"https://t.me/{username}?start={recorded.link_token}",
            },
            status=201 if recorded.created else 200,
        )

    def _authorize(self, request: web.Request) -> None:
        key = self._settings.ingest_api_key
        if key is None:
            raise _Reject(503, "purchase ingestion is disabled: set INGEST_API_KEY")
        challenge = {"WWW-Authenticate": "Bearer"}
        header = request.headers.get("Authorization")
        if header is None or not header.strip():
            raise _Reject(
                401,
                "missing Authorization header: send 'Authorization: Bearer <INGEST_API_KEY>'",
                headers=challenge,
            )
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":
            raise _Reject(401, "the Authorization header must use the Bearer scheme", headers=challenge)
        # Bytes, because compare_digest refuses non-ASCII str; surrogatepass keeps odd header bytes distinct.
        given = credentials.strip().encode("utf-8", "surrogatepass")
        expected = key.get_secret_value().strip().encode("utf-8", "surrogatepass")
        if not hmac.compare_digest(given, expected):
            raise _Reject(401, "the API key is not valid", headers=challenge)

    async def _read_json_object(self, request: web.Request) -> dict[str, Any]:
        if request.content_type != "application/json":
            raise _Reject(415, "send the purchase as JSON with 'Content-Type: application/json'")
        too_large = _Reject(413, f"the body is larger than {MAX_BODY_BYTES // 1024} KiB")
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise too_large
        # Chunked bodies announce no length, so the limit is also enforced while reading.
        raw = bytearray()
        async for chunk in request.content.iter_chunked(_READ_CHUNK_BYTES):
            raw.extend(chunk)
            if len(raw) > MAX_BODY_BYTES:
                raise too_large
        try:
            body = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise _Reject(400, "the body is not valid JSON (UTF-8)") from None
        if not isinstance(body, dict):
            raise _Reject(400, f"the body must be a JSON object, not {_json_kind(body)}")
        return body

    def _validate(self, body: dict[str, Any]) -> PurchaseReport:
        try:
            return PurchaseReport.model_validate(body, context={"timezone": self._settings.timezone})
        except ValidationError as error:
            problems = [describe_validation_error(dict(detail)) for detail in error.errors(include_url=False)]
            raise _Reject422(problems) from None

    def _record(self, report: PurchaseReport) -> RecordedPurchase:
        """Store the purchase in its own unit of work (runs in a worker thread)."""
        with unit_of_work(self._engine) as session:
            return record_purchase(
                session=session,
                report=report,
                survey_id=POST_PURCHASE_SURVEY_ID,
                survey_delay=self._settings.survey_delay,
                source="api",
                policy=self._settings.contact_policy,
            )

    def _notify_recorded(self) -> None:
        """Wake the survey sweep; the purchase is committed already, so a failing hook must not turn it
        into an error the shop would retry."""
        if self._on_purchase_recorded is None:
            return
        try:
            self._on_purchase_recorded()
        except Exception:
            log.exception("on_purchase_recorded failed; the survey goes out with the next regular sweep")


def _reject_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which Python's json accepts but JSON does not."""
    raise ValueError(f"{name} is not JSON")


def _json_kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


def _hide_sql_parameters(error: BaseException) -> None:
    """Keep bound values (customer data) out of the logged traceback of a failed statement."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StatementError):
            current.hide_parameters = True
        current = current.__cause__ or current.__context__


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn router errors into JSON and unexpected failures into a bare 500, never a traceback."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        headers = {name: value for name, value in error.headers.items() if name.lower() in ("allow",)}
        if error.status == 404:
            message = f"no such endpoint; use POST {PURCHASES_PATH} or GET {HEALTH_PATH}"
        elif error.status == 405:
            message = f"method {request.method} is not allowed here"
        else:
            message = error.reason
        return _json({"error": message}, status=error.status, headers=headers)
    except Exception as error:
        _hide_sql_parameters(error)
        log.error("purchase API failed on %s %s", request.method, request.path, exc_info=error)
        return _json({"error": "internal error"}, status=500)


def build_http_app(
    *,
    engine: Engine,
    settings: Settings,
    bot_username: Callable[[], str | None],
    is_ready: Callable[[], bool],
    on_purchase_recorded: Callable[[], None] | None = None,
    webhook: TelegramWebhook | None = None,
    health: Callable[[], Awaitable[dict[str, Any]]] | None = None,
) -> web.Application:
    """Build the API application.

    ``bot_username`` returns None until the bot knows its own username (needed for start links);
    ``is_ready`` drives ``/healthz``; ``on_purchase_recorded`` is called after a new purchase is committed,
    so the bot can run its survey sweep at once instead of waiting for the next interval. In webhook mode
    ``webhook`` answers Telegram's posts on its own path of the same server (bot/webhook.py).
    """
    api = _PurchaseApi(
        engine=engine,
        settings=settings,
        bot_username=bot_username,
        is_ready=is_ready,
        on_purchase_recorded=on_purchase_recorded,
        health=health,
    )
    app = web.Application(middlewares=[_json_errors], client_max_size=MAX_BODY_BYTES)
    app.router.add_post(PURCHASES_PATH, api.post_purchase)
    app.router.add_get(HEALTH_PATH, api.healthz)
    if webhook is not None:
        app.router.add_post(webhook.path, webhook.handle)
    return app


async def start_http_server(app: web.Application, *, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app`` on ``host:port`` and return the runner (``await runner.cleanup()`` stops it) and the
    port actually bound, which is what callers need when they ask for port 0 (any free port)."""
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = int(runner.addresses[0][1])
    except BaseException:
        await runner.cleanup()
        raise
    log.info("purchase API listening on %s:%d", host, bound_port)
    return runner, bound_port
