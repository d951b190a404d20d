"""Sends what the outbox holds at Telegram's limits, so that no chat ever holds up another.

How a row goes out:

- **Claim.** Every so often the sender leases the rows that may go within the next quarter second
  (``storage.outbox.claim_due``): each with its own moment, within the bot's ``SEND_RATE`` and its
  chat's pace (about 1/s for a private chat, 20/min for a group; storage/pacing.py). The budget is one
  row in the database, so every process sharing it stays within the limits together. A chat that has to
  wait is simply not claimed yet; nothing waits for it.
- **Send.** Each chat's rows go out in order on a task of their own, each at its moment. Different
  chats never wait for each other, and the claim loop never waits for a send.
- **Record.** Each outcome is written the moment its call returns (a writer task batches whatever has
  arrived meanwhile), conditional on the lease: a row that ``/stop`` cancelled while it was in flight
  stays cancelled whatever the call did. Leases are renewed while calls run.
- **Files and personal data.** A ``sendDocument`` row carries its file base64-encoded in the payload
  (``storage.outbox.DOCUMENT``); the sender hands it to PTB as an ``InputFile``, which makes the call a
  multipart upload. A row flagged ``SCRUB_AFTER_SEND`` (a customer's data export, the last words to
  someone whose data was erased) loses its payload, and if asked its chat id, once it is out for good.

What Telegram's answers mean:

- 429: the bot as a whole was too fast (Telegram does not say which limit). Every process stops sending
  for ``retry_after``; the 429 is counted (``/healthz``) and logged. At the configured rates there are
  none.
- 403 "bot was blocked" / "user is deactivated": the user is marked blocked and their messages held
  until they write again. 403 "can't initiate conversation" / 400 "chat not found": the customer never
  opened the bot; their messages wait until they do.
- The staff chat refusing (403, "chat not found"): its messages wait, never fail; the log says what to
  fix and ``/healthz`` reports it, and everything is delivered once it answers again.
- A group that became a supergroup (``ChatMigrated``): everything queued follows the new id.
- A forum topic that cannot be made (no topics there, or no right to manage them): the case's messages
  go to the chat's General topic instead, and no more topics are tried there until the chat says again
  that it is a forum (its next update, or the next start).
- Network errors, time-outs and 5xx: the row is retried with exponential backoff and jitter.
- Other 400s: a bug on our side that retrying cannot fix; parked as failed with the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import Engine
from telegram import Bot, InputFile
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError

from storage import outbox
from storage.db import unit_of_work
from storage.models import OutboxMessage, OutboxStatus, utcnow
from storage.outbox import (
    STAFF_KINDS,
    STEP_KINDS,
    SURVEY_KINDS,
    Claim,
    ClaimedCall,
    SendOutcome,
)
from storage.pacing import Pace, bot_pace
from surveys.contact_rules import QuietHours

log = logging.getLogger(__name__)

_T = TypeVar("_T")

_METHODS = frozenset(
    {
        "sendMessage",
        "sendDocument",
        "sendPhoto",
        "editMessageText",
        "editMessageReplyMarkup",
        "createForumTopic",
        "editForumTopic",
    }
)
_TOPICS_KEPT = 1000
"""Topics made by this process, kept for the case messages that follow them in the same batch."""
LEASE = timedelta(seconds=15)
"""How long a crashed sender's rows (and the chats behind them) stay untouched; renewed every few seconds
while a call runs, so a slow call keeps its rows however long PTB's time-outs let it take."""
_RENEW_SECONDS = 5.0
HORIZON = timedelta(milliseconds=250)
"""How far ahead a claim plans: short, so a 429 or a /stop finds little already planned."""
_CLAIM_SPACING_SECONDS = 0.04
"""A cycle (write the outcomes that came in, claim what may go next) is one transaction; cycles coalesce
wake-ups to at most 25 a second however busy the bot is, so an outcome is written within about 40 ms of
its call returning and the database has its time for the answers."""
_IDLE_SECONDS = 2.0
"""How soon rows queued by another process are noticed when nothing wakes this one."""
_PAUSE_CHECK_SECONDS = 0.1
"""While sending, how often the shared 429 pause is read: another process's 429 stops this one soon."""
_MAX_BACKOFF = timedelta(minutes=30)
_STAFF_MAX_BACKOFF = timedelta(minutes=5)
"""The staff chat is retried at least this often, so a fixed chat gets its alerts within minutes."""
_DB_RETRY_SECONDS = 1.0


class OutboxSender:
    """Drains the outbox at Telegram's limits, one task per chat that has something to send."""

    def __init__(
        self,
        *,
        engine: Engine,
        bot: Bot,
        http_slots: asyncio.Semaphore,
        send_rate: float,
        staff_chat_id: int | None = None,
        clock: Callable[[], datetime] = utcnow,
        quiet_hours: QuietHours | None = None,
        zone: ZoneInfo | None = None,
    ) -> None:
        self._engine = engine
        self._bot = bot
        # "Now" for claims, retries and leases: the bot's clock, which tests move instead of sleeping.
        self._clock = clock
        # QUIET_HOURS in TIMEZONE: checked again when an unprompted message is actually sent.
        self._quiet_hours = quiet_hours
        self._zone = zone or ZoneInfo("UTC")
        self._http_slots = http_slots
        self._pace: Pace = bot_pace(send_rate)
        self.staff_chat_id = staff_chat_id
        self._owner = secrets.token_hex(8)
        self.owner = self._owner
        """The lease owner this sender writes on the rows it claims (shown by /healthz)."""
        self._wake = asyncio.Event()
        self._chat_tasks: dict[int, asyncio.Task[None]] = {}
        self._in_flight: set[int] = set()
        self._outcomes: list[SendOutcome] = []
        """Outcomes of calls that returned, written by the next cycle (at most a claim spacing later)."""
        self._paused_until: datetime | None = None
        self._migrations: dict[int, int] = {}
        self._unreachable: set[int] = set()
        self.throttled = 0
        """429s this process met (``/healthz`` shows the total of every process from the database)."""
        self._helpers: list[asyncio.Task[None]] = []
        self._db_calls: set[asyncio.Future[Any]] = set()
        self._last_cycle = 0.0
        self._topics: dict[str, int] = {}
        """``message_thread_id`` of the topics this process made, by the topic row's key."""
        self.on_staff_chat_moved: Callable[[int], None] | None = None
        """Told the new id when the staff chat became a supergroup (the staff handlers listen there too)."""
        self._cycle_lock = asyncio.Lock()
        """Cycles never overlap: ``drain`` waits until a cycle that took the outcomes has committed."""

    def wake(self) -> None:
        """Tell the sender that new rows are queued."""
        self._wake.set()

    async def run(self) -> None:
        """Send until cancelled; whatever is not sent stays in the database for the next start."""
        await self._start_helpers()
        try:
            while True:
                self._wake.clear()
                try:
                    claim = await self._cycle()
                except Exception:  # the database is away: outcomes are kept, sending resumes with it
                    log.exception("the outbox could not be read or written; retrying")
                    await asyncio.sleep(_DB_RETRY_SECONDS)
                    continue
                self._dispatch(claim.calls)
                await self._sleep(claim)
        finally:
            await self._stop_helpers()

    async def drain(self) -> int:
        """Send every row that may go now, wait until their outcomes are written; return how many."""
        await self._start_helpers()
        total = 0
        while True:
            claim = await self._cycle()
            self._dispatch(claim.calls)
            total += len(claim.calls)
            await self._settle()
            if not claim.calls and not self._outcomes:
                return total

    # ----------------------------------------------------------------------------------------- claiming

    async def _cycle(self) -> Claim:
        """Write the outcomes that came in and claim what may go next, in one transaction.

        One transaction, not two: the claim then already sees the rows just finished (a chat's next
        row is free at once), and the database has more time for the answers.
        """
        async with self._cycle_lock:
            return await self._cycle_alone()

    async def _cycle_alone(self) -> Claim:
        outcomes, self._outcomes = self._outcomes, []
        now = self._clock()

        def cycle(session: Any) -> Claim:
            outbox.record_outcomes(session, outcomes, owner=self._owner, now=now)
            return outbox.claim_due(
                session, owner=self._owner, now=now, lease=LEASE, horizon=HORIZON, bot=self._pace
            )

        try:
            claim = await self._db(cycle)
        except BaseException:
            self._outcomes[:0] = outcomes  # nothing was written: keep them for the next cycle
            raise
        self._last_cycle = time.monotonic()
        for outcome in outcomes:
            self._in_flight.discard(outcome.row_id)
        self._in_flight.update(_row_id(call.row) for call in claim.calls)
        self._paused_until = _later(self._paused_until, claim.paused_until)
        return claim

    def _dispatch(self, calls: list[ClaimedCall]) -> None:
        by_chat: dict[int, list[ClaimedCall]] = {}
        for call in calls:
            by_chat.setdefault(int(call.row.chat_id or 0), []).append(call)
        for chat_id, chat_calls in by_chat.items():
            previous = self._chat_tasks.get(chat_id)
            task = asyncio.create_task(self._send_chat(chat_calls, after=previous), name=f"send-{chat_id}")
            self._chat_tasks[chat_id] = task
            task.add_done_callback(partial(self._chat_done, chat_id))

    def _chat_done(self, chat_id: int, task: asyncio.Task[None]) -> None:
        if self._chat_tasks.get(chat_id) is task:
            del self._chat_tasks[chat_id]
        if not task.cancelled() and task.exception() is not None:
            log.error("sending to a chat failed unexpectedly", exc_info=task.exception())

    async def _sleep(self, claim: Claim) -> None:
        timeout = _IDLE_SECONDS
        if claim.retry_at is not None:
            timeout = min(timeout, max((claim.retry_at - self._clock()).total_seconds(), 0.0))
        if timeout > 0 and not self._wake.is_set():
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({woken}, timeout=timeout)
            finally:
                woken.cancel()
        await asyncio.sleep(_CLAIM_SPACING_SECONDS)

    async def _settle(self) -> None:
        """Wait until every chat task has ended (their outcomes are written by the next cycle)."""
        while self._chat_tasks:
            await asyncio.gather(*self._chat_tasks.values(), return_exceptions=True)

    def _record(self, outcome: SendOutcome) -> None:
        """Keep an outcome for the next cycle and wake it: the chat's next row may be free now."""
        self._outcomes.append(outcome)
        self._wake.set()

    # ------------------------------------------------------------------------------------------ sending

    async def _send_chat(self, calls: list[ClaimedCall], *, after: asyncio.Task[None] | None) -> None:
        """Send one chat's rows in order, each at its moment; once one is not sent, the rest wait too."""
        if after is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(after)
        for index, call in enumerate(calls):
            row = call.row
            delay = (call.send_at - self._clock()).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            outcome = self._without_call(row)
            if outcome is None:
                attempted_at = self._clock()
                outcome = await self._send_one(row)
                outcome = dataclasses.replace(
                    outcome,
                    attempted_at=attempted_at,
                    chat_reached=call.chat_unreachable and outcome.status is OutboxStatus.SENT,
                )
            scrub = row.payload.get(outbox.SCRUB_AFTER_SEND)
            if isinstance(scrub, str):
                outcome = dataclasses.replace(outcome, scrub=scrub)
            self._record(outcome)
            if outcome.status is not OutboxStatus.SENT and outcome.status is not OutboxStatus.FAILED:
                for rest in calls[index + 1 :]:
                    self._record(_released(rest.row))
                return

    def _zone_of(self, unprompted: object) -> ZoneInfo:
        """The zone whose night holds an unprompted message: the customer's own (the flag names it) or
        the shop's."""
        if isinstance(unprompted, str):
            try:
                return ZoneInfo(unprompted)
            except (ZoneInfoNotFoundError, ValueError):
                pass  # validated when stored; a zone this machine's tz database lacks falls back
        return self._zone

    def _without_call(self, row: OutboxMessage) -> SendOutcome | None:
        """Decide a row without calling Telegram: a 429 pause is running, or its chat moved."""
        now = self._clock()
        chat_id = int(row.chat_id or 0)
        if self._paused_until is not None and self._paused_until > now:
            return _released(row, next_attempt_at=self._paused_until)
        unprompted = row.payload.get(outbox.UNPROMPTED)
        if self._quiet_hours is not None and unprompted:
            morning = self._quiet_hours.next_allowed(now, self._zone_of(unprompted))
            if morning > now:  # decided by day, delayed (retries, a 429 pause) into the night: hold it
                return _released(row, next_attempt_at=morning)
        new_chat = self._migrations.get(chat_id)
        if new_chat is not None:
            return SendOutcome(
                row_id=_row_id(row),
                chat_id=chat_id,
                status=OutboxStatus.PENDING,
                count_attempt=False,
                next_attempt_at=now,
                migrated_to=new_chat,
            )
        return None

    async def _send_one(self, row: OutboxMessage) -> SendOutcome:
        row_id = _row_id(row)
        chat_id = int(row.chat_id or 0)
        try:
            async with self._http_slots:
                message_id = await self._call(row)
        except RetryAfter as error:
            return self._throttled(row, _seconds(error.retry_after))
        except ChatMigrated as error:
            return self._migrated(row, int(error.new_chat_id))
        except Forbidden as error:
            return self._refused(row, error)
        except BadRequest as error:
            return self._bad_request(row, error)
        except (NetworkError, TelegramError) as error:
            return self._retry_later(row, error)
        except Exception as error:  # a bug must not stop the queue: keep the row and retry it
            log.exception("sending outbox row %s failed unexpectedly", row_id)
            return self._retry_later(row, error)
        if chat_id in self._unreachable:
            self._unreachable.discard(chat_id)
            log.warning("chat %s accepts messages again; what was kept for it is being delivered", chat_id)
        return SendOutcome(row_id=row_id, chat_id=chat_id, status=OutboxStatus.SENT, message_id=message_id)

    async def _call(self, row: OutboxMessage) -> int | None:
        """Make the Bot API call a row describes; return the message id it produced, if any (for a topic:
        its ``message_thread_id``)."""
        if row.chat_id is None:  # claim_due never hands out rows without a chat
            raise ValueError(f"outbox row {row.id} has no chat")
        if row.method not in _METHODS:
            raise ValueError(f"outbox row {row.id} has an unsupported method {row.method!r}")
        payload: dict[str, Any] = {**row.payload, "chat_id": row.chat_id}
        payload.pop(outbox.UNPROMPTED, None)
        payload.pop(outbox.SCRUB_AFTER_SEND, None)
        document = outbox.document_of(payload)
        payload.pop(outbox.DOCUMENT, None)
        if document is not None and row.method in ("sendDocument", "sendPhoto"):
            # An InputFile makes PTB send the call as a multipart upload (bot/telegram_http.py).
            filename, content = document
            field = "photo" if row.method == "sendPhoto" else "document"
            payload[field] = InputFile(content, filename=filename)
        topic = payload.pop(outbox.THREAD_OF, None)
        if isinstance(topic, str) and row.method == "sendMessage":
            thread = await self._thread(topic)
            if thread is not None:
                payload["message_thread_id"] = thread
        try:
            result = await _post(self._bot, row.method, payload)
        except BadRequest as error:
            if "message_thread_id" in payload and "thread not found" in str(error).lower():
                # Someone deleted the case's topic: the message goes to the General topic instead.
                payload.pop("message_thread_id")
                payload.pop("reply_parameters", None)
                result = await _post(self._bot, row.method, payload)
            elif row.method != "editMessageText" or row.kind not in STEP_KINDS or not _is_gone(error):
                raise
            else:
                # The customer deleted the message (or it can no longer be edited): the next step must
                # still reach them, so it goes out as a new message.
                payload.pop("message_id", None)
                result = await _post(self._bot, "sendMessage", payload)
        if row.method == "createForumTopic":
            thread_id = result.get("message_thread_id") if isinstance(result, dict) else None
            if isinstance(thread_id, int):
                if len(self._topics) >= _TOPICS_KEPT:
                    self._topics.clear()
                self._topics[row.dedupe_key] = thread_id
                return thread_id
            return None
        message_id = result.get("message_id") if isinstance(result, dict) else None
        return message_id if isinstance(message_id, int) else None

    async def _thread(self, topic_key: str) -> int | None:
        """The thread of a case's topic: made by this process just now, or recorded in the database.

        The topic row comes first in its chat's queue, so by the time its case's messages are sent it
        was made (or failed for good, and they go to the General topic)."""
        thread = self._topics.get(topic_key)
        if thread is None:
            thread = await self._db(partial(outbox.thread_of, key=topic_key))
        return thread

    # --------------------------------------------------------------------------------- Telegram's answers

    def _throttled(self, row: OutboxMessage, wait: float) -> SendOutcome:
        pause = timedelta(seconds=max(wait, 1.0))
        until = self._clock() + pause
        self._paused_until = _later(self._paused_until, until)
        self.throttled += 1
        log.warning(
            "Telegram answered 429 (retry after %.0fs): every process pauses sending; %d so far here",
            pause.total_seconds(),
            self.throttled,
        )
        return SendOutcome(
            row_id=_row_id(row),
            chat_id=int(row.chat_id or 0),
            status=OutboxStatus.PENDING,
            next_attempt_at=until,
            error="429 Too Many Requests",
            count_attempt=False,
            throttled_for=pause,
        )

    def _migrated(self, row: OutboxMessage, new_chat_id: int) -> SendOutcome:
        chat_id = int(row.chat_id or 0)
        self._migrations[chat_id] = new_chat_id
        if chat_id == self.staff_chat_id and self.on_staff_chat_moved is not None:
            self.on_staff_chat_moved(new_chat_id)
        if chat_id == self.staff_chat_id:
            log.warning(
                "the staff chat %s became a supergroup with id %s; queued messages follow it. "
                "Set STAFF_CHAT_ID=%s in .env",
                chat_id,
                new_chat_id,
                new_chat_id,
            )
        else:
            log.warning(
                "chat %s became a supergroup with id %s; queued messages follow it", chat_id, new_chat_id
            )
        return SendOutcome(
            row_id=_row_id(row),
            chat_id=chat_id,
            status=OutboxStatus.PENDING,
            next_attempt_at=self._clock(),
            count_attempt=False,
            migrated_to=new_chat_id,
        )

    def _refused(self, row: OutboxMessage, error: Forbidden) -> SendOutcome:
        text = str(error).lower()
        if row.kind in STAFF_KINDS:
            return self._unreachable_staff_chat(row, error)
        if "initiate" in text:
            return _settled(row, OutboxStatus.AWAITING_CONTACT, error, hold_chat=True)
        if row.kind not in SURVEY_KINDS and "blocked" in text:
            # A reply to someone who has since blocked us is no longer worth sending later.
            return _settled(row, OutboxStatus.CANCELLED, error, user_blocked=True)
        return _settled(row, OutboxStatus.BLOCKED, error, hold_chat=True, user_blocked=True)

    def _bad_request(self, row: OutboxMessage, error: BadRequest) -> SendOutcome:
        text = str(error).lower()
        if "chat not found" in text and row.kind in STAFF_KINDS:
            return self._unreachable_staff_chat(row, error)
        if "chat not found" in text:
            return _settled(row, OutboxStatus.AWAITING_CONTACT, error, hold_chat=True)
        if "message is not modified" in text:
            return _settled(row, OutboxStatus.SENT, None)
        if row.method == "createForumTopic" and ("not a forum" in text or "not enough rights" in text):
            log.error(
                "no topic could be made for a case in the staff chat %s (%s): its cards go to the General "
                "topic. For a topic per case, make the bot an admin with the right to manage topics",
                row.chat_id,
                error,
            )
            return dataclasses.replace(_settled(row, OutboxStatus.FAILED, error), not_a_forum=True)
        log.error("Telegram rejected outbox row %s (%s %s): %s", row.id, row.kind, row.method, error)
        return _settled(row, OutboxStatus.FAILED, error)

    def _unreachable_staff_chat(self, row: OutboxMessage, error: TelegramError) -> SendOutcome:
        chat_id = int(row.chat_id or 0)
        if chat_id not in self._unreachable:
            self._unreachable.add(chat_id)
            log.error(
                "the staff chat %s refuses messages (%s): add the bot to that chat again, or set "
                "STAFF_CHAT_ID to the right chat and restart. Alerts are kept and delivered once it answers",
                chat_id,
                error,
            )
        outcome = self._retry_later(row, error, cap=_STAFF_MAX_BACKOFF, quiet=True)
        return SendOutcome(
            row_id=outcome.row_id,
            chat_id=chat_id,
            status=OutboxStatus.PENDING,
            next_attempt_at=outcome.next_attempt_at,
            error=outcome.error,
            chat_unreachable=True,
        )

    def _retry_later(
        self,
        row: OutboxMessage,
        error: BaseException,
        *,
        cap: timedelta = _MAX_BACKOFF,
        quiet: bool = False,
    ) -> SendOutcome:
        # Exponential backoff with "equal jitter": half the delay is fixed, half random, so rows that failed
        # together (an outage) do not all come back in the same instant.
        backoff = min(timedelta(seconds=2 ** min(row.attempts, 16)), cap)
        delay = backoff / 2 + backoff / 2 * random.random()  # noqa: S311 - spreading retries needs no crypto
        if not quiet:
            log.warning(
                "outbox row %s not sent (%s); retrying in %.1fs",
                row.id,
                type(error).__name__,
                delay.total_seconds(),
            )
        return SendOutcome(
            row_id=_row_id(row),
            chat_id=int(row.chat_id or 0),
            status=OutboxStatus.PENDING,
            next_attempt_at=self._clock() + delay,
            error=f"{type(error).__name__}: {error}",
        )

    # ---------------------------------------------------------------------------------- helpers, the db

    async def _start_helpers(self) -> None:
        if self._helpers:
            return
        self._migrations.update(await self._db(outbox.migrations))
        self._helpers = [
            asyncio.create_task(self._renew_leases(), name="outbox-leases"),
            asyncio.create_task(self._watch_pause(), name="outbox-pause"),
        ]

    async def _stop_helpers(self) -> None:
        tasks = list(self._chat_tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in self._helpers:
            task.cancel()
        await asyncio.gather(*self._helpers, return_exceptions=True)
        self._helpers = []
        outcomes, self._outcomes = self._outcomes, []
        done = {outcome.row_id for outcome in outcomes}
        leftover = sorted(self._in_flight - done)
        if outcomes or leftover:
            # What was sent is recorded; rows planned but not sent go back to the queue at once instead
            # of waiting for their lease.
            now = self._clock()

            def finish(session: Any) -> None:
                outbox.record_outcomes(session, outcomes, owner=self._owner, now=now)
                outbox.release(session, leftover, owner=self._owner)

            with contextlib.suppress(Exception):
                await self._db(finish)
            self._in_flight.clear()
        if self._db_calls:
            await asyncio.wait(set(self._db_calls), timeout=10)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(_RENEW_SECONDS)
            rows = sorted(self._in_flight)
            if rows:
                until = self._clock() + LEASE
                try:
                    await self._db(partial(outbox.renew_leases, row_ids=rows, owner=self._owner, until=until))
                except Exception:
                    log.exception("renewing the leases of %d rows failed", len(rows))

    async def _watch_pause(self) -> None:
        """While rows are planned, follow the shared 429 pause, so another process's 429 stops us too."""
        while True:
            await asyncio.sleep(_PAUSE_CHECK_SECONDS)
            if not self._in_flight or time.monotonic() - self._last_cycle < _PAUSE_CHECK_SECONDS:
                continue  # nothing planned, or a cycle (which reads the pause too) has just run
            with contextlib.suppress(Exception):
                budget = await self._db(outbox.bot_budget)
                if budget is not None:
                    self._paused_until = _later(self._paused_until, budget.paused_until)

    async def _db(self, work: Callable[[Any], _T]) -> _T:
        """Run database work in a thread, in its own unit of work, so the event loop never waits on it.

        The thread's future is kept until it ends: a caller cancelled while the thread still works (the
        bot stopping) must not leave a connection in use when the engine is disposed.
        """

        def run() -> _T:
            with unit_of_work(self._engine) as session:
                return work(session)

        future = asyncio.get_running_loop().run_in_executor(None, run)
        self._db_calls.add(future)
        future.add_done_callback(self._db_calls.discard)
        return await asyncio.shield(future)


def _settled(
    row: OutboxMessage,
    status: OutboxStatus,
    error: TelegramError | None,
    *,
    hold_chat: bool = False,
    user_blocked: bool = False,
) -> SendOutcome:
    """An outcome Telegram decided for good (or until the person acts): sent, held, cancelled, failed."""
    return SendOutcome(
        row_id=_row_id(row),
        chat_id=int(row.chat_id or 0),
        status=status,
        error=str(error) if error is not None else None,
        hold_chat=hold_chat,
        user_blocked=user_blocked,
    )


def _released(row: OutboxMessage, *, next_attempt_at: datetime | None = None) -> SendOutcome:
    """A leased row given back untried (it waits behind its chat's earlier row, or for a pause)."""
    return SendOutcome(
        row_id=_row_id(row),
        chat_id=int(row.chat_id or 0),
        status=OutboxStatus.PENDING,
        next_attempt_at=next_attempt_at,
        count_attempt=False,
    )


async def _post(bot: Bot, method: str, payload: dict[str, Any]) -> object:
    """Call the Bot API with a stored payload as it is and return the raw result.

    The outbox already holds each call as the Bot API's JSON, so turning it into PTB objects for
    ``send_message`` and the answer back into a ``Message`` would only cost CPU (about a third of a
    millisecond per call, most of an answer's PTB time; bench/README.md). ``Bot._post`` is the path PTB's
    own methods and ``do_api_request`` share: it maps Telegram's errors to PTB's exceptions.
    ``do_api_request`` itself warns for methods PTB wraps, hence the direct call.
    """
    return await bot._post(method, api_kwargs=payload)


def _is_gone(error: BadRequest) -> bool:
    """Tell whether an edit failed because the message is gone or frozen, not because of our payload."""
    text = str(error).lower()
    return "message to edit not found" in text or "message can't be edited" in text


def _row_id(row: OutboxMessage) -> int:
    if row.id is None:
        raise RuntimeError("outbox row without id")
    return row.id


def _later(first: datetime | None, second: datetime | None) -> datetime | None:
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second)


def _seconds(value: object) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)  # type: ignore[arg-type]


def assign_staff_chat(engine: Engine, staff_chat_id: int | None, now: datetime) -> int | None:
    """Point unsent staff messages at the configured staff chat; return the chat they now go to.

    Alerts kept while no STAFF_CHAT_ID was set, or queued for a chat the setting no longer names, go to
    the one it names now. When that chat is known to have become a supergroup, they go there instead,
    and the log says which id to configure.
    """
    if staff_chat_id is None:
        return None
    with unit_of_work(engine) as session:
        target = outbox.migrations(session).get(staff_chat_id, staff_chat_id)
        outbox.reassign_unsent(session, kinds=STAFF_KINDS, chat_id=target, now=now)
    if target != staff_chat_id:
        log.warning(
            "STAFF_CHAT_ID %s became the supergroup %s; alerts go there. Set STAFF_CHAT_ID=%s in .env",
            staff_chat_id,
            target,
            target,
        )
    return target
