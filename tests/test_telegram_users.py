"""Two writers meeting a new Telegram user at once (a /start and the shop's first purchase) make one row,
and neither fails (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from storage import telegram_users
from storage.db import unit_of_work
from storage.models import TelegramUser

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


class TestEnsure:
    def test_a_second_writer_waits_for_the_first_and_finds_its_row(self, engine: Engine) -> None:
        """The second insert of the same id is ignored instead of failing with a unique violation."""
        found: list[str] = []
        failures: list[BaseException] = []
        first_wrote = threading.Event()

        def second_writer() -> None:
            first_wrote.wait(10)
            try:
                with unit_of_work(engine) as session:
                    row = telegram_users.ensure(session, 77, now=NOW, first_name="from the purchase")
                    found.append(row.first_name)
            except BaseException as error:  # reported by the assertion below
                failures.append(error)

        thread = threading.Thread(target=second_writer)
        thread.start()
        with unit_of_work(engine) as session:
            telegram_users.ensure(session, 77, now=NOW, first_name="Anna")
            first_wrote.set()  # the other writer now runs into the row this transaction has not committed
            thread.join(0.5)  # it waits on our lock (PostgreSQL) or the database lock (SQLite)
        thread.join(30)
        assert failures == []
        with Session(engine) as session:
            rows = session.exec(select(TelegramUser)).all()
        assert [(row.id, row.first_name) for row in rows] == [(77, "Anna")]
        assert found == ["Anna"]

    def test_an_existing_row_is_returned_unchanged(self, engine: Engine) -> None:
        """Ensuring a known user changes nothing about them."""
        with unit_of_work(engine) as session:
            telegram_users.ensure(session, 78, now=NOW, first_name="Eric", language_code="en")
        with unit_of_work(engine) as session:
            row = telegram_users.ensure(session, 78, now=datetime(2027, 1, 1, tzinfo=UTC), first_name="X")
            assert (row.first_name, row.language_code, row.created_at) == ("Eric", "en", NOW)
