"""What a sentiment score is: a polarity, the label derived from it and the language used.

The label thresholds live here, next to the type, because everything that compares analyzers
(the unit tests, ``bench/sentiment_accuracy.py``, plain TextBlob as the baseline) must cut the
polarity scale at the same two points.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from surveys.languages import Language

NEGATIVE_AT_OR_BELOW = -0.1
"""A polarity at or below this is negative.

A tenth of the scale: one clear complaint word outweighs a polite "danke", while an isolated
lukewarm word ("ok", "geht so", weighted about ±0.05) stays neutral.
"""
POSITIVE_AT_OR_ABOVE = 0.1
"""A polarity at or above this is positive; symmetric to NEGATIVE_AT_OR_BELOW."""


class Label(StrEnum):
    """The three sentiment classes; the values are stable and may be stored."""

    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


def label_for(polarity: float) -> Label:
    """The label of a polarity, cut at NEGATIVE_AT_OR_BELOW and POSITIVE_AT_OR_ABOVE."""
    if polarity <= NEGATIVE_AT_OR_BELOW:
        return Label.NEGATIVE
    if polarity >= POSITIVE_AT_OR_ABOVE:
        return Label.POSITIVE
    return Label.NEUTRAL


@dataclass(frozen=True, slots=True)
class Sentiment:
    """The sentiment of one comment.

    ``language`` is the language whose analyzer produced the score, so a report can tell a
    German comment from an English one even when the customer's interface was the other one.
    """

    polarity: float
    label: Label
    language: Language

    @classmethod
    def of(cls, polarity: float, language: Language) -> Sentiment:
        """A Sentiment whose label follows from the (clamped) polarity."""
        clamped = max(-1.0, min(1.0, polarity))
        return cls(polarity=clamped, label=label_for(clamped), language=language)
