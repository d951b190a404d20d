"""Net Promoter Score arithmetic.

The whole product is built around the NPS question, so the classification lives in one
place: handlers use it to decide who gets which follow-up and who triggers a staff alert,
reports use it to compute the score.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

NPS_MIN = 0
NPS_MAX = 10


class NpsCategory(StrEnum):
    """The three NPS groups; the values are stable and may be stored and put into YAML."""

    PROMOTER = "promoter"
    PASSIVE = "passive"
    CRITIC = "critic"


def classify(score: int) -> NpsCategory:
    """Map a 0..10 score to its NPS group (9-10 promoter, 7-8 passive, 0-6 critic).

    Raises ValueError for anything that is not an int in 0..10. ``bool`` is rejected on
    purpose: ``True`` is an ``int`` in Python and would silently count as a critic.
    """
    if isinstance(score, bool) or not isinstance(score, int):
        raise ValueError(f"an NPS score must be an integer from 0 to 10, got {score!r}")
    if not NPS_MIN <= score <= NPS_MAX:
        raise ValueError(f"an NPS score must be from 0 to 10, got {score}")
    if score >= 9:
        return NpsCategory.PROMOTER
    if score >= 7:
        return NpsCategory.PASSIVE
    return NpsCategory.CRITIC


@dataclass(frozen=True, slots=True)
class NpsBreakdown:
    """Counts per NPS group, for reports that show more than the single number."""

    promoters: int
    passives: int
    critics: int

    @property
    def total(self) -> int:
        """Number of scores counted."""
        return self.promoters + self.passives + self.critics

    @property
    def score(self) -> float | None:
        """Percent promoters minus percent critics (-100..100); None without any score."""
        if self.total == 0:
            return None
        return 100.0 * (self.promoters - self.critics) / self.total


def nps_breakdown(scores: Iterable[int]) -> NpsBreakdown:
    """Count the scores per NPS group; raises ValueError on the first invalid score."""
    counts = dict.fromkeys(NpsCategory, 0)
    for score in scores:
        counts[classify(score)] += 1
    return NpsBreakdown(
        promoters=counts[NpsCategory.PROMOTER],
        passives=counts[NpsCategory.PASSIVE],
        critics=counts[NpsCategory.CRITIC],
    )


def net_promoter_score(scores: Iterable[int]) -> float | None:
    """The NPS of the given scores (-100..100), or None when there are none.

    None rather than 0 because "nobody answered yet" and "as many critics as promoters"
    must not look the same on a dashboard.
    """
    return nps_breakdown(scores).score
