"""A report's figures as JSON for shops that automate (``kundenpuls report --json``).

Every figure the summary shows, with the derived ones (NPS, margin, change, rates) computed here once,
money as strings (a float would round cents) and times as ISO 8601 in the shop's zone. The keys are a
stable interface: add new ones, never rename.
"""

from __future__ import annotations

import datetime
from typing import Any

from surveys.nps_stats import NpsCounts
from surveys.report_figures import ReportFigures


def _nps(counts: NpsCounts) -> dict[str, Any]:
    return {
        "promoters": counts.promoters,
        "passives": counts.passives,
        "critics": counts.critics,
        "responses": counts.total,
        "nps": _rounded(counts.nps),
        "margin": _rounded(counts.margin),
    }


def _rounded(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _local(moment: datetime.datetime, zone: datetime.tzinfo) -> str:
    return moment.astimezone(zone).isoformat(timespec="seconds")


def figures_as_json(figures: ReportFigures) -> dict[str, Any]:
    """The report as plain JSON values."""
    period = figures.period
    zone = period.zone
    change = figures.change
    surveys = figures.surveys
    cases = figures.cases
    retention = figures.retention
    ttr = cases.median_time_to_resolve
    return {
        "period": {
            "first_day": period.first_day.isoformat(),
            "last_day": period.last_day.isoformat(),
            "start": _local(period.start, zone),
            "end": _local(period.end, zone),
            "time_zone": str(zone),
        },
        "nps": _nps(figures.nps),
        "previous_nps": _nps(figures.previous_nps),
        "change": {
            "points": _rounded(change.change),
            "margin": _rounded(change.margin),
            "significant": change.significant,
            "arrow": change.arrow,
        },
        "surveys": {
            "sent": surveys.sent,
            "delivered": surveys.delivered,
            "answered": surveys.answered,
            "reminded": surveys.reminded,
            "skipped": surveys.skipped_total,
            "skipped_by_reason": dict(sorted(surveys.skipped.items())),
            "undeliverable": surveys.undeliverable,
            "response_rate": _rounded(surveys.response_rate, 4),
        },
        "rating": {"average": _rounded(figures.rating_average, 2), "answers": figures.rating_count},
        "critic_reasons": [
            {"survey": r.survey_id, "question": r.question_id, "option": r.option_id, "count": r.count}
            for r in figures.reasons
        ],
        "critic_comments": [
            {"text": c.text, "polarity": _rounded(c.polarity, 3), "at": _local(c.at, zone)}
            for c in figures.comments
        ],
        "cases": {
            "opened": cases.opened,
            "resolved": cases.resolved,
            "still_open": cases.still_open,
            "oldest_open": [
                {"case": case.case_id, "opened_at": _local(case.opened_at, zone), "taken": case.taken}
                for case in cases.oldest_open
            ],
            "median_hours_to_resolve": _rounded(ttr.total_seconds() / 3600, 2) if ttr is not None else None,
            "recovery_answers": cases.recovery_answered,
            "recovered": cases.recovered,
            "recovery_rate": _rounded(cases.recovery_rate, 4),
        },
        "retention": {
            "currency": retention.currency,
            "customers_12_months": retention.customers,
            "repeat_customers": retention.repeat_customers,
            "repeat_share": _rounded(retention.repeat_share, 4),
            "revenue_12_months": str(retention.revenue),
            "revenue_at_risk": str(retention.revenue_at_risk),
            "customers_at_risk": retention.customers_at_risk,
            "top_customers": retention.top_customers,
            "critics_among_top_customers": retention.critics_among_top,
            "revenue_lost": str(retention.revenue_lost),
            "customers_lost": retention.customers_lost,
        },
        "trend": [
            {"week_of": week.period.first_day.isoformat(), **_nps(week.counts)} for week in figures.trend
        ],
    }
