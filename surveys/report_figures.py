"""The figures of one report (the weekly summary, /report, ``kundenpuls report``), as plain values.

storage/report_queries.py fills them with SQL aggregates; the summary text, the chart, the terminal table
and the JSON output only read them. Keeping the figures apart from both sides is what lets every output
show the same numbers, and lets the texts be tested without a database.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from surveys.nps_stats import NpsChange, NpsCounts, compare
from surveys.report_period import ReportPeriod


@dataclass(frozen=True, slots=True)
class SurveyCounts:
    """What happened to the surveys of a period.

    ``sent``: surveys whose first question was queued in the period; ``delivered``: of those, the ones
    whose question reached the customer; ``answered``: of those, the ones with an NPS answer (a skipped
    NPS question is not an answer); ``reminded``: reminders sent in the period; ``skipped``: surveys the
    contact rules did not send (cooldown, weekly cap, paused, stopped, too old, ...) by reason;
    ``undeliverable``: surveys due in the period that could not reach the customer (blocked the bot, or
    never opened it).
    """

    sent: int = 0
    delivered: int = 0
    answered: int = 0
    reminded: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    undeliverable: int = 0

    @property
    def skipped_total(self) -> int:
        """All surveys the contact rules held back, whatever the reason."""
        return sum(self.skipped.values())

    @property
    def response_rate(self) -> float | None:
        """Answered ÷ delivered (a survey that expired unanswered counts in the denominator); None
        when nothing was delivered."""
        return self.answered / self.delivered if self.delivered else None


@dataclass(frozen=True, slots=True)
class ReasonCount:
    """How often critics named one option of a choice question (labels come from the survey file)."""

    survey_id: str
    question_id: str
    option_id: str
    count: int


@dataclass(frozen=True, slots=True)
class CriticComment:
    """A critic's comment with its sentiment: the summary quotes the most negative ones first."""

    text: str
    polarity: float | None
    at: datetime.datetime


@dataclass(frozen=True, slots=True)
class OpenCase:
    """A case nobody resolved yet, for the "still open" list (oldest first)."""

    case_id: int
    opened_at: datetime.datetime
    taken: bool


@dataclass(frozen=True, slots=True)
class CaseFigures:
    """Critic cases: opened and resolved in the period, still open now, and how the resolved ones went."""

    opened: int = 0
    resolved: int = 0
    still_open: int = 0
    oldest_open: tuple[OpenCase, ...] = ()
    median_time_to_resolve: datetime.timedelta | None = None
    recovery_answered: int = 0
    recovered: int = 0

    @property
    def recovery_rate(self) -> float | None:
        """Resolved customers who said the problem was solved ÷ those who answered the question."""
        return self.recovered / self.recovery_answered if self.recovery_answered else None


@dataclass(frozen=True, slots=True)
class RetentionFigures:
    """Whether customers come back, over the 12 months up to the end of the period.

    - ``repeat_share``: customers with two or more purchases in the 12 months ÷ customers with one or more
      (the repeat-purchase rate);
    - ``revenue_at_risk``: the 12-month revenue of customers whose latest NPS answer made them critics,
      or who went silent (no purchase and no word for longer than their own rhythm);
    - ``critics_among_top``: critics among the top 20 % of customers by 12-month revenue (Pareto: they
      bring most of the revenue, so one of them lost weighs more than many others);
    - ``revenue_lost``: what customers who bought in the 12 months before that and not since spent then:
      the yearly revenue that did not come back, the figure that says how much keeping customers is worth.
    """

    customers: int = 0
    repeat_customers: int = 0
    revenue: Decimal = Decimal(0)
    revenue_at_risk: Decimal = Decimal(0)
    customers_at_risk: int = 0
    top_customers: int = 0
    critics_among_top: int = 0
    revenue_lost: Decimal = Decimal(0)
    customers_lost: int = 0
    currency: str = "EUR"

    @property
    def repeat_share(self) -> float | None:
        """Customers who bought again ÷ customers who bought; None without customers."""
        return self.repeat_customers / self.customers if self.customers else None


@dataclass(frozen=True, slots=True)
class WeekNps:
    """One week of the trend chart: its NPS counts (the chart draws the score, its margin and the mix)."""

    period: ReportPeriod
    counts: NpsCounts


@dataclass(frozen=True, slots=True)
class ReportFigures:
    """Everything one report shows; ``as_of`` is when it was made (open cases' ages, retention)."""

    period: ReportPeriod
    as_of: datetime.datetime
    nps: NpsCounts
    previous_nps: NpsCounts
    surveys: SurveyCounts
    rating_average: float | None
    rating_count: int
    reasons: tuple[ReasonCount, ...]
    comments: tuple[CriticComment, ...]
    cases: CaseFigures
    retention: RetentionFigures
    trend: tuple[WeekNps, ...]

    @property
    def change(self) -> NpsChange:
        """The NPS against the period right before, with whether the change is significant."""
        return compare(self.nps, self.previous_nps)

    @property
    def has_responses(self) -> bool:
        """A period without one NPS answer gets a one-line summary and no chart."""
        return self.nps.total > 0
