"""When the bot may message a customer unprompted, and why not.

A survey, a survey reminder or a check-in with a customer who went quiet is a message the customer did
not ask for. Too many of them, or one at night, and the customer blocks the bot: then the shop loses the
one channel that catches unhappy customers. So every unprompted message goes through ``decide``, which
either skips it (with a reason), postpones it (with the reasons that moved it) or lets it go as asked,
and says so in one sentence an operator can read in ``kundenpuls why``.

Pure functions on aware datetimes: the caller loads the history and stores the decision. Quiet hours are
wall-clock times, so they are computed on local time in the customer's (or the shop's) zone and converted
back to UTC, which keeps them right on the days the clocks change.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from surveys.silence import Rhythm

WEEK = datetime.timedelta(days=7)

_UTC = datetime.UTC
_QUIET_HOURS = re.compile(r"\s*([0-9]{1,2})(?::([0-9]{2}))?\s*[-–]\s*([0-9]{1,2})(?::([0-9]{2}))?\s*")
_QUIET_HOURS_HINT = "expected HH:MM-HH:MM, for example 21:00-09:00 (empty for none)"


class ContactKind(enum.StrEnum):
    """The kinds of unprompted message; the values are stored with every decision."""

    SURVEY = "survey"
    REMINDER = "reminder"
    CHECKIN = "checkin"


class ContactReason(enum.StrEnum):
    """Why a message is skipped or postponed; the values are stored and shown to the shop.

    ``EXPIRED`` is never produced by ``decide``: the caller knows when a survey closes and uses it for a
    reminder the rules would move past that moment.
    """

    COOLDOWN = "cooldown"
    WEEKLY_CAP = "weekly_cap"
    QUIET_HOURS = "quiet_hours"
    PAUSED = "paused"
    STOPPED = "stopped"
    UNREACHABLE = "unreachable"
    EXPIRED = "expired"
    TOO_OLD = "too_old"


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily span of local wall-clock time in which no unprompted message goes out.

    ``start`` is inclusive and ``end`` exclusive, so "21:00-09:00" allows a message at 09:00 sharp. A span
    whose end is earlier than its start runs across midnight.
    """

    start: datetime.time
    end: datetime.time

    def __post_init__(self) -> None:
        if self.start == self.end:
            # Equal ends are either "never quiet" or "always quiet"; neither is worth guessing.
            raise ValueError(f"quiet hours need different start and end times, got {self.start} twice")

    @classmethod
    def parse(cls, text: str) -> QuietHours | None:
        """Read the QUIET_HOURS setting: "21:00-09:00", "21-9" or with an en dash; empty means none.

        The error messages quote the setting and show the expected form, because the shop owner who
        reads them is editing a ``.env`` file, not reading this code.
        """
        if not text.strip():
            return None
        match = _QUIET_HOURS.fullmatch(text)
        if match is None:
            raise ValueError(f"QUIET_HOURS '{text}': {_QUIET_HOURS_HINT}")
        start_hour, start_minute, end_hour, end_minute = match.groups()
        try:
            start = datetime.time(int(start_hour), int(start_minute or 0))
            end = datetime.time(int(end_hour), int(end_minute or 0))
        except ValueError:  # hour 24 and up or minute 60 and up
            raise ValueError(f"QUIET_HOURS '{text}': {_QUIET_HOURS_HINT}") from None
        if start == end:
            raise ValueError(
                f"QUIET_HOURS '{text}': start and end are the same time ({start:%H:%M}), "
                f"so it is unclear whether it is never or always quiet; {_QUIET_HOURS_HINT}"
            )
        return cls(start, end)

    def contains(self, local: datetime.time) -> bool:
        """Whether a local wall-clock time falls into the quiet hours."""
        wall = local.replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end

    def next_allowed(self, moment: datetime.datetime, zone: ZoneInfo) -> datetime.datetime:
        """The first instant at or after ``moment`` that is outside the quiet hours in ``zone``.

        Returns ``moment`` itself when it is already allowed, else an aware UTC instant. The end of the
        quiet hours is a wall-clock time, so it is found on the local calendar and then resolved: a time
        the spring-forward gap skips becomes the first instant after the gap, and an ambiguous time on
        the fall-back day becomes its first occurrence (its second one if ``moment`` is already past the
        first). The loop only matters on a day whose allowed span falls entirely into a gap.
        """
        _require_aware("moment", moment)
        candidate = moment
        while True:
            local = candidate.astimezone(zone)
            if not self.contains(local.time()):
                return candidate
            end_date = local.date()
            if self.start > self.end and local.time() >= self.start:
                end_date += datetime.timedelta(days=1)  # the evening part: quiet until tomorrow morning
            wall_end = datetime.datetime.combine(end_date, self.end)
            candidate = _first_instant_showing(wall_end, zone, after=candidate)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


@dataclass(frozen=True, slots=True)
class ContactPolicy:
    """The shop's rules for unprompted messages, as its settings set them."""

    quiet_hours: QuietHours | None
    zone: ZoneInfo
    survey_cooldown: datetime.timedelta
    max_proactive_per_week: int
    survey_max_age: datetime.timedelta
    checkin_factor: float = 1.5
    checkin_after: datetime.timedelta = datetime.timedelta(days=30)

    def rhythm(self, median_gap: datetime.timedelta | None) -> Rhythm:
        """When a customer with this median gap between visits counts as silent (surveys/silence.py)."""
        return Rhythm(median_gap, self.checkin_factor, self.checkin_after)

    def __post_init__(self) -> None:
        Rhythm(None, self.checkin_factor, self.checkin_after)  # its checks, with its messages
        # A cap of 0 would postpone every message forever instead of saying "none allowed".
        if self.max_proactive_per_week < 1:
            raise ValueError(f"max_proactive_per_week must be at least 1, got {self.max_proactive_per_week}")
        if self.survey_cooldown < datetime.timedelta(0):
            raise ValueError(f"survey_cooldown must not be negative, got {self.survey_cooldown}")
        if self.survey_max_age < datetime.timedelta(0):
            raise ValueError(f"survey_max_age must not be negative, got {self.survey_max_age}")


@dataclass(frozen=True, slots=True)
class ContactHistory:
    """What the rules need to know about one customer; loaded by the caller from the database."""

    proactive_sent: tuple[datetime.datetime, ...] = ()
    last_survey_at: datetime.datetime | None = None
    paused_until: datetime.datetime | None = None
    stopped: bool = False
    reachable: bool = True
    zone: ZoneInfo | None = None

    def __post_init__(self) -> None:
        # A naive timestamp here would otherwise fail later as an obscure comparison TypeError.
        for instant in self.proactive_sent:
            _require_aware("proactive_sent", instant)
        if self.last_survey_at is not None:
            _require_aware("last_survey_at", self.last_survey_at)
        if self.paused_until is not None:
            _require_aware("paused_until", self.paused_until)


@dataclass(frozen=True, slots=True)
class ContactDecision:
    """The outcome for one unprompted message: skipped, postponed or sent as asked, and why."""

    kind: ContactKind
    send_at: datetime.datetime | None
    skipped: ContactReason | None
    postponed: tuple[ContactReason, ...]
    requested_at: datetime.datetime
    explanation: str

    @property
    def sent(self) -> bool:
        """Whether the message goes out at all (now or later)."""
        return self.send_at is not None


def within_week(instants: Iterable[datetime.datetime], at: datetime.datetime) -> int:
    """How many of ``instants`` fall into the 7 days ending at ``at`` (``at - 7 days < t <= at``)."""
    return sum(1 for instant in instants if at - WEEK < instant <= at)


def decide(
    kind: ContactKind,
    *,
    at: datetime.datetime,
    policy: ContactPolicy,
    history: ContactHistory,
    purchased_at: datetime.datetime | None = None,
) -> ContactDecision:
    """Decide whether and when an unprompted message of ``kind``, asked for at ``at``, may be sent.

    Skips come first, in the order stopped, unreachable, paused, then for surveys too old and cooldown:
    a customer's own wish outranks anything the shop configured. Then the weekly cap and the quiet hours
    move the send time later, in turns, until neither moves it.

    The turns end: every move is strictly later. A cap move lands on ``t + 7 days`` for one of the finitely
    many ``t`` in ``history.proactive_sent``, each later than the last, so there are at most that many; a
    quiet-hours move lands outside the quiet hours, so a second one needs a cap move in between.
    """
    _require_aware("at", at)
    zone = history.zone if history.zone is not None else policy.zone
    skip = _skip_reason(kind, at=at, policy=policy, history=history, purchased_at=purchased_at, zone=zone)
    if skip is not None:
        reason, explanation = skip
        return ContactDecision(kind, None, reason, (), at, explanation)

    steps: list[_Step] = []
    candidate = at
    while True:
        capped = _room_in_week(candidate, history.proactive_sent, policy.max_proactive_per_week)
        if capped != candidate:
            _add_step(steps, ContactReason.WEEKLY_CAP, candidate, capped)
            candidate = capped
        if policy.quiet_hours is None:
            break
        allowed = policy.quiet_hours.next_allowed(candidate, zone)
        if allowed == candidate:
            break
        _add_step(steps, ContactReason.QUIET_HOURS, candidate, allowed)
        candidate = allowed

    postponed = tuple(dict.fromkeys(step.reason for step in steps))
    explanation = _explain_steps(steps, policy, zone) if steps else f"sent as asked at {_local(at, zone)}"
    return ContactDecision(kind, candidate, None, postponed, at, explanation)


@dataclass(slots=True)
class _Step:
    """One reason moving the send time, from ``start`` to ``end`` (consecutive moves merged)."""

    reason: ContactReason
    start: datetime.datetime
    end: datetime.datetime


def _skip_reason(
    kind: ContactKind,
    *,
    at: datetime.datetime,
    policy: ContactPolicy,
    history: ContactHistory,
    purchased_at: datetime.datetime | None,
    zone: ZoneInfo,
) -> tuple[ContactReason, str] | None:
    if history.stopped:
        return ContactReason.STOPPED, "skipped: the customer said /stop"
    if not history.reachable:
        return ContactReason.UNREACHABLE, "skipped: the customer blocked the bot or never opened it"
    if history.paused_until is not None and history.paused_until > at:
        until = _local(history.paused_until, zone)
        return ContactReason.PAUSED, f"skipped: the customer paused messages until {until}"
    if kind is not ContactKind.SURVEY:
        return None
    if purchased_at is not None:
        _require_aware("purchased_at", purchased_at)
        age = at - purchased_at
        if age > policy.survey_max_age:
            return ContactReason.TOO_OLD, (
                f"skipped: the purchase on {_local_date(purchased_at, zone)} is {_span(age)} old, "
                f"more than SURVEY_MAX_AGE {_span(policy.survey_max_age)}"
            )
    last = history.last_survey_at
    if last is not None and at - last < policy.survey_cooldown:
        next_possible = _local_date(last + policy.survey_cooldown, zone)
        return ContactReason.COOLDOWN, (
            f"skipped: a survey was sent on {_local_date(last, zone)}, within the "
            f"{_cooldown(policy.survey_cooldown)} (next possible {next_possible})"
        )
    return None


def _room_in_week(
    candidate: datetime.datetime, sent: tuple[datetime.datetime, ...], limit: int
) -> datetime.datetime:
    """The first moment from ``candidate`` on at which the rolling week holds fewer than ``limit``."""
    while True:
        window = sorted(instant for instant in sent if candidate - WEEK < instant <= candidate)
        if len(window) < limit:
            return candidate
        # The oldest leaves the window; planned messages may enter it meanwhile, hence the loop.
        candidate = window[0] + WEEK


def _add_step(
    steps: list[_Step], reason: ContactReason, start: datetime.datetime, end: datetime.datetime
) -> None:
    if steps and steps[-1].reason is reason:
        steps[-1].end = end
    else:
        steps.append(_Step(reason, start, end))


def _explain_steps(steps: list[_Step], policy: ContactPolicy, zone: ZoneInfo) -> str:
    """One sentence: the first move with its from and to times and the zone, later moves with their end."""
    phrases: list[str] = []
    for index, step in enumerate(steps):
        first = index == 0
        if step.reason is ContactReason.QUIET_HOURS:
            cause = f"quiet hours {policy.quiet_hours}" + (f" ({zone})" if first else "")
            verb = "move"
        else:
            limit = policy.max_proactive_per_week
            cause = f"the limit of {limit} unprompted message{'s' if limit != 1 else ''} in 7 days"
            verb = "moves"
        if first:
            suffix = "" if step.reason is ContactReason.QUIET_HOURS else f" ({zone})"
            phrases.append(f"{cause} {verb} it {_from_to(step.start, step.end, zone)}{suffix}")
        else:
            phrases.append(f"then {cause} {verb} it on to {_wall(step.end, zone)}")
    return ", ".join(phrases)


def _from_to(start: datetime.datetime, end: datetime.datetime, zone: ZoneInfo) -> str:
    """Render a move as "from 06:30 to 09:00 on 2026-11-10", with both dates when it crosses a day."""
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    if local_start.date() == local_end.date():
        return f"from {local_start:%H:%M} to {local_end:%H:%M} on {local_start:%Y-%m-%d}"
    return f"from {local_start:%Y-%m-%d %H:%M} to {local_end:%Y-%m-%d %H:%M}"


def _local(moment: datetime.datetime, zone: ZoneInfo) -> str:
    return f"{_wall(moment, zone)} ({zone})"


def _wall(moment: datetime.datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"


def _local_date(moment: datetime.datetime, zone: ZoneInfo) -> str:
    return f"{moment.astimezone(zone):%Y-%m-%d}"


def _cooldown(cooldown: datetime.timedelta) -> str:
    """Say "30-day cooldown" for whole days, which is what shops configure, else "cooldown of 36 hours"."""
    if cooldown % datetime.timedelta(days=1) == datetime.timedelta(0) and cooldown.days > 0:
        return f"{cooldown.days}-day cooldown"
    return f"cooldown of {_span(cooldown)}"


def _span(span: datetime.timedelta) -> str:
    """A duration in its two largest units ("40 days", "14 days 3 hours"): precise enough for a person."""
    seconds = int(span.total_seconds())
    units = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))
    parts: list[str] = []
    for name, size in units:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {name}{'s' if count != 1 else ''}")
        elif parts:
            break  # "14 days 0 hours 5 minutes" would be noise
        if len(parts) == 2:
            break
    return " ".join(parts) if parts else "0 seconds"


def _first_instant_showing(
    wall: datetime.datetime, zone: ZoneInfo, *, after: datetime.datetime
) -> datetime.datetime:
    """The first UTC instant later than ``after`` at which the clock in ``zone`` shows naive ``wall``.

    An ambiguous wall time (fall back) has two instants; a skipped one (spring forward) has none, and
    the first instant after the gap stands in for it.
    """
    existing: list[datetime.datetime] = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(_UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == wall and instant not in existing:
            existing.append(instant)  # fold 0 first, so the earlier occurrence comes first
    if not existing:
        return _end_of_gap(wall, zone)
    return next((instant for instant in existing if instant > after), existing[-1])


def _end_of_gap(wall: datetime.datetime, zone: ZoneInfo) -> datetime.datetime:
    """The instant the clock jumps over the nonexistent local ``wall``: the first one showing a later time.

    The two folds of a nonexistent time map to instants on either side of the transition (one with the
    offset before it, one with the offset after), so a bisection on whole seconds between them finds it;
    zone transitions are on whole seconds.
    """
    low, high = sorted(wall.replace(tzinfo=zone, fold=fold).astimezone(_UTC) for fold in (0, 1))
    low_s, high_s = int(low.timestamp()), int(high.timestamp())
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        shown = datetime.datetime.fromtimestamp(middle, tz=zone).replace(tzinfo=None)
        if shown >= wall:
            high_s = middle
        else:
            low_s = middle
    return datetime.datetime.fromtimestamp(high_s, tz=_UTC)


def _require_aware(name: str, moment: datetime.datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {moment.isoformat()}")
