"""Claimed rows with the customer and Telegram user they belong to, loaded by primary key.

The sweep claims due rows alone (``FOR UPDATE SKIP LOCKED`` on one table, by its due-time index) and
only then reads their customers. Claiming with the join in the same statement let PostgreSQL plan a hash
join that read all of ``customers`` on every sweep (bench/sweep_scale.py: a third of a second at a million
customers, with nothing due); by primary key it is a handful of index lookups, whatever the size.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Customer, SurveyDelivery, TelegramUser


def users_of(session: Session, customers: Sequence[Customer]) -> list[tuple[Customer, TelegramUser | None]]:
    """Each customer with their Telegram user (None when the shop gave none), in the given order."""
    ids = {customer.telegram_user_id for customer in customers if customer.telegram_user_id is not None}
    users: dict[int, TelegramUser] = {}
    if ids:
        users = {
            user.id: user for user in session.exec(select(TelegramUser).where(col(TelegramUser.id).in_(ids)))
        }
    return [
        (customer, users.get(customer.telegram_user_id) if customer.telegram_user_id is not None else None)
        for customer in customers
    ]


def customers_of(
    session: Session, deliveries: Sequence[SurveyDelivery]
) -> list[tuple[SurveyDelivery, Customer, TelegramUser | None]]:
    """Each survey delivery with its customer and their Telegram user, in the given order."""
    if not deliveries:
        return []
    ids = {delivery.customer_id for delivery in deliveries}
    rows = session.exec(
        select(Customer, TelegramUser)
        .outerjoin(TelegramUser, sa.and_(col(TelegramUser.id) == Customer.telegram_user_id))
        .where(col(Customer.id).in_(ids))
    ).all()
    by_id = {customer.id: (customer, user) for customer, user in rows}
    return [(delivery, *by_id[delivery.customer_id]) for delivery in deliveries]


def due_deliveries(
    session: Session, *, statuses: Sequence[str], due: Any, now: datetime, limit: int
) -> list[SurveyDelivery]:
    """Claim up to ``limit`` deliveries in one of ``statuses`` whose ``due`` column has come, oldest first
    within each status (``statuses`` in the order they should go), ``FOR UPDATE SKIP LOCKED``.

    One query per status: with an equality on the status the (status, due) index hands the rows over in
    due order and the LIMIT ends the scan at the first one not due. With ``status IN (...)`` PostgreSQL
    sorted every row of those statuses first, because it takes status and due time to be independent
    and so expects most of them to be due (80 ms per sweep at a million customers, with nothing due).
    """
    claimed: list[SurveyDelivery] = []
    for status in statuses:
        if len(claimed) >= limit:
            break
        claimed.extend(
            session.exec(
                select(SurveyDelivery)
                .where(col(SurveyDelivery.status) == status)
                .where(due <= now)
                .order_by(due, col(SurveyDelivery.id))
                .limit(limit - len(claimed))
                .with_for_update(skip_locked=True)
            ).all()
        )
    return claimed
