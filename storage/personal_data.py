"""Everything stored about one person: read out (GDPR art. 15, ``/mydata``) or erased (art. 17, ``/forget``).

A *person* is a Telegram account together with every shop customer connected to it, or one shop customer
without a Telegram account (``kundenpuls forget`` for a request that came by mail). What is about them:

- rows that name them: ``customers`` (name, the shop's customer id, language, time zone), ``telegram_users``
  (id, name, language, /stop and /pause), ``purchases`` (order ids), answers (comments), case events (what
  the shop and the customer wrote), case notes;
- rows that are keyed to them: outbox rows to their chat, outbox rows of their cases (``case:<id>:...``),
  the pacing row of their chat;
- rows that merely mention them: raw updates (their own messages, and the staff chat's presses and
  replies on their cards, which Telegram sends with the card's text) and staff-chat messages such as an
  ``/open`` listing. These are found by what they contain: their Telegram id, names, username and the
  shop's customer id (:class:`Terms`).

Erasing keeps what the statistics need and nothing that points back to the person: answers keep their
score, choice, class and sentiment but lose their text; purchases keep amount, currency and date but their
order id becomes a one-way hash (so a replayed report of an old order is recognised instead of storing the
person again, while nothing in the row names them); the customer row stays as an anonymous row
``erased-<id>`` (its revenue and scores still count) marked ``erased_at``, so the sweep never contacts it.
The shop's customer id goes too: the shop can look the person up by it, so it identifies them as well as
a name. A purchase the shop reports later under that id is a new relationship the shop chose to report,
and gets a new customer row. The Telegram account row goes entirely: nothing is sent to it any more, and
a message they write later starts anew. Every function here only changes rows in the session it is given.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage import outbox
from storage.case_group import card_key
from storage.models import (
    Answer,
    Case,
    CaseEvent,
    CaseStatus,
    Checkin,
    ContactEvent,
    Customer,
    DeliveryStatus,
    InboundUpdate,
    OutboxMessage,
    OutboxStatus,
    Purchase,
    SurveyDelivery,
    TelegramUser,
    UpdateStatus,
)
from storage.preload import group_of, write_pending
from storage.purchases import ERASED_PREFIX, erased_order_id, new_link_token

_MIN_TERM = 2
"""Shorter names are not looked for: one letter would match everything."""
_SUBSTRING_TERM = 4
"""Terms this long match inside words too ("Annas Paket"); shorter ones only as whole words."""
_ID_KEYS = frozenset({"id", "user_id", "chat_id"})
"""Keys under which a Telegram payload names a user or a chat by its number."""
_OPEN_STATUSES = (
    DeliveryStatus.ACTIVE.value,
    DeliveryStatus.SCHEDULED.value,
    DeliveryStatus.REQUESTED.value,
    DeliveryStatus.AWAITING_CONTACT.value,
)
_UNSENT = tuple(status.value for status in outbox.UNSENT_STATUSES)
_RENDERED_FROM_ROWS = (outbox.KIND_CASE_CARD, outbox.KIND_CASE_EDIT, outbox.KIND_CASE_TOPIC)
"""Messages about a case that are rendered from the cases' rows: one still to be sent that mentions the
person belongs to another case whose customer has the same name, or to a message shared with one of
theirs, which the caller renders again (and so cancels what waits for the old rendering)."""


@dataclass(frozen=True)
class Person:
    """A Telegram account (None for a customer the shop never connected) and its shop customers."""

    telegram_user_id: int | None
    customer_ids: tuple[int, ...]


def of_telegram_user(session: Session, telegram_user_id: int) -> Person:
    """The person behind a Telegram account: the account and every customer not erased connected to it."""
    found = session.exec(
        select(Customer.id)
        .where(col(Customer.telegram_user_id) == telegram_user_id)
        .where(col(Customer.erased_at).is_(None))
        .order_by(col(Customer.id))
    ).all()
    return Person(telegram_user_id, tuple(int(found_id) for found_id in found if found_id is not None))


def of_customer(session: Session, external_id: str) -> Person | None:
    """The person the shop knows as ``external_id`` (with their Telegram account and its other customer
    ids), or None when no customer has that id (or it was erased already)."""
    customer = session.exec(
        select(Customer)
        .where(col(Customer.external_id) == external_id)
        .where(col(Customer.erased_at).is_(None))
    ).first()
    if customer is None or customer.id is None:
        return None
    if customer.telegram_user_id is None:
        return Person(None, (customer.id,))
    return of_telegram_user(session, customer.telegram_user_id)


# ------------------------------------------------------------------------------------------ reading out


@dataclass(frozen=True)
class SurveyRecord:
    """One survey of a customer with its purchase and answers, oldest answer first."""

    delivery: SurveyDelivery
    purchase: Purchase
    answers: list[Answer]


@dataclass(frozen=True)
class CaseRecord:
    """One case about a customer with the messages exchanged on it (shop's replies, the customer's)."""

    case: Case
    messages: list[CaseEvent]


@dataclass(frozen=True)
class CustomerRecord:
    """One shop customer and everything stored about them, oldest first."""

    customer: Customer
    purchases: list[Purchase]
    surveys: list[SurveyRecord]
    checkins: list[Checkin]
    cases: list[CaseRecord]
    contacts: list[ContactEvent]


@dataclass(frozen=True)
class RawMessage:
    """One stored update the person sent: when it arrived, what it was, and its text or button data."""

    received_at: datetime
    kind: str
    text: str | None


@dataclass(frozen=True)
class PersonalData:
    """Everything stored about a person (:func:`read`)."""

    user: TelegramUser | None
    customers: list[CustomerRecord]
    messages: list[RawMessage]


def read(session: Session, person: Person) -> PersonalData:
    """Read everything stored about ``person``."""
    user = session.get(TelegramUser, person.telegram_user_id) if person.telegram_user_id is not None else None
    records = [_customer_record(session, customer_id) for customer_id in person.customer_ids]
    messages: list[RawMessage] = []
    if person.telegram_user_id is not None:
        terms = Terms(telegram_user_id=person.telegram_user_id, names=(), distinctive=())
        for row in _updates_mentioning(session, terms):
            kind, part = _update_part(row.payload)
            if part is not None and _sender_id(part) == person.telegram_user_id:
                messages.append(RawMessage(row.received_at, kind, _text_of(part)))
    return PersonalData(user=user, customers=[r for r in records if r is not None], messages=messages)


def _customer_record(session: Session, customer_id: int) -> CustomerRecord | None:
    customer = session.get(Customer, customer_id)
    if customer is None:
        return None
    purchases = list(
        session.exec(
            select(Purchase)
            .where(col(Purchase.customer_id) == customer_id)
            .order_by(col(Purchase.purchased_at))
        ).all()
    )
    by_purchase = {purchase.id: purchase for purchase in purchases}
    deliveries = session.exec(
        select(SurveyDelivery)
        .where(col(SurveyDelivery.customer_id) == customer_id)
        .order_by(col(SurveyDelivery.due_at), col(SurveyDelivery.id))
    ).all()
    answers: dict[int, list[Answer]] = {}
    delivery_ids = [delivery.id for delivery in deliveries if delivery.id is not None]
    if delivery_ids:
        for answer in session.exec(
            select(Answer).where(col(Answer.delivery_id).in_(delivery_ids)).order_by(col(Answer.id))
        ).all():
            answers.setdefault(answer.delivery_id, []).append(answer)
    surveys = [
        SurveyRecord(delivery, by_purchase[delivery.purchase_id], answers.get(delivery.id or 0, []))
        for delivery in deliveries
        if delivery.purchase_id in by_purchase
    ]
    checkins = list(
        session.exec(
            select(Checkin).where(col(Checkin.customer_id) == customer_id).order_by(col(Checkin.sent_at))
        ).all()
    )
    found_cases = session.exec(
        select(Case).where(col(Case.customer_id) == customer_id).order_by(col(Case.opened_at))
    ).all()
    case_records = []
    for case in found_cases:
        exchanged = session.exec(
            select(CaseEvent)
            .where(col(CaseEvent.case_id) == case.id)
            .where(col(CaseEvent.action).in_(("replied", "customer_replied")))
            .order_by(col(CaseEvent.id))
        ).all()
        case_records.append(CaseRecord(case, list(exchanged)))
    contacts = list(
        session.exec(
            select(ContactEvent)
            .where(col(ContactEvent.customer_id) == customer_id)
            .order_by(col(ContactEvent.id))
        ).all()
    )
    return CustomerRecord(customer, purchases, surveys, checkins, case_records, contacts)


# --------------------------------------------------------------------------------------- finding them


@dataclass(frozen=True)
class Terms:
    """What identifies a person in free text and in Telegram's JSON.

    ``distinctive`` terms (a username, the shop's customer id) name this person and nobody else; a name
    may be another customer's too, so a name alone is enough to scrub a record of the past (a handled
    update, a sent message) but not to drop an update still waiting to be handled.
    """

    telegram_user_id: int | None
    names: tuple[str, ...]
    distinctive: tuple[str, ...]
    _pattern: re.Pattern[str] | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        parts = [
            _term_pattern(term) for term in sorted({*self.names, *self.distinctive}, key=len, reverse=True)
        ]
        if self.telegram_user_id is not None:
            parts.append(rf"(?<!\d){self.telegram_user_id}(?!\d)")
        object.__setattr__(self, "_pattern", re.compile("|".join(parts)) if parts else None)

    @property
    def searched(self) -> list[str]:
        """The strings a stored JSON text must contain to be worth a closer look."""
        found = [*self.names, *self.distinctive]
        if self.telegram_user_id is not None:
            found.append(str(self.telegram_user_id))
        return [orjson.dumps(term).decode()[1:-1] for term in found]

    def in_text(self, text: str) -> bool:
        """Whether ``text`` mentions the person."""
        return self._pattern is not None and self._pattern.search(text) is not None

    def replace(self, text: str, replacement: str) -> str:
        """``text`` with every mention of the person replaced."""
        return self._pattern.sub(replacement, text) if self._pattern is not None else text

    @functools.cached_property
    def _for_certain(self) -> Terms:
        return Terms(self.telegram_user_id, (), self.distinctive)

    def names_them(self, value: object) -> bool:
        """Whether a JSON value names the person by a distinctive term or their Telegram id."""
        return self._for_certain.mentioned_in(value)

    def mentioned_in(self, value: object, key: str | None = None) -> bool:
        """Whether a JSON value mentions the person: their id under an id key, or a term in a text."""
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return key in _ID_KEYS and value == self.telegram_user_id
        if isinstance(value, str):
            return self.in_text(value)
        if isinstance(value, Mapping):
            return any(self.mentioned_in(item, str(name)) for name, item in value.items())
        if isinstance(value, list):
            return any(self.mentioned_in(item, key) for item in value)
        return False

    def without_them(self, value: Any, replacement: str) -> Any:
        """A JSON value with every mention in its texts replaced (ids and keys stay as they are)."""
        if isinstance(value, str):
            return self.replace(value, replacement)
        if isinstance(value, Mapping):
            return {name: self.without_them(item, replacement) for name, item in value.items()}
        if isinstance(value, list):
            return [self.without_them(item, replacement) for item in value]
        return value


def _term_pattern(term: str) -> str:
    escaped = re.escape(term)
    return escaped if len(term) >= _SUBSTRING_TERM else rf"(?<!\w){escaped}(?!\w)"


def terms_of(session: Session, person: Person) -> Terms:
    """Everything that identifies ``person``: the names and customer ids the shop gave, the Telegram
    account's names, and the names and username their own stored updates carry."""
    names: set[str] = set()
    distinctive: set[str] = set()
    for customer_id in person.customer_ids:
        customer = session.get(Customer, customer_id)
        if customer is None:
            continue
        distinctive.add(customer.external_id)
        if customer.name:
            names.add(customer.name)
    if person.telegram_user_id is not None:
        user = session.get(TelegramUser, person.telegram_user_id)
        if user is not None and user.first_name:
            names.add(user.first_name)
        probe = Terms(telegram_user_id=person.telegram_user_id, names=(), distinctive=())
        for row in _updates_mentioning(session, probe):
            for sender in _senders(row.payload):
                if sender.get("id") != person.telegram_user_id:
                    continue
                names.update(str(sender[key]) for key in ("first_name", "last_name") if sender.get(key))
                if sender.get("username"):
                    distinctive.add(str(sender["username"]))
    return Terms(
        telegram_user_id=person.telegram_user_id,
        names=tuple(sorted(name for name in names if len(name) >= _MIN_TERM)),
        distinctive=tuple(sorted(term for term in distinctive if len(term) >= _MIN_TERM)),
    )


def _contains_any(column: Any, terms: Terms) -> sa.ColumnElement[bool]:
    """SQL: the JSON column's text contains one of the terms (a cheap first pass; Python decides)."""
    text = sa.cast(column, sa.Text)
    return sa.or_(*(text.contains(term, autoescape=True) for term in terms.searched))


def _updates_mentioning(
    session: Session, terms: Terms, *, statuses: Sequence[str] | None = None, lock: bool = False
) -> Iterator[InboundUpdate]:
    """Stored updates whose JSON contains one of the terms, oldest first (the caller looks closer)."""
    if not terms.searched:
        return
    statement = select(InboundUpdate).where(_contains_any(InboundUpdate.payload, terms))
    if statuses is not None:
        statement = statement.where(col(InboundUpdate.status).in_(list(statuses)))
    statement = statement.order_by(col(InboundUpdate.update_id))
    if lock:
        # An update another worker is handling right now is left to it (it is pruned in time anyway).
        statement = statement.with_for_update(skip_locked=True)
    yield from session.exec(statement).all()


def _update_part(payload: Mapping[str, Any]) -> tuple[str, Mapping[str, Any] | None]:
    """The update's one content object (``message``, ``callback_query``, ...) and its key."""
    for key, value in payload.items():
        if key != "update_id" and isinstance(value, Mapping):
            return key, value
    return "", None


def _sender_id(part: Mapping[str, Any]) -> int | None:
    sender = part.get("from")
    found = sender.get("id") if isinstance(sender, Mapping) else None
    return found if isinstance(found, int) else None


def _senders(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every ``from`` object in an update (the sender, and the author of a message replied to)."""
    found: list[Mapping[str, Any]] = []

    def walk(value: object) -> None:
        if isinstance(value, Mapping):
            sender = value.get("from")
            if isinstance(sender, Mapping):
                found.append(sender)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(payload)
    return found


def _text_of(part: Mapping[str, Any]) -> str | None:
    for key in ("text", "caption", "data"):
        value = part.get(key)
        if isinstance(value, str):
            return value
    return None


# ------------------------------------------------------------------------------------------- erasing


@dataclass
class Erased:
    """What an erasure changed, for whoever asked (the CLI prints it)."""

    customers: int = 0
    telegram_account: bool = False
    purchases: int = 0
    comments: int = 0
    case_texts: int = 0
    cases_closed: int = 0
    raw_updates: int = 0
    messages_cancelled: int = 0
    messages_scrubbed: int = 0
    open_questions: list[tuple[SurveyDelivery, str]] = field(default_factory=list)
    """Surveys that were being answered, with their open question (its keyboard is to be taken off)."""
    cases: list[int] = field(default_factory=list)
    """Their cases, whose cards are to be shown again as erased."""


def erase_records(session: Session, person: Person, *, now: datetime) -> Erased:
    """Erase the customer rows that name the person, keep what the statistics need, and stop everything
    planned for them; the Telegram account goes last (:func:`erase_account`).

    Writes what an update group collected first and flushes, so that everything below sees and changes
    the rows as they are; the caller expires the session afterwards (statements here bypass the ORM).
    """
    write_pending(session)
    session.flush()
    erased = Erased()
    customer_ids = list(person.customer_ids)
    if customer_ids:
        _erase_customers(session, customer_ids, erased, now=now)
    session.flush()
    return erased


def _erase_customers(session: Session, customer_ids: list[int], erased: Erased, *, now: datetime) -> None:
    customers = session.exec(select(Customer).where(col(Customer.id).in_(customer_ids))).all()
    for customer in customers:
        customer.external_id = f"{ERASED_PREFIX}{customer.id}"
        customer.name = customer.language = customer.time_zone = None
        customer.telegram_user_id = None
        customer.checkin_due_at = None
        customer.checkins_stopped_at = customer.checkins_stopped_at or now
        customer.erased_at = now
        session.add(customer)
        erased.customers += 1
    for purchase in session.exec(select(Purchase).where(col(Purchase.customer_id).in_(customer_ids))).all():
        purchase.order_id = erased_order_id(purchase.order_id)
        # A new token: the old one, replayed in a /start, must not connect a chat to the anonymous row.
        purchase.link_token = new_link_token()
        session.add(purchase)
        erased.purchases += 1
    deliveries = select(SurveyDelivery.id).where(col(SurveyDelivery.customer_id).in_(customer_ids))
    erased.open_questions = [
        (delivery, delivery.current_question_id)
        for delivery in session.exec(
            select(SurveyDelivery)
            .where(col(SurveyDelivery.customer_id).in_(customer_ids))
            .where(col(SurveyDelivery.status) == DeliveryStatus.ACTIVE.value)
            .where(col(SurveyDelivery.current_question_id).is_not(None))
        ).all()
        if delivery.current_question_id is not None
    ]
    session.flush()
    session.execute(
        sa.update(SurveyDelivery)
        .where(col(SurveyDelivery.customer_id).in_(customer_ids))
        .where(col(SurveyDelivery.status).in_(_OPEN_STATUSES))
        .values(status=DeliveryStatus.STOPPED.value, reminder_due_at=None)
    )
    erased.comments = _rowcount(
        session.execute(
            sa.update(Answer)
            .where(col(Answer.delivery_id).in_(deliveries))
            .where(col(Answer.text).is_not(None))
            .values(text=None)
        )
    )
    group = group_of(session)
    if group is not None:  # the group's copies of their answers still hold the comments
        for delivery_id in [
            d for d, found in group.deliveries.items() if found and found[1].id in customer_ids
        ]:
            group.answers.pop(delivery_id, None)
    _erase_cases(session, customer_ids, erased, now=now)


def _erase_cases(session: Session, customer_ids: list[int], erased: Erased, *, now: datetime) -> None:
    """Close their cases (nobody can be answered any more) and drop what was written on them."""
    cases = session.exec(
        select(Case).where(col(Case.customer_id).in_(customer_ids)).order_by(col(Case.id))
    ).all()
    case_ids = [case.id for case in cases if case.id is not None]
    if not case_ids:
        return
    erased.cases = case_ids
    erased.case_texts = _rowcount(
        session.execute(
            sa.update(CaseEvent)
            .where(col(CaseEvent.case_id).in_(case_ids))
            .where(col(CaseEvent.text).is_not(None))
            .values(text=None)
        )
    )
    for case in cases:
        if case.resolution_note is not None:
            case.resolution_note = None
            erased.case_texts += 1
        if case.status != CaseStatus.RESOLVED.value:
            case.status = CaseStatus.RESOLVED.value
            case.resolved_at = now
            erased.cases_closed += 1
        case.replying_id = case.replying_name = None
        case.awaiting_customer = False
        case.recovery_asked_at = case.recovery_asked_at or now  # no "is it solved?" to nobody
        session.add(case)
        session.add(CaseEvent(case_id=case.id or 0, at=now, action="erased"))


def erase_account(session: Session, person: Person, erased: Erased) -> None:
    """Delete the person's Telegram account and their chat's pacing row, after the outbox was scrubbed.

    Last, in the order the sender takes its locks (outbox rows, then the Telegram user it marks blocked,
    then the chat's pacing row), so that an erasure and a sender recording an outcome for their chat on
    PostgreSQL wait for each other instead of deadlocking.
    """
    telegram_user_id = person.telegram_user_id
    if telegram_user_id is None:
        return
    session.execute(
        sa.update(Customer)
        .where(col(Customer.telegram_user_id) == telegram_user_id)
        .values(telegram_user_id=None)
    )
    session.execute(
        sa.update(CaseEvent).where(col(CaseEvent.actor_id) == telegram_user_id).values(actor_id=None)
    )
    group = group_of(session)
    if group is not None:
        group.users.pop(telegram_user_id, None)
    user = session.get(TelegramUser, telegram_user_id)
    if user is not None:
        session.flush()
        session.delete(user)
        session.flush()
        erased.telegram_account = True
    outbox.forget_chat(session, [telegram_user_id])


@dataclass(frozen=True)
class Replacements:
    """What takes the place of the person in messages still to be sent (catalogue texts)."""

    name: str
    """For a mention of them in a text (``[erased]``)."""
    case_text: Callable[[int], str]
    """For the whole text of a message about one of their cases (HTML), by case id."""
    topic_name: Callable[[int], str]
    """For the name of one of their cases' forum topics, by case id."""


def scrub_outbox(
    session: Session, person: Person, terms: Terms, *, cases: Sequence[int], replacements: Replacements
) -> tuple[int, int]:
    """Make the outbox forget the person; return (messages cancelled, messages scrubbed).

    - Rows to their chat: unsent ones are cancelled; all lose their payload and chat id (the message id
      they became stays, which names nothing without the chat).
    - Rows of their cases (``case:<id>:...``) other than the card itself, which the caller shows again:
      sent ones lose their payload; unsent ones (a topic, an edit, an escalation) go out with the
      replacement texts.
    - Any other row that mentions them (an ``/open`` listing, an edit of a message several cases shared):
      a sent one loses its payload; an unsent one goes out with every mention replaced, unless it is
      rendered from the cases' rows (:data:`_RENDERED_FROM_ROWS`).

    A row a sender is sending right now goes out with what the sender read; what stays stored is the
    scrubbed version, since the sender never writes a payload back.
    """
    cancelled = scrubbed = 0
    if person.telegram_user_id is not None:
        chat = col(OutboxMessage.chat_id) == person.telegram_user_id
        cancelled = _rowcount(
            session.execute(
                sa.update(OutboxMessage)
                .where(chat)
                .where(col(OutboxMessage.status).in_(_UNSENT))
                .values(status=OutboxStatus.CANCELLED.value, locked_until=None, lease_owner=None)
            )
        )
        scrubbed = _rowcount(
            session.execute(
                sa.update(OutboxMessage)
                .where(chat)
                .values(payload=outbox.SCRUBBED, chat_id=None, last_error=None)
            )
        )
    changes: dict[int, dict[str, Any]] = {}
    for case_id in cases:
        own_card = card_key(case_id)
        rows = session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.dedupe_key).startswith(f"case:{case_id}:", autoescape=True))
            .where(col(OutboxMessage.dedupe_key) != own_card)
        ).all()
        for row in rows:
            if row.payload != outbox.SCRUBBED:
                changes[_id(row.id)] = _about_their_case(row, case_id, replacements)
    if terms.searched:
        mentioning = session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.kind) != outbox.KIND_CASE_CARD)
            .where(_contains_any(OutboxMessage.payload, terms))
        ).all()
        for row in mentioning:
            if _id(row.id) in changes or not terms.mentioned_in(row.payload):
                continue
            if row.status not in _UNSENT:
                changes[_id(row.id)] = outbox.SCRUBBED
            elif row.kind not in _RENDERED_FROM_ROWS:
                changes[_id(row.id)] = terms.without_them(row.payload, replacements.name)
    if changes:
        session.connection().execute(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.id) == sa.bindparam("row_id"))
            .values(payload=sa.bindparam("new_payload", type_=OutboxMessage.__table__.c.payload.type)),  # type: ignore[attr-defined]
            [{"row_id": row_id, "new_payload": payload} for row_id, payload in sorted(changes.items())],
        )
    return cancelled, scrubbed + len(changes)


def _about_their_case(row: OutboxMessage, case_id: int, replacements: Replacements) -> dict[str, Any]:
    if row.status not in _UNSENT:
        return outbox.SCRUBBED
    payload = dict(row.payload)
    if "text" in payload:
        payload["text"] = replacements.case_text(case_id)
        payload.pop("entities", None)
    if "name" in payload:
        payload["name"] = replacements.topic_name(case_id)
    return payload


def scrub_updates(session: Session, terms: Terms, *, now: datetime) -> int:
    """Scrub the stored updates from or about the person; return how many.

    A scrubbed update keeps its row and id with nothing but the id in its payload: a redelivery of it is
    still recognised and ignored, so a replayed old update cannot bring anything back. Handled updates
    that mention them at all are scrubbed; updates still waiting are scrubbed (and marked handled, since
    nothing of them may happen now) only when they name this person for certain, by Telegram id,
    username or customer id: a waiting update that merely shows the same first name may be another
    customer's answer.
    """
    handled = (UpdateStatus.DONE.value, UpdateStatus.FAILED.value)
    scrubbed: list[dict[str, Any]] = []
    for row in _updates_mentioning(session, terms, statuses=handled):
        if terms.mentioned_in(row.payload):
            scrubbed.append({"b_update_id": row.update_id, "b_payload": {"update_id": row.update_id}})
    pending: list[dict[str, Any]] = []
    for row in _updates_mentioning(session, terms, statuses=(UpdateStatus.PENDING.value,), lock=True):
        if terms.names_them(row.payload):
            pending.append({"b_update_id": row.update_id, "b_payload": {"update_id": row.update_id}})
    payload_type = InboundUpdate.__table__.c.payload.type  # type: ignore[attr-defined]
    table = sa.update(InboundUpdate).where(col(InboundUpdate.update_id) == sa.bindparam("b_update_id"))
    connection = session.connection()
    if scrubbed:
        connection.execute(
            table.values(payload=sa.bindparam("b_payload", type_=payload_type), last_error=None), scrubbed
        )
    if pending:
        connection.execute(
            table.values(
                payload=sa.bindparam("b_payload", type_=payload_type),
                last_error=None,
                status=UpdateStatus.DONE.value,
                processed_at=now,
            ),
            pending,
        )
    return len(scrubbed) + len(pending)


def _rowcount(result: object) -> int:
    return max(int(getattr(result, "rowcount", 0) or 0), 0)


def _id(value: int | None) -> int:
    if value is None:
        raise RuntimeError("row without id")
    return value
