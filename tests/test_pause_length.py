"""How /pause reads the length a customer writes."""

from __future__ import annotations

import pytest

from handlers.customer_commands import pause_days


class TestPauseLength:
    @pytest.mark.parametrize(
        ("args", "days"),
        [([], 30), (["90d"], 90), (["90"], 90), (["2w"], 14), (["3", "Wochen"], 21), (["10", "Tage"], 10)],
    )
    def test_pause_reads_the_lengths_people_write(self, args: list[str], days: int) -> None:
        """/pause alone is 30 days; a number of days or weeks, in German or English, sets another."""
        assert pause_days(args) == days

    @pytest.mark.parametrize("args", [["forever"], ["0d"], ["400d"], ["-5"], ["1y"]])
    def test_pause_refuses_what_it_cannot_read_or_is_out_of_range(self, args: list[str]) -> None:
        """Unreadable lengths and lengths outside 1-365 days get the explanation, not a guess."""
        assert pause_days(args) is None
