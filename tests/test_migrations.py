"""Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from storage import models  # noqa: F401  (registers the tables)
from storage.migrate import current_revision, upgrade_database


class TestMigrations:
    def test_migrated_schema_matches_the_models(self, engine: Engine) -> None:
        """After ``upgrade head`` autogenerate finds nothing left to migrate."""
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        assert differences == []

    def test_upgrade_is_idempotent(self, engine: Engine) -> None:
        """Running the migrations again (every start does) changes nothing."""
        upgrade_database(engine)
        assert current_revision(engine) == "0007"


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
