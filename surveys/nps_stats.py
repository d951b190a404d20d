"""How sure a reported NPS is: its 95 % margin of error, and whether a change is more than chance.

A small shop gets twenty answers a week. With twenty answers the NPS moves by fifteen points from one
week to the next without anything having changed in the shop, and a manager who reads every such move as
news chases noise. So the report shows each NPS with its margin and puts an up or down arrow on a change
only when the change is larger than chance would make it.

The SQL layer counts promoters, passives and critics per period and passes only those counts here: the
maths lives in this one module, and no caller ever needs the individual answers.

Both the margin and the test use the normal approximation. It is rough for few answers (under about 30)
and for scores near ±100, which is why every result carries ``few_responses`` for the report to say so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from surveys.nps import NpsBreakdown

Z_95 = 1.96
"""The two-sided 95 % quantile of the standard normal distribution."""

FEW_RESPONSES = 30
"""Below this many answers the normal approximation is rough, and the report says so."""

MIN_FOR_MARGIN = 2
"""The fewest answers a margin is given for; see ``NpsCounts.standard_error`` for why not one."""


@dataclass(frozen=True, slots=True)
class NpsCounts:
    """How many promoters, passives and critics answered in one period; the input to all of this."""

    promoters: int
    passives: int
    critics: int

    def __post_init__(self) -> None:
        for name in ("promoters", "passives", "critics"):
            value = getattr(self, name)
            # bool is an int in Python; a True from a careless SQL mapping must not count as one answer.
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a count (an int of 0 or more), got {value!r}")

    @classmethod
    def from_breakdown(cls, breakdown: NpsBreakdown) -> NpsCounts:
        """The counts of a breakdown made by ``surveys.nps.nps_breakdown``."""
        return cls(breakdown.promoters, breakdown.passives, breakdown.critics)

    @property
    def total(self) -> int:
        """Number of answers counted."""
        return self.promoters + self.passives + self.critics

    @property
    def nps(self) -> float | None:
        """Percent promoters minus percent critics (-100..100); None without any answer.

        Delegates to ``surveys.nps`` so that the definition of the score exists once.
        """
        return NpsBreakdown(self.promoters, self.passives, self.critics).score

    @property
    def few_responses(self) -> bool:
        """Whether there are fewer than FEW_RESPONSES answers, so the margin is only a rough guide."""
        return self.total < FEW_RESPONSES

    @property
    def standard_error(self) -> float | None:
        """The standard error of the NPS as a proportion (-1..1); None for fewer than two answers.

        With n answers, p = promoters / n and d = critics / n, NPS = p - d and

            Var(NPS) = (p + d - (p - d)²) / n,    SE = sqrt(Var).

        p and d are not independent: they come from one multinomial sample, in which every promoter is
        an answer that cannot be a critic, so Cov(p, d) = -p·d / n. Hence

            Var(p - d) = p(1 - p)/n + d(1 - d)/n + 2·p·d/n = (p + d - (p - d)²) / n.

        The same follows from scoring each answer +1, 0 or -1: NPS is their mean, and the variance of
        one answer is E[X²] - E[X]² = (p + d) - (p - d)². Treating p and d as independent would drop
        the 2·p·d/n and understate the margin.

        For one answer the formula gives 0 (p - d is ±1 or 0 and the bracket vanishes), which would
        claim a single answer is exactly the shop's NPS. One answer says nothing about the spread, so
        there is no margin (None) below MIN_FOR_MARGIN. From two answers on the formula is used as it
        is, even where it gives 0 (all answers in one group): that is what the data shows, and
        ``few_responses`` marks it as rough.
        """
        n = self.total
        if n < MIN_FOR_MARGIN:
            return None
        # In integers, so that "all critics" gives exactly 0 instead of a tiny negative float:
        # Var = ((P + D)·n - (P - D)²) / n³, and the numerator is never negative.
        numerator = (self.promoters + self.critics) * n - (self.promoters - self.critics) ** 2
        return math.sqrt(numerator / n**3)

    @property
    def margin(self) -> float | None:
        """The 95 % margin of error in NPS points, 100 × 1.96 × SE; None for fewer than two answers."""
        error = self.standard_error
        return None if error is None else 100.0 * Z_95 * error


@dataclass(frozen=True, slots=True)
class NpsChange:
    """How the NPS moved from one period to the next, and whether that is more than chance.

    ``change`` is in NPS points, None when either period has no answer. ``margin`` is the 95 % margin of
    the difference in points, None when either period has fewer than two answers; then ``significant``
    is False, because the test cannot be made.
    """

    change: float | None
    margin: float | None
    significant: bool
    few_responses: bool

    @property
    def arrow(self) -> str:
        """ "↑" or "↓" for a significant rise or fall, "→" otherwise.

        "→" also stands for "no comparison" (``change`` is None); the report shows that from ``change``.
        """
        if not self.significant or self.change is None or self.change == 0:
            return "→"
        return "↑" if self.change > 0 else "↓"


def compare(current: NpsCounts, previous: NpsCounts) -> NpsChange:
    """Compare two periods' NPS, for example this week's with last week's.

    The two periods have different answers, so their NPS are independent and the variances add:

        SE_diff = sqrt(SE_current² + SE_previous²),

    and the change is significant at the 95 % level when |change| > 1.96 × SE_diff (both in the same
    unit). A change of exactly the margin is not significant; neither is any change when both standard
    errors are 0 and nothing changed.
    """
    few = current.few_responses or previous.few_responses
    now_nps, before_nps = current.nps, previous.nps
    if now_nps is None or before_nps is None:
        return NpsChange(change=None, margin=None, significant=False, few_responses=few)
    change = now_nps - before_nps
    now_error, before_error = current.standard_error, previous.standard_error
    if now_error is None or before_error is None:
        return NpsChange(change=change, margin=None, significant=False, few_responses=few)
    margin = 100.0 * Z_95 * math.hypot(now_error, before_error)
    return NpsChange(change=change, margin=margin, significant=abs(change) > margin, few_responses=few)
