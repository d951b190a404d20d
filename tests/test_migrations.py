"""Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from storage import models
from storage.migrate import current_revision, head_revision, upgrade_database


class TestMigrations:
    def test_migrated_schema_matches_the_models(self, engine: Engine) -> None:
        """After ``upgrade head`` autogenerate finds nothing left to migrate."""
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        assert differences == []

    def test_upgrade_is_idempotent(self, engine: Engine) -> None:
        """Running the migrations again (every start does) changes nothing."""
        upgrade_database(engine)
        assert current_revision(engine) == head_revision()


class TestCheckinBackfill:
    def test_existing_customers_get_their_rhythm_and_are_looked_at_at_once(self, database_url: str) -> None:
        """0008 fills each customer's last purchase and median gap from the purchases already stored."""
        import sqlalchemy as sa

        from storage.db import create_db_engine

        engine = create_db_engine(database_url)
        try:
            upgrade_database(engine, "0007")
            day = datetime(2026, 1, 1, 10, tzinfo=UTC)
            with engine.begin() as connection:
                connection.execute(
                    sa.text("INSERT INTO customers (id, external_id, created_at) VALUES (:id, :ext, :at)"),
                    [{"id": 1, "ext": "regular", "at": day}, {"id": 2, "ext": "once", "at": day}],
                )
                purchases = [(1, 0), (1, 10), (1, 20), (1, 50), (2, 5)]  # regular: gaps 10, 10, 30 days
                connection.execute(
                    sa.text(
                        "INSERT INTO purchases (order_id, customer_id, currency, purchased_at, source,"
                        " link_token, created_at) VALUES (:order, :cid, 'EUR', :at, 'csv', :token, :at)"
                    ),
                    [
                        {"order": f"o{i}", "cid": cid, "at": day + timedelta(days=offset), "token": f"t{i}"}
                        for i, (cid, offset) in enumerate(purchases)
                    ],
                )
            upgrade_database(engine)
            with Session(engine) as session:
                regular = session.get(models.Customer, 1)
                once = session.get(models.Customer, 2)
            assert regular is not None and once is not None
            assert regular.median_purchase_gap_s == 10 * 86400
            assert regular.last_purchase_at == day + timedelta(days=50)
            assert regular.checkin_due_at == regular.last_purchase_at
            assert once.median_purchase_gap_s is None
            assert once.last_purchase_at == day + timedelta(days=5)
        finally:
            engine.dispose()


class TestSqlite:
    def test_sqlite_runs_in_wal_mode_with_foreign_keys(self, tmp_path: object) -> None:
        """SQLite files use WAL (readers never block the writer) and enforce foreign keys."""
        import sqlalchemy as sa

        from storage.db import create_db_engine

        engine = create_db_engine(f"sqlite:///{tmp_path}/wal.db")
        try:
            with engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert connection.execute(sa.text("SELECT 1")).scalar() == 1
        finally:
            engine.dispose()
