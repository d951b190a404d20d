"""A second event loop, on a thread of its own, where updates are handled and the database is waited on.

The database drivers block: psycopg waits for PostgreSQL's answer (about 1 ms per answer, measured),
SQLite for its file lock. On the bot's main loop those waits would stall everything else there: the
sender pacing messages to Telegram, callback answers, the purchase API, the webhook. Handlers only touch
the database (everything they send goes through the outbox, and answering a button press runs after the
commit), so python-telegram-bot's ``process_update`` runs here instead, and the main loop only hands
over work and runs what must happen after each commit. The drivers release the GIL while they wait, so
the two loops really do run side by side.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


class HandlerLoop:
    """Runs coroutines on a private event loop in a daemon thread; start it once, stop it once."""

    def __init__(self, name: str = "kundenpuls-handlers") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread and its loop; returns once the loop runs."""
        if self._thread is not None:
            return
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=main, name=self._name, daemon=True)
        self._thread.start()
        ready.wait()

    async def run(self, coroutine: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coroutine`` on the handler loop and wait for its result without blocking this loop.

        Cancelling the caller cancels the coroutine there too, so a stopping bot does not leave work
        running behind it.
        """
        if self._loop is None:
            coroutine.close()
            raise RuntimeError("the handler loop is not running")
        future: concurrent.futures.Future[_T] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.cancel()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the loop (after what it runs now) and join the thread; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        self._loop = self._thread = None
