"""Long polling that stores every update before confirming it to Telegram, in one process at a time.

python-telegram-bot's own updater moves the offset as soon as updates are queued in memory, so a crash
before they are handled loses them. Here a batch is written to the database first; only the next
``getUpdates`` call, with an offset past the batch, confirms it.

Several processes may run on one database, but Telegram allows one ``getUpdates`` caller per bot (a
second one ends the first with 409). So a process polls only while it holds the lease
``"telegram-poller"`` in the database (:mod:`storage.leases`), renews it while it polls, and stops at
once when a renewal finds it taken. The others check every few seconds and take over when it is free:
at once after a graceful stop (the lease is released), within the lease's TTL after a crash.

The first ``getUpdates`` of each turn sends no offset: Telegram remembers what was confirmed and returns
everything else. Forcing an offset from the highest stored ``update_id`` would drop real updates after a
restored backup, a new token, or Telegram's id reset after a quiet week. Updates the previous holder
stored but never confirmed come again and are ignored, as storing is idempotent on ``update_id``.

The poller reads ``getUpdates`` with a plain HTTP client and stores the JSON exactly as Telegram sent
it: parsing it into PTB objects only to serialise it again would cost as much as handling it, and the
worker parses it once anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from telegram.error import InvalidToken

from storage import inbox, leases
from storage.db import unit_of_work
from storage.models import utcnow

log = logging.getLogger(__name__)

POLLER_LEASE = "telegram-poller"
# Long enough to survive two missed renewals (a slow database, a pause), short enough that another process
# takes over a crashed poller's updates within seconds: within TTL + STANDBY_CHECK_SECONDS.
LEASE_TTL_SECONDS = 10.0
# A third of the TTL: a renewal may fail twice before the lease could run out.
LEASE_RENEW_SECONDS = 3.0
# How often a process that does not poll looks whether the lease is free.
STANDBY_CHECK_SECONDS = 2.0
# A long poll must be over before another process may take the lease, or two would poll at once (409). At
# most TTL - renewal interval - LEASE_MARGIN_SECONDS, so a poll started just before a renewal still ends in
# time; each poll is also cut to the lease time known to be left, and cancelled when the lease is lost.
POLL_TIMEOUT_SECONDS = 5
# Kept free at the end of the lease for the request's way to Telegram and for clocks that differ a little
# between processes (the lease's timestamps come from each process's clock).
LEASE_MARGIN_SECONDS = 1.0
_MAX_BACKOFF_SECONDS = 60.0
ALLOWED_UPDATES = ("message", "callback_query", "my_chat_member")


def default_owner() -> str:
    """Name this process for the lease: host and pid for people reading the table, a random part so two
    pollers never share a name."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class DurablePoller:
    """Fetches updates with ``getUpdates`` and stores them while this process holds the poller lease; a
    worker handles them from the database."""

    def __init__(
        self,
        *,
        engine: Engine,
        api_url: str,
        token: str,
        on_stored: Callable[[], None],
        poll_timeout: int = POLL_TIMEOUT_SECONDS,
        lease_ttl: float = LEASE_TTL_SECONDS,
        renew_interval: float = LEASE_RENEW_SECONDS,
        standby_interval: float = STANDBY_CHECK_SECONDS,
        owner: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not 0 < renew_interval < lease_ttl:
            raise ValueError("the lease must be renewed more often than it expires")
        self._engine = engine
        self._url = f"{api_url}/bot{token}/getUpdates"
        self._on_stored = on_stored
        self._poll_timeout = poll_timeout
        self._ttl = lease_ttl
        self._renew_interval = renew_interval
        self._standby_interval = standby_interval
        self._transport = transport
        self.owner = owner or default_owner()
        self._offset: int | None = None
        self._polling = False
        # Monotonic time until which the lease is certainly ours (measured from before the last renewal).
        self._lease_deadline = 0.0
        self._renewed = asyncio.Event()
        self._lease_calls: set[asyncio.Future[bool]] = set()

    @property
    def is_polling(self) -> bool:
        """Whether this process holds the poller lease and polls ``getUpdates`` now."""
        return self._polling

    async def run(self) -> None:
        """Poll while this process holds the lease and stand by otherwise, until cancelled; network and
        database trouble is retried, never fatal."""
        try:
            while True:
                try:
                    held = await self._acquire()
                except SQLAlchemyError as error:
                    log.warning("checking the poller lease failed (%s)", type(error).__name__)
                    held = False
                if held:
                    await self._poll_while_leased()
                else:
                    await asyncio.sleep(self._standby_interval)
        finally:
            # Let another process take over now instead of when the lease runs out.
            try:
                if self._lease_calls:
                    await asyncio.wait(set(self._lease_calls))
                await asyncio.to_thread(self._release)
            except SQLAlchemyError as error:
                log.warning("releasing the poller lease failed (%s); it expires", type(error).__name__)

    async def _poll_while_leased(self) -> None:
        self._polling = True
        self._offset = None  # Telegram knows what was confirmed; see the module docstring
        log.info("Polling getUpdates now (this process, %s, holds the %s lease)", self.owner, POLLER_LEASE)
        reason = "stopping"
        timeout = httpx.Timeout(self._poll_timeout + 10, connect=10)
        try:
            # A client per turn: closing it drops a cancelled long poll's connection, so Telegram does not
            # keep it waiting when the next holder polls.
            async with httpx.AsyncClient(timeout=timeout, transport=self._transport) as client:
                renewer = asyncio.create_task(self._keep_lease(), name="poller-lease")
                poller = asyncio.create_task(self._poll(client), name="poller-getupdates")
                try:
                    await asyncio.wait({renewer, poller}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    poller.cancel()
                    renewer.cancel()
                    await asyncio.wait({renewer, poller})
                    failures = [task.exception() for task in (renewer, poller) if not task.cancelled()]
                reason = "lease lost"
                for failure in failures:
                    if failure is not None:
                        reason = "error"
                        raise failure
        finally:
            self._polling = False
            log.info("Stopped polling getUpdates (%s)", reason)

    async def _keep_lease(self) -> None:
        """Renew the lease until a renewal finds it taken or it runs out unrenewed; then return."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._renew_interval)
            left = self._lease_deadline - loop.time()
            if left <= 0:
                log.warning("the poller lease ran out before it could be renewed")
                return
            try:
                async with asyncio.timeout(left):
                    held = await self._acquire()
            except TimeoutError:
                log.warning("the poller lease ran out while it was being renewed")
                return
            except SQLAlchemyError as error:
                log.warning("renewing the poller lease failed (%s); trying again", type(error).__name__)
                continue
            if not held:
                log.warning("another process took the poller lease")
                return

    async def _acquire(self) -> bool:
        """Take or renew the lease; on success remember until when it is certainly ours."""
        started = asyncio.get_running_loop().time()
        call = asyncio.ensure_future(asyncio.to_thread(self._acquire_or_renew))
        # A cancelled caller does not stop the thread: run() waits for it before releasing the lease, or a
        # late acquisition could land after the release and keep the lease from the others until it expires.
        self._lease_calls.add(call)
        call.add_done_callback(self._lease_call_done)
        held = await asyncio.shield(call)
        if held:
            self._lease_deadline = started + self._ttl
            self._renewed.set()
        return held

    def _lease_call_done(self, call: asyncio.Future[bool]) -> None:
        self._lease_calls.discard(call)
        if not call.cancelled():
            call.exception()  # an abandoned call's error was logged by no one; it must not warn at exit

    def _acquire_or_renew(self) -> bool:
        ttl = timedelta(seconds=self._ttl)
        with unit_of_work(self._engine) as session:
            return leases.acquire_or_renew(
                session, name=POLLER_LEASE, owner=self.owner, now=utcnow(), ttl=ttl
            )

    def _release(self) -> None:
        with unit_of_work(self._engine) as session:
            leases.release(session, name=POLLER_LEASE, owner=self.owner)

    def _wait_within_lease(self) -> int | None:
        """The long-poll timeout that ends before the lease could run out, or None when too little is left."""
        left = self._lease_deadline - asyncio.get_running_loop().time() - LEASE_MARGIN_SECONDS
        if left < 1:
            return None
        return min(self._poll_timeout, int(left))

    async def _poll(self, client: httpx.AsyncClient) -> None:
        backoff = 1.0
        while True:
            wait_seconds = self._wait_within_lease()
            if wait_seconds is None:
                # Only when renewals lag (a slow database): wait for the next one, or be cancelled.
                self._renewed.clear()
                await self._renewed.wait()
                continue
            try:
                updates = await self._fetch(client, wait_seconds)
                backoff = 1.0
            except _PollError as error:
                delay = error.retry_after or backoff
                log.warning("getUpdates failed (%s); retrying in %.0fs", error, delay)
                await asyncio.sleep(delay)
                if error.retry_after is None:
                    backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                continue
            if updates:
                await asyncio.to_thread(self._store, updates)
                self._offset = max(int(update["update_id"]) for update in updates) + 1
                self._on_stored()

    async def _fetch(self, client: httpx.AsyncClient, wait_seconds: int) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"timeout": wait_seconds, "allowed_updates": list(ALLOWED_UPDATES)}
        if self._offset is not None:
            body["offset"] = self._offset
        try:
            response = await client.post(self._url, json=body)
        except httpx.HTTPError as error:
            # The exception text can contain the URL, and the URL contains the token: name the type only.
            raise _PollError(f"network error: {type(error).__name__}") from None
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
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


class _PollError(Exception):
    """A failed ``getUpdates`` call that is worth retrying."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
