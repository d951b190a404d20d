"""One report, built once for every place that shows it: the weekly summary, /report, and
``kundenpuls report`` all call :func:`build_report`, so they cannot disagree about a number."""

from __future__ import annotations

import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.settings import Settings
from storage import report_queries
from surveys.report_figures import ReportFigures
from surveys.report_period import ReportPeriod, weeks_back

TREND_WEEKS = 12


def build_report(
    engine: Engine, settings: Settings, period: ReportPeriod, *, now: datetime.datetime
) -> ReportFigures:
    """The figures of ``period``, with the trend of the 12 complete weeks up to its end, read in one
    transaction (a consistent picture while answers keep arriving)."""
    trend = weeks_back(min(now, period.end), settings.timezone, TREND_WEEKS)
    with Session(engine) as session, session.begin():
        return report_queries.report(
            session, period, now=now, policy=settings.contact_policy, trend_weeks=trend
        )
