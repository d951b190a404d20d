"""Tests for surveys.report_period: the weeks and days a report covers, and what /report accepts.

Every datetime is explicit and aware. Europe/Berlin is UTC+1 in winter (CET) and UTC+2 in summer
(CEST); the clocks change on 2026-03-29 (02:00 -> 03:00) and 2026-10-25 (03:00 -> 02:00).
"""

from __future__ import annotations

import datetime
import itertools
from datetime import UTC, date, timedelta
from zoneinfo import ZoneInfo

import pytest

from surveys.report_period import (
    PeriodError,
    ReportPeriod,
    between,
    last_complete_week,
    last_days,
    parse_period,
    weeks_back,
)

BERLIN = ZoneInfo("Europe/Berlin")
TOKYO = ZoneInfo("Asia/Tokyo")
SANTIAGO = ZoneInfo("America/Santiago")  # moves its clocks at midnight: 2026-09-06 00:00 -> 01:00
HOUR = timedelta(hours=1)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime.datetime:
    """An aware UTC instant, so no test depends on the machine's zone or clock."""
    return datetime.datetime(year, month, day, hour, minute, tzinfo=UTC)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime.datetime:
    """An aware Berlin wall-clock time (never in a DST gap or overlap in these tests)."""
    return datetime.datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def hours(period: ReportPeriod) -> float:
    """The real length of a period in hours."""
    return (period.end - period.start) / HOUR


WEDNESDAY = berlin(2026, 11, 25, 15, 0)
"""A "now" for the tests that only need an ordinary day (14:00 UTC)."""


class TestReportPeriod:
    def test_boundaries_are_stored_in_utc_whatever_offset_they_came_with(self) -> None:
        """A period built from Berlin times equals one built from the same instants in UTC."""
        local = ReportPeriod(berlin(2026, 11, 23), berlin(2026, 11, 30), BERLIN)
        assert local == ReportPeriod(utc(2026, 11, 22, 23), utc(2026, 11, 29, 23), BERLIN)
        assert local.start.tzinfo is UTC and local.end.tzinfo is UTC

    def test_the_label_shows_local_dates_with_the_end_inclusive(self) -> None:
        """[Monday 00:00, next Monday 00:00) reads as Monday to Sunday."""
        period = ReportPeriod(utc(2026, 11, 22, 23), utc(2026, 11, 29, 23), BERLIN)
        assert period.label == "2026-11-23 – 2026-11-29"
        assert (period.first_day, period.last_day, period.days) == (date(2026, 11, 23), date(2026, 11, 29), 7)

    def test_a_single_day_is_labelled_with_one_date(self) -> None:
        """ "2026-11-25 – 2026-11-25" would be noise."""
        assert between(date(2026, 11, 25), date(2026, 11, 25), BERLIN).label == "2026-11-25"

    def test_a_period_ending_mid_day_counts_that_day_as_its_last(self) -> None:
        """A period up to now includes today, though today is not over."""
        period = ReportPeriod(berlin(2026, 11, 19), WEDNESDAY, BERLIN)
        assert period.last_day == date(2026, 11, 25)
        assert period.days == 7

    def test_an_empty_or_backwards_period_is_rejected(self) -> None:
        """A period has to contain at least one instant."""
        with pytest.raises(ValueError, match="must end after it starts"):
            ReportPeriod(WEDNESDAY, WEDNESDAY, BERLIN)
        with pytest.raises(ValueError, match="must end after it starts"):
            ReportPeriod(WEDNESDAY, WEDNESDAY - HOUR, BERLIN)

    def test_naive_boundaries_are_rejected(self) -> None:
        """A naive datetime has no instant; guessing its zone would shift the report by hours."""
        with pytest.raises(ValueError, match="timezone-aware"):
            ReportPeriod(datetime.datetime(2026, 11, 23), utc(2026, 11, 30), BERLIN)  # noqa: DTZ001


class TestPrevious:
    def test_the_previous_week_ends_where_this_one_starts(self) -> None:
        """The two periods of a "change against the week before" touch and never overlap."""
        week = last_complete_week(berlin(2026, 11, 30, 9), BERLIN)
        before = week.previous()
        assert before.end == week.start
        assert before.label == "2026-11-16 – 2026-11-22"

    def test_the_week_before_a_dst_week_is_a_whole_week_in_local_days(self) -> None:
        """Going back 168 hours from a 167-hour week would start the week before at 01:00 on a Monday."""
        week = last_complete_week(berlin(2026, 4, 6, 9), BERLIN)  # 2026-03-30..04-05
        dst_week = week.previous()
        assert dst_week.label == "2026-03-23 – 2026-03-29"
        assert hours(dst_week) == 167
        assert dst_week.previous().start == berlin(2026, 3, 16)

    def test_the_period_before_some_days_has_as_many_days(self) -> None:
        """Two weeks from 2026-11-02 have the two weeks from 2026-10-19 before them, over the fall change."""
        before = between(date(2026, 11, 2), date(2026, 11, 15), BERLIN).previous()
        assert before == between(date(2026, 10, 19), date(2026, 11, 1), BERLIN)
        assert hours(before) == 14 * 24 + 1

    def test_the_period_before_the_last_days_up_to_now_is_made_of_whole_days(self) -> None:
        """The last 28 days (today partly) are compared with the 28 whole days before them."""
        period = last_days(WEDNESDAY, BERLIN, 28)
        before = period.previous()
        assert before.label == "2026-10-01 – 2026-10-28"
        assert before.end == period.start


class TestLastCompleteWeek:
    def test_on_monday_morning_it_is_the_week_that_ended_at_midnight(self) -> None:
        """The weekly summary runs on Monday morning and reports Monday to Sunday just gone."""
        week = last_complete_week(berlin(2026, 11, 30, 9), BERLIN)
        assert (week.start, week.end) == (utc(2026, 11, 22, 23), utc(2026, 11, 29, 23))
        assert week.label == "2026-11-23 – 2026-11-29"

    def test_at_monday_midnight_sharp_the_week_just_ended_is_complete(self) -> None:
        """The week is [start, end), so at its end it has ended."""
        week = last_complete_week(berlin(2026, 11, 30), BERLIN)
        assert week.label == "2026-11-23 – 2026-11-29"
        assert week.end == berlin(2026, 11, 30)

    def test_on_sunday_evening_it_is_the_week_before_the_running_one(self) -> None:
        """Until Sunday 23:59:59.999999 the current week is not complete."""
        assert last_complete_week(berlin(2026, 11, 29, 20), BERLIN).label == "2026-11-16 – 2026-11-22"
        last_instant = berlin(2026, 11, 30) - timedelta(microseconds=1)
        assert last_complete_week(last_instant, BERLIN).label == "2026-11-16 – 2026-11-22"

    def test_the_local_date_decides_not_the_utc_date(self) -> None:
        """Sunday 16:00 UTC is already Monday 01:00 in Tokyo, so Tokyo's last week has ended."""
        week = last_complete_week(utc(2026, 11, 29, 16), TOKYO)
        assert week.label == "2026-11-23 – 2026-11-29"
        assert week.end == utc(2026, 11, 29, 15)  # Monday 00:00 in Tokyo (UTC+9)

    def test_a_week_with_the_spring_dst_change_is_167_hours(self) -> None:
        """Monday 2026-03-23 00:00 CET to Monday 2026-03-30 00:00 CEST: the hour 02:00-03:00 never was."""
        week = last_complete_week(berlin(2026, 3, 30, 9), BERLIN)
        assert week.label == "2026-03-23 – 2026-03-29"
        assert (week.start, week.end) == (utc(2026, 3, 22, 23), utc(2026, 3, 29, 22))
        assert hours(week) == 167

    def test_a_week_with_the_autumn_dst_change_is_169_hours(self) -> None:
        """Monday 2026-10-19 00:00 CEST to Monday 2026-10-26 00:00 CET: 02:00-03:00 happened twice."""
        week = last_complete_week(berlin(2026, 10, 26, 9), BERLIN)
        assert week.label == "2026-10-19 – 2026-10-25"
        assert (week.start, week.end) == (utc(2026, 10, 18, 22), utc(2026, 10, 25, 23))
        assert hours(week) == 169

    def test_naive_now_is_rejected(self) -> None:
        """The machine's local zone must never decide which week is reported."""
        with pytest.raises(ValueError, match="timezone-aware"):
            last_complete_week(datetime.datetime(2026, 11, 30, 9), BERLIN)  # noqa: DTZ001


class TestWeeksBack:
    def test_twelve_weeks_come_oldest_first_and_touch_each_other(self) -> None:
        """The chart's weeks run Monday to Sunday without gaps, the last complete week last."""
        weeks = weeks_back(berlin(2026, 11, 30, 9), BERLIN, 12)
        assert [week.label for week in (weeks[0], weeks[-1])] == [
            "2026-09-07 – 2026-09-13",
            "2026-11-23 – 2026-11-29",
        ]
        assert all(earlier.end == later.start for earlier, later in itertools.pairwise(weeks))
        assert all(week.first_day.weekday() == 0 and week.days == 7 for week in weeks)

    def test_only_the_week_of_the_clock_change_has_another_length(self) -> None:
        """Around the spring change the weeks are 168, 167 and 168 hours long."""
        weeks = weeks_back(berlin(2026, 4, 6, 9), BERLIN, 3)
        assert [hours(week) for week in weeks] == [168, 167, 168]

    def test_one_week_back_is_the_last_complete_week(self) -> None:
        """count=1 is the weekly summary's own week."""
        now = berlin(2026, 11, 30, 9)
        assert weeks_back(now, BERLIN, 1) == [last_complete_week(now, BERLIN)]

    @pytest.mark.parametrize("count", [0, -1, 53])
    def test_a_count_outside_1_to_52_is_rejected(self, count: int) -> None:
        """No weeks is no chart, and more than a year is not what the chart is for."""
        with pytest.raises(ValueError, match="1 to 52"):
            weeks_back(WEDNESDAY, BERLIN, count)


class TestLastDays:
    def test_the_last_28_days_start_at_midnight_27_days_before_today_and_end_now(self) -> None:
        """/report 4w on Wednesday 2026-11-25 15:00 covers 2026-10-29 00:00 up to now."""
        period = last_days(WEDNESDAY, BERLIN, 28)
        assert (period.start, period.end) == (utc(2026, 10, 28, 23), utc(2026, 11, 25, 14))
        assert period.label == "2026-10-29 – 2026-11-25"
        assert period.days == 28

    def test_one_day_is_today_so_far(self) -> None:
        """1d starts at today's local midnight."""
        period = last_days(WEDNESDAY, BERLIN, 1)
        assert period.start == berlin(2026, 11, 25)
        assert period.label == "2026-11-25"

    def test_at_midnight_the_day_just_ended_counts_as_today(self) -> None:
        """At 00:00 today has no time yet; 1d is the whole day before rather than an empty period."""
        period = last_days(berlin(2026, 11, 25), BERLIN, 1)
        assert (period.start, period.end) == (berlin(2026, 11, 24), berlin(2026, 11, 25))
        assert last_days(berlin(2026, 11, 25), BERLIN, 7).label == "2026-11-18 – 2026-11-24"

    def test_the_start_is_local_midnight_across_a_dst_change(self) -> None:
        """Ten days back from 2026-11-03 start at 00:00 CEST on 2026-10-25, not at 23:00 or 01:00."""
        period = last_days(berlin(2026, 11, 3, 12), BERLIN, 10)
        assert period.start == utc(2026, 10, 24, 22)
        assert period.first_day == date(2026, 10, 25)

    @pytest.mark.parametrize("days", [0, -3, 367])
    def test_a_number_of_days_outside_1_to_366_is_rejected(self, days: int) -> None:
        """Zero days is empty, more than a (leap) year is beyond what a report covers."""
        with pytest.raises(ValueError, match="1 to 366"):
            last_days(WEDNESDAY, BERLIN, days)


class TestBetween:
    def test_both_days_are_included(self) -> None:
        """2026-11-02..2026-11-15 runs from 2026-11-02 00:00 to 2026-11-16 00:00 in Berlin."""
        period = between(date(2026, 11, 2), date(2026, 11, 15), BERLIN)
        assert (period.start, period.end) == (utc(2026, 11, 1, 23), utc(2026, 11, 15, 23))
        assert period.label == "2026-11-02 – 2026-11-15"

    def test_the_day_the_clocks_go_back_is_25_hours(self) -> None:
        """Boundaries at local midnights make a DST day as long as it really is."""
        assert hours(between(date(2026, 10, 25), date(2026, 10, 25), BERLIN)) == 25

    def test_a_day_whose_midnight_is_skipped_starts_when_the_clocks_jump(self) -> None:
        """Santiago skips 2026-09-06 00:00; that day starts at 01:00 (04:00 UTC) and is 23 hours long."""
        day = between(date(2026, 9, 6), date(2026, 9, 6), SANTIAGO)
        assert day.start == utc(2026, 9, 6, 4)
        assert hours(day) == 23
        assert between(date(2026, 9, 5), date(2026, 9, 5), SANTIAGO).end == day.start

    def test_a_period_ending_before_it_starts_is_rejected(self) -> None:
        """Swapped dates are a typo the manager should see, not an empty report."""
        with pytest.raises(PeriodError, match=r"ends before it starts: 2026-11-15\.\.2026-11-02"):
            between(date(2026, 11, 15), date(2026, 11, 2), BERLIN)

    def test_a_whole_leap_year_is_allowed_but_not_a_day_more(self) -> None:
        """366 days is the limit; 367 says how long the span was."""
        assert between(date(2028, 1, 1), date(2028, 12, 31), BERLIN).days == 366
        with pytest.raises(PeriodError, match="is 367 days long; a report covers at most 366"):
            between(date(2028, 1, 1), date(2029, 1, 1), BERLIN)

    def test_the_error_is_a_value_error(self) -> None:
        """Callers that only know ValueError still catch it."""
        assert issubclass(PeriodError, ValueError)


class TestParsePeriod:
    @pytest.mark.parametrize("text", [None, "", "   "])
    def test_nothing_means_the_last_complete_week(self, text: str | None) -> None:
        """/report alone shows the same week as the weekly summary."""
        assert parse_period(text, now=WEDNESDAY, zone=BERLIN) == last_complete_week(WEDNESDAY, BERLIN)

    @pytest.mark.parametrize(("text", "days"), [("1w", 7), ("2w", 14), ("4w", 28), ("52w", 364)])
    def test_weeks_are_the_last_seven_times_n_days(self, text: str, days: int) -> None:
        """4w is the last 28 days up to now, today included."""
        assert parse_period(text, now=WEDNESDAY, zone=BERLIN) == last_days(WEDNESDAY, BERLIN, days)

    @pytest.mark.parametrize(("text", "days"), [("1d", 1), ("10d", 10), ("366d", 366)])
    def test_days_are_the_last_n_days(self, text: str, days: int) -> None:
        """10d is the last ten days up to now, today included."""
        assert parse_period(text, now=WEDNESDAY, zone=BERLIN) == last_days(WEDNESDAY, BERLIN, days)

    @pytest.mark.parametrize("text", [" 4w ", "4W", "4 w", "\t4w\n"])
    def test_whitespace_and_capitals_are_tolerated(self, text: str) -> None:
        """Phones add spaces and capitalise; "4 W" means what it says."""
        assert parse_period(text, now=WEDNESDAY, zone=BERLIN) == last_days(WEDNESDAY, BERLIN, 28)

    @pytest.mark.parametrize("text", ["2026-11-02..2026-11-15", " 2026-11-02 .. 2026-11-15 "])
    def test_a_date_range_covers_both_days(self, text: str) -> None:
        """The range form is the same as ``between``."""
        expected = between(date(2026, 11, 2), date(2026, 11, 15), BERLIN)
        assert parse_period(text, now=WEDNESDAY, zone=BERLIN) == expected

    def test_a_range_may_end_after_today(self) -> None:
        """The days still to come simply have no answers yet."""
        period = parse_period("2026-11-20..2026-11-30", now=WEDNESDAY, zone=BERLIN)
        assert period.label == "2026-11-20 – 2026-11-30"

    def test_a_range_starting_today_is_not_in_the_future(self) -> None:
        """Today is a day the manager may ask about."""
        assert parse_period("2026-11-25..2026-11-25", now=WEDNESDAY, zone=BERLIN).label == "2026-11-25"

    def test_a_range_starting_after_today_is_rejected_with_todays_date(self) -> None:
        """A start in the future is a typo (often the wrong month); the message says what today is."""
        with pytest.raises(PeriodError) as caught:
            parse_period("2026-11-26..2026-11-30", now=WEDNESDAY, zone=BERLIN)
        assert str(caught.value) == "2026-11-26..2026-11-30 starts in the future (today is 2026-11-25)."

    @pytest.mark.parametrize(
        "text", ["abc", "4", "w", "-4w", "4.5w", "4m", "2026-11-02", "2026-11-02..", "2026/11/02..2026/11/15"]
    )
    def test_unknown_forms_are_rejected_with_the_accepted_forms(self, text: str) -> None:
        """The manager reads the message in Telegram and learns from it what to type."""
        with pytest.raises(PeriodError) as caught:
            parse_period(text, now=WEDNESDAY, zone=BERLIN)
        assert str(caught.value) == (
            f'Unknown period "{text}". Use 4w (last 4 weeks), 10d, or 2026-11-02..2026-11-15.'
        )

    def test_the_rejected_text_is_quoted_without_the_surrounding_whitespace(self) -> None:
        """The quote shows what was typed, not the padding around it."""
        with pytest.raises(PeriodError, match=r'^Unknown period "abc"\.'):
            parse_period("  abc \n", now=WEDNESDAY, zone=BERLIN)

    def test_a_long_rejected_text_is_shortened_in_the_message(self) -> None:
        """A pasted paragraph must not come back as a wall of text."""
        with pytest.raises(PeriodError) as caught:
            parse_period("x" * 500, now=WEDNESDAY, zone=BERLIN)
        assert str(caught.value) == f'Unknown period "{"x" * 39}…". ' + (
            "Use 4w (last 4 weeks), 10d, or 2026-11-02..2026-11-15."
        )

    @pytest.mark.parametrize(("text", "message"), [("0w", "use 1w to 52w"), ("53w", "use 1w to 52w")])
    def test_weeks_outside_1_to_52_are_rejected(self, text: str, message: str) -> None:
        """The message names the range that is accepted."""
        with pytest.raises(PeriodError) as caught:
            parse_period(text, now=WEDNESDAY, zone=BERLIN)
        assert str(caught.value) == f'"{text}" is out of range: {message}.'

    @pytest.mark.parametrize("text", ["0d", "367d", "99999999999999999999d"])
    def test_days_outside_1_to_366_are_rejected(self, text: str) -> None:
        """The message names the range that is accepted."""
        with pytest.raises(PeriodError) as caught:
            parse_period(text, now=WEDNESDAY, zone=BERLIN)
        assert str(caught.value) == f'"{text}" is out of range: use 1d to 366d.'

    @pytest.mark.parametrize("text", ["2026-02-30..2026-03-01", "2026-13-01..2026-12-31"])
    def test_impossible_dates_are_rejected_by_name(self, text: str) -> None:
        """February 30 and month 13 are named, with the expected form."""
        bad = text.split("..")[0]
        with pytest.raises(PeriodError) as caught:
            parse_period(text, now=WEDNESDAY, zone=BERLIN)
        assert str(caught.value) == f'"{bad}" is not a date. Use YYYY-MM-DD, for example 2026-11-02.'

    def test_a_swapped_range_is_rejected(self) -> None:
        """The dates the other way round say so instead of giving an empty report."""
        with pytest.raises(PeriodError, match="ends before it starts"):
            parse_period("2026-11-15..2026-11-02", now=WEDNESDAY, zone=BERLIN)

    def test_a_range_over_366_days_is_rejected(self) -> None:
        """The same limit as ``between``."""
        with pytest.raises(PeriodError, match="at most 366"):
            parse_period("2024-01-01..2025-12-31", now=WEDNESDAY, zone=BERLIN)
