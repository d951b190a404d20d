"""``kundenpuls report``: the managers' figures in the terminal, as JSON, or the answers as CSV.

The same figures as the weekly summary (bot/reports.py), for the period the options name: none for the
last complete week, ``--weeks N`` for the last N×7 days up to now, ``--from DATE --to DATE`` for those
days (both included, in TIMEZONE).
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bot.reports import build_report
from bot.settings import Settings
from surveys.answer_csv import write_csv
from surveys.loader import load_builtin_survey
from surveys.report_figures import ReportFigures
from surveys.report_json import figures_as_json
from surveys.report_period import PeriodError, ReportPeriod, between, last_complete_week, last_days
from surveys.summary_text import reason_label

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
_QUOTE = 140


def add_parser(commands: Any) -> None:
    """Add ``report`` to the command line's subcommands."""
    report = commands.add_parser(
        "report", help="NPS, surveys, cases and retention of a period (default: the last complete week)"
    )
    which = report.add_mutually_exclusive_group()
    which.add_argument("--weeks", type=int, metavar="N", help="the last N×7 days up to now, today included")
    which.add_argument("--from", dest="first", metavar="DATE", help="first day (YYYY-MM-DD), with --to")
    report.add_argument("--to", dest="last", metavar="DATE", help="last day (YYYY-MM-DD), included")
    report.add_argument("--csv", type=Path, metavar="FILE", help="also write every answer of the period")
    report.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")


def period_of(args: argparse.Namespace, settings: Settings, now: datetime.datetime) -> ReportPeriod:
    """The period the options name; PeriodError says what is wrong with them."""
    zone = settings.timezone
    if args.weeks is not None:
        if not 1 <= args.weeks <= 52:
            raise PeriodError(f"--weeks must be from 1 to 52, got {args.weeks}")
        return last_days(now, zone, 7 * args.weeks)
    if args.first is not None or args.last is not None:
        if args.first is None or args.last is None:
            raise PeriodError("--from and --to go together: give both days")
        return between(_date(args.first, "--from"), _date(args.last, "--to"), zone)
    return last_complete_week(now, zone)


def _date(text: str, option: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text.strip())
    except ValueError:
        raise PeriodError(
            f"{option} {text!r} is not a date: use YYYY-MM-DD, for example 2026-11-02"
        ) from None


def run(args: argparse.Namespace, settings: Settings, *, now: datetime.datetime) -> int:
    """Print the report (or its JSON) on stdout, write the CSV if asked; errors go to stderr."""
    from storage.answer_export import answers_between
    from storage.db import create_db_engine
    from storage.migrate import upgrade_database

    try:
        period = period_of(args, settings, now)
    except PeriodError as error:
        print(f"kundenpuls report: {error}", file=sys.stderr)
        return EXIT_USAGE
    engine = create_db_engine(settings.database_url)
    try:
        upgrade_database(engine)
        figures = build_report(engine, settings, period, now=now)
        if args.csv is not None:
            from sqlmodel import Session

            with Session(engine) as session:
                rows = answers_between(
                    session, period.start, period.end, personal_data=settings.export_personal_data
                )
                data = write_csv(rows, settings.timezone, personal_data=settings.export_personal_data)
            try:
                args.csv.write_bytes(data)
            except OSError as error:
                print(f"kundenpuls report: cannot write {args.csv}: {error.strerror}", file=sys.stderr)
                return EXIT_FAILED
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(figures_as_json(figures), ensure_ascii=False, indent=2))
    else:
        Console().print(report_table(figures))
    if args.csv is not None:
        print(f"answers written to {args.csv}", file=sys.stderr)
    return EXIT_OK


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _hours(value: datetime.timedelta | None) -> str:
    if value is None:
        return "–"
    hours = value.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} d"


def _shortened(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _QUOTE else flat[: _QUOTE - 1].rstrip() + "…"


def report_table(figures: ReportFigures) -> Table:
    """The figures as a two-column rich table, in English (the terminal is the shop's, not a customer's)."""
    period = figures.period
    table = Table(title=f"Kundenpuls report {period.label} ({period.zone})", show_header=False, expand=False)
    table.add_column("figure", style="bold")
    table.add_column("value")
    nps, change = figures.nps, figures.change
    if not figures.has_responses:
        table.add_row("NPS", "no responses in this period")
    else:
        margin = f" ±{nps.margin:.1f}" if nps.margin is not None else ""
        rough = " (few responses: a rough guide)" if nps.few_responses else ""
        table.add_row("NPS", f"{nps.nps:+.0f}{margin} from {nps.total} responses{rough}")
    if change.change is None:
        table.add_row("vs. the period before", "no comparison (no responses in one of them)")
    else:
        verdict = "significant" if change.significant else "not significant"
        table.add_row("vs. the period before", f"{change.arrow} {change.change:+.0f} ({verdict})")
    table.add_row("promoters / passives / critics", f"{nps.promoters} / {nps.passives} / {nps.critics}")
    surveys = figures.surveys
    table.add_row(
        "surveys",
        f"{surveys.sent} sent, {surveys.delivered} delivered, {surveys.answered} answered, "
        f"{surveys.reminded} reminded, {surveys.undeliverable} undeliverable",
    )
    skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(surveys.skipped.items()))
    table.add_row(
        "skipped by the contact rules", f"{surveys.skipped_total}" + (f" ({skipped})" if skipped else "")
    )
    table.add_row("response rate", _percent(surveys.response_rate))
    if figures.rating_count:
        table.add_row("average rating", f"{figures.rating_average:.2f} from {figures.rating_count} answers")
    surveys_by_id = {"post_purchase": load_builtin_survey()}
    reasons = ", ".join(f"{reason_label(r, surveys_by_id, 'en')} {r.count}" for r in figures.reasons)
    table.add_row("critics' top reasons", reasons or "–")
    for index, comment in enumerate(figures.comments, start=1):
        table.add_row(f"critic comment {index}", f"“{_shortened(comment.text)}”")
    cases = figures.cases
    table.add_row(
        "critic cases",
        f"{cases.opened} opened, {cases.resolved} resolved, {cases.still_open} still open; median time to "
        f"resolve {_hours(cases.median_time_to_resolve)}; recovery {_percent(cases.recovery_rate)}"
        f" of {cases.recovery_answered} answers",
    )
    for case in cases.oldest_open:
        age = figures.as_of - case.opened_at
        table.add_row(
            f"  open case #{case.case_id}", f"{_hours(age)} old" + (", taken" if case.taken else "")
        )
    retention = figures.retention
    money = retention.currency
    table.add_row(
        "bought again (12 months)",
        f"{_percent(retention.repeat_share)} of {retention.customers} customers",
    )
    table.add_row(
        "revenue at risk",
        f"{retention.revenue_at_risk:,.2f} {money} "
        f"from {retention.customers_at_risk} critics or silent customers",
    )
    table.add_row(
        "critics among the top 20 %",
        f"{retention.critics_among_top} of {retention.top_customers} customers",
    )
    table.add_row(
        "revenue lost (did not return)",
        f"{retention.revenue_lost:,.2f} {money} from {retention.customers_lost} customers",
    )
    return table
