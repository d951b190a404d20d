"""Long polling that stores every update before confirming it to Telegram.

python-telegram-bot's own updater moves the offset as soon as updates are queued in memory, so a crash
before they are handled loses them. Here a batch is written to the database first; only the next
``getUpdates`` call, with an offset past the batch, confirms it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.engine import Engine
from telegram import Bot
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError

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
        bot: Bot,
        on_stored: Callable[[], None],
        poll_timeout: int = POLL_TIMEOUT_SECONDS,
    ) -> None:
        self._engine = engine
        self._bot = bot
        self._on_stored = on_stored
        self._poll_timeout = poll_timeout
        self._offset: int | None = None

    async def run(self) -> None:
        """Poll until cancelled; network trouble is retried with backoff, never fatal."""
        with unit_of_work(self._engine) as session:
            newest = inbox.highest_update_id(session)
        self._offset = newest + 1 if newest is not None else None
        backoff = 1.0
        while True:
            try:
                updates = await self._bot.get_updates(
                    offset=self._offset,
                    timeout=self._poll_timeout,
                    read_timeout=self._poll_timeout + 10,
                    allowed_updates=list(ALLOWED_UPDATES),
                )
                backoff = 1.0
            except RetryAfter as error:
                await asyncio.sleep(_seconds(error.retry_after))
                continue
            except InvalidToken:
                raise
            except Conflict:
                log.error("another bot instance is polling with this token; retrying in %.0fs", backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                continue
            except (NetworkError, TelegramError) as error:
                log.warning("getUpdates failed (%s); retrying in %.0fs", error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                continue
            if not updates:
                continue
            raw = [update.to_dict() for update in updates]  # to_dict keeps fields PTB does not know
            with unit_of_work(self._engine) as session:
                inbox.store_updates(session, raw, now=utcnow())
            self._offset = max(update.update_id for update in updates) + 1
            self._on_stored()


def _seconds(value: object) -> float:
    if hasattr(value, "total_seconds"):
        return float(value.total_seconds())
    return float(value)  # type: ignore[arg-type]
