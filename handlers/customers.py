"""Customer lookups and state changes shared by the customer handlers: who is this Telegram user?"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select
from telegram import User

from handlers import conversation, messages
from handlers.context import UpdateWork
from handlers.services import Services
from storage import outbox, preload, telegram_users
from storage.models import (
    Customer,
    DeliveryStatus,
    OutboxStatus,
    Purchase,
    SurveyDelivery,
    TelegramUser,
)
from storage.outbox import OutboundCall
from surveys.languages import Language

# Refreshing "last seen" on every update would add a write to each answer; once in a while is enough.
_LAST_SEEN_RESOLUTION = timedelta(minutes=10)


# Built once, like the other statements every update runs: ``Session.get`` builds its query anew on each
# call, which cost more than the lookup itself (bench/README.md).
_USER_BY_ID = select(TelegramUser).where(col(TelegramUser.id) == sa.bindparam("user_id"))


def touch_user(
    session: Session, work: UpdateWork, user: User, *, lift_block: bool = True, talking: bool = True
) -> TelegramUser:
    """Create or refresh the Telegram user behind an update; writing to us lifts a block.

    ``last_seen_at`` is when they last talked to the bot, which ends a silence (handlers/checkins.py);
    a press on a check-in's own buttons (``talking=False``) answers it and leaves it alone.
    """
    group = preload.group_of(session)
    if group is not None and user.id in group.users:
        row = group.users[user.id]
    else:
        row = session.exec(_USER_BY_ID, params={"user_id": user.id}).first()
    if row is None:
        # Insert-or-ignore: the purchase API may be creating the same row this moment
        # (storage/telegram_users.py); a row it made is brought up to date below.
        row = telegram_users.ensure(
            session, user.id, now=work.now, first_name=user.first_name, language_code=user.language_code
        )
        if group is not None:
            group.users[user.id] = row
    changed = False
    if user.language_code and user.language_code != row.language_code:
        row.language_code = user.language_code
        changed = True
    if user.first_name and user.first_name[:256] != row.first_name:
        row.first_name = user.first_name[:256]
        changed = True
    if talking and work.now - row.last_seen_at > _LAST_SEEN_RESOLUTION:
        row.last_seen_at = work.now
        changed = True
    if row.blocked_at is not None and lift_block:
        # They wrote to us, so they unblocked the bot: send what was held back.
        row.blocked_at = None
        changed = True
        outbox.release_chat(session, user.id, from_statuses=(OutboxStatus.BLOCKED,), now=work.now)
        _reschedule_waiting(session, user.id)
        work.queued_messages = True
        work.wake_sweep = True
    if changed:
        session.add(row)
    return row


def mark_started(session: Session, work: UpdateWork, user_row: TelegramUser) -> None:
    """Record that the user opened the bot, so held messages and waiting surveys can go out now."""
    released = outbox.release_chat(
        session,
        user_row.id,
        from_statuses=(OutboxStatus.AWAITING_CONTACT, OutboxStatus.BLOCKED),
        now=work.now,
    )
    if not user_row.has_started:
        user_row.has_started = True
        session.add(user_row)
    if released or _reschedule_waiting(session, user_row.id):
        work.queued_messages = True
        work.wake_sweep = True


def _reschedule_waiting(session: Session, telegram_user_id: int) -> int:
    """Make surveys that waited for this user's first contact due again."""
    customer_ids = select(Customer.id).where(col(Customer.telegram_user_id) == telegram_user_id)
    result = session.execute(
        sa.update(SurveyDelivery)
        .where(col(SurveyDelivery.customer_id).in_(customer_ids))
        .where(col(SurveyDelivery.status) == DeliveryStatus.AWAITING_CONTACT.value)
        .values(status=DeliveryStatus.REQUESTED.value)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# Built once: every button press runs it, and building it anew costs more than executing it.
_DELIVERY_WITH_CUSTOMER = (
    select(SurveyDelivery, Customer)
    .join(Customer, sa.and_(col(Customer.id) == SurveyDelivery.customer_id))
    .where(col(SurveyDelivery.id) == sa.bindparam("delivery_id"))
    .with_for_update(of=SurveyDelivery)
)


def delivery_with_customer(session: Session, delivery_id: int) -> tuple[SurveyDelivery, Customer] | None:
    """Load a delivery with its customer in one query, locking the delivery (PostgreSQL) for the answer."""
    group = preload.group_of(session)
    if group is not None and delivery_id in group.deliveries:
        loaded = group.deliveries[delivery_id]
        return (loaded[0], loaded[1]) if loaded is not None else None
    row = session.exec(_DELIVERY_WITH_CUSTOMER, params={"delivery_id": delivery_id}).first()
    return (row[0], row[1]) if row is not None else None


def active_delivery(session: Session, telegram_user_id: int) -> SurveyDelivery | None:
    """Return the most recently started open survey of a Telegram user."""
    return session.exec(
        select(SurveyDelivery)
        .join(Customer, sa.and_(col(Customer.id) == SurveyDelivery.customer_id))
        .where(col(Customer.telegram_user_id) == telegram_user_id)
        .where(col(SurveyDelivery.status) == DeliveryStatus.ACTIVE.value)
        .order_by(col(SurveyDelivery.started_at).desc(), col(SurveyDelivery.id).desc())
    ).first()


def user_language(services: Services, session: Session, user_row: TelegramUser) -> Language:
    """Pick the language for a reply to this user."""
    customer = session.exec(
        select(Customer)
        .where(col(Customer.telegram_user_id) == user_row.id)
        .order_by(col(Customer.id).desc())
    ).first()
    shop_language = customer.language if customer is not None else None
    return services.language(user_row.chosen_language, user_row.language_code, shop_language)


def queue_reply(
    session: Session,
    work: UpdateWork,
    *,
    chat_id: int,
    text: str,
    reply_markup: dict[str, Any] | None = None,
    key_suffix: str = "",
) -> None:
    """Queue a reply to the update being handled; replaying the update never sends it twice."""
    outbox.enqueue(
        session,
        OutboundCall(
            dedupe_key=f"reply:{work.update_id}{key_suffix}",
            kind=outbox.KIND_REPLY,
            method="sendMessage",
            chat_id=chat_id,
            payload=messages.text_message(chat_id, text, reply_markup=reply_markup),
        ),
        now=work.now,
    )
    work.queued_messages = True


def stop_everything(session: Session, work: UpdateWork, user_row: TelegramUser) -> bool:
    """Opt the user out: no surveys, nothing queued goes out; return False if they already were."""
    if user_row.opted_out_at is not None:
        return False
    user_row.opted_out_at = work.now
    session.add(user_row)
    outbox.cancel_chat(session, user_row.id, kinds=outbox.CUSTOMER_KINDS)
    _close_open_questions(session, work, user_row.id)
    customer_ids = select(Customer.id).where(col(Customer.telegram_user_id) == user_row.id)
    session.execute(
        sa.update(SurveyDelivery)
        .where(col(SurveyDelivery.customer_id).in_(customer_ids))
        .where(
            col(SurveyDelivery.status).in_(
                [
                    DeliveryStatus.ACTIVE.value,
                    DeliveryStatus.SCHEDULED.value,
                    DeliveryStatus.REQUESTED.value,
                    DeliveryStatus.AWAITING_CONTACT.value,
                ]
            )
        )
        .values(status=DeliveryStatus.STOPPED.value)
    )
    return True


def _close_open_questions(session: Session, work: UpdateWork, telegram_user_id: int) -> None:
    """Take the buttons off questions that are open when the customer stops, so nothing invites a tap."""
    open_deliveries = session.exec(
        select(SurveyDelivery)
        .join(Customer, sa.and_(col(Customer.id) == SurveyDelivery.customer_id))
        .where(col(Customer.telegram_user_id) == telegram_user_id)
        .where(col(SurveyDelivery.status) == DeliveryStatus.ACTIVE.value)
    ).all()
    for delivery in open_deliveries:
        if delivery.current_question_id is None:
            continue
        key = conversation.question_key(delivery, delivery.current_question_id)
        message_id = outbox.message_id_of(session, key)
        if message_id is None:
            continue  # never sent (the row was just cancelled): there is no keyboard to remove
        outbox.enqueue(
            session,
            OutboundCall(
                dedupe_key=f"close:{key}",
                kind=outbox.KIND_CLOSED,
                method="editMessageReplyMarkup",
                chat_id=telegram_user_id,
                payload={"message_id": message_id},
                delivery_id=delivery.id,
            ),
            now=work.now,
        )


def pause_contacts(session: Session, work: UpdateWork, user_row: TelegramUser, *, days: int) -> datetime:
    """/pause: no unprompted messages for ``days`` from now (a new /pause replaces the old one); return
    until when. Surveys due meanwhile are skipped with the reason "paused"; /start ends the pause."""
    until = work.now + timedelta(days=days)
    user_row.paused_until = until
    session.add(user_row)
    return until


def end_pause(session: Session, work: UpdateWork, user_row: TelegramUser) -> bool:
    """Undo /pause; return False if there was no pause running."""
    if user_row.paused_until is None or user_row.paused_until <= work.now:
        return False
    user_row.paused_until = None
    session.add(user_row)
    return True


def resume_everything(session: Session, work: UpdateWork, user_row: TelegramUser) -> bool:
    """Undo /stop: one stopped survey is due again, the one they were answering (else the latest),
    unless it has expired meanwhile; the others stay stopped (one survey at a time). Return False if
    they had not opted out."""
    if user_row.opted_out_at is None:
        return False
    user_row.opted_out_at = None
    session.add(user_row)
    customer_ids = select(Customer.id).where(col(Customer.telegram_user_id) == user_row.id)
    latest = session.exec(
        select(SurveyDelivery)
        .where(col(SurveyDelivery.customer_id).in_(customer_ids))
        .where(col(SurveyDelivery.status) == DeliveryStatus.STOPPED.value)
        .order_by(
            col(SurveyDelivery.started_at).is_(None),  # the one they were answering comes first
            col(SurveyDelivery.started_at).desc(),
            col(SurveyDelivery.due_at).desc(),
            col(SurveyDelivery.id).desc(),
        )
        .limit(1)
    ).first()
    if latest is not None and (latest.expires_at is None or latest.expires_at > work.now):
        latest.status = DeliveryStatus.REQUESTED.value
        session.add(latest)
        work.wake_sweep = True
    return True


def link_customer(
    session: Session, work: UpdateWork, *, token: str, user_row: TelegramUser, expires_after: timedelta
) -> tuple[str, str | None]:
    """Connect the customer behind a deep-link token to this Telegram user.

    Returns a catalogue key ("start_linked", "link_used", "link_expired", "link_invalid") and the order
    id. A token works once, and only until ``expires_after`` (START_LINK_EXPIRES_AFTER) after its purchase
    was recorded: a link on an old receipt that someone else found must not connect their chat. Opening
    it again from the account it connected is harmless, from another account it is refused. A customer
    whose data was erased is never connected again (their tokens were replaced, and this checks too).
    """
    purchase = session.exec(select(Purchase).where(Purchase.link_token == token)).first()
    if purchase is None:
        return "link_invalid", None
    customer = session.get(Customer, purchase.customer_id)
    if customer is None or customer.erased_at is not None:
        return "link_invalid", None
    if purchase.link_used_at is not None or customer.telegram_user_id not in (None, user_row.id):
        if customer.telegram_user_id == user_row.id:
            return "start_linked", purchase.order_id
        return "link_used", None
    if customer.telegram_user_id is None and work.now - purchase.created_at > expires_after:
        return "link_expired", None
    purchase.link_used_at = work.now
    customer.telegram_user_id = user_row.id
    session.add(purchase)
    session.add(customer)
    session.flush()
    return "start_linked", purchase.order_id
