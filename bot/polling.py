"""Long polling that stores every update before confirming it to Telegram.

python-telegram-bot's own updater moves the offset as soon as updates are queued in memory, so a crash
before they are handled loses them. Here a batch is written to the database first; only the next
``getUpdates`` call, with an offset past the batch, confirms it.

The poller reads ``getUpdates`` with a plain HTTP client and stores the JSON exactly as Telegram sent
it: parsing it into PTB objects only to serialise it again would cost as much as handling it, and the
worker parses it once anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from telegram.error import InvalidToken

from storage import inbox
from storage.db import unit_of_work
from storage.models import utcnow

log = logging.getLogger(__name__)

POLL_TIMEOUT_SECONDS = 25
_MAX_BACKOFF_SECONDS = 60.0
ALLOWED_UPDATES = ("message", "callback_query", "my_chat_member")


class DurablePoller:
    """Fetches updates with ``getUpdates`` and stores them; a worker handles them from the database."""

    def __init__(
        self,
        *,
        engine: Engine,
        api_url: str,
        token: str,
        on_stored: Callable[[], None],
        poll_timeout: int = POLL_TIMEOUT_SECONDS,
    ) -> None:
        self._engine = engine
        self._url = f"{api_url}/bot{token}/getUpdates"
        self._on_stored = on_stored
        self._poll_timeout = poll_timeout
        self._offset: int | None = None

    async def run(self) -> None:
        """Poll until cancelled; network trouble is retried with backoff, never fatal."""
        with unit_of_work(self._engine) as session:
            newest = inbox.highest_update_id(session)
        self._offset = newest + 1 if newest is not None else None
        timeout = httpx.Timeout(self._poll_timeout + 10, connect=10)
        async with httpx.AsyncClient(timeout=timeout) as client:
            backoff = 1.0
            while True:
                try:
                    updates = await self._fetch(client)
                    backoff = 1.0
                except _PollError as error:
                    delay = error.retry_after or backoff
                    log.warning("getUpdates failed (%s); retrying in %.0fs", error, delay)
                    await asyncio.sleep(delay)
                    if error.retry_after is None:
                        backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                    continue
                if updates:
                    self._store(updates)

    async def _fetch(self, client: httpx.AsyncClient) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"timeout": self._poll_timeout, "allowed_updates": list(ALLOWED_UPDATES)}
        if self._offset is not None:
            body["offset"] = self._offset
        try:
            response = await client.post(self._url, json=body)
        except httpx.HTTPError as error:
            # The exception text can contain the URL, and the URL contains the token: name the type only.
            raise _PollError(f"network error: {type(error).__name__}") from None
        try:
            data = response.json()
        except ValueError:
            raise _PollError(f"HTTP {response.status_code} without a JSON body") from None
        if response.status_code in (401, 404):
            raise InvalidToken("Telegram rejected the bot token")
        if not isinstance(data, dict) or not data.get("ok"):
            description = data.get("description", "") if isinstance(data, dict) else ""
            parameters = data.get("parameters") if isinstance(data, dict) else None
            retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
            raise _PollError(
                f"HTTP {response.status_code} {description}".strip(),
                retry_after=float(retry_after) if isinstance(retry_after, int | float) else None,
            )
        result = data.get("result")
        if not isinstance(result, list):
            raise _PollError("getUpdates answered without a list of updates")
        return [
            update
            for update in result
            if isinstance(update, dict) and isinstance(update.get("update_id"), int)
        ]

    def _store(self, updates: list[dict[str, Any]]) -> None:
        with unit_of_work(self._engine) as session:
            inbox.store_updates(session, updates, now=utcnow())
        self._offset = max(int(update["update_id"]) for update in updates) + 1
        self._on_stored()


class _PollError(Exception):
    """A failed ``getUpdates`` call that is worth retrying."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
