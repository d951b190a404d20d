"""SQLModel tables: the single source of truth for customers, surveys and everything still to be sent.

All tables live in this one module while they fit (see STYLE.md). Timestamps are timezone-aware UTC;
``UtcDateTime`` makes SQLite hand them back aware too, so comparisons never mix naive and aware values.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime (the only kind stored)."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp column that stores UTC and always returns aware datetimes, on SQLite too."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _ts(*, nullable: bool = False, index: bool = False) -> Any:
    """Declare an aware-UTC timestamp column; a required one defaults to now."""
    column: sa.Column[datetime] = sa.Column(UtcDateTime(), nullable=nullable, index=index)
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(default_factory=utcnow, sa_column=column)


class DeliveryStatus(enum.StrEnum):
    """Where one purchase's survey stands."""

    SCHEDULED = "scheduled"  # waiting for its due time; unprompted, so the contact rules decide it
    REQUESTED = "requested"  # due now because the customer just opened the bot (/start): not unprompted
    AWAITING_CONTACT = "awaiting_contact"  # due, but the customer has not opened the bot yet
    ACTIVE = "active"  # questions are being asked; current_question_id says which
    COMPLETED = "completed"
    STOPPED = "stopped"  # the customer said /stop before finishing
    EXPIRED = "expired"  # SURVEY_EXPIRES_AFTER passed unanswered; still counts for the response rate
    SKIPPED = "skipped"  # the contact rules said no (contact_events has the reason); never sent


class OutboxStatus(enum.StrEnum):
    """Where one queued Bot API call stands."""

    PENDING = "pending"
    SENT = "sent"
    AWAITING_CONTACT = "awaiting_contact"  # 403 can't initiate conversation: waits for /start
    BLOCKED = "blocked"  # 403 blocked/deactivated: waits until the user writes again
    CANCELLED = "cancelled"  # /stop, or no longer relevant
    FAILED = "failed"  # a permanent error (400) that retrying cannot fix


class UpdateStatus(enum.StrEnum):
    """Where one received Telegram update stands."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"  # gave up after repeated errors; kept for inspection


class TelegramUser(SQLModel, table=True):
    """A person as Telegram knows them; opt-out and reachability belong to the chat, not to a shop record."""

    __tablename__ = "telegram_users"

    id: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    first_name: str = Field(default="", max_length=256)
    language_code: str | None = Field(default=None, max_length=35)
    chosen_language: str | None = Field(default=None, max_length=8)
    has_started: bool = Field(default=False)
    opted_out_at: datetime | None = _ts(nullable=True)
    paused_until: datetime | None = _ts(nullable=True)  # /pause: no unprompted messages until then
    blocked_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()
    last_seen_at: datetime = _ts()


class Customer(SQLModel, table=True):
    """A shop's customer, keyed by the shop's own customer id."""

    __tablename__ = "customers"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=128, sa_column_kwargs={"unique": True})
    name: str | None = Field(default=None, max_length=256)
    language: str | None = Field(default=None, max_length=8)
    telegram_user_id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.ForeignKey("telegram_users.id"), index=True)
    )
    created_at: datetime = _ts()
    time_zone: str | None = Field(default=None, max_length=64)
    """The customer's own IANA zone when the shop knows it: quiet hours are theirs, not the shop's."""
    last_purchase_at: datetime | None = _ts(nullable=True)
    median_purchase_gap_s: int | None = Field(default=None)
    """The median gap between their visits in seconds (surveys/silence.py); None for one visit."""
    checkin_due_at: datetime | None = _ts(nullable=True, index=True)
    """When the sweep next looks at whether they went silent; None: not until they buy again."""
    checkin_done_at: datetime | None = _ts(nullable=True)
    """When the current silence was dealt with (check-in sent, or skipped for good): one per silence."""
    checkins_stopped_at: datetime | None = _ts(nullable=True)
    """They answered a check-in with "not interested": no more check-ins."""
    erased_at: datetime | None = _ts(nullable=True)
    """They had their personal data erased (``/forget``, ``kundenpuls forget``; handlers/privacy.py): the
    row stays as an anonymous one so scores and revenue still add up, and nothing is ever sent for it."""


class Purchase(SQLModel, table=True):
    """One order reported by the shop; ``order_id`` makes reporting it twice harmless."""

    __tablename__ = "purchases"
    # Revenue per customer and period (reports: retention, revenue at risk, revenue lost) from the index.
    __table_args__ = (sa.Index("ix_purchases_customer_time_amount", "customer_id", "purchased_at", "amount"),)

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(max_length=128, sa_column_kwargs={"unique": True})
    customer_id: int = Field(foreign_key="customers.id")
    amount: Decimal | None = Field(default=None, sa_column=sa.Column(sa.Numeric(14, 2)))
    currency: str = Field(default="EUR", max_length=3)
    purchased_at: datetime = _ts()
    source: str = Field(default="api", max_length=16)
    link_token: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    link_used_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()


class SurveyDelivery(SQLModel, table=True):
    """One purchase's survey: when it is due, which question is open, and how it ended."""

    __tablename__ = "survey_deliveries"
    __table_args__ = (
        sa.Index("ix_survey_deliveries_status_due", "status", "due_at"),
        sa.Index("ix_survey_deliveries_status_reminder", "status", "reminder_due_at"),
        sa.Index("ix_survey_deliveries_status_expires", "status", "expires_at"),
        # Reports: surveys asked and reminded in a period.
        sa.Index("ix_survey_deliveries_started_at", "started_at"),
        sa.Index("ix_survey_deliveries_reminded_at", "reminded_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    purchase_id: int = Field(foreign_key="purchases.id", sa_column_kwargs={"unique": True})
    customer_id: int = Field(foreign_key="customers.id", index=True)
    survey_id: str = Field(max_length=32)
    status: str = Field(default=DeliveryStatus.SCHEDULED, max_length=20)
    due_at: datetime = _ts()
    language: str | None = Field(default=None, max_length=8)
    current_question_id: str | None = Field(default=None, max_length=16)
    # Counts how often a question was put to the customer, so re-asking after /stop and /start gets a
    # fresh outbox key instead of colliding with the first (cancelled) one.
    ask_seq: int = Field(default=0)
    nps_score: int | None = Field(default=None)
    nps_category: str | None = Field(default=None, max_length=10)
    started_at: datetime | None = _ts(nullable=True)
    completed_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()
    # Due times of what the sweep does to an unfinished survey, set when it is first asked (or found
    # unreachable): one reminder (REMINDER_AFTER), then expiry (SURVEY_EXPIRES_AFTER).
    reminder_due_at: datetime | None = _ts(nullable=True)
    reminded_at: datetime | None = _ts(nullable=True)
    expires_at: datetime | None = _ts(nullable=True)
    expired_at: datetime | None = _ts(nullable=True)


class Answer(SQLModel, table=True):
    """One answer to one question; the unique key makes a double tap or a replayed update harmless."""

    __tablename__ = "answers"
    __table_args__ = (
        sa.UniqueConstraint("delivery_id", "question_id", name="uq_answers_delivery_question"),
        # Reports count a period's answers by type and category from the index alone.
        sa.Index(
            "ix_answers_created_type_category", "created_at", "question_type", "nps_category", "skipped"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="survey_deliveries.id")
    question_id: str = Field(max_length=16)
    question_type: str = Field(max_length=10)
    score: int | None = Field(default=None)
    choice: str | None = Field(default=None, max_length=16)
    text: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    skipped: bool = Field(default=False)
    nps_category: str | None = Field(default=None, max_length=10)
    polarity: float | None = Field(default=None)
    """Sentiment of a free-text answer in [-1, 1] (surveys/sentiment); None for other answers."""
    sentiment: str | None = Field(default=None, max_length=10)
    """negative, neutral or positive, from ``polarity``."""
    text_language: str | None = Field(default=None, max_length=8)
    """The language the comment was written in (detected), which decided how it was scored."""
    created_at: datetime = _ts()


class CheckinAnswer(enum.StrEnum):
    """The quick answers of a check-in; the values are stored and travel in callback data."""

    ALL_GOOD = "all_good"
    QUESTION = "question"
    NOT_INTERESTED = "not_interested"


class Checkin(SQLModel, table=True):
    """One check-in with a customer who went quiet, and their answer (a question opens a case)."""

    __tablename__ = "checkins"

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", index=True)
    silent_since: datetime = _ts()
    """Their last purchase or word before it: the silence this check-in is about."""
    sent_at: datetime = _ts()
    language: str = Field(max_length=8)
    answer: str | None = Field(default=None, max_length=16)
    answered_at: datetime | None = _ts(nullable=True)
    case_id: int | None = Field(default=None, foreign_key="cases.id")


class CaseStatus(enum.StrEnum):
    """Where a case stands: nobody took it yet, somebody has it, or it was resolved."""

    OPEN = "open"
    TAKEN = "taken"
    RESOLVED = "resolved"


class Case(SQLModel, table=True):
    """A customer the staff must get back to (a critic, a clearly negative comment), and how it went.

    One per survey delivery (unique ``delivery_id``), so a replayed answer never opens a second one. The
    card in the staff chat shows it; ``card_version`` counts its renderings, so an edit queued for an
    older one is known to be superseded.
    """

    __tablename__ = "cases"
    __table_args__ = (
        sa.Index("ix_cases_status_opened", "status", "opened_at"),
        # The sweep's recovery question: resolved, not asked yet, resolved long enough ago (0009).
        sa.Index("ix_cases_status_recovery", "status", "recovery_asked_at", "resolved_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id", index=True)
    delivery_id: int | None = Field(
        default=None, foreign_key="survey_deliveries.id", sa_column_kwargs={"unique": True}
    )
    kind: str = Field(max_length=20)
    status: str = Field(default=CaseStatus.OPEN, max_length=12)
    opened_at: datetime = _ts()
    assignee_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    assignee_name: str | None = Field(default=None, max_length=128)
    taken_at: datetime | None = _ts(nullable=True)
    resolved_by_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    resolved_by_name: str | None = Field(default=None, max_length=128)
    resolved_at: datetime | None = _ts(nullable=True)
    resolution_note: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    replying_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    """The staff member who pressed Reply: their next reply to the card goes to the customer."""
    replying_name: str | None = Field(default=None, max_length=128)
    awaiting_customer: bool = Field(default=False)
    """The shop wrote to the customer: what the customer writes next goes back into the case."""
    escalated_untaken_at: datetime | None = _ts(nullable=True)
    """When managers were told nobody took the case in time (ALERT_ESCALATE_AFTER); once per case."""
    escalated_unresolved_at: datetime | None = _ts(nullable=True)
    """When managers were told the taken case was not resolved in time (ALERT_RESOLVE_WITHIN)."""
    recovery_asked_at: datetime | None = _ts(nullable=True)
    """When the customer was asked whether the problem was solved (RECOVERY_CHECK_AFTER after Resolve)."""
    recovered: bool | None = Field(default=None)
    """Their answer: solved or not; None while unanswered."""
    recovery_answered_at: datetime | None = _ts(nullable=True)
    card_version: int = Field(default=0)
    card_stale: bool = Field(default=False, index=True)
    """The card changed while its message was on its way; the sweep edits it once it has an id."""
    card_message_key: str | None = Field(default=None, max_length=64, index=True)
    """The outbox key of the message that shows this case when it shares one with other cases (a burst
    of critics, merged while waiting for the staff group's pace); None: its own card."""
    card_entry: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON, nullable=True))
    in_topic: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    """The staff chat is a forum and the case has a topic of its own (queued before its card, under
    ``case:<id>:topic``): its card and every message about it go into that topic."""
    """The case's part of a shared message (text and button row), kept so that the message can be
    rendered again from its cases' rows when one of them changes."""


class CaseEvent(SQLModel, table=True):
    """Everything that happened to a case, with who did it and when (opened, taken, replied, ...)."""

    __tablename__ = "case_events"

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    at: datetime = _ts()
    actor_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    actor_name: str | None = Field(default=None, max_length=128)
    action: str = Field(max_length=24)
    text: str | None = Field(default=None, sa_column=sa.Column(sa.Text))


class ReportRequestStatus(enum.StrEnum):
    """Where a report that must be sent stands."""

    PENDING = "pending"
    DONE = "done"  # its messages are in the outbox
    FAILED = "failed"  # gave up after repeated errors (logged)


class ReportRequest(SQLModel, table=True):
    """A report that must reach a manager chat: the weekly summary of one occurrence, /report, /export.

    ``key`` is unique (``weekly:<occurrence>:<chat>``, ``report:<update>``), so the summary of a week is
    asked for once per manager however many processes see its moment (storage/report_requests.py).
    """

    __tablename__ = "report_requests"
    __table_args__ = (sa.Index("ix_report_requests_status_id", "status", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=96, sa_column_kwargs={"unique": True})
    chat_id: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    kind: str = Field(max_length=12)
    period_start: datetime = _ts()
    period_end: datetime = _ts()
    language: str = Field(max_length=8)
    due_for: datetime | None = _ts(nullable=True)
    """The WEEKLY_SUMMARY_CRON occurrence a summary belongs to."""
    late: bool = Field(default=False)
    """Asked for after its moment had passed (the bot was down): the summary says so."""
    status: str = Field(default=ReportRequestStatus.PENDING, max_length=10)
    attempts: int = Field(default=0)
    locked_until: datetime | None = _ts(nullable=True)
    lease_owner: str | None = Field(default=None, max_length=32)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = _ts()
    done_at: datetime | None = _ts(nullable=True)


class ContactOutcome(enum.StrEnum):
    """What became of one unprompted contact the bot considered."""

    SENT = "sent"
    SKIPPED = "skipped"
    POSTPONED = "postponed"


class ContactEvent(SQLModel, table=True):
    """One decision about contacting a customer unprompted (survey, reminder, check-in), with its reason.

    Sent ones are the history the weekly cap counts; skipped and postponed ones explain to the shop why a
    customer heard nothing (``kundenpuls why``) and feed the weekly summary's "skipped by the rules".
    """

    __tablename__ = "contact_events"
    __table_args__ = (
        sa.Index("ix_contact_events_customer_at", "customer_id", "at"),
        # Reports: surveys the contact rules skipped in a period, by reason.
        sa.Index("ix_contact_events_kind_outcome_at", "kind", "outcome", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customers.id")
    delivery_id: int | None = Field(default=None, foreign_key="survey_deliveries.id")
    kind: str = Field(max_length=12)
    outcome: str = Field(max_length=10)
    reason: str | None = Field(default=None, max_length=16)
    at: datetime = _ts()
    planned_for: datetime | None = _ts(nullable=True)
    detail: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    # The message a "sent" decision queued: its row's ``sent_at`` (the sender's clock once Telegram took it)
    # is what the weekly cap counts, not ``at``: retries and the morning after quiet hours lie between.
    outbox_key: str | None = Field(default=None, max_length=128)


class OutboxMessage(SQLModel, table=True):
    """A Bot API call that must happen: written in the same transaction as the change that needs it.

    ``dedupe_key`` is unique, so writing the same intent twice (a replayed update, two replicas running the
    same sweep) queues it once. The sender claims rows with a lease (``locked_until``) so a crashed sender's
    rows are picked up again and two senders never send the same row at the same time.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_status_next", "status", "next_attempt_at"),
        # The sender reads each chat's queue in order (storage/outbox.py, claim_due).
        sa.Index("ix_outbox_status_chat_id", "status", "chat_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=128, sa_column_kwargs={"unique": True})
    kind: str = Field(max_length=32)
    method: str = Field(max_length=64)
    chat_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, index=True))
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False))
    delivery_id: int | None = Field(default=None, foreign_key="survey_deliveries.id", index=True)
    status: str = Field(default=OutboxStatus.PENDING, max_length=20)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = _ts()
    locked_until: datetime | None = _ts(nullable=True)
    lease_owner: str | None = Field(default=None, max_length=32)
    last_error: str | None = Field(default=None, max_length=500)
    sent_message_id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    created_at: datetime = _ts()
    sent_at: datetime | None = _ts(nullable=True)


class InboundUpdate(SQLModel, table=True):
    """A Telegram update, stored before it is acknowledged so a crash can never drop it."""

    __tablename__ = "inbound_updates"
    __table_args__ = (
        sa.Index("ix_inbound_updates_status_id", "status", "update_id"),
        # The sweep prunes handled updates older than RAW_UPDATE_RETENTION, oldest first (0011).
        sa.Index("ix_inbound_updates_received_at", "received_at"),
    )

    update_id: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    payload: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    status: str = Field(default=UpdateStatus.PENDING, max_length=10)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = _ts()
    # Leases of earlier versions; the worker now claims an update by locking its row in the transaction
    # that handles it (storage/inbox.py), and only respects a lease still running.
    locked_until: datetime | None = _ts(nullable=True)
    lease_owner: str | None = Field(default=None, max_length=32)
    last_error: str | None = Field(default=None, max_length=500)
    received_at: datetime = _ts()
    processed_at: datetime | None = _ts(nullable=True)


class SendBudget(SQLModel, table=True):
    """The bot's overall sending budget, one row shared by every process on the database.

    ``tat`` is the theoretical arrival time of the generic cell rate algorithm (storage/pacing.py): the
    budget is spent while it lies ahead of now. A 429 from Telegram pauses every process until
    ``paused_until``; ``throttled_total`` counts the 429s all processes have met.
    """

    __tablename__ = "send_budget"

    name: str = Field(primary_key=True, max_length=16)
    tat: datetime = _ts()
    paused_until: datetime | None = _ts(nullable=True)
    throttled_total: int = Field(default=0)
    last_throttled_at: datetime | None = _ts(nullable=True)


class SendChat(SQLModel, table=True):
    """What every process must know about one chat it sends to: its pace, where it moved, whether it answers.

    ``ready_at`` is the earliest time the chat may get its next message (its own rate limit), kept as a
    column so the sender can skip chats that must wait without reading their queues.
    """

    __tablename__ = "send_chats"

    chat_id: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    tat: datetime = _ts()
    ready_at: datetime = _ts()
    migrated_to: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    unreachable_since: datetime | None = _ts(nullable=True)
    last_error: str | None = Field(default=None, max_length=500)
    released_at: datetime | None = _ts(nullable=True)
    """When the person last came back (/start, unblocking): refusals of calls made before it are stale."""
    is_forum: bool | None = Field(default=None)
    """A supergroup with topics (from getChat at the start and from the chat's updates); None: unknown."""
    updated_at: datetime = _ts()


class Lease(SQLModel, table=True):
    """A role that exactly one process holds at a time (polling getUpdates), until it renews no more."""

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=32)
    owner: str = Field(max_length=64)
    acquired_at: datetime = _ts()
    expires_at: datetime = _ts()
