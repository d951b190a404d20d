"""Check-ins as stored: looked up by id for an answer, locked so that two presses take turns."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage.models import Checkin

_BY_ID = select(Checkin).where(col(Checkin.id) == sa.bindparam("checkin_id")).with_for_update()


def get(session: Session, checkin_id: int) -> Checkin | None:
    """The check-in with this id, locked for its answer (PostgreSQL; SQLite serialises writers anyway)."""
    return session.exec(_BY_ID, params={"checkin_id": checkin_id}).first()
