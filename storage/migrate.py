"""Apply Alembic migrations from code, so ``kundenpuls db upgrade`` and the bot's start share one path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def advisory_lock_key(name: str) -> int:
    """Turn a lock's name into the signed 64-bit key PostgreSQL's advisory locks take."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


# One key for every process on the database: whoever holds it migrates, the others wait their turn.
MIGRATION_LOCK_KEY = advisory_lock_key("kundenpuls-migrations")


def alembic_config(database_url: str) -> Config:
    """Build the Alembic config in code; the package ships no alembic.ini to keep in sync."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would choke on '%' in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade_database(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (the newest by default); a no-op when it is already there.

    Processes that start at the same moment take turns: the whole upgrade runs in one transaction that
    first takes a lock, so one migrates and the others wait, then find nothing left to do. On PostgreSQL
    the lock is ``pg_advisory_xact_lock(MIGRATION_LOCK_KEY)``, released when the transaction ends (also
    when the process dies). On SQLite the engine from :func:`storage.db.create_db_engine` starts every
    transaction with ``BEGIN IMMEDIATE``, which already lets only one writer in at a time.
    """
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Before Alembic reads the version table, so a waiter reads it after the winner committed.
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    """The newest migration shipped with this code (what ``upgrade_database`` brings a database to)."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS_DIR}")
    return head
