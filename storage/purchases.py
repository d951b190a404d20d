"""Recording purchases: idempotent on ``order_id``, so HTTP retries and repeated CSV imports are harmless."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from storage import contacts, telegram_users
from storage.models import (
    ContactEvent,
    Customer,
    DeliveryStatus,
    Purchase,
    SurveyDelivery,
    TelegramUser,
    utcnow,
)
from surveys.contact_rules import (
    ContactDecision,
    ContactHistory,
    ContactKind,
    ContactPolicy,
    ContactReason,
    decide,
)
from surveys.purchase_report import PurchaseReport
from surveys.silence import median_gap

DEFAULT_CHECKIN_POLICY = ContactPolicy(
    quiet_hours=None,
    zone=ZoneInfo("UTC"),
    survey_cooldown=timedelta(days=30),
    max_proactive_per_week=2,
    survey_max_age=timedelta(days=14),
)
"""Stands in when a caller records a purchase without the shop's policy (tests, tools): the rhythm's
defaults."""

# 24 random bytes: 32 URL-safe characters, well inside Telegram's 64-character deep-link limit.
_LINK_TOKEN_BYTES = 24
ERASED_PREFIX = "erased-"
"""What the customer id and the order ids of a customer whose data was erased begin with
(storage/personal_data.py)."""
ERASED_ORDER = "the customer had their personal data erased; this order is not stored again"


def erased_order_id(order_id: str) -> str:
    """The order id an erased purchase keeps: a one-way hash that recognises the order when the shop
    reports it again (a retried request, a CSV imported twice), and names nobody."""
    return ERASED_PREFIX + hashlib.sha256(order_id.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RecordedPurchase:
    """What the shop gets back for a reported purchase."""

    customer_id: str
    order_id: str
    survey_due_at: datetime
    link_token: str
    created: bool
    survey_skipped: str | None = None
    """Why the purchase gets no survey (the contact rules' explanation), or None."""


def new_link_token() -> str:
    """Return an unguessable deep-link token made of Telegram's allowed ``A-Za-z0-9_-``."""
    return secrets.token_urlsafe(_LINK_TOKEN_BYTES)


def record_purchase(
    *,
    session: Session,
    report: PurchaseReport,
    survey_id: str,
    survey_delay: timedelta,
    source: str,
    policy: ContactPolicy | None = None,
) -> RecordedPurchase:
    """Store a purchase and schedule its survey, or return what was stored for a known ``order_id``.

    The insert runs in a savepoint: when another request or replica stored the same order a moment
    earlier, the unique constraint stops the second copy and we answer with the first one. When the
    collision was on the customer (two new orders of one new customer at once), the customer exists now
    and a second try succeeds. With a ``policy``, a purchase reported more than SURVEY_MAX_AGE after it
    happened is stored (it counts for rhythm and revenue) but gets no survey: importing last year's
    orders must not message everyone.
    """
    for attempt in range(2):
        existing = _existing(session, report.order_id)
        if existing is not None:
            return existing
        try:
            return _insert(
                session, report, survey_id=survey_id, survey_delay=survey_delay, source=source, policy=policy
            )
        except IntegrityError:
            existing = _existing(session, report.order_id)
            if existing is not None:
                return existing
            if attempt == 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _insert(
    session: Session,
    report: PurchaseReport,
    *,
    survey_id: str,
    survey_delay: timedelta,
    source: str,
    policy: ContactPolicy | None,
) -> RecordedPurchase:
    now = utcnow()
    with session.begin_nested():
        customer = _upsert_customer(session, report)
        purchased_at = report.purchased_at or now
        purchase = Purchase(
            order_id=report.order_id,
            customer_id=_id(customer.id),
            amount=report.amount,
            currency=report.currency,
            purchased_at=purchased_at,
            source=source,
            link_token=new_link_token(),
        )
        session.add(purchase)
        session.flush()
        delivery = SurveyDelivery(
            purchase_id=_id(purchase.id),
            customer_id=_id(customer.id),
            survey_id=survey_id,
            due_at=purchased_at + survey_delay,
        )
        session.add(delivery)
        session.flush()
        note_purchase(session, customer, purchased_at=purchased_at, policy=policy)
        skipped = _too_old(policy, purchased_at=purchased_at, now=now)
        if skipped is not None:
            delivery.status = DeliveryStatus.SKIPPED.value
            session.add(delivery)
            contacts.record(session, skipped, customer_id=_id(customer.id), delivery_id=delivery.id, now=now)
            session.flush()
    return RecordedPurchase(
        customer_id=customer.external_id,
        order_id=purchase.order_id,
        survey_due_at=delivery.due_at,
        link_token=purchase.link_token,
        created=True,
        survey_skipped=skipped.explanation if skipped is not None else None,
    )


def note_purchase(
    session: Session, customer: Customer, *, purchased_at: datetime, policy: ContactPolicy | None
) -> None:
    """Keep the customer's rhythm current: their last purchase, the median gap between their visits, and
    when the sweep next looks at whether they went silent (a purchase ends a silence).

    The median is computed from all their purchases, so an old order imported later still shapes it.
    """
    session.flush()  # the new purchase is among the ones read
    times = session.exec(select(Purchase.purchased_at).where(col(Purchase.customer_id) == customer.id)).all()
    gap = median_gap(times)
    customer.median_purchase_gap_s = int(gap.total_seconds()) if gap is not None else None
    if customer.last_purchase_at is None or purchased_at > customer.last_purchase_at:
        customer.last_purchase_at = purchased_at
    if customer.checkins_stopped_at is None:
        rhythm = (policy or DEFAULT_CHECKIN_POLICY).rhythm(gap)
        customer.checkin_due_at = customer.last_purchase_at + rhythm.silent_after
    session.add(customer)


def _too_old(
    policy: ContactPolicy | None, *, purchased_at: datetime, now: datetime
) -> ContactDecision | None:
    """The contact rules' "too old" decision for a purchase reported now, or None when it gets a survey."""
    if policy is None:
        return None
    decision = decide(
        ContactKind.SURVEY, at=now, policy=policy, history=ContactHistory(), purchased_at=purchased_at
    )
    return decision if decision.skipped is ContactReason.TOO_OLD else None


def _existing(session: Session, order_id: str) -> RecordedPurchase | None:
    """What was stored for an order reported before; an order of a customer erased since is known by
    its hash and answered as known, so reporting it again stores nobody anew."""
    query = (
        select(Purchase, Customer, SurveyDelivery)
        .join(Customer, sa.and_(col(Customer.id) == Purchase.customer_id))
        .join(SurveyDelivery, sa.and_(col(SurveyDelivery.purchase_id) == Purchase.id))
    )
    row = session.exec(query.where(Purchase.order_id == order_id)).first()
    if row is None:
        row = session.exec(query.where(Purchase.order_id == erased_order_id(order_id))).first()
    if row is None:
        return None
    purchase, customer, delivery = row
    skipped = None
    if customer.erased_at is not None:
        skipped = ERASED_ORDER
    elif delivery.status == DeliveryStatus.SKIPPED.value:
        skipped = session.exec(
            select(ContactEvent.detail)
            .where(col(ContactEvent.delivery_id) == delivery.id)
            .order_by(col(ContactEvent.id).desc())
        ).first()
    return RecordedPurchase(
        customer_id=customer.external_id,
        order_id=order_id,  # as reported: an erased purchase stores only its hash
        survey_due_at=delivery.due_at,
        link_token=purchase.link_token,
        created=False,
        survey_skipped=skipped,
    )


def _upsert_customer(session: Session, report: PurchaseReport) -> Customer:
    # An erased customer's row is anonymous (``erased-<id>``): a new purchase under the id the shop used
    # before is a new relationship, reported anew, and gets a row of its own.
    customer = session.exec(
        select(Customer)
        .where(Customer.external_id == report.customer_id)
        .where(col(Customer.erased_at).is_(None))
    ).first()
    if customer is None:
        customer = Customer(external_id=report.customer_id)
    if report.name:
        customer.name = report.name
    if report.language:
        customer.language = report.language
    if report.time_zone:
        customer.time_zone = report.time_zone
    if report.telegram_user_id is not None:
        if session.get(TelegramUser, report.telegram_user_id) is None:
            telegram_users.ensure(session, report.telegram_user_id, now=utcnow())
        customer.telegram_user_id = report.telegram_user_id
    session.add(customer)
    session.flush()
    return customer


def _id(value: int | None) -> int:
    """Return a flushed row's primary key (always set after ``flush``)."""
    if value is None:
        raise RuntimeError("row has no primary key after flush")
    return value
