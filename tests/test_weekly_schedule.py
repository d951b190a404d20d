"""WEEKLY_SUMMARY_CRON read as cron means it (Sunday is 0 and 7), in TIMEZONE, across DST."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.weekly_schedule import ScheduleError, WeeklySchedule
from tests.report_shop import BERLIN

MONDAY_9 = WeeklySchedule("0 9 * * 1", BERLIN)


def test_the_default_is_monday_at_nine_in_the_shops_zone() -> None:
    """Monday 2026-12-07 09:00 in Berlin is 08:00 UTC (APScheduler alone would say Tuesday)."""
    assert MONDAY_9.latest(datetime(2026, 12, 7, 8, 30, tzinfo=UTC)) == datetime(
        2026, 12, 7, 8, 0, tzinfo=UTC
    )


def test_before_the_time_the_latest_is_last_weeks() -> None:
    assert MONDAY_9.latest(datetime(2026, 12, 7, 7, 59, tzinfo=UTC)) == datetime(
        2026, 11, 30, 8, 0, tzinfo=UTC
    )


def test_the_moment_itself_counts_as_due() -> None:
    due = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    assert MONDAY_9.latest(due) == due
    assert MONDAY_9.next_after(due) == datetime(2026, 12, 14, 8, 0, tzinfo=UTC)


def test_summer_time_keeps_nine_oclock_local() -> None:
    """After the spring change (2026-03-29) 09:00 in Berlin is 07:00 UTC."""
    assert MONDAY_9.latest(datetime(2026, 3, 30, 7, 30, tzinfo=UTC)) == datetime(
        2026, 3, 30, 7, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("30 8 * * 0", datetime(2026, 12, 6, 7, 30, tzinfo=UTC)),  # Sunday as 0
        ("30 8 * * 7", datetime(2026, 12, 6, 7, 30, tzinfo=UTC)),  # and as 7
        ("30 8 * * sun", datetime(2026, 12, 6, 7, 30, tzinfo=UTC)),
        ("0 9 * * 1-5", datetime(2026, 12, 9, 8, 0, tzinfo=UTC)),  # Wednesday
        ("0 18 * * 5-7", datetime(2026, 12, 6, 17, 0, tzinfo=UTC)),  # Friday to Sunday
    ],
)
def test_cron_weekdays(expression: str, expected: datetime) -> None:
    assert WeeklySchedule(expression, BERLIN).latest(datetime(2026, 12, 9, 10, 0, tzinfo=UTC)) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 9 * *", "has 4 fields; a cron expression has five"),
        ("0 25 * * 1", r"higher than the maximum value \(23\)"),
        ("0 9 * * 8", "day of week '8' is not 0-7 or sun-sat"),
        ("0 9 * * 5-2", "runs backwards"),
        ("0 9 * * 1/0", "is not a positive number"),
    ],
)
def test_a_wrong_expression_says_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        WeeklySchedule(expression, BERLIN)
