"""Sends what the outbox holds, with retries, backoff and Telegram's error semantics.

- 403 "bot was blocked" / "user is deactivated": the user is marked blocked and their messages are held
  until they write to the bot again.
- 403 "can't initiate conversation" / 400 "chat not found": the customer never opened the bot; the
  message waits until they do (deep link or /start).
- 429: retried after ``retry_after``; other chats keep being served.
- Network errors and 5xx: retried with exponential backoff, never dropped.
- Other 400s: a bug on our side that retrying cannot fix; parked as failed with the error.

Messages to one chat go out in queue order; different chats are served concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col
from telegram import Bot
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from handlers.conversation import KIND_QUESTION, KIND_STAFF_ALERT, KIND_THANKS, SURVEY_KINDS
from storage import outbox
from storage.db import unit_of_work
from storage.models import OutboxMessage, OutboxStatus, TelegramUser, utcnow
from storage.outbox import SendOutcome

log = logging.getLogger(__name__)

_LEASE = timedelta(minutes=2)
STEP_KINDS = (KIND_QUESTION, KIND_THANKS)
"""Rows that carry a survey step; when they edit a message that is gone, they are sent anew."""
_METHODS = frozenset({"sendMessage", "editMessageText", "editMessageReplyMarkup"})
_BATCH = 200
_MAX_BACKOFF = timedelta(hours=1)
_IDLE_SECONDS = 5.0


class OutboxSender:
    """Drains the outbox."""

    def __init__(self, *, engine: Engine, bot: Bot, http_slots: asyncio.Semaphore) -> None:
        self._engine = engine
        self._bot = bot
        self._http_slots = http_slots
        self._wake = asyncio.Event()
        self._owner = secrets.token_hex(8)

    def wake(self) -> None:
        """Tell the sender that new rows are queued."""
        self._wake.set()

    async def run(self) -> None:
        """Send until cancelled, sleeping until the next row falls due or something new is queued."""
        while True:
            await self.drain()
            with unit_of_work(self._engine) as session:
                due = outbox.next_due_at(session)
            timeout = _IDLE_SECONDS
            if due is not None:
                timeout = min(max((due - utcnow()).total_seconds(), 0.05), _IDLE_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def drain(self) -> int:
        """Send every row that is due now; return how many calls were made."""
        total = 0
        while True:
            self._wake.clear()
            with unit_of_work(self._engine) as session:
                rows = outbox.claim_due(session, owner=self._owner, now=utcnow(), lease=_LEASE, limit=_BATCH)
            if not rows:
                return total
            by_chat: dict[int, list[OutboxMessage]] = defaultdict(list)
            for row in rows:
                by_chat[int(row.chat_id or 0)].append(row)
            results = await asyncio.gather(*(self._send_chat(chat_rows) for chat_rows in by_chat.values()))
            outcomes = [outcome for chat_outcomes in results for outcome in chat_outcomes]
            blocked_chats = {
                chat_id
                for chat_id, chat_outcomes in zip(by_chat, results, strict=True)
                if any(outcome.status is OutboxStatus.BLOCKED for outcome in chat_outcomes)
            }
            now = utcnow()
            with unit_of_work(self._engine) as session:
                outbox.apply_outcomes(session, {_row_id(row): row for row in rows}, outcomes, now=now)
                if blocked_chats:
                    session.execute(
                        sa.update(TelegramUser)
                        .where(col(TelegramUser.id).in_(blocked_chats))
                        .values(blocked_at=now)
                    )
            total += len(outcomes)

    async def _send_chat(self, rows: list[OutboxMessage]) -> list[SendOutcome]:
        """Send one chat's rows in order; once the chat refuses, hold the rest the same way."""
        outcomes: list[SendOutcome] = []
        held: SendOutcome | None = None
        for row in rows:
            if held is not None:
                outcomes.append(
                    SendOutcome(
                        row_id=_row_id(row),
                        status=held.status,
                        next_attempt_at=held.next_attempt_at,
                        error=held.error,
                        count_attempt=False,
                    )
                )
                continue
            outcome = await self._send_one(row)
            outcomes.append(outcome)
            if outcome.status is not OutboxStatus.SENT and outcome.status is not OutboxStatus.FAILED:
                held = outcome
        return outcomes

    async def _send_one(self, row: OutboxMessage) -> SendOutcome:
        row_id = _row_id(row)
        try:
            async with self._http_slots:
                message_id = await self._call(row)
        except RetryAfter as error:
            wait = _seconds(error.retry_after)
            log.warning("Telegram asked to slow down; retrying outbox row %s in %.0fs", row_id, wait)
            return SendOutcome(
                row_id=row_id,
                status=OutboxStatus.PENDING,
                next_attempt_at=utcnow() + timedelta(seconds=wait),
                error=str(error),
                count_attempt=False,
            )
        except Forbidden as error:
            return self._refused(row, error)
        except BadRequest as error:
            return self._bad_request(row, error)
        except (NetworkError, TelegramError) as error:
            return self._retry_later(row, error)
        except Exception as error:  # a bug must not stop the queue: keep the row and retry it
            log.exception("sending outbox row %s failed unexpectedly", row_id)
            return self._retry_later(row, error)
        return SendOutcome(row_id=row_id, status=OutboxStatus.SENT, message_id=message_id)

    async def _call(self, row: OutboxMessage) -> int | None:
        """Make the Bot API call a row describes; return the message id it produced, if any."""
        if row.chat_id is None:  # claim_due never hands out rows without a chat
            raise ValueError(f"outbox row {row.id} has no chat")
        if row.method not in _METHODS:
            raise ValueError(f"outbox row {row.id} has an unsupported method {row.method!r}")
        payload: dict[str, Any] = {**row.payload, "chat_id": row.chat_id}
        try:
            result = await _post(self._bot, row.method, payload)
        except BadRequest as error:
            if row.method != "editMessageText" or row.kind not in STEP_KINDS or not _is_gone(error):
                raise
            # The customer deleted the message (or it can no longer be edited): the next step must
            # still reach them, so it goes out as a new message.
            payload.pop("message_id", None)
            result = await _post(self._bot, "sendMessage", payload)
        message_id = result.get("message_id") if isinstance(result, dict) else None
        return message_id if isinstance(message_id, int) else None

    def _refused(self, row: OutboxMessage, error: Forbidden) -> SendOutcome:
        text = str(error).lower()
        row_id = _row_id(row)
        if row.kind == KIND_STAFF_ALERT:
            log.error(
                "the staff chat refuses messages (%s): is the bot still a member? retrying later", error
            )
            return self._retry_later(row, error)
        if "initiate" in text:
            return SendOutcome(row_id=row_id, status=OutboxStatus.AWAITING_CONTACT, error=str(error))
        if row.kind not in SURVEY_KINDS and "blocked" in text:
            # A reply to someone who has since blocked us is no longer worth sending later.
            return SendOutcome(row_id=row_id, status=OutboxStatus.CANCELLED, error=str(error))
        return SendOutcome(row_id=row_id, status=OutboxStatus.BLOCKED, error=str(error))

    def _bad_request(self, row: OutboxMessage, error: BadRequest) -> SendOutcome:
        text = str(error).lower()
        row_id = _row_id(row)
        if "chat not found" in text and row.kind != KIND_STAFF_ALERT:
            return SendOutcome(row_id=row_id, status=OutboxStatus.AWAITING_CONTACT, error=str(error))
        if "message is not modified" in text:
            return SendOutcome(row_id=row_id, status=OutboxStatus.SENT)
        log.error("Telegram rejected outbox row %s (%s %s): %s", row_id, row.kind, row.method, error)
        return SendOutcome(row_id=row_id, status=OutboxStatus.FAILED, error=str(error))

    def _retry_later(self, row: OutboxMessage, error: BaseException) -> SendOutcome:
        backoff = min(timedelta(seconds=2 ** min(row.attempts, 12)), _MAX_BACKOFF)
        jitter = timedelta(seconds=random.uniform(0, 1))  # noqa: S311 - spreading retries needs no crypto
        log.warning("outbox row %s not sent (%s); retrying in %s", row.id, type(error).__name__, backoff)
        return SendOutcome(
            row_id=_row_id(row),
            status=OutboxStatus.PENDING,
            next_attempt_at=utcnow() + backoff + jitter,
            error=f"{type(error).__name__}: {error}",
        )


async def _post(bot: Bot, method: str, payload: dict[str, Any]) -> object:
    """Call the Bot API with a stored payload as it is and return the raw result.

    The outbox already holds each call as the Bot API's JSON, so turning it into PTB objects for
    ``send_message`` and the answer back into a ``Message`` would only cost CPU (about a third of a
    millisecond per call, most of an answer's PTB time; bench/README.md). ``Bot._post`` is the path PTB's
    own methods and ``do_api_request`` share: it applies the rate limiter and maps Telegram's errors to
    PTB's exceptions. ``do_api_request`` itself warns for methods PTB wraps, hence the direct call.
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


def _seconds(value: object) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)  # type: ignore[arg-type]


def assign_staff_chat(engine: Engine, staff_chat_id: int | None, now: datetime) -> int:
    """Give alerts queued while no STAFF_CHAT_ID was configured to the staff chat configured now."""
    if staff_chat_id is None:
        return 0
    with unit_of_work(engine) as session:
        result = session.execute(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.chat_id).is_(None))
            .where(col(OutboxMessage.kind) == KIND_STAFF_ALERT)
            .values(chat_id=staff_chat_id, next_attempt_at=now)
        )
    return int(getattr(result, "rowcount", 0) or 0)
