"""The sweep at scale: how long one run of the periodic sweep takes over 100,000 and 1,000,000 customers
(3 purchases each on average), on SQLite and PostgreSQL, and how much memory it needs.

    python bench/sweep_scale.py                               # 100k and 1M customers, SQLite and PostgreSQL
    python bench/sweep_scale.py --customers 100000 --database sqlite --explain

The data is a year of a shop under the shipped defaults (bench/sweep_data.py), written straight into the
tables, as if the sweep had run every SWEEP_INTERVAL until 08:59:30 on a Thursday in Berlin. Then the
sweep (``bot.jobs.sweep``, the function the scheduler calls, with the shipped engine settings) runs:

1. at 09:00:00, the **morning sweep**: everything the quiet hours held overnight is due at once;
2. every SWEEP_INTERVAL after it (``--ticks``, default 5), the **regular sweeps**: what came due in the
   last interval (the headline: what every sweep of the day costs);
3. once more at the same moment, the **idle sweep**: nothing is due, only the index lookups remain.

For each: the wall time, what it queued, the statements it ran, and the process's peak resident memory
during the sweep above what it held before (Linux ``VmHWM``, reset before each sweep). With ``--explain``
the query plan of every distinct SELECT of a regular sweep is printed (on PostgreSQL with ANALYZE and
BUFFERS, run with that sweep's parameters after it); without it, only the plans that read a whole table,
or (PostgreSQL) filter away more than 10,000 rows, are named, and the three slowest statements of a
regular and of the idle sweep. Nothing is sent: the sweep writes the outbox, which the sender drains at
Telegram's pace (bench/delivery.py measures that).

Exit status: 0 when every check passed (every regular sweep under 1 s and no plan reads a whole large
table), 1 when one failed, 2 when the benchmark could not run.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script (python bench/sweep_scale.py): make the repository importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench.harness import BenchError, code_version, fresh_database, workdir
from bench.sweep_data import Shop, load, table_sizes
from bot import jobs
from bot.durations import format_duration
from bot.settings import Settings
from handlers.services import Services
from storage.db import create_db_engine
from storage.migrate import upgrade_database
from surveys.loader import load_builtin_survey
from surveys.texts import load_catalogue

MORNING = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
"""Thursday 3 December 2026, 09:00 in Berlin: the end of the quiet hours."""
TARGET_SECONDS = 1.0
LARGE_TABLE_ROWS = 100_000
"""A plan that reads a whole table of at least this many rows is a failure."""
FILTERED_ROWS = 10_000
"""So is a PostgreSQL plan that reads this many rows only to filter them away (an index walked in the
wrong order)."""


@dataclass
class SweepRun:
    """One run of the sweep."""

    label: str
    seconds: float
    queued: int
    statements: int
    rss_peak_mib: float | None
    heap_peak_mib: float | None = None
    slowest: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class ScaleResult:
    """Everything measured for one database and one size."""

    database: str
    customers: int
    rows: dict[str, int]
    load_seconds: float
    morning: SweepRun
    regular: list[SweepRun]
    idle: SweepRun
    traced: SweepRun
    plans: dict[str, list[str]] = field(default_factory=dict)
    full_scans: list[str] = field(default_factory=list)

    @property
    def regular_median(self) -> float:
        return statistics.median(run.seconds for run in self.regular)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--customers", default="100000,1000000", help="comma-separated sizes")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--ticks", type=int, default=5, help="regular sweeps after the morning one")
    parser.add_argument("--explain", action="store_true", help="print the plan of every distinct SELECT")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(part) for part in str(args.customers).split(",")]
    except ValueError:
        parser.error("--customers takes whole numbers separated by commas, such as 100000,1000000")
    if any(size < 1 for size in args.sizes):
        parser.error("--customers must be at least 1")
    return args


def shipped_settings(database_url: str) -> Settings:
    """The shipped defaults; only the token and the database are given."""
    return Settings(_env_file=None, telegram_bot_token="123456:BENCH", database_url=database_url)


def describe(settings: Settings) -> str:
    """The first output line: which settings the sweep ran with."""
    policy = settings.contact_policy
    return (
        "settings: shipped defaults (SWEEP_INTERVAL "
        f"{format_duration(settings.sweep_interval)}, QUIET_HOURS {policy.quiet_hours} in {policy.zone}, "
        f"SURVEY_DELAY {format_duration(settings.survey_delay)}, "
        f"REMINDER_AFTER {format_duration(settings.reminder_after)}, "
        f"SURVEY_EXPIRES_AFTER {format_duration(settings.survey_expires_after)}, "
        f"SURVEY_COOLDOWN {format_duration(settings.survey_cooldown)}, "
        f"MAX_PROACTIVE_PER_WEEK {settings.max_proactive_per_week}, "
        f"CHECKIN_FACTOR {settings.checkin_factor}, "
        f"CHECKIN_AFTER {format_duration(settings.checkin_after)}); the sweep runs in this process, "
        "nothing is sent"
    )


class StatementLog:
    """The statements an engine runs while recording: counted and timed, and the SELECTs kept for
    EXPLAIN."""

    def __init__(self, engine: Engine) -> None:
        self.recording = False
        self.count = 0
        self.selects: dict[str, Any] = {}
        self.seconds: dict[str, float] = {}
        self._started = 0.0
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if not self.recording:
            return
        self.count += 1
        if statement.lstrip().upper().startswith("SELECT"):
            self.selects.setdefault(statement, parameters)
        self._started = time.perf_counter()

    def _after(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if self.recording:
            key = _short(statement)
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - self._started

    @contextmanager
    def recorded(self) -> Iterator[None]:
        self.count, self.recording, self.seconds = 0, True, {}
        try:
            yield
        finally:
            self.recording = False

    def slowest(self, count: int = 3) -> list[tuple[str, float]]:
        """The statements that took longest in the last recording (summed over their runs)."""
        return sorted(self.seconds.items(), key=lambda item: -item[1])[:count]


def _rss_mib(field_name: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run_sweep(
    label: str, sweep: Callable[[datetime], int], log: StatementLog, now: datetime, *, trace: bool = False
) -> SweepRun:
    """Run one sweep at ``now``; measure its time, statements and peak memory above the memory before."""
    gc.collect()
    before = _rss_mib("VmRSS")
    can_reset = _reset_peak()
    if trace:
        tracemalloc.start()
    with log.recorded():
        started = time.perf_counter()
        queued = sweep(now)
        seconds = time.perf_counter() - started
    heap = None
    if trace:
        heap = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    peak = _rss_mib("VmHWM")
    rss = peak - before if can_reset and peak is not None and before is not None else None
    return SweepRun(label, seconds, queued, log.count, rss, heap, log.slowest())


def explain(engine: Engine, statements: dict[str, Any]) -> tuple[dict[str, list[str]], list[str]]:
    """The plan of each SELECT; and the statements whose plan reads a whole large table."""
    sizes = table_sizes(engine)
    plans: dict[str, list[str]] = {}
    full: list[str] = []
    sqlite = engine.dialect.name == "sqlite"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in statements.items():
            prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
            cursor.execute(prefix + statement, parameters)
            lines = [str(row[-1] if sqlite else row[0]) for row in cursor.fetchall()]
            plans[statement] = lines
            for line in lines:
                table = _scanned_table(line, sqlite=sqlite)
                whole = table is not None and sizes.get(table, 0) >= LARGE_TABLE_ROWS
                if whole or _filtered_away(line) >= FILTERED_ROWS:  # or an index walked far past its rows
                    full.append(f"{_short(statement)}: {line.strip()}")
        raw.rollback()
    finally:
        raw.close()
    return plans, full


def _scanned_table(line: str, *, sqlite: bool) -> str | None:
    """The table a plan line reads whole, or None."""
    words = line.replace("->", " ").split()
    if sqlite:  # "SCAN t", "SCAN t USING INDEX i": the whole table or index; "SEARCH t USING ...": a range
        return words[1] if words[:1] == ["SCAN"] and len(words) > 1 else None
    if "Seq" in words and "Scan" in words and "on" in words:
        return words[words.index("on") + 1]
    return None


def _filtered_away(line: str) -> int:
    """PostgreSQL's "Rows Removed by Filter: N" (EXPLAIN ANALYZE), or 0."""
    _, found, count = line.partition("Rows Removed by Filter:")
    return int(count.split()[0]) if found and count.split() else 0


def _short(statement: str) -> str:
    """``SELECT ... FROM <table> ... WHERE ...`` in one short line."""
    flat = " ".join(statement.split())
    start = flat.find(" FROM ")
    where = flat.find(" WHERE ")
    head = flat[start + 6 : start + 40].split(" ")[0] if start >= 0 else flat[:30]
    tail = flat[where + 7 : where + 90] if where >= 0 else ""
    return f"FROM {head} WHERE {tail}..." if tail else f"FROM {head}"


def measure(console: Console, kind: str, customers: int, args: argparse.Namespace, base: Path) -> ScaleResult:
    """Load one shop into a fresh database and sweep it."""
    run_dir = base / f"{kind}-{customers}"
    run_dir.mkdir()
    with fresh_database(kind, run_dir) as database:
        settings = shipped_settings(database.url)
        engine = create_db_engine(database.url)
        try:
            upgrade_database(engine)
            interval = settings.sweep_interval
            shop = Shop(customers, state_at=MORNING - interval, settings=settings)
            started = time.perf_counter()
            with console.status(f"{kind}: writing {customers:,} customers"):
                rows = load(engine, shop)
            load_seconds = time.perf_counter() - started
            console.print(
                f"{kind} {customers:,}: wrote "
                + ", ".join(f"{table} {count:,}" for table, count in rows.items())
                + f" in {load_seconds:.0f} s"
            )
            survey = load_builtin_survey()
            services = Services(settings=settings, surveys={survey.id: survey}, catalogue=load_catalogue())
            log = StatementLog(engine)

            def sweep(now: datetime) -> int:
                return jobs.sweep(engine, services, now=now)

            morning = run_sweep("morning", sweep, log, MORNING)
            regular: list[SweepRun] = []
            plans: dict[str, list[str]] = {}
            full: list[str] = []
            for tick in range(1, args.ticks + 1):
                if tick == 1:
                    log.selects.clear()  # the plans of a regular sweep, with its parameters
                regular.append(run_sweep(f"regular {tick}", sweep, log, MORNING + tick * interval))
                if tick == 1:
                    plans, full = explain(engine, dict(log.selects))
            last = MORNING + args.ticks * interval
            idle = run_sweep("idle", sweep, log, last)
            traced = run_sweep("regular, traced", sweep, log, last + interval, trace=True)
            return ScaleResult(
                kind, customers, rows, load_seconds, morning, regular, idle, traced, plans, full
            )
        finally:
            engine.dispose()
            shutil.rmtree(run_dir, ignore_errors=True)  # a million customers take gigabytes on SQLite


def report(console: Console, results: list[ScaleResult], *, explain_all: bool) -> bool:
    """Print the figures; return whether every check passed."""
    table = Table(title="One sweep (bot.jobs.sweep)", title_justify="left")
    for column in ("database", "customers", "sweep", "time", "queued", "statements", "peak RSS +MiB"):
        table.add_column(column, justify="right" if column not in ("database", "sweep") else "left")
    for result in results:
        runs = [result.morning, *result.regular, result.idle]
        for run in runs:
            table.add_row(
                result.database,
                f"{result.customers:,}",
                run.label,
                f"{run.seconds * 1000:.0f} ms",
                str(run.queued),
                str(run.statements),
                f"{run.rss_peak_mib:.1f}" if run.rss_peak_mib is not None else "n/a",
            )
        table.add_section()
    console.print(table)
    ok = True
    summary = Table(title="Headline: the regular sweep (median)", title_justify="left")
    for column in ("database", "customers", "median", "max", "idle", "morning", "Python heap peak"):
        summary.add_column(column, justify="right" if column != "database" else "left")
    for result in results:
        worst = max(run.seconds for run in result.regular)
        summary.add_row(
            result.database,
            f"{result.customers:,}",
            f"{result.regular_median * 1000:.0f} ms",
            f"{worst * 1000:.0f} ms",
            f"{result.idle.seconds * 1000:.0f} ms",
            f"{result.morning.seconds * 1000:.0f} ms ({result.morning.queued} queued)",
            f"{result.traced.heap_peak_mib:.1f} MiB" if result.traced.heap_peak_mib is not None else "n/a",
        )
        ok = ok and worst < TARGET_SECONDS and not result.full_scans
    console.print(summary)
    _ratios(console, results)
    for result in results:
        if explain_all:
            console.print(f"[bold]plans, {result.database} {result.customers:,}[/bold]")
            for statement, lines in result.plans.items():
                console.print(f"  {_short(statement)}", markup=False)
                for line in lines:
                    console.print(f"      {line}", markup=False)
        for run in (result.regular[len(result.regular) // 2], result.idle):
            where = "; ".join(f"{ms * 1000:.0f} ms {text}" for text, ms in run.slowest)
            label = f"{result.database} {result.customers:,} {run.label}"
            console.print(f"{label}, slowest: {where}", markup=False)
        scans = ", ".join(result.full_scans) if result.full_scans else "none"
        console.print(
            f"{result.database} {result.customers:,}: {len(result.plans)} distinct SELECTs; "
            f"plans that read a whole table of ≥{LARGE_TABLE_ROWS:,} rows: {scans}",
            markup=False,
        )
    console.print(
        f"check: every regular sweep under {TARGET_SECONDS:.0f} s and no whole-table reads: "
        + ("[green]PASS[/green]" if ok else "[red]FAIL[/red]")
    )
    return ok


def _ratios(console: Console, results: list[ScaleResult]) -> None:
    """PostgreSQL against SQLite at each size, and 1M against 100k on each database (flat = about 1)."""
    by_key = {(result.database, result.customers): result for result in results}
    for (database, customers), result in sorted(by_key.items()):
        sqlite = by_key.get(("sqlite", customers))
        if database == "postgresql" and sqlite is not None:
            console.print(
                f"{customers:,} customers: PostgreSQL / SQLite regular sweep = "
                f"{result.regular_median / sqlite.regular_median:.2f}"
            )
    sizes = sorted({customers for _, customers in by_key})
    for database in ("sqlite", "postgresql"):
        present = [by_key[(database, size)] for size in sizes if (database, size) in by_key]
        if len(present) >= 2:
            small, large = present[0], present[-1]
            console.print(
                f"{database}: {large.customers:,} / {small.customers:,} customers: regular sweep "
                f"{large.regular_median / small.regular_median:.2f}×, idle sweep "
                f"{large.idle.seconds / small.idle.seconds:.2f}×, Python heap peak "
                f"{(large.traced.heap_peak_mib or 0):.1f} vs {(small.traced.heap_peak_mib or 0):.1f} MiB"
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(highlight=False)
    console.print(describe(shipped_settings("sqlite://")), markup=False)
    console.print(f"code: {code_version()}; data: bench/sweep_data.py, seed 7", markup=False)
    kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    results: list[ScaleResult] = []
    try:
        with workdir() as base:
            for customers in args.sizes:
                for kind in kinds:
                    results.append(measure(console, kind, customers, args, base))
    except BenchError as error:
        console.print(f"[red]could not run:[/red] {error}")
        return 2
    except sa.exc.OperationalError as error:
        console.print(f"[red]could not run:[/red] {error.orig}")
        return 2
    return 0 if report(console, results, explain_all=args.explain) else 1


if __name__ == "__main__":
    sys.exit(main())
