"""Handles stored updates exactly once, several to a transaction.

An update's effects (answers, outbox rows) and its "done" mark are committed in one transaction, the
same one that claimed it by locking its row (storage/inbox.py). When many updates wait (a burst of
answers), up to ``_GROUP`` of them share one transaction: the session, the connection checkout,
``BEGIN IMMEDIATE``, the commit and the "done" marks are paid once per group instead of once per answer
(bench/README.md has the before and after). If any update of a group fails, the whole group is rolled
back and its updates are handled again one by one, each in its own transaction, so one bad update never
holds back or duplicates another. An update that fails on its own is tried again later; after a few
failures it is parked as failed and the customer is told that something went wrong.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session
from telegram import Update

from bot.handler_loop import HandlerLoop
from handlers import preload as group_preload
from handlers.context import BotApplication, UpdateWork, begin_work, end_work
from storage import inbox, preload
from storage.db import unit_of_work
from storage.models import InboundUpdate, utcnow

log = logging.getLogger(__name__)

_GROUP = 100
"""Updates per shared transaction. A group costs a fixed handful of statements (storage/preload.py), so
bigger groups are cheaper per answer: 25 -> 50 took PostgreSQL from 0.64 to 0.74 of the echo bot, and
50 -> 100 (2026-12-02, 5 rounds each) from 0.58 to 0.67, SQLite from 0.78 to 0.84 (bench/README.md).
Callback answers wait for the group's commit: a full group takes about 180 ms on PostgreSQL here
(100 answers at 556/s), and a group is only full when that many updates wait at once."""
_IDLE_POLL_SECONDS = 5.0


def without_pressed_keyboard(payload: dict[str, Any]) -> dict[str, Any]:
    """Return a button press without the keyboard of the message it was pressed under.

    No handler reads that keyboard: what a button means is checked against the database, never against
    the buttons Telegram echoes back. A survey question carries up to eleven of them, and turning them
    into PTB objects is half the cost of parsing a press (0.40 vs 0.19 ms, bench/README.md). The stored
    update keeps everything Telegram sent; only the copy handed to the handlers is lighter.
    """
    query = payload.get("callback_query")
    if not isinstance(query, dict):
        return payload
    message = query.get("message")
    if not isinstance(message, dict) or "reply_markup" not in message:
        return payload
    light_message = {key: value for key, value in message.items() if key != "reply_markup"}
    return {**payload, "callback_query": {**query, "message": light_message}}


def _groups(
    parsed: list[tuple[InboundUpdate, Update]],
) -> Iterator[list[tuple[InboundUpdate, Update]]]:
    """Split a batch, in order, into groups of at most ``_GROUP`` with one update per person.

    A person's next update starts a new group, so within a group no update reads what another one
    writes (storage/preload.py); the order of each person's updates is kept.
    """
    group: list[tuple[InboundUpdate, Update]] = []
    people: set[int] = set()
    for pair in parsed:
        person = group_preload.person_of(pair[1])
        if len(group) >= _GROUP or (person is not None and person in people):
            yield group
            group, people = [], set()
        group.append(pair)
        if person is not None:
            people.add(person)
    if group:
        yield group


class UpdateWorker:
    """Drains the inbound update table through the Application's handlers."""

    def __init__(
        self,
        *,
        engine: Engine,
        application: BotApplication,
        on_messages_queued: Callable[[], None],
        on_sweep_needed: Callable[[], None],
        on_give_up: Callable[[Session, int, int], None],
        http_slots: asyncio.Semaphore,
        handler_loop: HandlerLoop | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        # What "now" is for the handlers (when an answer was given, whether a survey has expired).
        self._clock = clock
        self._application = application
        self._on_messages_queued = on_messages_queued
        self._on_sweep_needed = on_sweep_needed
        self._on_give_up = on_give_up
        self._http_slots = http_slots
        self._handler_loop = handler_loop
        self._wake = asyncio.Event()
        self._background: set[asyncio.Task[object]] = set()
        # Transient failures (a deadlock, a dropped connection) usually pass within seconds.
        self.retry_base = timedelta(seconds=1)

    def wake(self) -> None:
        """Tell the worker that new updates are stored."""
        self._wake.set()

    async def run(self) -> None:
        """Process updates until cancelled."""
        while True:
            handled = await self.drain()
            if handled == 0:
                await self._idle()
                self._wake.clear()

    async def _idle(self) -> None:
        """Wait for a wake-up or the idle poll, whichever comes first.

        Not ``asyncio.wait_for``: on Python 3.11 a cancellation that arrives as the event fires is
        swallowed there, and the worker then never stops (a bot's stop hung on it in the tests).
        """
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({waiter}, timeout=_IDLE_POLL_SECONDS)
        finally:
            waiter.cancel()

    async def drain(self) -> int:
        """Process every update that is due now; return how many were handled."""
        self._wake.clear()
        main_loop = asyncio.get_running_loop()
        if self._handler_loop is None:
            return await self._drain_here(main_loop)
        return await self._handler_loop.run(self._drain_here(main_loop))

    async def _drain_here(self, main_loop: asyncio.AbstractEventLoop) -> int:
        """Handle groups of due updates until none is left (on the handler loop when there is one).

        What must follow a commit (callback answers, waking the sender) is handed to ``main_loop``,
        where the bot talks to Telegram, as soon as each group commits.
        """
        total = 0
        while True:
            outcome = await self._handle_due(main_loop)
            if outcome is None:
                return total
            handled, failed, error = outcome
            total += handled
            if error is not None and len(failed) == 1:
                self._record_failure(*failed[0], error, main_loop)
            elif error is not None:
                log.debug("a group of %s updates failed (%r); handling them one by one", len(failed), error)
                for update_id, payload in failed:
                    await self._handle_alone(update_id, payload, main_loop)
                    await asyncio.sleep(0)
            total += len(failed)
            # Without a handler loop, handling never waits on the network: let the poller, the sender
            # and the callback answers run between groups.
            await asyncio.sleep(0)

    async def _handle_due(
        self, main_loop: asyncio.AbstractEventLoop
    ) -> tuple[int, list[tuple[int, dict[str, Any]]], Exception | None] | None:
        """Lock the due updates and handle a group of them in the same transaction.

        Returns None when nothing is due; else how many were handled (or parked as unparseable), and,
        when the group failed and nothing of it was committed, its updates with the error.
        """
        group: list[tuple[InboundUpdate, Update]] = []
        failed: list[tuple[int, dict[str, Any]]] = []
        try:
            with unit_of_work(self._engine) as session:
                rows = inbox.lock_due(session, now=utcnow(), limit=_GROUP)
                if not rows:
                    return None
                parsed = [(row, update) for row in rows if (update := self._parse(session, row)) is not None]
                # The first group; the rest of the locked rows are released by the commit, for the next.
                group = next(_groups(parsed), [])
                failed = [(row.update_id, row.payload) for row, _ in group]
                works = await self._run_group(session, group)
        except Exception as error:
            if not failed:
                raise  # not a handler's failure (the database itself): as before, the worker stops here
            return 0, failed, error
        self._after_commits(works, main_loop)
        return len(rows) - len(parsed) + len(group), [], None

    async def _handle_alone(
        self, update_id: int, payload: dict[str, Any], main_loop: asyncio.AbstractEventLoop
    ) -> None:
        """Handle one update of a failed group in a transaction of its own; record it if it fails too."""
        try:
            with unit_of_work(self._engine) as session:
                row = inbox.lock_update(session, update_id)
                update = self._parse(session, row) if row is not None else None
                if row is None or update is None:
                    return  # handled meanwhile by another worker, or parked as unparseable
                works = await self._run_group(session, [(row, update)])
        except Exception as error:
            self._record_failure(update_id, payload, error, main_loop)
            return
        self._after_commits(works, main_loop)

    async def _run_group(
        self, session: Session, group: list[tuple[InboundUpdate, Update]]
    ) -> list[UpdateWork]:
        """Handle ``group`` in ``session`` and mark it done there; raises what a handler raised."""
        works: list[UpdateWork] = []
        if not group:
            return works
        # The rows the handlers will look up, in a few statements for the whole group; what they write
        # is collected and written at the end (storage/preload.py).
        rows = preload.open_group(session)
        group_preload.load_for(session, rows, [update for _, update in group])
        for row, update in group:
            works.append(await self._process(session, row, update))
        preload.close_group(session)
        inbox.mark_done(session, [row.update_id for row, _ in group], now=utcnow())
        return works

    def _after_commits(self, works: list[UpdateWork], main_loop: asyncio.AbstractEventLoop) -> None:
        for work in works:
            main_loop.call_soon_threadsafe(self._after_commit, work)

    def _parse(self, session: Session, row: InboundUpdate) -> Update | None:
        """Turn a stored update into PTB's object; park it for good (in ``session``) if it does not parse."""
        try:
            return Update.de_json(without_pressed_keyboard(row.payload), self._application.bot)
        except Exception as error:  # malformed JSON from the network must not stop the worker
            log.warning("update %s could not be parsed: %s", row.update_id, type(error).__name__)
            inbox.mark_unprocessable(session, row.update_id, now=utcnow(), error=f"unparseable: {error!r}")
            return None

    async def _process(self, session: Session, row: InboundUpdate, update: Update) -> UpdateWork:
        """Run the Application's handlers for one update inside ``session``; raise what they raised."""
        work = UpdateWork(session=session, now=self._clock(), update_id=row.update_id)
        token = begin_work(work)
        try:
            # Handlers flush explicitly where a query needs their rows; everything else is written in
            # one flush at the end instead of before every query.
            with session.no_autoflush:
                await self._application.process_update(update)
        finally:
            end_work(token)
        if work.error is not None:
            raise work.error
        return work

    def _after_commit(self, work: UpdateWork) -> None:
        for action in work.after_commit:
            task: asyncio.Task[object] = asyncio.ensure_future(self._run_quietly(action))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        if work.queued_messages:
            self._on_messages_queued()
        if work.wake_sweep:
            self._on_sweep_needed()

    async def _run_quietly(self, action: Callable[[], object]) -> object:
        # Answering a callback query is a courtesy: a timeout or "query is too old" changes nothing stored.
        try:
            async with self._http_slots:
                result = action()
                if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                    return await result
                return result
        except Exception as error:
            log.info("after-commit action failed: %s", error)
            return None

    def _record_failure(
        self,
        update_id: int,
        payload: dict[str, Any],
        error: BaseException,
        main_loop: asyncio.AbstractEventLoop,
    ) -> None:
        log.error("handling update %s failed; it will be retried", update_id, exc_info=error)
        with unit_of_work(self._engine) as session:
            gave_up = inbox.mark_attempt_failed(
                session, update_id, now=utcnow(), error=repr(error), retry_base=self.retry_base
            )
            chat_id = inbox.chat_of(payload) if gave_up else None
            if chat_id is not None:
                self._on_give_up(session, update_id, chat_id)
        if gave_up:
            log.error("update %s failed %s times and is parked as failed", update_id, inbox.MAX_ATTEMPTS)
            main_loop.call_soon_threadsafe(self._on_messages_queued)

    async def close(self) -> None:
        """Wait for after-commit actions still running (callback answers)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
