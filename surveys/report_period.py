"""Which days a manager's report covers: the last complete week, the last N days, or named dates.

A shop thinks in local calendar days ("last week" is Monday to Sunday in the shop's TIMEZONE), the
database stores UTC instants. So every period is built from local dates, each boundary is the local
midnight of a date, and only then converted to UTC. Adding ``timedelta(days=7)`` to a UTC instant instead
would put a boundary at 01:00 or 23:00 local time in the weeks the clocks change, and the answers given
in that hour would land in the wrong week: the week of a DST change really is 167 or 169 hours long.

Periods are half-open, ``[start, end)``, so consecutive periods share a boundary without counting an
answer twice, and the SQL layer can use ``start <= answered_at < end`` as it is.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

MAX_DAYS = 366
"""The longest period a report covers: a leap year. Longer spans are a typo more often than a wish."""

MAX_WEEKS = 52

_UTC = datetime.UTC
_DAY = datetime.timedelta(days=1)
_WEEKS = re.compile(r"([0-9]+)\s*w", re.ASCII | re.IGNORECASE)
_DAYS = re.compile(r"([0-9]+)\s*d", re.ASCII | re.IGNORECASE)
_DATES = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})\s*\.\.\s*([0-9]{4}-[0-9]{2}-[0-9]{2})", re.ASCII)
_FORMS = "Use 4w (last 4 weeks), 10d, or 2026-11-02..2026-11-15."
_QUOTE_LIMIT = 40


class PeriodError(ValueError):
    """A period a manager typed that cannot be used; the message is short enough for a Telegram reply."""


@dataclass(frozen=True, slots=True)
class ReportPeriod:
    """A span of time ``[start, end)`` in UTC, with the zone its days are counted in.

    Any aware datetimes are accepted and stored in UTC, so two periods over the same instants are equal
    whichever offset the caller happened to use.
    """

    start: datetime.datetime
    end: datetime.datetime
    zone: ZoneInfo

    def __post_init__(self) -> None:
        _require_aware("start", self.start)
        _require_aware("end", self.end)
        if self.end <= self.start:
            # An empty period would have a last day before its first and a report with nothing to say.
            raise ValueError(f"a period must end after it starts, got {self.start} to {self.end}")
        object.__setattr__(self, "start", self.start.astimezone(_UTC))
        object.__setattr__(self, "end", self.end.astimezone(_UTC))

    @property
    def first_day(self) -> datetime.date:
        """The local date of the first instant."""
        return self.start.astimezone(self.zone).date()

    @property
    def last_day(self) -> datetime.date:
        """The local date of the last instant (inclusive, unlike ``end``)."""
        # The smallest step datetime has: the last instant that still belongs to the period.
        return (self.end - datetime.timedelta(microseconds=1)).astimezone(self.zone).date()

    @property
    def days(self) -> int:
        """How many local calendar days the period touches, a partly covered last day included."""
        return (self.last_day - self.first_day).days + 1

    @property
    def label(self) -> str:
        """The dates as a manager reads them: "2026-11-23 – 2026-11-29", or one date for a single day."""
        if self.first_day == self.last_day:
            return f"{self.first_day:%Y-%m-%d}"
        return f"{self.first_day:%Y-%m-%d} – {self.last_day:%Y-%m-%d}"

    def previous(self) -> ReportPeriod:
        """The period of as many calendar days right before this one, for "change against before".

        Counted in local days, not hours, so the week before a DST week is a whole Monday-to-Sunday
        week as well. It ends where this one starts, so the two never overlap.
        """
        first = self.first_day - datetime.timedelta(days=self.days)
        return ReportPeriod(_local_midnight(first, self.zone), self.start, self.zone)


def last_complete_week(now: datetime.datetime, zone: ZoneInfo) -> ReportPeriod:
    """Monday 00:00 to Monday 00:00 in ``zone`` of the last week that ended at or before ``now``.

    At Monday 09:00 that is the week that ended at 00:00 today; at Monday 00:00 sharp, too, because it
    has just ended; on a Sunday evening it is the week before, because the current one is still running.
    """
    _require_aware("now", now)
    today = now.astimezone(zone).date()
    this_monday = today - datetime.timedelta(days=today.weekday())
    return _whole_days(this_monday - datetime.timedelta(days=7), this_monday, zone)


def weeks_back(now: datetime.datetime, zone: ZoneInfo, count: int) -> list[ReportPeriod]:
    """The last ``count`` complete Monday-to-Sunday weeks before ``now``, oldest first (for a chart)."""
    if not 1 <= count <= MAX_WEEKS:
        raise ValueError(f"count must be from 1 to {MAX_WEEKS} weeks, got {count}")
    weeks = [last_complete_week(now, zone)]
    while len(weeks) < count:
        weeks.append(weeks[-1].previous())
    weeks.reverse()
    return weeks


def last_days(now: datetime.datetime, zone: ZoneInfo, days: int) -> ReportPeriod:
    """The last ``days`` local days up to ``now``, today included: from the midnight ``days - 1`` days
    before today's, to ``now``.

    At exactly midnight today has not begun, so the day that just ended counts as today; otherwise the
    period would be one day short, and "1d" would be empty.
    """
    _require_aware("now", now)
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be from 1 to {MAX_DAYS}, got {days}")
    today = (now - datetime.timedelta(microseconds=1)).astimezone(zone).date()
    first = today - datetime.timedelta(days=days - 1)
    return ReportPeriod(_local_midnight(first, zone), now, zone)


def between(first: datetime.date, last: datetime.date, zone: ZoneInfo) -> ReportPeriod:
    """The days from ``first`` to ``last``, both included: ``[first 00:00, last + 1 day 00:00)`` in ``zone``.

    Raises PeriodError (a ValueError) when ``last`` is before ``first`` or the span is over MAX_DAYS.
    """
    if last < first:
        raise PeriodError(f"The period ends before it starts: {first:%Y-%m-%d}..{last:%Y-%m-%d}.")
    span = (last - first).days + 1
    if span > MAX_DAYS:
        raise PeriodError(
            f"{first:%Y-%m-%d}..{last:%Y-%m-%d} is {span} days long; a report covers at most {MAX_DAYS}."
        )
    return _whole_days(first, last + _DAY, zone)


def parse_period(text: str | None, *, now: datetime.datetime, zone: ZoneInfo) -> ReportPeriod:
    """Read the period a manager typed after /report: nothing, "4w", "10d" or "2026-11-02..2026-11-15".

    Nothing means the last complete week, the same as the weekly summary. "Nw" (1..52) is the last N×7
    days and "Nd" (1..366) the last N days, both up to now. A date range may end after today (the report
    simply has no answers for those days) but must not start after it: that is a typo, not a question.
    Every error is a PeriodError whose message says what is wrong, for the manager to read in Telegram.
    """
    _require_aware("now", now)
    stripped = (text or "").strip()
    if not stripped:
        return last_complete_week(now, zone)
    if match := _WEEKS.fullmatch(stripped):
        weeks = int(match.group(1))
        if not 1 <= weeks <= MAX_WEEKS:
            raise PeriodError(f"{_quote(stripped)} is out of range: use 1w to {MAX_WEEKS}w.")
        return last_days(now, zone, weeks * 7)
    if match := _DAYS.fullmatch(stripped):
        days = int(match.group(1))
        if not 1 <= days <= MAX_DAYS:
            raise PeriodError(f"{_quote(stripped)} is out of range: use 1d to {MAX_DAYS}d.")
        return last_days(now, zone, days)
    if match := _DATES.fullmatch(stripped):
        first, last = (_parse_date(group) for group in match.groups())
        today = now.astimezone(zone).date()
        if first > today:
            raise PeriodError(
                f"{first:%Y-%m-%d}..{last:%Y-%m-%d} starts in the future (today is {today:%Y-%m-%d})."
            )
        return between(first, last, zone)
    raise PeriodError(f"Unknown period {_quote(stripped)}. {_FORMS}")


def _quote(text: str) -> str:
    """The manager's text in quotes, shortened: a pasted paragraph must not come back as a wall of text."""
    if len(text) > _QUOTE_LIMIT:
        text = text[: _QUOTE_LIMIT - 1] + "…"
    return f'"{text}"'


def _parse_date(text: str) -> datetime.date:
    year, month, day = (int(part) for part in text.split("-"))
    try:
        return datetime.date(year, month, day)
    except ValueError:  # month 13, February 30, year 0
        raise PeriodError(f'"{text}" is not a date. Use YYYY-MM-DD, for example 2026-11-02.') from None


def _whole_days(first: datetime.date, end: datetime.date, zone: ZoneInfo) -> ReportPeriod:
    """The period from the local midnight of ``first`` to the local midnight of ``end`` (exclusive)."""
    return ReportPeriod(_local_midnight(first, zone), _local_midnight(end, zone), zone)


def _local_midnight(day: datetime.date, zone: ZoneInfo) -> datetime.datetime:
    """The first instant of ``day`` in ``zone``, in UTC.

    ``fold=0`` is what makes this right in the zones that change their clocks at midnight: an ambiguous
    midnight resolves to its first occurrence, and a midnight the clocks skip resolves with the offset
    before the gap, which is the instant of the jump itself, the first one of that day.
    """
    return datetime.datetime.combine(day, datetime.time(0), tzinfo=zone).astimezone(_UTC)


def _require_aware(name: str, moment: datetime.datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {moment.isoformat()}")
