"""The delivery queue: every message the bot must send is a row here before it is sent.

Rows are written in the same transaction as the change that needs them (an answer, a survey start), so a
message is never lost to a crash and never queued twice (``dedupe_key``). Senders lease rows
(``locked_until`` + ``lease_owner``) so that two senders, in one process or in two replicas, never send the
same row at once, and a crashed sender's rows are picked up again when its lease runs out.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.case_group import card_key
from storage.models import (
    Case,
    CaseStatus,
    OutboxMessage,
    OutboxStatus,
    SendBudget,
    SendChat,
    TelegramUser,
    UtcDateTime,
    utcnow,
)
from storage.pacing import Pace, chat_pace
from storage.preload import GroupRows, group_of, write_pending
from storage.upsert import insert_ignoring_duplicates, upsert

KIND_QUESTION = "survey_question"
KIND_ANSWERED = "survey_answered"
KIND_THANKS = "survey_thanks"
KIND_REPLY = "reply"
KIND_STAFF_ALERT = "staff_alert"
KIND_CLOSED = "survey_closed"  # buttons taken off an open question after /stop
KIND_CASE_CARD = "case_card"
KIND_CASE_EDIT = "case_card_edit"
KIND_CASE_MESSAGE = "case_message"  # a customer's message relayed into the staff chat
KIND_CASE_TOPIC = "case_topic"  # createForumTopic for a case, queued right before its card
KIND_ESCALATION = "case_escalation"  # to a manager chat
KIND_RECOVERY = "recovery_check"  # "is the problem solved?" to the customer
KIND_CHECKIN = "checkin"  # to a customer who went quiet, and its answered edit
KIND_SETUP = "setup_reply"  # the STAFF_CHAT_ID line, in the group that asked (not moved with the staff chat)
KIND_REPORT = "report"
"""The weekly summary, /report and /export, to a manager chat (bot/report_jobs.py)."""
KIND_PRIVACY = "privacy"
"""/mydata's answer and file, /forget's question and its outcome: answers to what the customer asked for,
so /stop does not cancel them (handlers/privacy.py)."""
CUSTOMER_KINDS = (KIND_QUESTION, KIND_ANSWERED, KIND_THANKS, KIND_REPLY, KIND_RECOVERY, KIND_CHECKIN)
SURVEY_KINDS = (KIND_QUESTION, KIND_ANSWERED, KIND_THANKS)
STEP_KINDS = (KIND_QUESTION, KIND_THANKS)
"""Rows that carry a survey step; when they edit a message that is gone, they are sent anew."""
STAFF_KINDS = (KIND_STAFF_ALERT, KIND_CASE_CARD, KIND_CASE_EDIT, KIND_CASE_MESSAGE, KIND_CASE_TOPIC)
"""Rows for the staff chat: they wait while it is unreachable, they never fail for good."""
UNSENT_STATUSES = (OutboxStatus.PENDING, OutboxStatus.BLOCKED, OutboxStatus.AWAITING_CONTACT)
THREAD_OF = "_thread_of"
UNPROMPTED = "_unprompted"
"""Payload flag of a message the customer did not ask for (a survey's first question, a reminder, a
check-in): the sender holds it during quiet hours, even when a retry delayed it into them. True for the
shop's TIMEZONE, or the name of the customer's own zone. Never sent to Telegram."""
"""A payload key that is not a Bot API parameter: the outbox key of a ``createForumTopic`` row whose topic
this ``sendMessage`` goes into. The sender puts in the topic's ``message_thread_id`` (the topic row's
``sent_message_id``), or leaves it out when the topic could not be made, so the message is never lost."""
DOCUMENT = "_document"
"""Payload key of a ``sendDocument`` row: the file to upload, as ``{"filename", "base64"}`` (Telegram and
PTB take the file's type from its name).

A payload is JSON, and a file is bytes; base64 in the payload keeps the file in the same row, written in
the same transaction as the change that needs it and scrubbed with it (:data:`SCRUB_AFTER_SEND`), where a
table of its own would need its own cleanup. The sender turns it into PTB's ``InputFile``, which makes the
call a multipart upload. Files here are small (a customer's data export, a few kilobytes)."""
SCRUB_AFTER_SEND = "_scrub_after_send"
"""Payload flag of a message whose content is personal data that must not stay in the outbox once it is
out: ``"payload"`` (a /mydata export: the payload is replaced by :data:`SCRUBBED` once the row is sent,
failed or cancelled) or ``"chat"`` (the last words to someone who had their data erased: the chat id goes
too, and the chat's pacing row once nothing else refers to it). Never sent to Telegram."""
SCRUBBED: dict[str, Any] = {"_scrubbed": True}
"""The payload of a row whose content was personal data and is gone (sent, or erased)."""


def document_payload(*, filename: str, content: bytes, caption: str | None = None) -> dict[str, Any]:
    """A ``sendDocument`` payload (without ``chat_id``) carrying its file, for :data:`DOCUMENT`; the
    caption is catalogue HTML."""
    payload: dict[str, Any] = {
        DOCUMENT: {"filename": filename, "base64": base64.b64encode(content).decode("ascii")}
    }
    if caption is not None:
        payload["caption"] = caption
        payload["parse_mode"] = "HTML"
    return payload


def photo_payload(*, filename: str, content: bytes, caption: str | None = None) -> dict[str, Any]:
    """A ``sendPhoto`` payload (without ``chat_id``) carrying its picture like a document carries its file
    (:data:`DOCUMENT`); the sender uploads it as ``photo``."""
    return document_payload(filename=filename, content=content, caption=caption)


def document_of(payload: Mapping[str, Any]) -> tuple[str, bytes] | None:
    """The file a payload carries (filename, content), or None when it carries none."""
    found = payload.get(DOCUMENT)
    if not isinstance(found, dict):
        return None
    return str(found["filename"]), base64.b64decode(found["base64"])


@dataclass(frozen=True)
class OutboundCall:
    """One Bot API call to queue."""

    dedupe_key: str
    kind: str
    method: str
    chat_id: int | None
    payload: dict[str, Any]
    delivery_id: int | None = None


def enqueue(session: Session, call: OutboundCall, *, now: datetime | None = None) -> None:
    """Queue a call unless one with the same ``dedupe_key`` exists.

    Inside the update worker's group the row is written with the group's others at its end
    (storage/preload.py); anything here that reads the outbox writes them first.
    """
    now = now or utcnow()
    row = {
        "dedupe_key": call.dedupe_key,
        "kind": call.kind,
        "method": call.method,
        "chat_id": call.chat_id,
        "payload": call.payload,
        "delivery_id": call.delivery_id,
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    group = group_of(session)
    if group is not None:
        group.new_outbox.setdefault(call.dedupe_key, row)  # like the unique key: the first one counts
        return
    table = OutboxMessage.__table__  # type: ignore[attr-defined]
    insert_ignoring_duplicates(session, table, [row], conflict_columns=["dedupe_key"])


def keep_current(
    session: Session,
    *,
    key: str,
    kind: str,
    chat_id: int | None,
    payload: dict[str, Any],
    version: int,
    delivery_id: int | None,
    now: datetime,
    force: bool = False,
    new: bool = False,
) -> bool:
    """Show ``payload`` as one message that is kept current; return False if it could not be yet.

    - Not queued yet: queue it (``sendMessage`` under ``key``).
    - Queued and waiting: its row takes the new payload, so only the latest state goes out.
    - Sent: an edit is queued (``editMessageText``, under ``key:edit:version``) unless the message shows
      this payload already (``force`` edits anyway), and edits still waiting for older states are
      cancelled.
    - On its way (leased by a sender): the row takes the new payload, for a retry, and False tells the
      caller to edit once the message has its id, because the send may succeed with the old state.
    """
    group = group_of(session)
    if group is not None and key in group.new_outbox:  # queued by this group: not written yet
        group.new_outbox[key]["payload"] = payload
        return True
    if new:  # the caller knows nothing was queued under this key yet: no need to look
        row = None
    elif group is not None and key in group.outbox_rows:  # loaded for the group (storage/case_group.py)
        row = group.outbox_rows[key]
    else:
        # What the group queued itself is in ``group.new_outbox`` (looked at above) or written already:
        # no need to write the group's pending rows early to find this one.
        row = session.exec(select(OutboxMessage).where(col(OutboxMessage.dedupe_key) == key)).first()
        if group is not None and row is not None:  # the group's next look at it (a shared card) is free
            group.outbox_rows[key] = row
    if row is None:
        enqueue(session, OutboundCall(key, kind, "sendMessage", chat_id, payload, delivery_id), now=now)
        if group is not None:  # queued as a pending dict, not a row: a second look must read it back
            group.outbox_rows.pop(key, None)
        return True
    unchanged = row.payload == payload
    if not unchanged:
        row.payload = payload
        session.add(row)
    if row.status == OutboxStatus.SENT.value and row.sent_message_id is not None:
        if unchanged and not force:
            return True
        _cancel_waiting_edits(session, key, now=now)
        edit = {**payload, "message_id": int(row.sent_message_id)}
        edit_kind = KIND_CASE_EDIT if kind == KIND_CASE_CARD else kind
        edit_call = OutboundCall(
            f"{key}:edit:{version}", edit_kind, "editMessageText", row.chat_id, edit, delivery_id
        )
        enqueue(session, edit_call, now=now)
        return True
    in_flight = row.locked_until is not None and row.locked_until > now
    return not in_flight


def _cancel_waiting_edits(session: Session, key: str, *, now: datetime) -> None:
    """Cancel edits for older states that no sender holds: the new edit shows everything they would."""
    session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.dedupe_key).startswith(f"{key}:edit:"))
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING.value)
        .where(sa.or_(col(OutboxMessage.locked_until).is_(None), col(OutboxMessage.locked_until) <= now))
        .values(status=OutboxStatus.CANCELLED.value)
    )


def call_of(session: Session, key: str) -> OutboxMessage | None:
    """The row queued under ``key`` (those the update group collected included), or None."""
    write_pending(session)
    return session.exec(select(OutboxMessage).where(col(OutboxMessage.dedupe_key) == key)).first()


def sent_message_id(session: Session, key: str) -> int | None:
    """The Telegram message a sent row became (None while it is unsent)."""
    write_pending(session)
    found = session.exec(
        select(OutboxMessage.sent_message_id).where(col(OutboxMessage.dedupe_key) == key)
    ).first()
    return int(found) if found is not None else None


BOT_BUDGET = "bot"
"""The one ``send_budget`` row: the bot's overall rate is shared by every process."""
MAX_ROWS_PER_CHAT = 3
"""A chat's rows looked at per claim: at most a private chat's burst can go out at once anyway."""


@dataclass(frozen=True)
class ClaimedCall:
    """A row leased to this sender, with the moment it may be sent (the bot's and its chat's pace)."""

    row: OutboxMessage
    send_at: datetime
    chat_unreachable: bool = False
    """The chat refused its last message (a staff chat); a send that succeeds says it answers again."""


@dataclass(frozen=True)
class Claim:
    """What one claim produced, and when it is worth claiming again."""

    calls: list[ClaimedCall]
    paused_until: datetime | None = None
    """Telegram answered 429: nothing may be sent by any process until then."""
    retry_at: datetime | None = None
    """When rows that had to wait (the bot's budget, a chat's pace) may go; None: nothing is waiting."""


def claim_due(
    session: Session,
    *,
    owner: str,
    now: datetime,
    lease: timedelta,
    horizon: timedelta,
    bot: Pace,
    limit: int = 500,
) -> Claim:
    """Lease the rows that may be sent within ``horizon`` under every rate limit, each with its moment.

    Every process claims under the lock of the one ``send_budget`` row, so together they stay within
    ``bot``'s pace and each chat's pace (storage/pacing.py). Within a chat, rows go strictly in queue
    order: a chat whose oldest row waits (a retry's backoff) or is still being sent (leased) offers
    nothing, so no chat's messages overtake each other, and no second sender gets a chat's rows while
    the first holds them. A chat that must wait is skipped, never waited for: it cannot hold up another.
    """
    budget = _lock_budget(session, now)
    if budget.paused_until is not None and budget.paused_until > now:
        return Claim(calls=[], paused_until=budget.paused_until, retry_at=budget.paused_until)
    horizon_end = now + horizon
    rows = _lock_candidates(session, now=now, horizon_end=horizon_end, limit=limit)
    chats, unreachable = _chat_paces(session, {int(row.chat_id or 0) for row in rows})
    calls: list[ClaimedCall] = []
    waiting_chats: set[int] = set()
    retry_at: datetime | None = None
    bot_tat = budget.tat
    for row in rows:
        chat_id = int(row.chat_id or 0)
        if chat_id in waiting_chats:
            continue
        slot = bot.earliest(bot_tat, now)
        if slot > horizon_end:
            retry_at = _earlier(retry_at, slot - horizon)  # the bot's budget: claim again when it refills
            break
        pace = chat_pace(chat_id)
        chat_slot = pace.earliest(chats.get(chat_id), now)
        if chat_slot > slot:
            waiting_chats.add(chat_id)  # its pace says later; the rest of its queue waits behind it
            retry_at = _earlier(retry_at, chat_slot)
            continue
        bot_tat = bot.spend(bot_tat, slot)
        chats[chat_id] = pace.spend(chats.get(chat_id), slot)
        calls.append(ClaimedCall(row=row, send_at=slot, chat_unreachable=chat_id in unreachable))
    if not calls:
        # Nothing goes now: say when something may (a retry falls due, a chat's pace allows). With calls
        # claimed, their outcomes wake the sender anyway, and it asks again then.
        later = _next_moment(session, now=now)
        if later is not None:
            retry_at = _earlier(retry_at, later)
        return Claim(calls=[], retry_at=retry_at)
    session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.id).in_([call.row.id for call in calls]))
        .values(locked_until=now + lease, lease_owner=owner)
    )
    for call in calls:
        call.row.locked_until, call.row.lease_owner = now + lease, owner
    sent_to = {int(call.row.chat_id or 0) for call in calls}
    upsert(
        session,
        SendChat.__table__,  # type: ignore[attr-defined]
        [
            {
                "chat_id": chat_id,
                "tat": chats[chat_id],
                "ready_at": chats[chat_id] - chat_pace(chat_id).tolerance,
                "updated_at": now,
            }
            for chat_id in sorted(sent_to)
        ],
        conflict_columns=["chat_id"],
        update_columns=["tat", "ready_at", "updated_at"],
    )
    budget.tat = bot_tat
    session.add(budget)
    return Claim(calls=calls, retry_at=retry_at)


_RECHECK = timedelta(milliseconds=200)


def _next_moment(session: Session, *, now: datetime) -> datetime | None:
    """Return when a row not claimable now may become so: its retry falls due, or its chat's pace allows.

    Rows queued behind a chat's row in flight are released by that row's outcome (which wakes the
    sender); for them this returns a short recheck instead of now, so nobody spins on them.
    """
    free = sa.or_(col(OutboxMessage.locked_until).is_(None), col(OutboxMessage.locked_until) < now)
    moment = sa.case(
        (
            sa.and_(
                col(SendChat.ready_at).is_not(None), col(SendChat.ready_at) > OutboxMessage.next_attempt_at
            ),
            col(SendChat.ready_at),
        ),
        else_=col(OutboxMessage.next_attempt_at),
    )
    earliest = session.exec(
        select(sa.func.min(moment))
        .select_from(OutboxMessage)
        .outerjoin(SendChat, col(SendChat.chat_id) == OutboxMessage.chat_id)
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING.value)
        .where(col(OutboxMessage.chat_id).is_not(None))
        .where(free)
    ).one()
    if earliest is None:
        return None
    if isinstance(earliest, str):  # SQLite hands back CASE results untyped
        earliest = datetime.fromisoformat(earliest)
    moment_at: datetime = earliest if earliest.tzinfo else earliest.replace(tzinfo=UTC)
    return moment_at if moment_at > now else now + _RECHECK


def _set_chat(session: Session, chat_id: int, *, now: datetime, **values: Any) -> None:
    """Set some of what is known about a chat, creating its row (with a full pace) on first mention."""
    upsert(
        session,
        SendChat.__table__,  # type: ignore[attr-defined]
        [{"chat_id": chat_id, "tat": now, "ready_at": now, "updated_at": now, **values}],
        conflict_columns=["chat_id"],
        update_columns=[*values, "updated_at"],
    )


def _earlier(first: datetime | None, second: datetime) -> datetime:
    return second if first is None else min(first, second)


def _lock_budget(session: Session, now: datetime) -> SendBudget:
    """Return the bot's budget row, locked until the claim commits (created on first use)."""
    statement = select(SendBudget).where(col(SendBudget.name) == BOT_BUDGET).with_for_update()
    budget = session.exec(statement).first()
    if budget is None:
        table = SendBudget.__table__  # type: ignore[attr-defined]
        row = {"name": BOT_BUDGET, "tat": now, "throttled_total": 0}
        insert_ignoring_duplicates(session, table, [row], conflict_columns=["name"])
        budget = session.exec(statement).one()
    return budget


def _lock_candidates(
    session: Session, *, now: datetime, horizon_end: datetime, limit: int
) -> list[OutboxMessage]:
    """Return, locked, the head rows of every chat that may get a message soon: first rows first."""
    outbox_id = col(OutboxMessage.id)
    chat = col(OutboxMessage.chat_id)
    busy = sa.or_(
        col(OutboxMessage.next_attempt_at) > now,
        sa.and_(col(OutboxMessage.locked_until).is_not(None), col(OutboxMessage.locked_until) >= now),
    )
    # Within a chat, rows go in queue order, except that edits of case cards wait behind the new cards of
    # the staff chat: in a burst of critics, a new case must be seen before an old one's reason.
    later = sa.case((col(OutboxMessage.kind) == KIND_CASE_EDIT, 1), else_=0)
    ranked = (
        select(
            outbox_id.label("id"),
            chat.label("chat_id"),
            sa.case((busy, 1), else_=0).label("busy"),
            sa.func.row_number().over(partition_by=chat, order_by=(later, outbox_id)).label("position"),
        )
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING.value)
        .where(chat.is_not(None))
        .subquery()
    )
    queues = select(
        ranked.c.id,
        ranked.c.chat_id,
        ranked.c.position,
        sa.func.min(sa.case((ranked.c.busy == 1, ranked.c.position)))
        .over(partition_by=ranked.c.chat_id)
        .label("first_busy"),
    ).subquery()
    heads = (
        select(queues.c.id, queues.c.position)
        .outerjoin(SendChat, col(SendChat.chat_id) == queues.c.chat_id)
        .where(queues.c.position <= MAX_ROWS_PER_CHAT)
        .where(sa.or_(queues.c.first_busy.is_(None), queues.c.position < queues.c.first_busy))
        .where(sa.or_(col(SendChat.ready_at).is_(None), col(SendChat.ready_at) <= horizon_end))
        .order_by(queues.c.position, queues.c.id)
        .limit(limit)
    )
    positions = {int(row_id): int(position) for row_id, position in session.execute(heads).all()}
    if not positions:
        return []
    # Rows a handler is changing right now (a /stop cancelling them) are skipped, not waited for.
    locked = session.exec(
        select(OutboxMessage)
        .where(outbox_id.in_(list(positions)))
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING.value)
        .order_by(outbox_id)
        .with_for_update(skip_locked=True)
    ).all()
    return sorted(locked, key=lambda row: (positions[int(row.id or 0)], int(row.id or 0)))


def _chat_paces(session: Session, chat_ids: set[int]) -> tuple[dict[int, datetime], set[int]]:
    """Return the theoretical arrival time of each chat that has one, and which of them are unreachable."""
    if not chat_ids:
        return {}, set()
    rows = session.exec(
        select(SendChat.chat_id, SendChat.tat, SendChat.unreachable_since).where(
            col(SendChat.chat_id).in_(chat_ids)
        )
    ).all()
    paces = {int(chat_id): tat for chat_id, tat, _ in rows}
    return paces, {int(chat_id) for chat_id, _, since in rows if since is not None}


def next_due_at(session: Session) -> datetime | None:
    """Return when the next pending row falls due, so the sender can sleep exactly until then."""
    return session.exec(
        select(sa.func.min(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.status == OutboxStatus.PENDING.value
        )
    ).one()


def message_id_of(session: Session, dedupe_key: str) -> int | None:
    """Return the Telegram message a queued call shows in: the one it sent, or the one it edits.

    An edit names its message before it is sent, so the message is known even while the edit waits
    for its chat's pace or its outcome is still to be written.
    """
    group = group_of(session)
    if group is not None and dedupe_key in group.message_ids:
        return group.message_ids[dedupe_key]
    write_pending(session)
    row = session.exec(
        select(OutboxMessage.sent_message_id, OutboxMessage.method, OutboxMessage.payload).where(
            col(OutboxMessage.dedupe_key) == dedupe_key
        )
    ).first()
    return _shown_in(*row) if row is not None else None


def load_message_ids(session: Session, group: GroupRows, keys: list[str]) -> None:
    """Load into a group the messages these outbox keys show in, in one statement."""
    wanted = [key for key in keys if key not in group.message_ids]
    if not wanted:
        return
    group.message_ids.update(dict.fromkeys(wanted))
    rows = session.execute(
        sa.select(
            col(OutboxMessage.dedupe_key),
            col(OutboxMessage.sent_message_id),
            col(OutboxMessage.method),
            col(OutboxMessage.payload),
        ).where(col(OutboxMessage.dedupe_key).in_(wanted))
    ).all()
    for key, sent, method, payload in rows:
        group.message_ids[key] = _shown_in(sent, method, payload)


def _shown_in(sent: int | None, method: str, payload: Mapping[str, Any]) -> int | None:
    if sent is not None:
        return int(sent)
    edited = payload.get("message_id") if method.startswith("edit") else None
    return edited if isinstance(edited, int) else None


def release_chat(
    session: Session, chat_id: int, *, from_statuses: tuple[OutboxStatus, ...], now: datetime
) -> int:
    """Put a chat's held rows (blocked, awaiting contact) back in the queue; return how many.

    The moment is remembered for the chat: a refusal still on its way from a call made before it is
    stale (record_outcomes), so the row it concerns is retried instead of held.
    """
    write_pending(session)
    _set_chat(session, chat_id, now=now, released_at=now)
    result = session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.chat_id) == chat_id)
        .where(col(OutboxMessage.status).in_([status.value for status in from_statuses]))
        .values(status=OutboxStatus.PENDING.value, next_attempt_at=now, locked_until=None, lease_owner=None)
    )
    _answering_now(session, chat_id)
    return int(getattr(result, "rowcount", 0) or 0)


def _answering_now(session: Session, chat_id: int) -> None:
    """The customer just wrote or opened the bot: what waited for that answers them, so it is no
    longer unprompted and goes out at once, also at night (a handful of rows per chat at most).

    Rows a sender has just claimed are skipped, not waited for: the sender locks a row and then its
    chat's pace, and this transaction already holds that chat's row (``_set_chat``), so waiting was a
    deadlock (PostgreSQL broke three in a few dozen runs of tests/test_e2e_checkins.py). A skipped row
    is being sent now.
    """
    waiting = session.exec(
        select(OutboxMessage)
        .where(col(OutboxMessage.chat_id) == chat_id)
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING.value)
        .with_for_update(skip_locked=True)
    ).all()
    for row in waiting:
        if UNPROMPTED in row.payload:
            row.payload = {key: value for key, value in row.payload.items() if key != UNPROMPTED}
            session.add(row)


def hold_chat(session: Session, chat_id: int, *, status: OutboxStatus) -> int:
    """Hold a chat's pending rows (the user blocked the bot) until they are released again."""
    write_pending(session)
    result = session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.chat_id) == chat_id)
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING.value)
        .values(status=status.value, locked_until=None, lease_owner=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def cancel_chat(session: Session, chat_id: int, *, kinds: tuple[str, ...]) -> int:
    """Cancel a chat's unsent rows of the given kinds (the customer said /stop)."""
    return _cancel_unsent(session, col(OutboxMessage.chat_id) == chat_id, kinds=kinds)


def cancel_delivery(session: Session, delivery_id: int, *, kinds: tuple[str, ...]) -> int:
    """Cancel a survey's unsent rows of the given kinds (it expired, or a reminder asks again)."""
    return _cancel_unsent(session, col(OutboxMessage.delivery_id) == delivery_id, kinds=kinds)


def _cancel_unsent(session: Session, which: sa.ColumnElement[bool], *, kinds: tuple[str, ...]) -> int:
    write_pending(session)
    result = session.execute(
        sa.update(OutboxMessage)
        .where(which)
        .where(col(OutboxMessage.kind).in_(kinds))
        .where(
            col(OutboxMessage.status).in_(
                [OutboxStatus.PENDING.value, OutboxStatus.BLOCKED.value, OutboxStatus.AWAITING_CONTACT.value]
            )
        )
        .values(status=OutboxStatus.CANCELLED.value, locked_until=None, lease_owner=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class SendOutcome:
    """What happened to one leased row, and what it teaches about its chat or the bot as a whole."""

    row_id: int
    chat_id: int
    status: OutboxStatus
    next_attempt_at: datetime | None = None
    error: str | None = None
    message_id: int | None = None
    count_attempt: bool = True
    hold_chat: bool = False
    """The chat refuses everything (blocked, never opened): hold its other unsent rows the same way."""
    throttled_for: timedelta | None = None
    """Telegram answered 429: every process pauses this long."""
    chat_unreachable: bool = False
    """A chat that must not lose messages (the staff chat) refused; they wait until it answers again."""
    migrated_to: int | None = None
    """The group became a supergroup with this id: everything queued follows it."""
    user_blocked: bool = False
    """The person blocked the bot: they get nothing until they write again."""
    chat_reached: bool = False
    """A chat marked unreachable took this message: it is reachable again."""
    attempted_at: datetime | None = None
    """When the call was made: a person who wrote to the bot since then is reachable whatever it said."""
    not_a_forum: bool = False
    """A topic could not be made there (no topics, or no right to manage them): make no more."""
    scrub: str | None = None
    """The row's :data:`SCRUB_AFTER_SEND`: what of it goes once it is out for good."""


# Conditional on the lease: a row whose status changed while it was in flight (a /stop cancelled it)
# no longer belongs to us, and whatever the call returned must not overwrite that.
_FINISH = (
    sa.update(OutboxMessage)
    .where(col(OutboxMessage.id) == sa.bindparam("b_id"))
    .where(col(OutboxMessage.lease_owner) == sa.bindparam("b_owner"))
    .where(col(OutboxMessage.status) == OutboxStatus.PENDING.value)
    .values(
        status=sa.bindparam("b_status"),
        locked_until=None,
        lease_owner=None,
        attempts=OutboxMessage.attempts + sa.bindparam("b_attempt", type_=sa.Integer()),
        sent_at=sa.bindparam("b_sent_at", type_=UtcDateTime()),
        sent_message_id=sa.bindparam("b_message_id", type_=sa.BigInteger()),
        next_attempt_at=sa.func.coalesce(
            sa.bindparam("b_next_at", type_=UtcDateTime()), OutboxMessage.next_attempt_at
        ),
        # A released row (not tried) keeps the error of its last try; a sent row forgets it.
        last_error=sa.func.coalesce(
            sa.bindparam("b_error", type_=sa.String()),
            sa.case(
                (sa.bindparam("b_status", type_=sa.String()) == OutboxStatus.SENT.value, None),
                else_=OutboxMessage.last_error,
            ),
        ),
    )
)
# A call that went through after its row was cancelled still put a message in the chat; its id is kept
# so the message can be found (and its buttons taken off) later.
_RECORD_LATE_SEND = (
    sa.update(OutboxMessage)
    .where(col(OutboxMessage.id) == sa.bindparam("b_id"))
    .where(col(OutboxMessage.status) != OutboxStatus.PENDING.value)
    .where(col(OutboxMessage.sent_at).is_(None))
    .values(
        sent_at=sa.bindparam("b_sent_at", type_=UtcDateTime()),
        sent_message_id=sa.bindparam("b_message_id", type_=sa.BigInteger()),
    )
)


def record_outcomes(session: Session, outcomes: list[SendOutcome], *, owner: str, now: datetime) -> None:
    """Write what the calls did, and what they taught about their chats and the bot's budget."""
    if not outcomes:
        return
    outcomes = _without_stale_refusals(session, outcomes, now=now)
    connection = session.connection()
    outcomes = sorted(outcomes, key=lambda outcome: outcome.row_id)  # rows locked in id order, like the ORM's
    finished = [_finish_parameters(outcome, owner=owner, now=now) for outcome in outcomes]
    changed = connection.execute(_FINISH, finished).rowcount
    sent = [params for params, outcome in zip(finished, outcomes, strict=True) if outcome.message_id]
    if sent and changed is not None and 0 <= changed < len(finished):
        connection.execute(_RECORD_LATE_SEND, sent)
        _disarm_cancelled(session, [int(params["b_id"]) for params in sent], now=now)
    for outcome in outcomes:
        if outcome.hold_chat:
            hold_chat(session, outcome.chat_id, status=outcome.status)
        if outcome.migrated_to is not None:
            follow_migration(session, outcome.chat_id, outcome.migrated_to, now=now)
        if outcome.throttled_for is not None:
            pause_bot(session, until=now + outcome.throttled_for, now=now)
        if outcome.not_a_forum:
            set_forum(session, outcome.chat_id, is_forum=False, now=now)
    blocked = {o.chat_id for o in outcomes if o.user_blocked}
    if blocked:
        session.execute(
            sa.update(TelegramUser).where(col(TelegramUser.id).in_(blocked)).values(blocked_at=now)
        )
    _scrub_finished(session, outcomes)
    unreachable = {o.chat_id: o.error for o in outcomes if o.chat_unreachable}
    if unreachable:
        mark_unreachable(session, unreachable, now=now)
    reached = {o.chat_id for o in outcomes if o.chat_reached and o.status is OutboxStatus.SENT} - set(
        unreachable
    )
    if reached:
        session.execute(
            sa.update(SendChat)
            .where(col(SendChat.chat_id).in_(reached))
            .where(col(SendChat.unreachable_since).is_not(None))
            .values(unreachable_since=None, last_error=None, updated_at=now)
        )


_HELD = (OutboxStatus.PENDING, OutboxStatus.BLOCKED, OutboxStatus.AWAITING_CONTACT)


def _scrub_finished(session: Session, outcomes: list[SendOutcome]) -> None:
    """Drop the personal content of rows flagged :data:`SCRUB_AFTER_SEND` that are out for good.

    Conditional on the row's status, not the outcome's: a row cancelled while it was on its way (an
    erasure) is finished too. Rows still waiting (a retry, a blocked chat) keep what they must send.
    """
    finished = [o for o in outcomes if o.scrub is not None and o.status not in _HELD]
    if not finished:
        return
    still_queued = [status.value for status in _HELD]
    for chat_too in (False, True):
        row_ids = [o.row_id for o in finished if (o.scrub == "chat") is chat_too]
        if not row_ids:
            continue
        values: dict[str, Any] = {"payload": SCRUBBED, "last_error": None}
        if chat_too:
            values["chat_id"] = None
        session.execute(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(row_ids))
            .where(col(OutboxMessage.status).not_in(still_queued))
            .values(**values)
        )
    forgotten = sorted({o.chat_id for o in finished if o.scrub == "chat"})
    if forgotten:
        forget_chat(session, forgotten)


def forget_chat(session: Session, chat_ids: list[int]) -> None:
    """Delete the pacing rows of chats no outbox row names any more (a person whose data was erased)."""
    still_named = select(OutboxMessage.id).where(col(OutboxMessage.chat_id) == SendChat.chat_id)
    session.execute(
        sa.delete(SendChat).where(col(SendChat.chat_id).in_(chat_ids)).where(~still_named.exists())
    )


def _without_stale_refusals(
    session: Session, outcomes: list[SendOutcome], *, now: datetime
) -> list[SendOutcome]:
    """Retry at once, instead of holding, chats whose person came back after the refused call was made.

    "Blocked" or "never opened the bot" is true of the moment the call was made. A /start that arrived
    while its outcome was on the way has already released the chat; holding it now would keep the
    message until the next time they write.
    """
    refused = {o.chat_id: o.attempted_at for o in outcomes if o.hold_chat and o.attempted_at is not None}
    if not refused:
        return outcomes
    # Locked: release_chat writes released_at first, so either it committed before (and is seen here) or
    # it waits for this transaction and then releases the rows held here.
    seen = dict(
        session.exec(
            select(SendChat.chat_id, SendChat.released_at)
            .where(col(SendChat.chat_id).in_(refused))
            .with_for_update()
        ).all()
    )
    stale = set()
    for chat, attempted in refused.items():
        released = seen.get(chat)
        if released is not None and attempted is not None and released >= attempted:
            stale.add(chat)
    if not stale:
        return outcomes
    return [
        dataclasses.replace(
            o,
            status=OutboxStatus.PENDING,
            hold_chat=False,
            user_blocked=False,
            next_attempt_at=now,
            count_attempt=False,
        )
        if o.chat_id in stale and o.hold_chat
        else o
        for o in outcomes
    ]


def _disarm_cancelled(session: Session, row_ids: list[int], *, now: datetime) -> None:
    """Take the buttons off messages that went out although their row was cancelled meanwhile.

    A /stop can cancel a question while its call is already on the way; the question then reaches the
    chat anyway. Cancelled means nothing from it may invite a tap, so its keyboard is removed.
    """
    late = session.exec(
        select(OutboxMessage)
        .where(col(OutboxMessage.id).in_(row_ids))
        .where(col(OutboxMessage.status) == OutboxStatus.CANCELLED.value)
        .where(col(OutboxMessage.sent_message_id).is_not(None))
    ).all()
    for row in late:
        if "reply_markup" in row.payload and row.chat_id is not None:
            enqueue(
                session,
                OutboundCall(
                    dedupe_key=f"disarm:{row.id}",
                    kind=KIND_CLOSED,
                    method="editMessageReplyMarkup",
                    chat_id=row.chat_id,
                    payload={"message_id": row.sent_message_id},
                    delivery_id=row.delivery_id,
                ),
                now=now,
            )


def _finish_parameters(outcome: SendOutcome, *, owner: str, now: datetime) -> dict[str, Any]:
    sent = outcome.status is OutboxStatus.SENT
    return {
        "b_id": outcome.row_id,
        "b_owner": owner,
        "b_status": outcome.status.value,
        "b_attempt": 1 if outcome.count_attempt else 0,
        "b_sent_at": now if sent else None,
        "b_message_id": outcome.message_id if sent else None,
        "b_next_at": outcome.next_attempt_at,
        "b_error": None if sent or outcome.error is None else outcome.error[:500],
    }


def release(session: Session, row_ids: list[int], *, owner: str) -> None:
    """Give leased rows back untouched (the sender stops, or a pause came before their moment)."""
    if row_ids:
        session.execute(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(row_ids))
            .where(col(OutboxMessage.lease_owner) == owner)
            .values(locked_until=None, lease_owner=None)
        )


def renew_leases(session: Session, row_ids: list[int], *, owner: str, until: datetime) -> None:
    """Extend the leases of rows still being sent, so no other sender takes them meanwhile."""
    if not row_ids:
        return
    # Rows locked in id order, skipping any a handler is changing right now (a card taking a new
    # payload): waiting for one while holding others could deadlock with that handler on PostgreSQL.
    # A skipped row keeps its lease until the next renewal, a few seconds later.
    free = session.exec(
        select(OutboxMessage.id)
        .where(col(OutboxMessage.id).in_(row_ids))
        .where(col(OutboxMessage.lease_owner) == owner)
        .order_by(col(OutboxMessage.id))
        .with_for_update(skip_locked=True)
    ).all()
    if free:
        session.execute(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(list(free)))
            .where(col(OutboxMessage.lease_owner) == owner)
            .values(locked_until=until)
        )


def pause_bot(session: Session, *, until: datetime, now: datetime) -> None:
    """Stop every process from sending until ``until`` (Telegram's 429), and count the 429."""
    _lock_budget(session, now)
    session.execute(
        sa.update(SendBudget)
        .where(col(SendBudget.name) == BOT_BUDGET)
        .values(
            paused_until=sa.case(
                (col(SendBudget.paused_until).is_(None), until),
                (col(SendBudget.paused_until) < until, until),
                else_=col(SendBudget.paused_until),
            ),
            throttled_total=SendBudget.throttled_total + 1,
            last_throttled_at=now,
        )
    )


def bot_budget(session: Session) -> SendBudget | None:
    """Return the bot's budget row (429s counted, a pause running), for health reports."""
    return session.get(SendBudget, BOT_BUDGET)


def follow_migration(session: Session, old_chat_id: int, new_chat_id: int, *, now: datetime) -> int:
    """Point everything still queued for a group at the supergroup it became; return how many rows.

    A group's messages cannot be edited or pressed after the upgrade (the old chat answers only with the
    new id), so the cards of cases still open are shown again in the new chat, with their current state
    (their rows go back to the queue; edits waiting for the old messages are cancelled).
    """
    _set_chat(session, old_chat_id, now=now, migrated_to=new_chat_id)
    open_cards = _open_card_keys(session)
    shown_again = 0
    if open_cards:
        in_old_chat = session.exec(
            select(OutboxMessage.dedupe_key)
            .where(col(OutboxMessage.chat_id) == old_chat_id)
            .where(col(OutboxMessage.kind) == KIND_CASE_CARD)
            .where(col(OutboxMessage.status) == OutboxStatus.SENT.value)
            .where(col(OutboxMessage.dedupe_key).in_(sorted(open_cards)))
        ).all()
        for key in in_old_chat:
            session.execute(
                sa.update(OutboxMessage)
                .where(col(OutboxMessage.dedupe_key).startswith(f"{key}:edit:"))
                .where(col(OutboxMessage.status).in_([status.value for status in UNSENT_STATUSES]))
                .values(status=OutboxStatus.CANCELLED.value, locked_until=None, lease_owner=None)
            )
        if in_old_chat:
            result = session.execute(
                sa.update(OutboxMessage)
                .where(col(OutboxMessage.dedupe_key).in_(list(in_old_chat)))
                .values(
                    chat_id=new_chat_id,
                    status=OutboxStatus.PENDING.value,
                    sent_message_id=None,
                    sent_at=None,
                    next_attempt_at=now,
                    locked_until=None,
                    lease_owner=None,
                )
            )
            shown_again = int(getattr(result, "rowcount", 0) or 0)
    result = session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.chat_id) == old_chat_id)
        .where(col(OutboxMessage.status).in_([status.value for status in UNSENT_STATUSES]))
        .values(chat_id=new_chat_id, next_attempt_at=now, locked_until=None, lease_owner=None)
    )
    return shown_again + int(getattr(result, "rowcount", 0) or 0)


def _open_card_keys(session: Session) -> set[str]:
    """The outbox keys of the messages that show a case not resolved yet (own cards and shared ones)."""
    found = session.exec(
        select(Case.id, Case.card_message_key).where(col(Case.status) != CaseStatus.RESOLVED.value)
    ).all()
    return {key or card_key(int(case_id or 0)) for case_id, key in found}


def set_forum(session: Session, chat_id: int, *, is_forum: bool, now: datetime) -> None:
    """Remember whether a chat is a forum (new cases get a topic of their own there)."""
    _set_chat(session, chat_id, now=now, is_forum=is_forum)


def is_forum(session: Session, chat_id: int | None) -> bool:
    """Whether cases get topics in this chat: it is known to be a forum, and making topics worked."""
    if chat_id is None:
        return False
    found = session.exec(select(SendChat.is_forum).where(col(SendChat.chat_id) == chat_id)).first()
    return bool(found)


def thread_of(session: Session, key: str) -> int | None:
    """The ``message_thread_id`` of a topic row that was made; None while it is not (or never will be)."""
    found = session.exec(
        select(OutboxMessage.sent_message_id)
        .where(col(OutboxMessage.dedupe_key) == key)
        .where(col(OutboxMessage.status) == OutboxStatus.SENT.value)
    ).first()
    return int(found) if found is not None else None


def migrations(session: Session) -> dict[int, int]:
    """Return every chat known to have become another (group → supergroup), old id → new id."""
    rows = session.exec(
        select(SendChat.chat_id, SendChat.migrated_to).where(col(SendChat.migrated_to).is_not(None))
    ).all()
    return {int(old): int(new) for old, new in rows if new is not None}


def mark_unreachable(session: Session, errors: dict[int, str | None], *, now: datetime) -> None:
    """Remember that these chats refuse messages (kept waiting, reported by /healthz)."""
    for chat_id, error in errors.items():
        _set_chat(session, chat_id, now=now, last_error=(error or "")[:500] or None)
        session.execute(
            sa.update(SendChat)
            .where(col(SendChat.chat_id) == chat_id)
            .where(col(SendChat.unreachable_since).is_(None))
            .values(unreachable_since=now)
        )


def chat_state(session: Session, chat_id: int) -> SendChat | None:
    """Return what the senders know about one chat (its pace, whether it answers, where it moved)."""
    return session.get(SendChat, chat_id)


def queued_for(session: Session, chat_id: int) -> int:
    """Return how many messages wait for a chat (for health reports)."""
    return session.exec(
        select(sa.func.count())
        .select_from(OutboxMessage)
        .where(col(OutboxMessage.chat_id) == chat_id)
        .where(col(OutboxMessage.status).in_([status.value for status in UNSENT_STATUSES]))
    ).one()


def reassign_unsent(session: Session, *, kinds: tuple[str, ...], chat_id: int, now: datetime) -> int:
    """Send unsent rows of ``kinds`` to ``chat_id`` from now on (STAFF_CHAT_ID was set or changed)."""
    result = session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.kind).in_(kinds))
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING.value)
        .where(sa.or_(col(OutboxMessage.chat_id).is_(None), col(OutboxMessage.chat_id) != chat_id))
        .values(chat_id=chat_id, next_attempt_at=now, locked_until=None, lease_owner=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)
