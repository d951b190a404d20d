"""Tests for surveys.nps: classification of scores and the Net Promoter Score."""

from __future__ import annotations

import pytest

from surveys.nps import NpsCategory, classify, net_promoter_score, nps_breakdown


@pytest.mark.parametrize(
    ("score", "category"),
    [
        (0, NpsCategory.CRITIC),
        (6, NpsCategory.CRITIC),
        (7, NpsCategory.PASSIVE),
        (8, NpsCategory.PASSIVE),
        (9, NpsCategory.PROMOTER),
        (10, NpsCategory.PROMOTER),
    ],
)
def test_classify_puts_boundary_scores_into_the_right_group(score: int, category: NpsCategory) -> None:
    """The group boundaries are 6/7 and 8/9, as in the NPS definition."""
    assert classify(score) is category


@pytest.mark.parametrize("score", [-1, 11, 100, True, False, 7.0, "7"])
def test_classify_rejects_anything_but_an_integer_from_0_to_10(score: object) -> None:
    """Out-of-range numbers, bools (an int subclass), floats and strings are ValueErrors."""
    with pytest.raises(ValueError, match="NPS score"):
        classify(score)  # type: ignore[arg-type]


def test_category_values_are_the_strings_used_in_yaml_and_storage() -> None:
    """The enum values are part of the file and database format and must not change."""
    assert [category.value for category in NpsCategory] == ["promoter", "passive", "critic"]


def test_net_promoter_score_is_percent_promoters_minus_percent_critics() -> None:
    """Two promoters, one passive, one critic out of four give 50% - 25% = 25."""
    assert net_promoter_score([10, 9, 8, 3]) == pytest.approx(25.0)


@pytest.mark.parametrize(
    ("scores", "expected"),
    [([10, 9, 10], 100.0), ([0, 6, 3], -100.0), ([7, 8], 0.0), ([10, 0], 0.0)],
)
def test_net_promoter_score_covers_the_whole_range(scores: list[int], expected: float) -> None:
    """All promoters give 100, all critics -100, only passives or a balance give 0."""
    assert net_promoter_score(scores) == pytest.approx(expected)


def test_net_promoter_score_is_none_without_scores() -> None:
    """No answers is not the same as a score of 0."""
    assert net_promoter_score([]) is None


def test_net_promoter_score_accepts_any_iterable() -> None:
    """A generator of scores (e.g. streamed from the database) works like a list."""
    assert net_promoter_score(score for score in (9, 9, 2)) == pytest.approx(100 / 3)


def test_net_promoter_score_rejects_invalid_scores() -> None:
    """One corrupt score raises instead of being silently skipped."""
    with pytest.raises(ValueError, match="0 to 10"):
        net_promoter_score([9, 12])


def test_breakdown_counts_each_group() -> None:
    """The breakdown counts promoters, passives and critics and derives total and score."""
    breakdown = nps_breakdown([10, 9, 7, 1, 0])
    assert (breakdown.promoters, breakdown.passives, breakdown.critics) == (2, 1, 2)
    assert breakdown.total == 5
    assert breakdown.score == pytest.approx(0.0)
