"""Raw updates are kept for RAW_UPDATE_RETENTION once handled, and never deleted while still unhandled."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import jobs
from bot.settings import Settings
from handlers.services import Services
from storage import inbox
from storage.db import unit_of_work
from storage.models import InboundUpdate, UpdateStatus, utcnow
from surveys.loader import POST_PURCHASE_SURVEY_ID, load_builtin_survey
from surveys.texts import load_catalogue


def _services(**settings: Any) -> Services:
    survey = load_builtin_survey(POST_PURCHASE_SURVEY_ID)
    return Services(
        settings=Settings(_env_file=None, **settings),
        surveys={survey.id: survey},
        catalogue=load_catalogue(),
    )


def _store(
    engine: Engine, update_ids: range | list[int], *, received_at: datetime, status: UpdateStatus
) -> None:
    """Updates as the poller stores them at ``received_at``, then handled (or not) as ``status`` says."""
    ids = list(update_ids)
    with unit_of_work(engine) as session:
        updates = [{"update_id": i, "message": {"message_id": i, "text": f"update {i}"}} for i in ids]
        inbox.store_updates(session, updates, now=received_at)
        if status is UpdateStatus.DONE:
            inbox.mark_done(session, ids, now=received_at)
        elif status is UpdateStatus.FAILED:
            for update_id in ids:
                inbox.mark_unprocessable(session, update_id, now=received_at, error="test")


def _kept(engine: Engine) -> list[int]:
    with Session(engine) as session:
        return list(
            session.exec(select(InboundUpdate.update_id).order_by(col(InboundUpdate.update_id))).all()
        )


class TestRawUpdateRetention:
    def test_old_handled_updates_go_while_recent_and_unhandled_ones_stay(self, engine: Engine) -> None:
        """Handled (done or given up) and older than 30 days: deleted; younger, or waiting: kept."""
        now = utcnow()
        _store(engine, [1], received_at=now - timedelta(days=31), status=UpdateStatus.DONE)
        _store(engine, [2], received_at=now - timedelta(days=40), status=UpdateStatus.FAILED)
        _store(engine, [3], received_at=now - timedelta(days=90), status=UpdateStatus.PENDING)
        _store(engine, [4], received_at=now - timedelta(days=29), status=UpdateStatus.DONE)
        _store(engine, [5], received_at=now, status=UpdateStatus.PENDING)
        assert jobs.prune_raw_updates(engine, _services(), now=now) == 2
        assert _kept(engine) == [3, 4, 5]
        assert jobs.prune_raw_updates(engine, _services(), now=now) == 0

    def test_a_long_backlog_goes_page_by_page(self, engine: Engine) -> None:
        """More old updates than one page holds are all deleted, each page in a transaction of its own."""
        now = utcnow()
        _store(engine, range(1, 1202), received_at=now - timedelta(days=60), status=UpdateStatus.DONE)
        _store(engine, [5000], received_at=now - timedelta(days=1), status=UpdateStatus.DONE)
        assert jobs.prune_raw_updates(engine, _services(), now=now) == 1201
        assert _kept(engine) == [5000]

    def test_the_sweep_prunes_with_the_configured_retention(self, engine: Engine) -> None:
        """The periodic sweep does it, with RAW_UPDATE_RETENTION as configured."""
        now = utcnow()
        _store(engine, [1], received_at=now - timedelta(days=3), status=UpdateStatus.DONE)
        _store(engine, [2], received_at=now - timedelta(hours=36), status=UpdateStatus.DONE)
        jobs.sweep(engine, _services(raw_update_retention="2d"), now=now)
        assert _kept(engine) == [2]
