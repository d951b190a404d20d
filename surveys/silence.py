"""When a customer has gone quiet: each customer's own buying rhythm, and how to say it to a person.

A customer who buys every two weeks is worrying after a month; one who buys twice a year is not. So a
repeat buyer is silent once they have neither bought nor talked to the bot for ``CHECKIN_FACTOR`` times
the median gap between their purchases; a one-time buyer has no rhythm yet and is silent after
``CHECKIN_AFTER``. The median, not the mean: one long holiday should not make a regular look silent later.

Orders placed within a day of each other are one visit (a forgotten item ordered an hour later is not a
rhythm of one hour). Pure functions on aware datetimes; the caller stores the median with the customer.
"""

from __future__ import annotations

import datetime
import itertools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

SAME_VISIT = datetime.timedelta(days=1)
"""Orders closer together than this count as one visit."""


def median_gap(purchase_times: Iterable[datetime.datetime]) -> datetime.timedelta | None:
    """The median time between a customer's visits, or None for a one-time buyer (one visit).

    Purchases may come in any order (a CSV of last year's orders arrives after this week's).
    """
    ordered = sorted(purchase_times)
    visits: list[datetime.datetime] = []
    for moment in ordered:
        if moment.tzinfo is None:
            raise ValueError(f"purchase times must be timezone-aware, got naive {moment.isoformat()}")
        if not visits or moment - visits[-1] >= SAME_VISIT:
            visits.append(moment)
    if len(visits) < 2:
        return None
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(visits)]
    return datetime.timedelta(seconds=round(statistics.median(gaps)))


@dataclass(frozen=True, slots=True)
class Rhythm:
    """How long a customer may be quiet before the shop checks in: their median gap × the factor, or the
    one-time buyers' fixed span."""

    median_gap: datetime.timedelta | None
    factor: float
    one_time_after: datetime.timedelta

    def __post_init__(self) -> None:
        if self.factor < 1:
            # Below 1 a regular would count as silent before their usual next purchase is even due.
            raise ValueError(f"the check-in factor must be at least 1, got {self.factor}")
        if self.one_time_after <= datetime.timedelta(0):
            raise ValueError(f"the one-time buyers' span must be positive, got {self.one_time_after}")

    @property
    def silent_after(self) -> datetime.timedelta:
        """How long without a purchase or a word makes this customer silent."""
        if self.median_gap is None:
            return self.one_time_after
        return datetime.timedelta(seconds=round(self.median_gap.total_seconds() * self.factor))

    def describe(self) -> str:
        """The rule in words, as ``kundenpuls why`` shows it: "median gap 12 d × 1.5 = 18 d"."""
        if self.median_gap is None:
            return f"one-time buyer: CHECKIN_AFTER {days(self.one_time_after)}"
        return f"median gap {days(self.median_gap)} × {self.factor:g} = {days(self.silent_after)}"


def days(span: datetime.timedelta) -> str:
    """A span in days as a person reads it: "12 d", "1.5 d", or hours below a day ("18 h")."""
    total_days = span.total_seconds() / 86400
    if total_days < 1:
        return f"{span.total_seconds() / 3600:.3g} h"
    return f"{total_days:.1f} d".replace(".0 d", " d")
