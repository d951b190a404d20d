"""Processes that start at the same moment do not race on the schema: one migrates, the others wait."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy.engine import Engine

from storage.db import create_db_engine
from storage.migrate import (
    MIGRATION_LOCK_KEY,
    advisory_lock_key,
    current_revision,
    head_revision,
    upgrade_database,
)

PROCESSES = 3


class TestMigrationLock:
    def test_simultaneous_upgrades_of_an_empty_database_all_succeed(self, database_url: str) -> None:
        """Several engines upgrading one empty database at once all succeed and leave it at head."""
        engines = [create_db_engine(database_url) for _ in range(PROCESSES)]
        start = threading.Barrier(PROCESSES)

        def upgrade(engine: Engine) -> str | None:
            start.wait()
            upgrade_database(engine)
            return current_revision(engine)

        try:
            with ThreadPoolExecutor(max_workers=PROCESSES) as pool:
                revisions = list(pool.map(upgrade, engines))
        finally:
            for engine in engines:
                engine.dispose()
        assert revisions == [head_revision()] * PROCESSES

    def test_the_lock_key_is_a_fixed_signed_64_bit_number(self) -> None:
        """The key is derived from its name alone, so every process and every version uses the same one."""
        assert advisory_lock_key("kundenpuls-migrations") == MIGRATION_LOCK_KEY
        assert -(2**63) <= MIGRATION_LOCK_KEY < 2**63
