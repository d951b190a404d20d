"""The one row per Telegram user, created by whoever meets the user first.

A customer's first /start (the update worker) and the shop's first purchase naming their Telegram id (the
purchase API) can arrive in the same moment. Both create the row with insert-or-ignore on its primary
key, so on PostgreSQL the second waits for the first and then finds its row, instead of failing with a
unique violation (bench/simulated_year.py met twenty in a 200-customer month) and being retried.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import TelegramUser
from storage.upsert import insert_ignoring_duplicates

_BY_ID = select(TelegramUser).where(col(TelegramUser.id) == sa.bindparam("user_id"))


def ensure(
    session: Session, user_id: int, *, now: datetime, first_name: str = "", language_code: str | None = None
) -> TelegramUser:
    """The user's row, created with these values when nobody has created it yet."""
    insert_ignoring_duplicates(
        session,
        TelegramUser.__table__,  # type: ignore[attr-defined]
        [
            {
                "id": user_id,
                "first_name": first_name[:256],
                "language_code": language_code,
                "has_started": False,
                "created_at": now,
                "last_seen_at": now,
            }
        ],
        conflict_columns=["id"],
    )
    return session.exec(_BY_ID, params={"user_id": user_id}).one()
