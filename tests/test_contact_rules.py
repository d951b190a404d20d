"""Tests for surveys.contact_rules: quiet hours, cooldown, weekly cap and the skip reasons.

Every datetime is explicit and aware; Europe/Berlin is UTC+1 in November (CET) and UTC+2 in summer
(CEST). The clocks change on 2026-03-29 (02:00 -> 03:00) and 2026-10-25 (03:00 -> 02:00).
"""

from __future__ import annotations

import datetime
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest

from surveys.contact_rules import (
    ContactDecision,
    ContactHistory,
    ContactKind,
    ContactPolicy,
    ContactReason,
    QuietHours,
    decide,
    within_week,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
NIGHT = QuietHours(datetime.time(21, 0), datetime.time(9, 0))


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime.datetime:
    """An aware UTC instant, so no test depends on the machine's zone or clock."""
    return datetime.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def policy(
    quiet_hours: QuietHours | None = NIGHT,
    *,
    cooldown_days: int = 30,
    cap: int = 2,
    max_age_days: int = 14,
) -> ContactPolicy:
    """The default settings (21:00-09:00 Berlin, 30 days, 2 a week, 14 days) unless a test says otherwise."""
    return ContactPolicy(
        quiet_hours=quiet_hours,
        zone=BERLIN,
        survey_cooldown=timedelta(days=cooldown_days),
        max_proactive_per_week=cap,
        survey_max_age=timedelta(days=max_age_days),
    )


def survey(
    at: datetime.datetime,
    history: ContactHistory | None = None,
    *,
    rules: ContactPolicy | None = None,
    purchased_at: datetime.datetime | None = None,
) -> ContactDecision:
    """Decide a survey with the default policy and an empty history unless given."""
    return decide(
        ContactKind.SURVEY,
        at=at,
        policy=rules or policy(),
        history=history or ContactHistory(),
        purchased_at=purchased_at,
    )


def berlin_time(moment: datetime.datetime) -> str:
    """The Berlin wall clock of an instant, for readable assertions."""
    return f"{moment.astimezone(BERLIN):%Y-%m-%d %H:%M}"


class TestQuietHoursParse:
    @pytest.mark.parametrize(
        ("text", "start", "end"),
        [
            ("21:00-09:00", datetime.time(21), datetime.time(9)),
            ("21-9", datetime.time(21), datetime.time(9)),
            ("21:00–09:00", datetime.time(21), datetime.time(9)),
            ("  21:00 - 09:00  ", datetime.time(21), datetime.time(9)),
            ("9:30-21:15", datetime.time(9, 30), datetime.time(21, 15)),
            ("0-6", datetime.time(0), datetime.time(6)),
            ("12:00-14:00", datetime.time(12), datetime.time(14)),
        ],
    )
    def test_accepts_the_forms_a_shop_owner_writes(
        self, text: str, start: datetime.time, end: datetime.time
    ) -> None:
        """Full times, bare hours, an en dash and spaces around all mean the same span."""
        assert QuietHours.parse(text) == QuietHours(start, end)

    @pytest.mark.parametrize("text", ["", "   ", "\t"])
    def test_empty_setting_means_no_quiet_hours(self, text: str) -> None:
        """An empty QUIET_HOURS switches quiet hours off instead of being an error."""
        assert QuietHours.parse(text) is None

    def test_hour_25_gets_the_documented_message(self) -> None:
        """The message quotes the setting and shows the expected form with an example."""
        with pytest.raises(ValueError, match=r"^QUIET_HOURS '25:00-09:00'") as error:
            QuietHours.parse("25:00-09:00")
        assert str(error.value) == (
            "QUIET_HOURS '25:00-09:00': expected HH:MM-HH:MM, for example 21:00-09:00 (empty for none)"
        )

    @pytest.mark.parametrize(
        "text",
        [
            "24:00-09:00",
            "21:60-09:00",
            "21:00",
            "21:00-",
            "-09:00",
            "nachts",
            "21:00-09:00-10:00",
            "21.00-09.00",
            "21:0-09:00",
            "21:00 09:00",
            "١٢-١٤",  # Arabic-Indic digits are digits to Python's \d, not to a shop owner's .env
        ],
    )
    def test_each_malformed_setting_is_a_clear_error(self, text: str) -> None:
        """Out-of-range times, missing halves and other separators all name the setting and the form."""
        with pytest.raises(ValueError, match=r"expected HH:MM-HH:MM, for example 21:00-09:00") as error:
            QuietHours.parse(text)
        assert str(error.value).startswith(f"QUIET_HOURS '{text}': ")

    @pytest.mark.parametrize("text", ["09:00-09:00", "9-9", "0:00-00:00"])
    def test_equal_start_and_end_is_an_error(self, text: str) -> None:
        """A span from 09:00 to 09:00 could mean never or always quiet, so it is refused."""
        with pytest.raises(ValueError, match=r"start and end are the same time") as error:
            QuietHours.parse(text)
        assert "for example 21:00-09:00" in str(error.value)

    def test_constructing_equal_ends_directly_is_an_error_too(self) -> None:
        """Code that builds QuietHours without parsing cannot create the ambiguous span either."""
        with pytest.raises(ValueError, match="different start and end"):
            QuietHours(datetime.time(9), datetime.time(9))

    @pytest.mark.parametrize(("text", "shown"), [("21-9", "21:00-09:00"), ("9:30 – 21:15", "09:30-21:15")])
    def test_str_is_the_canonical_setting(self, text: str, shown: str) -> None:
        """str() gives back HH:MM-HH:MM, which the settings store and which parses to the same span."""
        quiet = QuietHours.parse(text)
        assert str(quiet) == shown
        assert QuietHours.parse(shown) == quiet


class TestQuietHoursContains:
    @pytest.mark.parametrize(
        ("local", "quiet"),
        [
            (datetime.time(21, 0), True),
            (datetime.time(23, 59), True),
            (datetime.time(0, 0), True),
            (datetime.time(8, 59, 59), True),
            (datetime.time(9, 0), False),
            (datetime.time(12, 0), False),
            (datetime.time(20, 59, 59), False),
        ],
    )
    def test_span_across_midnight_includes_its_start_and_excludes_its_end(
        self, local: datetime.time, quiet: bool
    ) -> None:
        """21:00-09:00 is quiet from 21:00 sharp through the night until just before 09:00."""
        assert NIGHT.contains(local) is quiet

    @pytest.mark.parametrize(
        ("local", "quiet"),
        [
            (datetime.time(11, 59), False),
            (datetime.time(12, 0), True),
            (datetime.time(13, 59), True),
            (datetime.time(14, 0), False),
            (datetime.time(23, 0), False),
            (datetime.time(0, 0), False),
        ],
    )
    def test_same_day_span_covers_only_the_hours_between(self, local: datetime.time, quiet: bool) -> None:
        """A lunch break such as 12:00-14:00 does not wrap around midnight."""
        assert QuietHours(datetime.time(12), datetime.time(14)).contains(local) is quiet

    def test_an_aware_time_is_judged_by_its_wall_clock(self) -> None:
        """A time carrying a tzinfo is compared by hour and minute, not rejected."""
        assert NIGHT.contains(datetime.time(22, 0, tzinfo=UTC))


class TestNextAllowed:
    def test_a_moment_outside_quiet_hours_is_returned_unchanged(self) -> None:
        """Noon in Berlin is allowed, and the very same instant comes back."""
        moment = utc(2026, 11, 10, 11, 0)
        assert NIGHT.next_allowed(moment, BERLIN) is moment

    def test_after_midnight_waits_for_the_same_morning(self) -> None:
        """06:30 Berlin on 2026-11-10 becomes 09:00 Berlin that day (08:00 UTC)."""
        assert NIGHT.next_allowed(utc(2026, 11, 10, 5, 30), BERLIN) == utc(2026, 11, 10, 8, 0)

    def test_quiet_hours_across_midnight_move_a_late_evening_send_to_the_next_morning(self) -> None:
        """22:30 Berlin on 2026-11-10 becomes 09:00 Berlin on 2026-11-11."""
        assert NIGHT.next_allowed(utc(2026, 11, 10, 21, 30), BERLIN) == utc(2026, 11, 11, 8, 0)

    def test_the_start_of_quiet_hours_is_already_quiet(self) -> None:
        """21:00 sharp is inside the span, so it waits for the morning."""
        assert NIGHT.next_allowed(utc(2026, 11, 10, 20, 0), BERLIN) == utc(2026, 11, 11, 8, 0)

    def test_the_end_of_quiet_hours_is_allowed(self) -> None:
        """09:00 sharp is outside the span."""
        moment = utc(2026, 11, 10, 8, 0)
        assert NIGHT.next_allowed(moment, BERLIN) == moment

    def test_a_same_day_span_ends_on_the_same_day(self) -> None:
        """12:30 Berlin inside 12:00-14:00 waits until 14:00 Berlin the same day."""
        lunch = QuietHours(datetime.time(12), datetime.time(14))
        assert lunch.next_allowed(utc(2026, 11, 10, 11, 30), BERLIN) == utc(2026, 11, 10, 13, 0)

    def test_a_postponed_instant_is_in_utc(self) -> None:
        """Callers store and compare UTC, whatever zone the quiet hours were computed in."""
        moment = datetime.datetime(2026, 11, 10, 6, 30, tzinfo=BERLIN)
        allowed = NIGHT.next_allowed(moment, BERLIN)
        assert allowed.tzinfo is UTC
        assert allowed == utc(2026, 11, 10, 8, 0)

    def test_a_naive_moment_is_refused(self) -> None:
        """Without a zone the moment could be any instant, so it is an error rather than a guess."""
        with pytest.raises(ValueError, match="timezone-aware"):
            NIGHT.next_allowed(datetime.datetime(2026, 11, 10, 6, 30), BERLIN)  # noqa: DTZ001

    def test_the_morning_comes_at_local_time_in_new_york(self) -> None:
        """07:00 in New York (12:00 UTC, allowed in Berlin) waits for 09:00 New York, 14:00 UTC."""
        assert NIGHT.next_allowed(utc(2026, 11, 10, 12, 0), NEW_YORK) == utc(2026, 11, 10, 14, 0)

    def test_the_morning_comes_at_local_time_in_tokyo(self) -> None:
        """22:00 in Tokyo (13:00 UTC, allowed in Berlin) waits for 09:00 Tokyo, 00:00 UTC next day."""
        assert NIGHT.next_allowed(utc(2026, 11, 10, 13, 0), TOKYO) == utc(2026, 11, 11, 0, 0)


class TestNextAllowedOnDstDays:
    def test_night_before_spring_forward_ends_at_nine_summer_time(self) -> None:
        """22:00 CET on 2026-03-28 waits for 09:00 CEST on 2026-03-29: 07:00 UTC, not 08:00."""
        assert NIGHT.next_allowed(utc(2026, 3, 28, 21, 0), BERLIN) == utc(2026, 3, 29, 7, 0)

    def test_an_end_inside_the_spring_forward_gap_becomes_the_first_instant_after_it(self) -> None:
        """02:30 does not exist on 2026-03-29; quiet hours ending then end at 03:00 CEST (01:00 UTC)."""
        quiet = QuietHours(datetime.time(21), datetime.time(2, 30))
        allowed = quiet.next_allowed(utc(2026, 3, 29, 0, 0), BERLIN)
        assert allowed == utc(2026, 3, 29, 1, 0)
        assert berlin_time(allowed) == "2026-03-29 03:00"

    def test_an_end_inside_the_gap_never_lands_inside_quiet_hours(self) -> None:
        """02:45-02:30 allows only 02:30-02:45, which 2026-03-29 skips: the next allowed is a day later."""
        quiet = QuietHours(datetime.time(2, 45), datetime.time(2, 30))
        allowed = quiet.next_allowed(utc(2026, 3, 28, 23, 0), BERLIN)
        assert berlin_time(allowed) == "2026-03-30 02:30"
        assert not quiet.contains(allowed.astimezone(BERLIN).time())

    def test_night_before_fall_back_ends_at_nine_winter_time(self) -> None:
        """22:00 CEST on 2026-10-24 waits for 09:00 CET on 2026-10-25: 08:00 UTC, not 07:00."""
        assert NIGHT.next_allowed(utc(2026, 10, 24, 20, 0), BERLIN) == utc(2026, 10, 25, 8, 0)

    def test_an_ambiguous_end_on_fall_back_day_is_its_first_occurrence(self) -> None:
        """02:30 happens twice on 2026-10-25; quiet hours ending then end at 02:30 CEST (00:30 UTC)."""
        quiet = QuietHours(datetime.time(21), datetime.time(2, 30))
        assert quiet.next_allowed(utc(2026, 10, 24, 21, 0), BERLIN) == utc(2026, 10, 25, 0, 30)

    def test_during_the_repeated_hour_the_second_occurrence_is_used(self) -> None:
        """At 02:10 CET (the second 02:10) the first 02:30 has passed, so it ends at 02:30 CET."""
        quiet = QuietHours(datetime.time(21), datetime.time(2, 30))
        moment = utc(2026, 10, 25, 1, 10)
        allowed = quiet.next_allowed(moment, BERLIN)
        assert allowed == utc(2026, 10, 25, 1, 30)
        assert allowed > moment

    def test_new_york_changes_its_clocks_on_other_days_than_berlin(self) -> None:
        """On 2026-03-28 New York is already on EDT (UTC-4) while Berlin is still on CET."""
        assert NIGHT.next_allowed(utc(2026, 3, 28, 10, 0), NEW_YORK) == utc(2026, 3, 28, 13, 0)


class TestSkips:
    def test_a_customer_who_said_stop_gets_nothing(self) -> None:
        """/stop skips every kind of unprompted message."""
        history = ContactHistory(stopped=True)
        for kind in ContactKind:
            decision = decide(kind, at=utc(2026, 11, 10, 10), policy=policy(), history=history)
            assert decision.skipped is ContactReason.STOPPED
            assert decision.send_at is None
            assert not decision.sent
            assert decision.explanation == "skipped: the customer said /stop"

    def test_stop_outranks_every_other_reason(self) -> None:
        """A stopped customer is reported as stopped even when also unreachable, paused and surveyed."""
        history = ContactHistory(
            stopped=True,
            reachable=False,
            paused_until=utc(2026, 12, 1),
            last_survey_at=utc(2026, 11, 9),
        )
        assert survey(utc(2026, 11, 10, 10), history).skipped is ContactReason.STOPPED

    def test_an_unreachable_customer_gets_nothing(self) -> None:
        """A customer who blocked the bot or never opened it cannot be messaged."""
        decision = survey(
            utc(2026, 11, 10, 10), ContactHistory(reachable=False, paused_until=utc(2026, 12, 1))
        )
        assert decision.skipped is ContactReason.UNREACHABLE
        assert decision.explanation == "skipped: the customer blocked the bot or never opened it"

    def test_a_paused_customer_gets_nothing_until_the_pause_ends(self) -> None:
        """paused_until in the future skips the message and says until when, in local time."""
        decision = decide(
            ContactKind.CHECKIN,
            at=utc(2026, 11, 10, 10),
            policy=policy(),
            history=ContactHistory(paused_until=utc(2026, 11, 20, 9)),
        )
        assert decision.skipped is ContactReason.PAUSED
        assert decision.explanation == (
            "skipped: the customer paused messages until 2026-11-20 10:00 (Europe/Berlin)"
        )

    @pytest.mark.parametrize("paused_until", [utc(2026, 11, 10, 10), utc(2026, 11, 1)])
    def test_a_pause_that_has_ended_allows_the_message(self, paused_until: datetime.datetime) -> None:
        """A pause ending now or in the past no longer stops anything."""
        decision = survey(utc(2026, 11, 10, 10), ContactHistory(paused_until=paused_until))
        assert decision.sent and decision.skipped is None

    def test_a_purchase_reported_too_late_triggers_no_survey(self) -> None:
        """40 days after the purchase is more than SURVEY_MAX_AGE 14 days."""
        decision = survey(utc(2026, 11, 10, 10), purchased_at=utc(2026, 10, 1, 10))
        assert decision.skipped is ContactReason.TOO_OLD
        assert decision.explanation == (
            "skipped: the purchase on 2026-10-01 is 40 days old, more than SURVEY_MAX_AGE 14 days"
        )

    def test_a_purchase_exactly_at_the_maximum_age_is_still_surveyed(self) -> None:
        """The limit is "more than", so exactly 14 days old is fine."""
        assert survey(utc(2026, 11, 10, 10), purchased_at=utc(2026, 10, 27, 10)).sent

    def test_the_age_shows_hours_when_they_matter(self) -> None:
        """14 days and 3 hours is too old, and the explanation does not round it down to 14 days."""
        decision = survey(utc(2026, 11, 10, 13), purchased_at=utc(2026, 10, 27, 10))
        assert decision.skipped is ContactReason.TOO_OLD
        assert "is 14 days 3 hours old" in decision.explanation

    @pytest.mark.parametrize("kind", [ContactKind.REMINDER, ContactKind.CHECKIN])
    def test_age_and_cooldown_apply_only_to_surveys(self, kind: ContactKind) -> None:
        """A reminder or check-in is no new survey: neither the purchase age nor the cooldown skip it."""
        decision = decide(
            kind,
            at=utc(2026, 11, 10, 10),
            policy=policy(),
            history=ContactHistory(last_survey_at=utc(2026, 11, 9, 10)),
            purchased_at=utc(2026, 10, 1),
        )
        assert decision.sent and decision.kind is kind

    def test_a_second_survey_inside_the_cooldown_is_skipped(self) -> None:
        """Another order 11 days after a survey gets no survey, and the explanation says when one may go."""
        decision = survey(utc(2026, 12, 1, 10), ContactHistory(last_survey_at=utc(2026, 11, 20, 10)))
        assert decision.skipped is ContactReason.COOLDOWN
        assert decision.postponed == ()
        assert decision.explanation == (
            "skipped: a survey was sent on 2026-11-20, within the 30-day cooldown (next possible 2026-12-20)"
        )

    def test_the_cooldown_ends_after_exactly_its_length(self) -> None:
        """30 days to the second after the last survey a new one may go."""
        assert survey(utc(2026, 12, 20, 10), ContactHistory(last_survey_at=utc(2026, 11, 20, 10))).sent

    def test_a_cooldown_of_hours_is_explained_in_hours(self) -> None:
        """A cooldown that is not whole days is not rounded to a misleading day count."""
        rules = ContactPolicy(NIGHT, BERLIN, timedelta(hours=36), 2, timedelta(days=14))
        decision = survey(
            utc(2026, 11, 10, 10), ContactHistory(last_survey_at=utc(2026, 11, 9, 10)), rules=rules
        )
        assert decision.skipped is ContactReason.COOLDOWN
        assert "within the cooldown of 1 day 12 hours" in decision.explanation

    def test_too_old_is_reported_before_the_cooldown(self) -> None:
        """An old purchase is the more useful reason: it would be skipped even without a recent survey."""
        decision = survey(
            utc(2026, 11, 10, 10),
            ContactHistory(last_survey_at=utc(2026, 11, 9)),
            purchased_at=utc(2026, 10, 1),
        )
        assert decision.skipped is ContactReason.TOO_OLD

    def test_skip_explanations_use_the_customers_own_zone(self) -> None:
        """A Tokyo customer's survey on 2026-11-20 08:00 local was 2026-11-19 in UTC and Berlin."""
        history = ContactHistory(last_survey_at=utc(2026, 11, 19, 23), zone=TOKYO)
        decision = survey(utc(2026, 12, 1, 3), history)
        assert "a survey was sent on 2026-11-20" in decision.explanation
        assert "(next possible 2026-12-20)" in decision.explanation


class TestWeeklyCap:
    def test_within_week_counts_the_seven_days_ending_now(self) -> None:
        """An instant exactly 7 days ago has left the window; one exactly now is in it."""
        now = utc(2026, 11, 10, 10)
        instants = [
            now - timedelta(days=7),
            now - timedelta(days=7) + timedelta(seconds=1),
            now,
            utc(2026, 11, 11),
        ]
        assert within_week(instants, now) == 2

    def test_a_full_week_postpones_until_the_oldest_message_leaves_it(self) -> None:
        """Two messages in the last 7 days: the third waits until 7 days after the older one."""
        history = ContactHistory(proactive_sent=(utc(2026, 11, 5, 10), utc(2026, 11, 8, 10)))
        decision = decide(ContactKind.REMINDER, at=utc(2026, 11, 10, 10), policy=policy(), history=history)
        assert decision.send_at == utc(2026, 11, 12, 10)
        assert decision.postponed == (ContactReason.WEEKLY_CAP,)
        assert decision.skipped is None and decision.sent
        assert decision.requested_at == utc(2026, 11, 10, 10)
        assert decision.explanation == (
            "the limit of 2 unprompted messages in 7 days moves it "
            "from 2026-11-10 11:00 to 2026-11-12 11:00 (Europe/Berlin)"
        )

    def test_room_in_the_week_sends_as_asked(self) -> None:
        """One message in the window and a cap of 2 leaves room for another."""
        history = ContactHistory(proactive_sent=(utc(2026, 11, 8, 10),))
        decision = survey(utc(2026, 11, 10, 10), history)
        assert decision.send_at == utc(2026, 11, 10, 10)
        assert decision.postponed == ()
        assert decision.explanation == "sent as asked at 2026-11-10 11:00 (Europe/Berlin)"

    def test_a_message_exactly_a_week_old_no_longer_counts(self) -> None:
        """The window is open at its start, so 7 days to the second later there is room."""
        history = ContactHistory(proactive_sent=(utc(2026, 11, 3, 10), utc(2026, 11, 8, 10)))
        assert survey(utc(2026, 11, 10, 10), history).send_at == utc(2026, 11, 10, 10)

    def test_the_cap_moves_on_until_the_window_has_room(self) -> None:
        """Three messages, a cap of 2: the first move still leaves two in the window, the second frees it."""
        sent = (utc(2026, 11, 4, 10), utc(2026, 11, 6, 10), utc(2026, 11, 9, 10))
        decision = survey(utc(2026, 11, 10, 10), ContactHistory(proactive_sent=sent))
        assert decision.send_at == utc(2026, 11, 13, 10)
        assert within_week(sent, decision.send_at) < 2
        assert decision.postponed == (ContactReason.WEEKLY_CAP,)

    def test_a_cap_of_one_allows_one_message_a_week(self) -> None:
        """MAX_PROACTIVE_PER_WEEK=1 postpones a check-in two days after a survey by five days."""
        history = ContactHistory(proactive_sent=(utc(2026, 11, 8, 10),))
        decision = decide(
            ContactKind.CHECKIN, at=utc(2026, 11, 10, 10), policy=policy(cap=1), history=history
        )
        assert decision.send_at == utc(2026, 11, 15, 10)
        assert "the limit of 1 unprompted message in 7 days" in decision.explanation

    def test_a_cap_below_one_is_refused(self) -> None:
        """A cap of 0 would postpone every message forever, so the policy cannot hold it."""
        with pytest.raises(ValueError, match="at least 1"):
            policy(cap=0)


class TestQuietHoursInDecide:
    def test_quiet_hours_across_midnight_move_a_send_to_the_morning(self) -> None:
        """A survey asked for at 06:30 Berlin waits until 09:00 and says so."""
        decision = survey(utc(2026, 11, 10, 5, 30))
        assert decision.send_at == utc(2026, 11, 10, 8, 0)
        assert decision.postponed == (ContactReason.QUIET_HOURS,)
        assert (
            decision.explanation
            == "quiet hours 21:00-09:00 (Europe/Berlin) move it from 06:30 to 09:00 on 2026-11-10"
        )

    def test_an_evening_send_moves_to_the_next_day_with_both_dates(self) -> None:
        """A move across midnight names both dates, so "from 22:30 to 09:00" cannot be misread."""
        decision = survey(utc(2026, 11, 10, 21, 30))
        assert decision.explanation == (
            "quiet hours 21:00-09:00 (Europe/Berlin) move it from 2026-11-10 22:30 to 2026-11-11 09:00"
        )

    def test_without_quiet_hours_a_night_send_goes_as_asked(self) -> None:
        """QUIET_HOURS empty (None) lets a message go at 03:00 local."""
        decision = survey(utc(2026, 11, 10, 2), rules=policy(QuietHours.parse("")))
        assert decision.send_at == utc(2026, 11, 10, 2)
        assert decision.postponed == ()

    def test_a_new_york_customer_waits_for_their_own_morning(self) -> None:
        """12:00 UTC is 13:00 in Berlin but 07:00 in New York: the customer's zone wins."""
        decision = survey(utc(2026, 11, 10, 12), ContactHistory(zone=NEW_YORK))
        assert decision.send_at == utc(2026, 11, 10, 14)
        assert decision.explanation == (
            "quiet hours 21:00-09:00 (America/New_York) move it from 07:00 to 09:00 on 2026-11-10"
        )

    def test_a_tokyo_customer_is_messaged_while_berlin_sleeps(self) -> None:
        """06:00 UTC is 07:00 in Berlin (quiet) but 15:00 in Tokyo (allowed)."""
        at = utc(2026, 11, 10, 6)
        assert survey(at, ContactHistory(zone=TOKYO)).send_at == at
        assert survey(at).send_at == utc(2026, 11, 10, 8)

    def test_a_cap_postponement_landing_in_quiet_hours_moves_on_to_the_morning(self) -> None:
        """The cap frees the week at 22:30 Berlin, which is quiet, so the survey goes at 09:00 next day."""
        history = ContactHistory(proactive_sent=(utc(2026, 11, 5, 21, 30), utc(2026, 11, 8, 10)))
        decision = survey(utc(2026, 11, 10, 10), history)
        assert decision.send_at == utc(2026, 11, 13, 8)
        assert decision.postponed == (ContactReason.WEEKLY_CAP, ContactReason.QUIET_HOURS)
        assert decision.explanation == (
            "the limit of 2 unprompted messages in 7 days moves it from 2026-11-10 11:00 to 2026-11-12 22:30 "
            "(Europe/Berlin), then quiet hours 21:00-09:00 move it on to 2026-11-13 09:00"
        )

    def test_a_morning_send_after_quiet_hours_can_still_hit_the_cap(self) -> None:
        """At 06:30 the week has room, but a message planned for 08:00 Berlin fills it by 09:00 Berlin."""
        history = ContactHistory(proactive_sent=(utc(2026, 11, 6, 10), utc(2026, 11, 10, 7, 0)))
        decision = survey(utc(2026, 11, 10, 5, 30), history)
        assert decision.send_at == utc(2026, 11, 13, 10)
        assert decision.postponed == (ContactReason.QUIET_HOURS, ContactReason.WEEKLY_CAP)
        assert decision.explanation.startswith(
            "quiet hours 21:00-09:00 (Europe/Berlin) move it from 06:30 to 09:00 on 2026-11-10, "
            "then the limit of 2 unprompted messages in 7 days moves it on to 2026-11-13 11:00"
        )

    def test_the_rules_settle_on_a_time_that_satisfies_both_across_the_march_clock_change(self) -> None:
        """Every half hour of the DST week: never earlier than asked, never in quiet hours, never over cap."""
        sent = (
            utc(2026, 3, 22, 20, 15),
            utc(2026, 3, 24, 6, 0),
            utc(2026, 3, 26, 19, 45),
            utc(2026, 3, 28, 23, 30),
            utc(2026, 3, 29, 0, 30),
        )
        history = ContactHistory(proactive_sent=sent)
        start = utc(2026, 3, 25, 0, 0)
        for step in range(7 * 48):
            at = start + step * timedelta(minutes=30)
            decision = survey(at, history)
            assert decision.send_at is not None
            assert decision.send_at >= at
            assert not NIGHT.contains(decision.send_at.astimezone(BERLIN).time())
            assert within_week(sent, decision.send_at) < 2
            assert (decision.send_at == at) is (decision.postponed == ())

    def test_a_naive_request_time_is_refused(self) -> None:
        """decide works on instants; a naive datetime would be read in whatever zone the server has."""
        with pytest.raises(ValueError, match="at must be a timezone-aware"):
            survey(datetime.datetime(2026, 11, 10, 10))  # noqa: DTZ001

    def test_a_naive_history_timestamp_is_refused_where_it_is_built(self) -> None:
        """The error names the field instead of surfacing later as a comparison TypeError."""
        with pytest.raises(ValueError, match="last_survey_at must be a timezone-aware"):
            ContactHistory(last_survey_at=datetime.datetime(2026, 11, 10, 10))  # noqa: DTZ001


def test_reason_and_kind_values_are_the_stored_strings() -> None:
    """The enum values are written into the contact log and must not change."""
    assert [kind.value for kind in ContactKind] == ["survey", "reminder", "checkin"]
    assert [reason.value for reason in ContactReason] == [
        "cooldown",
        "weekly_cap",
        "quiet_hours",
        "paused",
        "stopped",
        "unreachable",
        "expired",
        "too_old",
    ]
