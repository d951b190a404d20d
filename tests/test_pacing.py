"""Telegram's limits as arithmetic: the paces never let more through than Telegram allows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from storage.pacing import GROUP_CHAT_PACE, PRIVATE_CHAT_PACE, Pace, bot_pace, chat_pace

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _send_greedily(pace: Pace, until: timedelta) -> list[datetime]:
    """Send as often as the pace allows from T0 until T0 + ``until``; return the moments."""
    moments: list[datetime] = []
    tat: datetime | None = None
    at = T0
    while True:
        at = pace.earliest(tat, at)
        if at > T0 + until:
            return moments
        moments.append(at)
        tat = pace.spend(tat, at)


def _most_in_any_window(moments: list[datetime], window: timedelta) -> int:
    return max(sum(1 for m in moments if start <= m < start + window) for start in moments)


class TestPace:
    def test_a_burst_goes_at_once_then_one_per_interval(self) -> None:
        """The first ``burst`` messages go immediately, each further one an interval later."""
        moments = _send_greedily(Pace(interval=timedelta(seconds=1), burst=3), timedelta(seconds=2))
        assert moments == [T0, T0, T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]

    def test_an_idle_bucket_refills_only_up_to_its_burst(self) -> None:
        """After a long pause a pace allows its burst again, never more."""
        pace = Pace(interval=timedelta(seconds=1), burst=2)
        tat = pace.spend(None, T0)
        later = T0 + timedelta(hours=1)
        first = pace.earliest(tat, later)
        tat = pace.spend(tat, first)
        second = pace.earliest(tat, later)
        tat = pace.spend(tat, second)
        assert (first, second) == (later, later)
        assert pace.earliest(tat, later) == later + timedelta(seconds=1)

    def test_invalid_paces_are_refused(self) -> None:
        """A pace needs a positive interval and a burst of at least one."""
        with pytest.raises(ValueError, match="positive interval"):
            Pace(interval=timedelta(0), burst=1)
        with pytest.raises(ValueError, match="burst"):
            Pace(interval=timedelta(seconds=1), burst=0)


class TestTelegramLimits:
    def test_a_group_never_gets_more_than_20_messages_in_any_minute(self) -> None:
        """Sending to a group as fast as allowed for ten minutes stays within 20 per minute."""
        moments = _send_greedily(GROUP_CHAT_PACE, timedelta(minutes=10))
        assert _most_in_any_window(moments, timedelta(minutes=1)) <= 20
        assert len(moments) >= 10 * 17  # and it does not throttle itself far below the limit

    def test_a_private_chat_stays_one_token_under_a_burst_of_four(self) -> None:
        """A private chat gets at most 3 + n messages in n seconds, under Telegram's 4 + n."""
        moments = _send_greedily(PRIVATE_CHAT_PACE, timedelta(seconds=30))
        for seconds in (1, 5, 30):
            assert _most_in_any_window(moments, timedelta(seconds=seconds)) <= 3 + seconds

    @pytest.mark.parametrize("send_rate", [1, 25, 30, 200, 1000])
    def test_the_bot_pace_sustains_exactly_the_send_rate(self, send_rate: float) -> None:
        """Over ten seconds the bot's pace allows SEND_RATE per second plus a burst of a fifth of that."""
        pace = bot_pace(send_rate)
        moments = _send_greedily(pace, timedelta(seconds=10) - timedelta(microseconds=1))
        assert len(moments) == pytest.approx(10 * send_rate + pace.burst - 1, abs=1)
        assert pace.burst <= max(1, send_rate / 5)

    def test_chats_are_told_apart_by_the_sign_of_their_id(self) -> None:
        """Private chats have positive ids; groups and supergroups negative ones."""
        assert chat_pace(42) is PRIVATE_CHAT_PACE
        assert chat_pace(-100123) is GROUP_CHAT_PACE
        assert chat_pace(-123) is GROUP_CHAT_PACE

    def test_a_non_positive_send_rate_is_refused(self) -> None:
        """SEND_RATE must be positive (settings refuse it too; this guards direct callers)."""
        with pytest.raises(ValueError, match="SEND_RATE"):
            bot_pace(0)
