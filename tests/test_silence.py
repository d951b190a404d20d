"""Each customer's own rhythm: the median gap between visits, and when that makes them silent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from surveys.silence import Rhythm, days, median_gap

DAY = timedelta(days=1)
START = datetime(2026, 3, 2, 10, tzinfo=UTC)


def _at(*offsets_in_days: float) -> list[datetime]:
    return [START + timedelta(days=offset) for offset in offsets_in_days]


class TestMedianGap:
    def test_a_one_time_buyer_has_no_rhythm(self) -> None:
        assert median_gap(_at(0)) is None
        assert median_gap([]) is None

    def test_the_median_not_the_mean_so_one_long_break_does_not_stretch_a_regular(self) -> None:
        """Gaps 10, 12, 14 and 90 days: the median is 13 days (the mean would be 31.5)."""
        assert median_gap(_at(0, 10, 22, 36, 126)) == 13 * DAY

    def test_orders_within_a_day_are_one_visit(self) -> None:
        """A forgotten item ordered two hours later is not a rhythm of two hours."""
        assert median_gap(_at(0, 2 / 24, 14, 14.5, 28)) == 14 * DAY
        assert median_gap(_at(0, 0.5)) is None

    def test_purchases_in_any_order_give_the_same_median(self) -> None:
        """Last year's orders imported after this week's still shape the rhythm."""
        assert median_gap(_at(60, 0, 30, 20)) == median_gap(_at(0, 20, 30, 60)) == 20 * DAY

    def test_naive_times_are_refused(self) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            median_gap([datetime(2026, 1, 1), datetime(2026, 2, 1)])  # noqa: DTZ001  (the point)


class TestRhythm:
    def test_a_repeat_buyer_is_silent_after_factor_times_their_median_gap(self) -> None:
        rhythm = Rhythm(12 * DAY, 1.5, 30 * DAY)
        assert rhythm.silent_after == 18 * DAY
        assert rhythm.describe() == "median gap 12 d × 1.5 = 18 d"

    def test_a_one_time_buyer_is_silent_after_checkin_after(self) -> None:
        rhythm = Rhythm(None, 1.5, 30 * DAY)
        assert rhythm.silent_after == 30 * DAY
        assert rhythm.describe() == "one-time buyer: CHECKIN_AFTER 30 d"

    def test_a_factor_below_one_is_refused(self) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            Rhythm(10 * DAY, 0.5, 30 * DAY)

    def test_checkin_after_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="positive"):
            Rhythm(None, 1.5, timedelta(0))

    def test_spans_read_as_days_or_hours(self) -> None:
        assert days(18 * DAY) == "18 d"
        assert days(timedelta(days=1, hours=12)) == "1.5 d"
        assert days(timedelta(hours=18)) == "18 h"
