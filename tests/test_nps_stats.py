"""Tests for surveys.nps_stats: the NPS of counts, its 95 % margin, and when a change is significant.

The expected numbers are worked out by hand in each docstring from Var = (p + d - (p - d)²) / n.
"""

from __future__ import annotations

import math

import pytest

from surveys.nps import nps_breakdown
from surveys.nps_stats import FEW_RESPONSES, NpsChange, NpsCounts, compare

KNOWN = NpsCounts(promoters=50, passives=30, critics=20)
"""NPS 30; Var = (0.5 + 0.2 - 0.3²) / 100 = 0.0061, SE = 0.0781, margin 1.96 × 7.81 = 15.3 points."""


class TestNpsCounts:
    def test_the_known_example_has_nps_30_and_a_margin_of_15_points(self) -> None:
        """50 promoters, 30 passives, 20 critics: SE = sqrt(0.0061) = 0.0781, margin 15.3 points."""
        assert KNOWN.total == 100
        assert KNOWN.nps == pytest.approx(30.0)
        assert KNOWN.standard_error == pytest.approx(math.sqrt(0.0061))
        assert KNOWN.standard_error == pytest.approx(0.0781, abs=5e-5)
        assert KNOWN.margin == pytest.approx(15.31, abs=5e-3)

    def test_the_variance_is_that_of_scoring_each_answer_plus_one_zero_or_minus_one(self) -> None:
        """3/2/5 answers: the scores' own variance, 0.8 - 0.2² = 0.76, over n = 10 gives 0.076."""
        scores = [1] * 3 + [0] * 2 + [-1] * 5
        mean = sum(scores) / len(scores)
        variance = sum((score - mean) ** 2 for score in scores) / len(scores) / len(scores)
        counts = NpsCounts(promoters=3, passives=2, critics=5)
        assert variance == pytest.approx(0.076)
        assert counts.standard_error == pytest.approx(math.sqrt(variance))

    def test_the_covariance_of_promoters_and_critics_widens_the_margin(self) -> None:
        """3/2/5: p(1-p)/n + d(1-d)/n alone is 0.046; the -2·Cov = 2·p·d/n = 0.03 makes it 0.076."""
        counts = NpsCounts(promoters=3, passives=2, critics=5)
        independent = (0.3 * 0.7 + 0.5 * 0.5) / 10
        assert independent == pytest.approx(0.046)
        assert counts.standard_error is not None
        assert counts.standard_error**2 == pytest.approx(independent + 2 * 0.3 * 0.5 / 10)

    def test_no_answers_have_no_score_and_no_margin(self) -> None:
        """Nobody answered: None, not 0, for the score and for the margin."""
        empty = NpsCounts(promoters=0, passives=0, critics=0)
        assert (empty.total, empty.nps, empty.standard_error, empty.margin) == (0, None, None, None)
        assert empty.few_responses

    def test_one_answer_has_a_score_but_no_margin(self) -> None:
        """The formula would give 0 for one answer, claiming it is exactly the shop's NPS."""
        for one in (NpsCounts(1, 0, 0), NpsCounts(0, 1, 0), NpsCounts(0, 0, 1)):
            assert one.nps is not None
            assert one.standard_error is None
            assert one.margin is None

    @pytest.mark.parametrize("critics", [2, 50])
    def test_only_critics_give_nps_minus_100_and_a_margin_of_0(self, critics: int) -> None:
        """p = 0, d = 1: Var = (1 - 1²) / n = 0, exactly, not a tiny negative float."""
        counts = NpsCounts(promoters=0, passives=0, critics=critics)
        assert counts.nps == pytest.approx(-100.0)
        assert counts.standard_error == 0.0
        assert counts.margin == 0.0

    def test_only_promoters_give_nps_100_and_a_margin_of_0(self) -> None:
        """p = 1, d = 0: Var = (1 - 1²) / 100 = 0."""
        counts = NpsCounts(promoters=100, passives=0, critics=0)
        assert counts.nps == pytest.approx(100.0)
        assert counts.margin == 0.0

    def test_only_passives_give_nps_0_and_a_margin_of_0(self) -> None:
        """p = d = 0: Var = 0; every answer scored 0."""
        counts = NpsCounts(promoters=0, passives=10, critics=0)
        assert counts.nps == pytest.approx(0.0)
        assert counts.margin == 0.0

    def test_two_split_answers_have_a_margin_wider_than_the_scale(self) -> None:
        """One promoter, one critic: Var = (1 - 0) / 2 = 0.5, margin 196 × 0.7071 = 138.6 points."""
        counts = NpsCounts(promoters=1, passives=0, critics=1)
        assert counts.nps == pytest.approx(0.0)
        assert counts.margin == pytest.approx(196 * math.sqrt(0.5))
        assert counts.few_responses

    def test_fewer_than_30_answers_are_flagged_as_few(self) -> None:
        """29 answers are few, 30 are not: below that the normal approximation is rough."""
        assert FEW_RESPONSES == 30
        assert NpsCounts(promoters=20, passives=5, critics=4).few_responses
        assert not NpsCounts(promoters=20, passives=5, critics=5).few_responses

    def test_the_margin_shrinks_with_the_square_root_of_the_answers(self) -> None:
        """The same shares from 100 times the answers have a tenth of the margin."""
        large = NpsCounts(promoters=5000, passives=3000, critics=2000)
        assert KNOWN.margin is not None
        assert large.margin == pytest.approx(KNOWN.margin / 10)

    def test_counts_from_a_breakdown_give_the_same_score(self) -> None:
        """The counts the SQL layer passes and the breakdown of the scores agree."""
        breakdown = nps_breakdown([10, 9, 8, 3])
        counts = NpsCounts.from_breakdown(breakdown)
        assert counts == NpsCounts(promoters=2, passives=1, critics=1)
        assert counts.nps == breakdown.score

    @pytest.mark.parametrize("bad", [-1, True, 1.0, "3", None])
    def test_anything_but_a_count_is_rejected(self, bad: object) -> None:
        """A negative number, a bool or a float from a careless mapping fails loudly."""
        with pytest.raises(ValueError, match="promoters must be a count"):
            NpsCounts(promoters=bad, passives=0, critics=0)  # type: ignore[arg-type]


class TestCompare:
    def test_a_rise_larger_than_chance_is_significant_and_points_up(self) -> None:
        """30 against -10: SE_diff = sqrt(0.0061 + 0.0069) = 0.1140, margin 22.3 < 40."""
        change = compare(KNOWN, NpsCounts(promoters=30, passives=30, critics=40))
        assert change.change == pytest.approx(40.0)
        assert change.margin == pytest.approx(196 * math.sqrt(0.013))
        assert change.margin == pytest.approx(22.35, abs=5e-3)
        assert change.significant
        assert change.arrow == "↑"

    def test_a_fall_larger_than_chance_is_significant_and_points_down(self) -> None:
        """The same two periods the other way round: -40, significant."""
        change = compare(NpsCounts(promoters=30, passives=30, critics=40), KNOWN)
        assert change.change == pytest.approx(-40.0)
        assert change.significant
        assert change.arrow == "↓"

    def test_a_change_within_chance_is_not_significant_and_points_sideways(self) -> None:
        """30 against 20 from 100 answers each: SE_diff = sqrt(0.0061 + 0.0066) = 0.1127, margin 22.1 > 10."""
        change = compare(KNOWN, NpsCounts(promoters=45, passives=30, critics=25))
        assert change.change == pytest.approx(10.0)
        assert change.margin == pytest.approx(196 * math.sqrt(0.0127))
        assert not change.significant
        assert change.arrow == "→"

    def test_the_same_change_from_many_more_answers_is_significant(self) -> None:
        """30 against 20 from 10 000 answers each: margin 2.2 < 10."""
        change = compare(
            NpsCounts(promoters=5000, passives=3000, critics=2000),
            NpsCounts(promoters=4500, passives=3000, critics=2500),
        )
        assert change.margin == pytest.approx(196 * math.sqrt(0.000127))
        assert change.significant
        assert change.arrow == "↑"
        assert not change.few_responses

    def test_an_unchanged_score_points_sideways(self) -> None:
        """The same counts twice: change 0, not significant."""
        change = compare(KNOWN, KNOWN)
        assert change.change == 0.0
        assert not change.significant
        assert change.arrow == "→"

    def test_no_answers_in_either_period_give_no_change(self) -> None:
        """100 promoters against a week without answers: there is nothing to compare with."""
        empty = NpsCounts(promoters=0, passives=0, critics=0)
        for change in (compare(NpsCounts(100, 0, 0), empty), compare(empty, NpsCounts(100, 0, 0))):
            assert change == NpsChange(change=None, margin=None, significant=False, few_responses=True)
            assert change.arrow == "→"

    def test_all_promoters_against_all_critics_is_significant_with_a_margin_of_0(self) -> None:
        """Both standard errors are 0, so any change counts; here +200."""
        change = compare(NpsCounts(100, 0, 0), NpsCounts(0, 0, 100))
        assert change.change == pytest.approx(200.0)
        assert change.margin == 0.0
        assert change.significant
        assert change.arrow == "↑"

    def test_all_promoters_twice_is_not_significant(self) -> None:
        """Margin 0 and change 0: 0 > 0 is false, so no arrow."""
        change = compare(NpsCounts(100, 0, 0), NpsCounts(40, 0, 0))
        assert (change.change, change.margin, change.significant) == (0.0, 0.0, False)

    def test_a_period_with_one_answer_has_a_change_but_no_test(self) -> None:
        """With one answer there is no margin, so the change is shown but never marked significant."""
        change = compare(NpsCounts(0, 0, 1), KNOWN)
        assert change.change == pytest.approx(-130.0)
        assert change.margin is None
        assert not change.significant
        assert change.arrow == "→"

    def test_few_answers_in_either_period_are_flagged(self) -> None:
        """The report can say the comparison is rough when one side has under 30 answers."""
        assert compare(KNOWN, NpsCounts(promoters=10, passives=5, critics=5)).few_responses
        assert compare(NpsCounts(promoters=10, passives=5, critics=5), KNOWN).few_responses
        assert not compare(KNOWN, KNOWN).few_responses


class TestArrow:
    @pytest.mark.parametrize(
        ("change", "significant", "arrow"),
        [(5.0, True, "↑"), (-5.0, True, "↓"), (5.0, False, "→"), (-5.0, False, "→"), (None, False, "→")],
    )
    def test_the_arrow_shows_only_significant_moves(
        self, change: float | None, significant: bool, arrow: str
    ) -> None:
        """Up or down only for a significant change; sideways for chance and for no comparison."""
        result = NpsChange(change=change, margin=1.0, significant=significant, few_responses=False)
        assert result.arrow == arrow
