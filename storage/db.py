"""Engine and unit of work: one session per update or job run, committed or rolled back in one place."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session


def normalize_database_url(url: str) -> str:
    """Map the plain ``postgresql://`` spellings people paste onto the psycopg 3 driver we ship."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _dump_json(value: Any) -> str:
    return orjson.dumps(value).decode()


_JSON_CODEC: dict[str, Any] = {"json_serializer": _dump_json, "json_deserializer": orjson.loads}
"""JSON columns (stored updates, outbox payloads) through orjson: every update and every message is
encoded and decoded once each, and the stdlib took a fifth of the bot's CPU per answer for it."""


def is_sqlite(engine: Engine) -> bool:
    """Tell whether the engine talks to SQLite (which needs its own locking and pragmas)."""
    return engine.dialect.name == "sqlite"


def create_db_engine(url: str, *, echo: bool = False) -> Engine:
    """Create the engine for ``DATABASE_URL``.

    SQLite runs in WAL mode with foreign keys on; every transaction starts with ``BEGIN IMMEDIATE`` so
    two writers queue on the lock instead of failing half-way with "database is locked" when a reader
    upgrades to a writer.
    """
    url = normalize_database_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        engine = sa.create_engine(
            url,
            echo=echo,
            hide_parameters=True,
            connect_args={"check_same_thread": False, "timeout": 30},
            **_JSON_CODEC,
        )
        _configure_sqlite(engine)
        _SQLITE_WRITERS[engine] = threading.RLock()
        return engine
    # No pre-ping (a round trip per unit of work): a connection that died is recycled, and the unit of work
    # that met it fails and is retried like any other transient error.
    return sa.create_engine(
        url,
        echo=echo,
        hide_parameters=True,
        pool_recycle=300,
        pool_size=5,
        max_overflow=5,
        **_JSON_CODEC,
    )


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL once; processes opening a new file at the same moment may race on it.

    Changing the journal mode needs the file to itself, and SQLite answers "database is locked" at once
    instead of waiting. Reading the mode needs no lock, so a file already in WAL mode costs nothing.
    """
    for attempt in range(50):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
                return
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == 49:
                raise
            time.sleep(0.02 * (attempt + 1))


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # A read snapshot (read_snapshot) takes no write lock: WAL lets it read while others write.
        deferred = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()


def _writer_lock(engine: Engine) -> threading.RLock | None:
    """Return the in-process writer lock of a SQLite engine (None for PostgreSQL).

    SQLite lets one writer in at a time. Threads of one process (the handler loop, the sender, the
    purchase API) that meet its lock are put to sleep by SQLite's busy handler in steps of up to 100 ms,
    far longer than a transaction here takes. Queueing them on a Python lock first wakes each the moment
    the previous transaction ends. Other processes still queue on SQLite's own lock.
    """
    if not is_sqlite(engine):
        return None
    lock = _SQLITE_WRITERS.get(engine)
    if lock is None:
        lock = _SQLITE_WRITERS.setdefault(engine, threading.RLock())
    return lock


_READ_ONLY = "kundenpuls_read_only"


@contextmanager
def read_snapshot(engine: Engine) -> Iterator[Session]:
    """Yield a session that reads one consistent state of the database and writes nothing.

    For long reads (a report's aggregates over a year of answers): on SQLite it takes no write lock (a
    deferred transaction in WAL mode reads a snapshot while writers go on), on PostgreSQL it is a
    repeatable-read, read-only transaction. Either way the figures of one report fit together.
    """
    with engine.connect() as connection:
        if is_sqlite(engine):
            connection = connection.execution_options(**{_READ_ONLY: True})
        else:
            connection = connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        with Session(bind=connection) as session:
            try:
                yield session
            finally:
                session.rollback()


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """Yield a session that is committed when the block succeeds and rolled back when it raises."""
    lock = _writer_lock(engine)
    with (
        lock if lock is not None else contextlib.nullcontext(),
        Session(engine, expire_on_commit=False) as session,
    ):
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
