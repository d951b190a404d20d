"""The weekly summary at scale: how long one weekly summary (all figures and the chart) takes over
1,000,000 answers and 200,000 customers on SQLite and PostgreSQL, against the bare SQL for the same
figures in the same run, and how much memory it needs.

    python bench/summary_scale.py                                   # full size, SQLite and PostgreSQL
    python bench/summary_scale.py --database sqlite --answers 20000 --customers 4000

The data is two years of a shop (bench/summary_data.py), written straight into the tables once and kept:
an SQLite file in the cache directory, a PostgreSQL schema, both named after the size, the seed and the
data version, so the next run starts at once (``--rebuild`` writes them again). Newer migrations are
applied to a kept database before it is measured.

For each database, after one warm-up of each:

- **summary**: ``bot.reports.build_report`` (every figure in one transaction, the 12-week trend) and
  ``surveys.report_chart.nps_chart`` of its trend, for the week that ended at the summary's moment
  (Monday 09:00 in TIMEZONE), with the shipped engine (``storage.db.create_db_engine``);
- **floor**: the same figures from hand-written SQL aggregates (text SQL in one transaction, the rows
  fetched and nothing else), and the same chart call on its trend. Written as one would by hand: one
  statement per figure, the week and the week before taken from the trend's rows, the case figures in
  one pass over the cases, the retention figures (repeat share, revenue at risk, critics among the top
  20 %) in one statement.

Both run ``--repeats`` times, alternating which goes first; the medians are compared. Targets: summary
÷ (floor SQL + chart) at most 1.3, and the summary under 1.5 s. Then one summary with a statement timer
(the slowest statements, labelled with the function of storage/report_queries.py that ran them, and
the plan of each one over 100 ms: EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL, EXPLAIN QUERY PLAN on
SQLite), one with the process's peak resident memory reset before it (Linux ``VmHWM``), and one under
``tracemalloc`` (the Python heap's peak). A summary whose warm-up took longer than ``--max-seconds``
(60) is not run again: the warm-up, timed with the statement timer and the memory peak, is its one
measurement. The floor's figures are checked against the report's, figure by figure.

Exit status: 0 when both targets were met on every database and the floor's figures equal the report's,
1 otherwise (everything is still printed), 2 when the benchmark could not run.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import inspect
import os
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

# Run as a script (python bench/summary_scale.py): make the repository importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from bench.harness import DEFAULT_POSTGRES_URL, POSTGRES_URL_VARIABLE, REPO, BenchError, code_version
from bench.summary_data import DATA_VERSION, NOW, SEED, ShopSize, load, table_sizes
from bench.sweep_scale import _reset_peak, _rss_mib, shipped_settings
from bot import reports
from bot.durations import format_duration
from bot.reports import TREND_WEEKS, build_report
from bot.settings import Settings
from storage import db, models, report_queries
from storage.db import create_db_engine, normalize_database_url
from storage.migrate import current_revision, upgrade_database
from storage.models import UtcDateTime
from surveys import report_chart, report_figures, report_period
from surveys.nps_stats import NpsCounts
from surveys.report_chart import nps_chart
from surveys.report_figures import ReportFigures, WeekNps
from surveys.report_period import ReportPeriod, last_complete_week, weeks_back

TARGET_RATIO = 1.3
TARGET_SECONDS = 1.5
SLOW_SECONDS = 0.1
"""Statements of the summary that take longer than this get their plan printed."""
CACHE_VARIABLE = "KUNDENPULS_BENCH_CACHE"
DEFAULT_CACHE = Path.home() / ".cache" / "kundenpuls-bench"
FIGURES = ("NPS", "surveys", "rating", "reasons", "comments", "cases", "retention")
_GROUP = {
    "nps_counts": "NPS",
    "nps_trend": "NPS",
    "survey_counts": "surveys",
    "rating": "rating",
    "critic_reasons": "reasons",
    "critic_comments": "comments",
    "case_figures": "cases",
    "_median_seconds": "cases",
    "retention": "retention",
    "_revenue_lost": "retention",
    "_currency": "retention",
}
"""Which figure each function of storage/report_queries.py counts."""
YEAR = timedelta(days=365)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgresql", "both"),
        default=None,
        help="default: both when PostgreSQL is reachable, else SQLite",
    )
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each, after one warm-up")
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=60.0,
        help="a summary whose warm-up takes longer is not run again (default 60)",
    )
    parser.add_argument("--rebuild", action="store_true", help="write the kept databases again")
    args = parser.parse_args(argv)
    if args.answers < 1 or args.customers < 1 or args.repeats < 1:
        parser.error("--answers, --customers and --repeats must be at least 1")
    return args


def describe(settings: Settings, period: ReportPeriod) -> str:
    """The first output line: the settings the report depends on, and what is measured."""
    policy = settings.contact_policy
    return (
        f"settings: shipped defaults (TIMEZONE {settings.timezone}, CHECKIN_FACTOR {policy.checkin_factor}, "
        f"CHECKIN_AFTER {_days(policy.checkin_after)}, shipped engine settings); the summary "
        f"of {period.label} at {NOW.astimezone(settings.timezone):%a %Y-%m-%d %H:%M} {settings.timezone}, "
        f"trend of {TREND_WEEKS} weeks; nothing is sent"
    )


def _days(span: timedelta) -> str:
    """Whole days as the .env example writes them ("30d"), anything else in the settings' notation."""
    return f"{span.days}d" if span % timedelta(days=1) == timedelta(0) else format_duration(span)


# -- databases ------------------------------------------------------------------------------------


@dataclass
class Prepared:
    """A kept database, ready to measure."""

    kind: str
    url: str
    where: str
    build_seconds: float | None = None
    """How long writing it took in this run; None when it was kept from an earlier one."""


def _postgres_base() -> str:
    return normalize_database_url(os.environ.get(POSTGRES_URL_VARIABLE, DEFAULT_POSTGRES_URL))


def _in_schema(base: str, schema: str) -> str:
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def postgres_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    engine = sa.create_engine(_postgres_base())
    try:
        with engine.connect():
            return None
    except sa.exc.OperationalError as error:
        return str(error.orig).strip().splitlines()[0]
    finally:
        engine.dispose()


@contextmanager
def _admin() -> Iterator[sa.Connection]:
    engine = sa.create_engine(_postgres_base(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def _renamer(partial: Path, final: Path) -> Callable[[], None]:
    """Moves a finished SQLite file to its kept name (a file under the kept name is always complete)."""

    def rename() -> None:
        partial.rename(final)

    return rename


def _schema_renamer(building: str, final: str) -> Callable[[], None]:
    """Renames a finished PostgreSQL schema to its kept name."""

    def rename() -> None:
        with _admin() as admin:
            admin.execute(sa.text(f'ALTER SCHEMA "{building}" RENAME TO "{final}"'))

    return rename


def prepare(
    kinds: tuple[str, ...], size: ShopSize, settings: Settings, console: Console, *, rebuild: bool
) -> list[Prepared]:
    """Find the kept databases, write the missing ones (one generation for all of them), and bring
    them to the newest migration."""
    cache = Path(os.environ.get(CACHE_VARIABLE, str(DEFAULT_CACHE)))
    found: list[Prepared] = []
    missing: list[tuple[Prepared, str, Callable[[], None]]] = []
    for kind in kinds:
        if kind == "sqlite":
            path = cache / f"summary_{size.key}.db"
            partial = path.with_suffix(".partial.db")
            prepared = Prepared(kind, f"sqlite:///{path}", str(path))
            if rebuild:
                path.unlink(missing_ok=True)
            if path.exists():
                found.append(prepared)
                continue
            cache.mkdir(parents=True, exist_ok=True)
            for stale in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
                stale.unlink(missing_ok=True)
            missing.append((prepared, f"sqlite:///{partial}", _renamer(partial, path)))
        else:
            schema = f"bench_summary_{size.key}"
            building = f"{schema}_partial"
            prepared = Prepared(kind, _in_schema(_postgres_base(), schema), f"schema {schema}")
            with _admin() as admin:
                if rebuild:
                    admin.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                exists = admin.execute(
                    sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": schema}
                ).first()
                if exists:
                    found.append(prepared)
                    continue
                admin.execute(sa.text(f'DROP SCHEMA IF EXISTS "{building}" CASCADE'))
                admin.execute(sa.text(f'CREATE SCHEMA "{building}"'))
            missing.append(
                (prepared, _in_schema(_postgres_base(), building), _schema_renamer(building, schema))
            )
    if missing:
        engines = [create_db_engine(url) for _, url, _ in missing]
        try:
            for engine in engines:
                upgrade_database(engine)
            names = " and ".join(prepared.kind for prepared, _, _ in missing)
            started = time.perf_counter()
            with console.status(f"writing {size.customers:,} customers, {size.answers:,} answers to {names}"):
                rows = load(engines, size, settings)
            seconds = time.perf_counter() - started
        finally:
            for engine in engines:
                engine.dispose()  # SQLite folds its WAL into the file when the last connection closes
        for prepared, _, finish in missing:
            finish()
            prepared.build_seconds = seconds
            found.append(prepared)
        console.print(
            f"wrote {names} in {seconds:.0f} s: "
            + ", ".join(f"{table} {count:,}" for table, count in rows.items()),
            markup=False,
        )
    order = {kind: index for index, kind in enumerate(kinds)}
    found.sort(key=lambda prepared: order[prepared.kind])
    for prepared in found:
        engine = create_db_engine(prepared.url)
        try:
            upgrade_database(engine)  # a migration newer than the kept data (an index) applies to it
        finally:
            engine.dispose()
    return found


# -- the floor ------------------------------------------------------------------------------------

_NPS = "a.question_type = 'nps' AND a.skipped = false AND a.nps_category IS NOT NULL"
_SURVEY_CASES = "kind IN ('critic', 'negative_comment')"


def _epoch(column: str, *, sqlite: bool) -> str:
    return f"((julianday({column}) - 2440587.5) * 86400.0)" if sqlite else f"extract(epoch FROM {column})"


def floor_statements(*, sqlite: bool, weeks: list[ReportPeriod]) -> list[tuple[str, str, sa.TextClause]]:
    """(figure, name, statement): every figure of the summary, written as one would by hand."""
    buckets = " ".join(f"WHEN a.created_at < :week_end_{i} THEN {i}" for i in range(len(weeks)))
    activity = (
        "CASE WHEN t.last_seen_at IS NOT NULL AND t.last_seen_at > c.last_purchase_at "
        "THEN t.last_seen_at ELSE c.last_purchase_at END"
    )
    silent = (
        f"(c.last_purchase_at IS NOT NULL AND :now_s - {_epoch(activity, sqlite=sqlite)} > CASE WHEN "
        "c.median_purchase_gap_s IS NULL THEN :one_time_s ELSE c.median_purchase_gap_s * :factor END)"
    )
    took = f"{_epoch('resolved_at', sqlite=sqlite)} - {_epoch('opened_at', sqlite=sqlite)}"
    resolved = f"{_SURVEY_CASES} AND status = 'resolved' AND resolved_at >= :start AND resolved_at < :end"
    if sqlite:  # the middle one or two, found by OFFSET (SQLite has no percentile)
        median = (
            f"WITH took AS (SELECT {took} AS s FROM cases WHERE {resolved}) "  # noqa: S608  our constants
            "SELECT avg(s) FROM (SELECT s FROM took ORDER BY s "
            "LIMIT 2 - (SELECT count(*) FROM took) % 2 OFFSET ((SELECT count(*) FROM took) - 1) / 2)"
        )
    else:
        median = f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY {took}) FROM cases WHERE {resolved}"  # noqa: S608
    question = "o.delivery_id = d.id AND o.kind = 'survey_question'"
    statements = {
        ("NPS", "trend, week and week before"): f"""
            SELECT CASE {buckets} ELSE {len(weeks)} END AS week,
                   count(*) FILTER (WHERE a.nps_category = 'promoter'),
                   count(*) FILTER (WHERE a.nps_category = 'passive'),
                   count(*) FILTER (WHERE a.nps_category = 'critic')
            FROM answers a
            WHERE {_NPS} AND a.created_at >= :trend_start AND a.created_at < :end
            GROUP BY 1""",  # noqa: S608  our own constants
        ("surveys", "sent, delivered, answered, held"): f"""
            SELECT count(*), count(*) FILTER (WHERE sent), count(*) FILTER (WHERE sent AND answered),
                   count(*) FILTER (WHERE held AND NOT sent)
            FROM (SELECT
                    EXISTS (SELECT 1 FROM outbox o WHERE {question} AND o.sent_at IS NOT NULL) AS sent,
                    EXISTS (SELECT 1 FROM answers a WHERE a.delivery_id = d.id AND a.question_type = 'nps'
                            AND a.skipped = false) AS answered,
                    EXISTS (SELECT 1 FROM outbox o WHERE {question}
                            AND o.status IN ('blocked', 'awaiting_contact')) AS held
                  FROM survey_deliveries d WHERE d.started_at >= :start AND d.started_at < :end) AS s""",  # noqa: S608  our own constants
        ("surveys", "reminded, never reached"): """
            SELECT (SELECT count(*) FROM survey_deliveries
                    WHERE reminded_at >= :start AND reminded_at < :end),
                   (SELECT count(*) FROM survey_deliveries WHERE status = 'awaiting_contact'
                    AND started_at IS NULL AND due_at >= :start AND due_at < :end)""",
        ("surveys", "skipped by reason"): """
            SELECT reason, count(*) FROM contact_events
            WHERE kind = 'survey' AND outcome = 'skipped' AND at >= :start AND at < :end GROUP BY reason""",
        ("rating", "average rating"): """
            SELECT avg(score), count(*) FROM answers WHERE question_type = 'rating' AND skipped = false
            AND score IS NOT NULL AND created_at >= :start AND created_at < :end""",
        ("reasons", "critics' top reasons"): """
            SELECT d.survey_id, a.question_id, a.choice, count(*) AS n
            FROM answers a JOIN survey_deliveries d ON d.id = a.delivery_id
            WHERE a.question_type = 'choice' AND a.choice IS NOT NULL AND d.nps_category = 'critic'
              AND a.skipped = false AND a.created_at >= :start AND a.created_at < :end
            GROUP BY d.survey_id, a.question_id, a.choice ORDER BY n DESC, a.choice LIMIT 5""",
        ("comments", "critics' comments"): """
            SELECT a.text, a.polarity, a.created_at
            FROM answers a JOIN survey_deliveries d ON d.id = a.delivery_id
            WHERE a.question_type = 'text' AND a.text IS NOT NULL AND a.text <> ''
              AND d.nps_category = 'critic' AND a.skipped = false
              AND a.created_at >= :start AND a.created_at < :end
            ORDER BY a.polarity IS NULL, a.polarity, a.created_at LIMIT 3""",
        ("cases", "opened, resolved, open, recovery"): f"""
            SELECT count(*) FILTER (WHERE opened_at >= :start AND opened_at < :end),
                   count(*) FILTER (WHERE status = 'resolved'
                                    AND resolved_at >= :start AND resolved_at < :end),
                   count(*) FILTER (WHERE status <> 'resolved' AND opened_at <= :now),
                   count(*) FILTER (WHERE recovery_answered_at >= :start AND recovery_answered_at < :end),
                   count(*) FILTER (WHERE recovered = true AND recovery_answered_at >= :start
                                    AND recovery_answered_at < :end)
            FROM cases WHERE {_SURVEY_CASES}""",  # noqa: S608  our own constants
        ("cases", "oldest open"): f"""
            SELECT id, opened_at, status FROM cases
            WHERE {_SURVEY_CASES} AND status <> 'resolved' AND opened_at <= :now
            ORDER BY opened_at, id LIMIT 5""",  # noqa: S608  our own constants
        ("cases", "median time to resolve"): median,
        ("retention", "repeat, revenue, at risk, critics among the top"): f"""
            WITH year AS (
                SELECT customer_id, sum(amount) AS revenue, count(*) AS purchases FROM purchases
                WHERE purchased_at >= :year_ago AND purchased_at < :now GROUP BY customer_id),
            latest AS (
                SELECT customer_id, nps_category FROM (
                    SELECT d.customer_id, a.nps_category, row_number() OVER (
                        PARTITION BY d.customer_id ORDER BY a.created_at DESC, a.id DESC) AS n
                    FROM answers a JOIN survey_deliveries d ON d.id = a.delivery_id
                    WHERE {_NPS} AND a.created_at < :now) AS numbered
                WHERE n = 1),
            scored AS (
                SELECT y.revenue, y.purchases, (l.nps_category = 'critic' OR {silent}) AS at_risk,
                       l.nps_category = 'critic' AS critic,
                       row_number() OVER (ORDER BY y.revenue DESC, y.customer_id) AS rank,
                       count(*) OVER () AS total
                FROM year y JOIN customers c ON c.id = y.customer_id
                LEFT JOIN telegram_users t ON t.id = c.telegram_user_id
                LEFT JOIN latest l ON l.customer_id = y.customer_id)
            SELECT count(*), count(*) FILTER (WHERE purchases >= 2), coalesce(sum(revenue), 0),
                   coalesce(sum(revenue) FILTER (WHERE at_risk), 0), count(*) FILTER (WHERE at_risk),
                   count(*) FILTER (WHERE critic AND rank <= (total + 4) / 5)
            FROM scored""",  # noqa: S608  our own constants
        ("retention", "revenue lost"): """
            WITH earlier AS (
                SELECT customer_id, sum(amount) AS revenue FROM purchases
                WHERE purchased_at >= :two_years_ago AND purchased_at < :year_ago GROUP BY customer_id)
            SELECT coalesce(sum(revenue), 0), count(*) FROM earlier e
            WHERE NOT EXISTS (SELECT 1 FROM purchases p WHERE p.customer_id = e.customer_id
                              AND p.purchased_at >= :year_ago AND p.purchased_at < :now)""",
        ("retention", "currency"): """
            SELECT currency, count(*) AS n FROM purchases
            WHERE purchased_at >= :year_ago AND purchased_at < :now
            GROUP BY currency ORDER BY n DESC LIMIT 1""",
    }
    moments = [f"week_end_{i}" for i in range(len(weeks))]
    moments += ["trend_start", "start", "end", "now", "year_ago", "two_years_ago"]
    typed = [sa.bindparam(name, type_=UtcDateTime()) for name in moments]
    result = []
    for (figure, name), sql in statements.items():
        clause = sa.text(sql)
        used = [param for param in typed if re.search(rf":{param.key}\b", sql)]
        result.append((figure, name, clause.bindparams(*used) if used else clause))
    return result


class Floor:
    """The summary's figures from the bare SQL aggregates of :func:`floor_statements`."""

    def __init__(self, engine: Engine, settings: Settings, period: ReportPeriod, weeks: list[ReportPeriod]):
        self.engine = engine
        self.weeks = weeks
        self.statements = floor_statements(sqlite=engine.dialect.name == "sqlite", weeks=weeks)
        policy = settings.contact_policy
        self.params: dict[str, Any] = {
            **{f"week_end_{i}": week.end for i, week in enumerate(weeks)},
            "trend_start": weeks[0].start,
            "start": period.start,
            "end": period.end,
            "now": NOW,
            "year_ago": NOW - YEAR,
            "two_years_ago": NOW - 2 * YEAR,
            "now_s": NOW.timestamp(),
            "one_time_s": policy.rhythm(None).one_time_after.total_seconds(),
            "factor": policy.checkin_factor,
        }

    def run(self) -> tuple[dict[tuple[str, str], list[Any]], dict[str, float]]:
        """Every statement's rows, and the seconds per figure (execute and fetch)."""
        rows: dict[tuple[str, str], list[Any]] = {}
        seconds = dict.fromkeys(FIGURES, 0.0)
        with self.engine.begin() as connection:
            for figure, name, statement in self.statements:
                started = time.perf_counter()
                rows[(figure, name)] = list(connection.execute(statement, self.params).all())
                seconds[figure] += time.perf_counter() - started
        return rows, seconds

    def trend(self, rows: dict[tuple[str, str], list[Any]]) -> list[WeekNps]:
        """The chart's weeks from the trend statement's rows."""
        found = {
            int(week): NpsCounts(int(p), int(n), int(c)) for week, p, n, c in rows[self.statements[0][:2]]
        }
        return [WeekNps(week, found.get(i, NpsCounts(0, 0, 0))) for i, week in enumerate(self.weeks)]


def compare(figures: ReportFigures, rows: dict[tuple[str, str], list[Any]], floor: Floor) -> list[str]:
    """Where the floor's figures differ from the report's (none: the floor counts the same things)."""

    def one(figure: str, name: str) -> Any:
        found = rows[(figure, name)]
        return found[0] if found else None

    trend = floor.trend(rows)
    started = one("surveys", "sent, delivered, answered, held")
    other = one("surveys", "reminded, never reached")
    cases = one("cases", "opened, resolved, open, recovery")
    kept = one("retention", "repeat, revenue, at risk, critics among the top")
    lost = one("retention", "revenue lost")
    median = one("cases", "median time to resolve")
    rating_avg, rating_count = one("rating", "average rating") or (None, 0)
    retention = figures.retention
    pairs: dict[str, tuple[Any, Any]] = {
        "trend": (figures.trend, tuple(trend)),
        "nps": (figures.nps, trend[-1].counts),
        "previous nps": (figures.previous_nps, trend[-2].counts),
        "surveys": (
            (figures.surveys.sent, figures.surveys.delivered, figures.surveys.answered),
            tuple(int(value) for value in started[:3]),
        ),
        "reminded": (figures.surveys.reminded, int(other[0])),
        "undeliverable": (figures.surveys.undeliverable, int(started[3]) + int(other[1])),
        "skipped": (
            figures.surveys.skipped,
            {str(reason or "other"): int(n) for reason, n in rows[("surveys", "skipped by reason")]},
        ),
        "rating": (
            (figures.rating_average, figures.rating_count),
            (float(rating_avg) if rating_avg is not None else None, int(rating_count)),
        ),
        "reasons": (
            [(r.survey_id, r.question_id, r.option_id, r.count) for r in figures.reasons],
            [tuple(row) for row in rows[("reasons", "critics' top reasons")]],
        ),
        "comments": (
            [(c.text, c.polarity) for c in figures.comments],
            [(text, polarity) for text, polarity, _ in rows[("comments", "critics' comments")]],
        ),
        "cases": (
            (
                figures.cases.opened,
                figures.cases.resolved,
                figures.cases.still_open,
                figures.cases.recovery_answered,
                figures.cases.recovered,
            ),
            tuple(int(value) for value in cases),
        ),
        "oldest open": (
            [case.case_id for case in figures.cases.oldest_open],
            [int(row[0]) for row in rows[("cases", "oldest open")]],
        ),
        "median to resolve": (
            figures.cases.median_time_to_resolve,
            timedelta(seconds=round(float(median[0]))) if median and median[0] is not None else None,
        ),
        "retention": (
            (
                retention.customers,
                retention.repeat_customers,
                retention.customers_at_risk,
                retention.critics_among_top,
            ),
            (int(kept[0]), int(kept[1]), int(kept[4]), int(kept[5])),
        ),
        "revenue": (
            (round(float(retention.revenue), 2), round(float(retention.revenue_at_risk), 2)),
            (round(float(kept[2]), 2), round(float(kept[3]), 2)),
        ),
        "lost": (
            (round(float(retention.revenue_lost), 2), retention.customers_lost),
            (round(float(lost[0]), 2), int(lost[1])),
        ),
        "currency": (retention.currency, one("retention", "currency")[0]),
    }
    return [
        f"{name}: report {mine} vs floor {theirs}" for name, (mine, theirs) in pairs.items() if mine != theirs
    ]


# -- the summary's statements ---------------------------------------------------------------------


@dataclass
class Statement:
    """One statement the summary ran, with where it came from, its parameters and its time."""

    label: str
    sql: str
    parameters: Any
    seconds: float

    @property
    def figure(self) -> str:
        return _GROUP.get(self.label, "other")


class StatementTimer:
    """Times every statement an engine runs while recording, labelled with the function of
    storage/report_queries.py that ran it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: list[Statement] = []
        self._started = 0.0
        self._label = ""

    @contextmanager
    def recording(self) -> Iterator[list[Statement]]:
        self.statements = []
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)
        try:
            yield self.statements
        finally:
            event.remove(self.engine, "before_cursor_execute", self._before)
            event.remove(self.engine, "after_cursor_execute", self._after)

    def _before(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        plain = statement.lstrip()[:6].upper()
        self._label = "transaction" if plain.startswith(("BEGIN", "COMMIT")) else _caller()
        self._started = time.perf_counter()

    def _after(
        self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        seconds = time.perf_counter() - self._started
        self.statements.append(Statement(self._label, statement, parameters, seconds))


def _caller() -> str:
    """The innermost function of storage/report_queries.py on the stack, or "other"."""
    frame = inspect.currentframe()
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path.name == "report_queries.py" and path.parent.name == "storage":
            return frame.f_code.co_name
        frame = frame.f_back
    return "other"


def explain(engine: Engine, statement: Statement, *, analyze: bool = True) -> list[str]:
    """The statement's plan: EXPLAIN (ANALYZE, BUFFERS) on PostgreSQL (run again with its parameters;
    without ANALYZE when ``analyze`` is false), EXPLAIN QUERY PLAN on SQLite."""
    sqlite = engine.dialect.name == "sqlite"
    analyzed = "EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN "
    prefix = "EXPLAIN QUERY PLAN " if sqlite else analyzed
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(prefix + statement.sql, statement.parameters)
        lines = [str(row[-1] if sqlite else row[0]) for row in cursor.fetchall()]
        raw.rollback()
    finally:
        raw.close()
    return lines


def short(sql: str, width: int = 150) -> str:
    flat = " ".join(sql.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


# -- measuring ------------------------------------------------------------------------------------


@dataclass
class Result:
    """Everything measured on one database."""

    kind: str
    where: str
    revision: str | None
    rows: dict[str, int]
    summary: list[float]
    floor: list[float]
    chart: list[float]
    report_by_figure: dict[str, float]
    floor_by_figure: dict[str, list[float]]
    statements: list[Statement]
    plans: list[tuple[Statement, list[str]]]
    heap_peak_mib: float | None
    hwm_mib: float | None
    rss_before_mib: float | None
    mismatches: list[str]
    png_bytes: int
    build_seconds: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def summary_median(self) -> float:
        return statistics.median(self.summary)

    @property
    def floor_median(self) -> float:
        return statistics.median(self.floor)

    @property
    def chart_median(self) -> float:
        return statistics.median(self.chart)

    @property
    def ratio(self) -> float:
        return self.summary_median / (self.floor_median + self.chart_median)

    @property
    def met(self) -> bool:
        return self.ratio <= TARGET_RATIO and self.summary_median < TARGET_SECONDS and not self.mismatches


def measure(prepared: Prepared, settings: Settings, args: argparse.Namespace, console: Console) -> Result:
    """Warm up (with the statement timer and the resident-memory peak), then time the summary and the
    floor ``--repeats`` times each; then one summary each with the statement timer, the resident-memory
    peak and tracemalloc. A summary whose warm-up takes longer than ``--max-seconds`` is not run again:
    the warm-up is its one measurement."""
    zone = settings.timezone
    period = last_complete_week(NOW, zone)
    weeks = weeks_back(min(NOW, period.end), zone, TREND_WEEKS)
    engine = create_db_engine(prepared.url)
    try:
        rows = table_sizes(engine)
        revision = current_revision(engine)
        floor = Floor(engine, settings, period, weeks)
        timer = StatementTimer(engine)

        def summary() -> tuple[ReportFigures, bytes]:
            figures = build_report(engine, settings, period, now=NOW)
            return figures, nps_chart(figures.trend)

        with console.status(f"{prepared.kind}: warming up"):
            memory = _Memory()
            started = time.perf_counter()
            with timer.recording() as statements:
                figures, png = summary()
            warm = time.perf_counter() - started
            memory.read()
            floor_rows, _ = floor.run()
            nps_chart(floor.trend(floor_rows))
        slow = warm > args.max_seconds
        times: dict[str, list[float]] = {"summary": [warm] if slow else [], "floor": [], "chart": []}
        per_figure: dict[str, list[float]] = {figure: [] for figure in FIGURES}
        for repeat in range(args.repeats):
            with console.status(f"{prepared.kind}: run {repeat + 1} of {args.repeats}"):
                for which in ("summary", "floor") if repeat % 2 == 0 else ("floor", "summary"):
                    gc.collect()
                    started = time.perf_counter()
                    if which == "summary":
                        if not slow:
                            summary()
                            times["summary"].append(time.perf_counter() - started)
                        continue
                    floor_rows, seconds = floor.run()
                    times["floor"].append(time.perf_counter() - started)
                    for figure, spent in seconds.items():
                        per_figure[figure].append(spent)
                    weeks_nps = floor.trend(floor_rows)
                    started = time.perf_counter()
                    nps_chart(weeks_nps)
                    times["chart"].append(time.perf_counter() - started)
        heap = None
        notes = []
        if slow:
            notes.append(
                f"the summary's warm-up took {warm:.0f} s (over --max-seconds {args.max_seconds:.0f}): it is "
                "the one measurement, its statements and memory are the warm-up's, and tracemalloc was "
                "not run"
            )
        else:
            with console.status(f"{prepared.kind}: statements and memory"):
                with timer.recording() as statements:
                    summary()
                memory = _Memory()
                summary()
                memory.read()
                gc.collect()
                tracemalloc.start()
                summary()
                heap = tracemalloc.get_traced_memory()[1] / 2**20
                tracemalloc.stop()
        report_by_figure = dict.fromkeys(FIGURES, 0.0)
        for statement in statements:
            if statement.figure in report_by_figure:
                report_by_figure[statement.figure] += statement.seconds
        with console.status(f"{prepared.kind}: plans"):
            plans = [
                (statement, explain(engine, statement, analyze=statement.seconds < args.max_seconds))
                for statement in statements
                if statement.seconds > SLOW_SECONDS
            ]
        return Result(
            kind=prepared.kind,
            where=prepared.where,
            revision=revision,
            rows=rows,
            summary=times["summary"],
            floor=times["floor"],
            chart=times["chart"],
            report_by_figure=report_by_figure,
            floor_by_figure=per_figure,
            statements=list(statements),
            plans=plans,
            heap_peak_mib=heap,
            hwm_mib=memory.hwm,
            rss_before_mib=memory.before,
            mismatches=compare(figures, floor_rows, floor),
            png_bytes=len(png),
            build_seconds=prepared.build_seconds,
            notes=notes,
        )
    finally:
        engine.dispose()


class _Memory:
    """The process's peak resident memory from here to :meth:`read` (Linux: VmHWM, reset first)."""

    def __init__(self) -> None:
        gc.collect()
        self.before = _rss_mib("VmRSS")
        self._reset = _reset_peak()
        self.hwm: float | None = None

    def read(self) -> None:
        self.hwm = _rss_mib("VmHWM") if self._reset else None


# -- output ---------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{_ms(values[0])} (1 run)"
    return escape(f"{_ms(statistics.median(values))} [{min(values) * 1000:,.0f}–{max(values) * 1000:,.0f}]")


def report(console: Console, results: list[Result], repeats: int) -> bool:
    """Print the figures; return whether every target was met."""
    for result in results:
        sizes = ", ".join(f"{table} {count:,}" for table, count in result.rows.items())
        kept = "kept from an earlier run" if result.build_seconds is None else "written in this run"
        console.print(
            f"{result.kind}: {result.where} ({kept}; migration {result.revision}): {sizes}", markup=False
        )
    title = escape(f"The weekly summary (median [min–max] of {repeats} runs)")
    table = Table(title=title, title_justify="left")
    columns = (
        "database",
        "summary (report + chart)",
        "floor SQL",
        "chart",
        f"ratio (≤ {TARGET_RATIO})",
        f"total (< {TARGET_SECONDS} s)",
        "heap peak",
        "VmHWM (before)",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "database" else "right")
    for result in results:
        ratio_ok = result.ratio <= TARGET_RATIO
        total_ok = result.summary_median < TARGET_SECONDS
        hwm = (
            f"{result.hwm_mib:.0f} MiB ({result.rss_before_mib:.0f})"
            if result.hwm_mib is not None and result.rss_before_mib is not None
            else "n/a"
        )
        table.add_row(
            result.kind,
            _spread(result.summary),
            _spread(result.floor),
            _spread(result.chart),
            f"{result.ratio:.2f} " + ("met" if ratio_ok else "MISSED"),
            f"{result.summary_median:.2f} s " + ("met" if total_ok else "MISSED"),
            f"{result.heap_peak_mib:.1f} MiB" if result.heap_peak_mib is not None else "n/a",
            hwm,
        )
    console.print(table)
    figures = Table(title="Per figure: the report's statements (one run) against the floor's (median)")
    figures.add_column("figure")
    for result in results:
        figures.add_column(f"{result.kind}: report", justify="right")
        figures.add_column(f"{result.kind}: floor", justify="right")
    for figure in FIGURES:
        cells = [figure]
        for result in results:
            count = sum(1 for statement in result.statements if statement.figure == figure)
            cells.append(f"{_ms(result.report_by_figure[figure])} ({count})")
            cells.append(_ms(statistics.median(result.floor_by_figure[figure])))
        figures.add_row(*cells)
    console.print(figures)
    ok = True
    for result in results:
        ranked = sorted(result.statements, key=lambda statement: -statement.seconds)
        console.print(f"[bold]{result.kind}: the summary's slowest statements[/bold] (of {len(ranked)})")
        for statement in ranked[:6]:
            console.print(
                f"  {_ms(statement.seconds):>9}  {statement.label:<16} {short(statement.sql)}", markup=False
            )
        for statement, lines in result.plans:
            console.print(f"[bold]{result.kind}: plan of {statement.label}[/bold] ({_ms(statement.seconds)})")
            for line in lines:
                console.print(f"      {line}", markup=False)
        for note in result.notes:
            console.print(f"{result.kind}: {note}", markup=False)
        if result.mismatches:
            console.print(f"[red]{result.kind}: the floor's figures differ from the report's:[/red]")
            for line in result.mismatches:
                console.print(f"  {line}", markup=False)
        else:
            console.print(f"{result.kind}: the floor's figures equal the report's (every figure compared)")
        ok = ok and result.met
    console.print(
        f"check: summary ≤ {TARGET_RATIO} × (floor + chart) and under {TARGET_SECONDS} s on every database, "
        "floor figures equal: " + ("[green]PASS[/green]" if ok else "[red]FAIL[/red]")
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
    settings = shipped_settings("sqlite://")
    console.print(describe(settings, last_complete_week(NOW, settings.timezone)), markup=False)
    size = ShopSize(args.customers, args.answers)
    console.print(
        f"code: {code_version()}; data: bench/summary_data.py version {DATA_VERSION}, seed {SEED}, "
        f"{size.customers:,} customers, about {size.answers:,} answers",
        markup=False,
    )
    kinds: tuple[str, ...]
    if args.database is None:
        why = postgres_reachable()
        kinds = ("sqlite", "postgresql") if why is None else ("sqlite",)
        if why is not None:
            console.print(f"PostgreSQL is not reachable ({why}): SQLite only", markup=False)
    else:
        kinds = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    fingerprint = _code_under_test()
    try:
        if "postgresql" in kinds and (why := postgres_reachable()) is not None:
            raise BenchError(
                f"PostgreSQL is not reachable ({why}); start it (pg_ctlcluster 15 main start) "
                f"or set {POSTGRES_URL_VARIABLE}"
            )
        prepared = prepare(kinds, size, settings, console, rebuild=args.rebuild)
        results = [measure(database, settings, args, console) for database in prepared]
    except BenchError as error:
        console.print(f"[red]could not run:[/red] {error}")
        return 2
    except sa.exc.OperationalError as error:
        console.print(f"[red]could not run:[/red] {error.orig}")
        return 2
    ok = report(console, results, args.repeats)
    changed = [name for name, digest in _code_under_test().items() if fingerprint.get(name) != digest]
    if changed:
        console.print(
            f"note: {', '.join(changed)} changed during the run; the run used the code it imported at its "
            "start (other people work in this tree)",
            markup=False,
        )
    return 0 if ok else 1


def _code_under_test() -> dict[str, str]:
    """A hash of each file the summary runs (the report's queries, figures, period and chart, the tables
    and the engine): the process imported them at its start, so a change during the run is only noted."""
    modules = (report_queries, reports, report_chart, report_period, report_figures, models, db)
    return {
        str(Path(str(module.__file__)).relative_to(REPO)): hashlib.sha256(
            Path(str(module.__file__)).read_bytes()
        ).hexdigest()
        for module in modules
    }


if __name__ == "__main__":
    sys.exit(main())
