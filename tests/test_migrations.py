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
        assert current_revision(engine) == "0001"
