"""Kundenpuls with instruments: ``kundenpuls run`` plus database statement counts and an optional profile.

Bench-only entry point, started by ``survey_throughput.py`` as a subprocess (``PYTHONPATH`` = the
repository). It builds ``KundenpulsBot(load_settings())`` and runs it exactly like ``bot/cli.py``'s
``_serve`` does; the only additions are measurement hooks, so the numbers describe the real bot:

- An SQLAlchemy ``before_cursor_execute`` / ``after_cursor_execute`` listener on ``bot.engine`` counts every
  statement by kind (SELECT, INSERT, UPDATE, BEGIN, SAVEPOINT...) and sums the time spent in the driver.
  ``commit``/``rollback``/``begin`` events and pool checkouts are counted too: COMMIT is a DBAPI call, not
  a statement, and on PostgreSQL psycopg sends BEGIN itself and ``pool_pre_ping`` pings on every checkout.
- The benchmark marks its timed windows with signals, so setup (purchases, the first question) is not
  counted: SIGUSR1 opens a window (snapshot of the counters, profiler on), SIGUSR2 closes it.
- SIGTERM/SIGINT stop the bot cleanly; then the windows are written as JSON to
  ``KUNDENPULS_BENCH_STATS`` and, if ``KUNDENPULS_BENCH_PROFILE`` names a file, the cProfile data of the
  windows is dumped there (enabled only inside windows, so the profile is the timed work alone).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from bot.application import KundenpulsBot
from bot.cli import configure_logging
from bot.heap import freeze_startup_objects
from bot.settings import SettingsError, load_settings

STATS_VARIABLE = "KUNDENPULS_BENCH_STATS"
PROFILE_VARIABLE = "KUNDENPULS_BENCH_PROFILE"
STATEMENTS_VARIABLE = "KUNDENPULS_BENCH_STATEMENTS"
"""A file for the texts of the statements run inside the windows, counted, with the time spent in the
driver on each; the most costly first."""


class StatementCounter:
    """Counts what the bot asks of its database, by kind, with the time spent waiting for the driver."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.seconds: dict[str, float] = {}
        self._started: dict[int, tuple[str, str | None, float]] = {}
        self.texts: Counter[str] | None = None
        """Statement texts, counted while a window is open, when ``KUNDENPULS_BENCH_STATEMENTS`` asks."""
        self.text_seconds: dict[str, float] = {}

    def attach(self, engine: Engine) -> None:
        """Listen on ``engine``; cheap enough (a dict update per statement) not to move the numbers."""
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        event.listen(engine, "begin", lambda _conn: self.counts.update(["(begin)"]))
        event.listen(engine, "commit", lambda _conn: self.counts.update(["(commit)"]))
        event.listen(engine, "rollback", lambda _conn: self.counts.update(["(rollback)"]))
        event.listen(engine.pool, "checkout", lambda *_args: self.counts.update(["(checkout)"]))

    def _before(self, _conn: Any, cursor: Any, statement: str, *_rest: Any) -> None:
        kind = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
        text = None
        if self.texts is not None:
            text = " ".join(statement.split())
            self.texts[text] += 1
        self._started[id(cursor)] = (kind, text, time.perf_counter())

    def _after(self, _conn: Any, cursor: Any, *_rest: Any) -> None:
        started = self._started.pop(id(cursor), None)
        if started is not None:
            kind, text, at = started
            elapsed = time.perf_counter() - at
            self.counts[kind] += 1
            self.seconds[kind] = self.seconds.get(kind, 0.0) + elapsed
            if text is not None:
                self.text_seconds[text] = self.text_seconds.get(text, 0.0) + elapsed

    def snapshot(self) -> dict[str, Any]:
        """Cumulative counters now; a window is the difference of two snapshots."""
        return {"counts": dict(self.counts), "seconds": dict(self.seconds), "time": time.monotonic()}


class Windows:
    """The timed windows the benchmark marks with SIGUSR1/SIGUSR2, with their counter snapshots."""

    def __init__(self, counter: StatementCounter, profiler: cProfile.Profile | None) -> None:
        self._counter = counter
        self._profiler = profiler
        self._open: dict[str, Any] | None = None
        self.closed: list[dict[str, Any]] = []

    def begin(self) -> None:
        """SIGUSR1: the benchmark is about to send the timed updates."""
        self._open = self._counter.snapshot()
        if os.environ.get(STATEMENTS_VARIABLE):
            self._counter.texts = self._counter.texts or Counter()
        if self._profiler is not None:
            self._profiler.enable()

    def end(self) -> None:
        """SIGUSR2: every effect of the timed updates has reached the fake server."""
        if self._profiler is not None:
            self._profiler.disable()
        if self._open is not None:
            self.closed.append({"start": self._open, "end": self._counter.snapshot()})
            self._open = None
        texts, self._counter.texts = self._counter.texts, None
        seconds, self._counter.text_seconds = self._counter.text_seconds, {}
        statements_path = os.environ.get(STATEMENTS_VARIABLE)
        if texts is not None and statements_path:
            costly = sorted(texts, key=lambda text: seconds.get(text, 0.0), reverse=True)
            with Path(statements_path).open("a") as out:
                out.write("  count  driver ms  statement\n")
                out.writelines(
                    f"{texts[text]:7d}  {seconds.get(text, 0.0) * 1000:9.1f}  {text}\n" for text in costly
                )
                out.write("-" * 40 + "\n")


async def serve(windows: Windows, counter: StatementCounter) -> None:
    """``bot.cli._serve`` with the counter attached and the window signals installed."""
    settings = load_settings()
    _ = settings.token
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, windows.begin)
    loop.add_signal_handler(signal.SIGUSR2, windows.end)
    bot = KundenpulsBot(settings)
    counter.attach(bot.engine)
    try:
        await bot.start()
        freeze_startup_objects()
        await stop.wait()
    finally:
        await bot.stop()


def main() -> int:
    """Run until SIGTERM, then write the windows (and the profile) where the environment says."""
    configure_logging()
    stats_path = os.environ.get(STATS_VARIABLE)
    profile_path = os.environ.get(PROFILE_VARIABLE)
    counter = StatementCounter()
    profiler = cProfile.Profile() if profile_path else None
    windows = Windows(counter, profiler)
    try:
        asyncio.run(serve(windows, counter))
    except SettingsError as error:
        print(f"run_bot: {error}", file=sys.stderr)
        return 2
    finally:
        if stats_path:
            Path(stats_path).write_text(json.dumps({"windows": windows.closed, "total": counter.snapshot()}))
        if profiler is not None and profile_path:
            profiler.dump_stats(profile_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
