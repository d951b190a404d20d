"""The weekly summary's chart: a PNG readable on a phone, also for weeks without answers."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from surveys.nps_stats import NpsCounts
from surveys.report_chart import ChartLabels, nps_chart
from surveys.report_figures import WeekNps
from surveys.report_period import weeks_back

WEEKS = weeks_back(datetime(2026, 12, 7, 8, tzinfo=UTC), ZoneInfo("Europe/Berlin"), 12)


def _size(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk, which always comes first."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def test_twelve_weeks_make_a_png_of_1200_by_900_pixels() -> None:
    weeks = [WeekNps(week, NpsCounts(10 + i, 5, 3)) for i, week in enumerate(WEEKS)]
    png = nps_chart(weeks)
    assert _size(png) == (1200, 900)
    assert len(png) < 300_000  # a photo Telegram takes in an instant


def test_weeks_without_answers_leave_a_gap_instead_of_failing() -> None:
    weeks = [
        WeekNps(week, NpsCounts(0, 0, 0) if i % 3 else NpsCounts(1, 0, 1)) for i, week in enumerate(WEEKS)
    ]
    assert _size(nps_chart(weeks, ChartLabels(title="NPS pro Woche", no_answers="keine Antworten"))) == (
        1200,
        900,
    )


def test_one_week_with_a_single_answer_has_no_margin_band_and_still_draws() -> None:
    assert _size(nps_chart([WeekNps(WEEKS[-1], NpsCounts(1, 0, 0))])) == (1200, 900)


def test_no_weeks_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one week"):
        nps_chart([])
