"""Shared fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``KUNDENPULS_TEST_POSTGRES_URL`` (default: the project machines' server at
127.0.0.1:5432, user postgres, database test). Each test gets its own schema, so tests never see each
other's rows. Without a reachable server the PostgreSQL variants skip with a message, unless
``KUNDENPULS_REQUIRE_POSTGRES=1`` (set by .ci/run) turns that into a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from storage.db import create_db_engine, normalize_database_url
from storage.migrate import upgrade_database

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_base_url() -> str:
    """Return the PostgreSQL server the tests use."""
    return normalize_database_url(os.environ.get("KUNDENPULS_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))


@cache
def postgres_unavailable_reason() -> str | None:
    """Return why PostgreSQL cannot be used here, or None when it can."""
    engine = sa.create_engine(postgres_base_url())
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except Exception as error:  # any failure means "no server here"; the message says which
        return f"PostgreSQL at {make_url(postgres_base_url()).render_as_string()} is not reachable: {error}"
    finally:
        engine.dispose()
    return None


def require_postgres() -> None:
    """Skip (or fail in CI) when PostgreSQL is not reachable."""
    reason = postgres_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("KUNDENPULS_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason} (KUNDENPULS_REQUIRE_POSTGRES=1: the PostgreSQL tests must run)")
    pytest.skip(f"{reason}; start PostgreSQL or set KUNDENPULS_TEST_POSTGRES_URL to run these tests")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Yield the URL of an empty database of each kind (a file for SQLite, a fresh schema on PostgreSQL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kundenpuls-test.db'}"
        return
    yield from fresh_postgres_schema()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """Yield the URL of a fresh PostgreSQL schema, for tests only PostgreSQL can run (several processes)."""
    yield from fresh_postgres_schema()


def fresh_postgres_schema() -> Iterator[str]:
    """Create an empty schema, yield its URL, drop it afterwards (skips without a server)."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(postgres_base_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        url = make_url(postgres_base_url()).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """Yield an engine on a migrated, empty database."""
    yield from _migrated_engine(database_url)


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    """Yield an engine on a migrated, empty PostgreSQL schema (for what only PostgreSQL can show)."""
    yield from _migrated_engine(postgres_url)


def _migrated_engine(url: str) -> Iterator[Engine]:
    db_engine = create_db_engine(url)
    upgrade_database(db_engine)
    yield db_engine
    db_engine.dispose()


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say up front whether the Bot API spec checks and the PostgreSQL variants will run."""
    from tests.fakes.bot_api_spec import find_spec_path

    spec = find_spec_path()
    return [
        f"Bot API spec: {spec}" if spec else "Bot API spec: MISSING - requests are not checked against it",
        f"PostgreSQL: {postgres_unavailable_reason() or make_url(postgres_base_url()).render_as_string()}",
    ]
