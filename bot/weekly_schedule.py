"""WEEKLY_SUMMARY_CRON: when the managers' summary is due, as a standard five-field cron expression in
TIMEZONE (default ``0 9 * * 1``: Mondays at 09:00).

APScheduler's ``CronTrigger`` does the calendar arithmetic (DST included), but its ``from_crontab`` reads
the day-of-week field with Monday as 0, where cron has Sunday as 0 (and 7): ``0 9 * * 1`` would fire on
Tuesdays. The day-of-week field is therefore translated here into weekday names, which mean the same to
both. The scheduler itself keeps nothing: the sweep asks which occurrence was the latest and the database
says whether it was sent (bot/report_jobs.py).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_LOOK_BACK = datetime.timedelta(days=8)


class ScheduleError(ValueError):
    """A WEEKLY_SUMMARY_CRON that is not a five-field cron expression; the message says what is wrong."""


def _weekday(token: str) -> int:
    """A cron weekday, 0-7 (0 and 7 Sunday) or a three-letter name, as 0 (Sunday) to 6."""
    lowered = token.strip().lower()
    if lowered in _NAMES:
        return _NAMES.index(lowered)
    if lowered.isdigit() and 0 <= int(lowered) <= 7:
        return int(lowered) % 7
    raise ScheduleError(f"day of week {token!r} is not 0-7 or sun-sat")


def _weekdays(field: str) -> list[int]:
    """The weekdays a cron day-of-week field names (lists, ranges and steps), Sunday = 0."""
    days: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ScheduleError(f"step {step_text!r} in the day of week is not a positive number")
            step = int(step_text)
        if base in ("*", "?"):
            first, last = 0, 6
        elif "-" in base:
            start, _, end = base.partition("-")
            first, last = _weekday(start), _weekday(end)
            if end.strip() == "7":
                last = 7  # 5-7 is Friday to Sunday
            if last < first:
                raise ScheduleError(f"day-of-week range {base!r} runs backwards")
        else:
            first = last = _weekday(base)
            if step_text:
                last = 6
        days.update(day % 7 for day in range(first, last + 1, step))
    return sorted(days)


@dataclass(frozen=True)
class WeeklySchedule:
    """A parsed WEEKLY_SUMMARY_CRON in its time zone."""

    expression: str
    zone: ZoneInfo

    def __post_init__(self) -> None:
        self.trigger()  # fail at startup, with the reason, not at the first occurrence

    def trigger(self) -> CronTrigger:
        """The APScheduler trigger, with the day of week as names (see the module docstring)."""
        fields = self.expression.split()
        if len(fields) != 5:
            raise ScheduleError(
                f"{self.expression!r} has {len(fields)} fields; a cron expression has five: "
                "minute hour day-of-month month day-of-week, for example '0 9 * * 1' (Mondays 09:00)"
            )
        minute, hour, day, month, day_of_week = fields
        names = "*" if day_of_week in ("*", "?") else ",".join(_NAMES[d] for d in _weekdays(day_of_week))
        try:
            return CronTrigger(
                minute=minute, hour=hour, day=day, month=month, day_of_week=names, timezone=self.zone
            )
        except ValueError as error:
            raise ScheduleError(f"{self.expression!r}: {error}") from None

    def latest(self, now: datetime.datetime) -> datetime.datetime | None:
        """The last occurrence at or before ``now`` within the past eight days (None: none that recent)."""
        trigger = self.trigger()
        found: datetime.datetime | None = None
        moment = trigger.get_next_fire_time(None, now - _LOOK_BACK)
        while moment is not None and moment <= now:
            found = moment
            moment = trigger.get_next_fire_time(moment, moment + datetime.timedelta(minutes=1))
        return found.astimezone(datetime.UTC) if found is not None else None

    def next_after(self, now: datetime.datetime) -> datetime.datetime | None:
        """The first occurrence after ``now``."""
        moment = self.trigger().get_next_fire_time(None, now + datetime.timedelta(microseconds=1))
        return moment.astimezone(datetime.UTC) if moment is not None else None
