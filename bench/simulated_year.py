"""A simulated year of a shop: customers buy in their own rhythms, the real bot surveys, reminds and checks
in, and every contact rule is checked against what was actually stored and sent.

    python bench/simulated_year.py [--customers 10000] [--days 365] [--database sqlite|postgresql]
                                   [--seed 1] [--step 1h] [--keep-database FILE]

The real ``KundenpulsBot`` (python-telegram-bot over HTTP, the purchase API, the durable poller, the update
worker, the sweep and the outbox sender) runs in this process against the fake Bot API server
(tests/e2e.py), with the shipped contact settings and a clock the simulation moves step by step through
the year. Customers report their purchases through the purchase API when they happen, open the bot,
answer surveys (or not), press check-in buttons, write to the bot, /pause and /stop; the simulation keeps
its own log of everything each customer did and when, independent of the bot's database. At the end it
prints how many unprompted messages customers got, and checks every contact rule against the outbox rows
actually sent, the stored decisions and that log. The first line says which settings differ from the
shipped ones; progress goes to stderr, one line per simulated month. See bench/README.md.

Exit status: 0 when every rule held, 1 when one was broken, 2 when the simulation could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import itertools
import logging
import math
import random
import statistics
import sys
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as wall_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# Run as a script (python bench/simulated_year.py): make the repository importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import orjson
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bench.harness import BenchError, code_fingerprint, code_version, fresh_database, workdir
from bench.report import machine
from bot.durations import format_duration, parse_duration
from bot.settings import Settings
from handlers.messages import parse_answer_callback
from storage.db import is_sqlite
from storage.models import (
    Answer,
    Checkin,
    ContactEvent,
    Customer,
    DeliveryStatus,
    InboundUpdate,
    OutboxMessage,
    OutboxStatus,
    Purchase,
    SurveyDelivery,
    UpdateStatus,
)
from storage.outbox import KIND_CHECKIN, KIND_QUESTION, UNPROMPTED
from surveys.contact_rules import QuietHours
from tests.e2e import INGEST_KEY, MovableClock, RunningBot, make_settings, running_bot
from tests.fakes.bot_api_server import FakeUser

WEEK = timedelta(days=7)
SAME_VISIT = timedelta(days=1)
"""Orders closer together than this are one visit when the rhythm is computed (surveys/silence.py)."""
PROCESSING_GRACE = timedelta(minutes=1)
"""How long after a customer acted the bot may still not have read it: an update queued at 10:00:00 is
handled a few (real, hence simulated) seconds later, and a message the bot sends meanwhile crossed it.
The checks give the bot that minute, never more."""
LAST_SEEN_RESOLUTION = timedelta(minutes=10)
"""The bot refreshes a customer's "last seen" at most every 10 minutes (handlers/customers.py), so the
silence it measures may begin up to that much before the customer's last word."""
FIRST_USER_ID = 910_000_000
SHIPPED_OVERRIDES: dict[str, Any] = {
    # tests/e2e.py's make_settings sets test values for these; the simulation wants the shipped ones.
    "survey_delay": "2d",
    "quiet_hours": "21:00-09:00",
    "sweep_interval": "30s",
}
CONTACT_SETTINGS = (
    "quiet_hours",
    "survey_delay",
    "survey_cooldown",
    "max_proactive_per_week",
    "reminder_after",
    "survey_expires_after",
    "survey_max_age",
    "checkin_factor",
    "checkin_after",
    "timezone",
    "sweep_interval",
    "default_language",
    "send_rate",
)
"""The settings the first output line compares with their shipped defaults."""

SEGMENTS = (("one-time", 0.40), ("monthly", 0.30), ("frequent", 0.15), ("churn", 0.15))
FOREIGN_ZONES = (
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Australia/Sydney",
)
"""The 15 % of customers outside Berlin; Kolkata's half-hour offset and Sydney's southern summer time
put their quiet hours off the hour and against Berlin's clock changes."""
HOUR_WEIGHTS = (
    *(0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.8, 1.5),  # 00-08
    *(2.5, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 2.5, 2.0),  # 09-20
    *(1.6, 1.2, 0.6),  # 21-23
)
"""Local purchase hours: mostly by day, some in the evening and at night (so quiet hours matter)."""
WAKING = (wall_time(7, 30), wall_time(22, 30))
"""When customers act on a message, in their own zone."""
TEMPERAMENTS = (("eager", 0.45), ("lazy", 0.35), ("silent", 0.20))
PLAN_WEIGHTS: dict[str, tuple[tuple[str, float], ...]] = {
    "eager": (("full", 0.75), ("midway", 0.10), ("after-reminder", 0.10), ("never", 0.05)),
    "lazy": (("full", 0.15), ("midway", 0.10), ("after-reminder", 0.35), ("never", 0.40)),
    "silent": (("never", 0.95), ("after-reminder", 0.05)),
}
"""How a customer takes one survey: all of it when it arrives, the score and then nothing until the
reminder, only after the reminder, or never."""
CHECKIN_WEIGHTS = (("all_good", 0.30), ("question", 0.05), ("not_interested", 0.05), ("", 0.60))
COMMENTS = {
    "de": (
        "Die Lieferung hat leider viel zu lange gedauert.",
        "Das Produkt kam beschädigt an, das war ärgerlich.",
        "Schneller liefern, dann gern wieder.",
        "Etwas günstiger wäre schön.",
    ),
    "en": (
        "The delivery took far too long, sadly.",
        "The product arrived damaged, which was annoying.",
        "Faster delivery and I'd give you a ten.",
        "A bit cheaper would be nice.",
    ),
}
CHATTER = {
    "de": (
        "Hallo, wann kommt meine Bestellung?",
        "Danke, alles gut angekommen!",
        "Gibt es das auch in Blau?",
    ),
    "en": ("Hi, when will my order arrive?", "Thanks, everything arrived fine!", "Do you have it in blue?"),
}
QUESTIONS = {"de": "Gibt es den Mantel auch in Größe M?", "en": "Is the coat available in size M?"}

log = logging.getLogger("bench.simulated_year")


# ------------------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class Options:
    """The command line."""

    customers: int
    days: int
    database: str
    seed: int
    step: timedelta
    keep: Path | None = None
    """Write the SQLite database here and keep it, for queries afterwards."""


def parse_args(argv: list[str] | None = None) -> Options:
    """Read the command line; the defaults are the full year the README describes."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n", 1)[0])
    parser.add_argument("--customers", type=int, default=10_000, help="customers of the shop (10000)")
    parser.add_argument("--days", type=int, default=365, help="simulated days (365)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1, help="the same seed gives the same year (1)")
    parser.add_argument(
        "--keep-database", metavar="FILE", help="SQLite only: write the database to FILE and keep it"
    )
    parser.add_argument("--step", default="1h", help="how far the clock moves per step, e.g. 1h or 30m (1h)")
    args = parser.parse_args(argv)
    try:
        step = parse_duration(args.step)
    except ValueError as error:
        parser.error(f"--step: {error}")
    if not timedelta(minutes=1) <= step <= timedelta(hours=6):
        parser.error("--step must lie between 1m and 6h")
    if args.customers < 1 or args.days < 1:
        parser.error("--customers and --days must be at least 1")
    keep = Path(args.keep_database).resolve() if args.keep_database else None
    if keep is not None and (args.database != "sqlite" or keep.exists()):
        parser.error("--keep-database needs --database sqlite and a file that does not exist yet")
    return Options(args.customers, args.days, args.database, args.seed, step, keep)


def settings_line(settings: Settings) -> str:
    """The first output line: the contact settings in use, and exactly which differ from the shipped ones."""
    same: list[str] = []
    changed: list[str] = []
    for name in CONTACT_SETTINGS:
        shipped, used = Settings.model_fields[name].default, getattr(settings, name)
        if used == shipped:
            same.append(f"{name.upper()} {_setting(used)}")
        else:
            changed.append(f"{name.upper()}={_setting(used)} (shipped {_setting(shipped)})")
    return (
        f"settings: shipped defaults ({', '.join(same)}), except {', '.join(changed)} and the fake's flood "
        "limits off: the bot's clock is simulated, Telegram's limits run in real seconds"
    )


def _setting(value: object) -> str:
    if isinstance(value, timedelta):
        return span(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def span(value: timedelta) -> str:
    """A duration as the settings write it, whole days as days: "30d", not "4w2d"."""
    if value and value % timedelta(days=1) == timedelta(0):
        return f"{value // timedelta(days=1)}d"
    return format_duration(value)


def exact(value: timedelta) -> str:
    """A duration to the millisecond, for a violation that may be a matter of milliseconds."""
    sign, value = ("-", -value) if value < timedelta(0) else ("", value)
    hours, rest = divmod(value.total_seconds(), 3600)
    return f"{sign}{int(hours) // 24}d {int(hours) % 24:02d}:{int(rest // 60):02d}:{rest % 60:06.3f}"


# ---------------------------------------------------------------------------------------- the people


@dataclass(frozen=True, slots=True)
class Did:
    """One thing a customer did, at the simulated time the simulation gave it to the bot."""

    at: datetime
    what: str
    """purchase, start, stop, pause, text, survey_answer or checkin_answer."""
    until: datetime | None = None
    """A /pause: when it ends."""
    delivery_id: int | None = None
    question_id: str | None = None
    value: str | None = None
    order_id: str | None = None
    reported_at: datetime | None = None
    """A purchase: when the shop reported it (``at`` is when it happened)."""

    @property
    def talking(self) -> bool:
        """Whether the bot counts it as the customer writing to it: every update except a check-in's own
        buttons (handlers/visitor.py)."""
        return self.what not in ("purchase", "checkin_answer")


@dataclass
class SurveyPlan:
    """How a customer takes one survey, drawn when its first question arrives."""

    style: str
    score: int
    reminded: bool = False

    @property
    def answers_at_once(self) -> bool:
        """Reacts to the first asking."""
        return self.style in ("full", "midway")

    @property
    def answers_reminder(self) -> bool:
        """Reacts to the reminder (which goes on where they stopped)."""
        return self.style in ("full", "after-reminder", "midway-resumes")


@dataclass
class Person:
    """One customer: who they are, when they buy, how they behave, and the log of what they did."""

    index: int
    user: FakeUser
    zone_name: str | None
    """The zone given to the shop (None: the shop's TIMEZONE, Europe/Berlin)."""
    zone: ZoneInfo
    segment: str
    temperament: str
    base_score: float
    purchases: list[datetime]
    rng: random.Random
    did: list[Did] = field(default_factory=list)
    plans: dict[int, SurveyPlan] = field(default_factory=dict)
    seen: set[tuple[int, str]] = field(default_factory=set)
    """Bot messages (id, text) already looked at: a button press edits a message into its next step."""

    @property
    def customer_id(self) -> str:
        """The shop's id for the customer."""
        return f"cust-{self.user.id}"

    @property
    def language(self) -> str:
        """de or en."""
        return self.user.language_code or "de"

    def order_id(self, number: int) -> str:
        """The shop's order id of the customer's ``number``-th purchase."""
        return f"o-{self.user.id}-{number}"


@dataclass(order=True)
class Planned:
    """Something a customer will do at ``at`` (the simulation does it at the first step not before it)."""

    at: datetime
    seq: int
    person: int = field(compare=False)
    what: str = field(compare=False)
    """start, stop, pause, text, survey or checkin."""
    text: str = field(default="", compare=False)
    message_id: int = field(default=0, compare=False)
    question_id: str = field(default="", compare=False)
    answer: str = field(default="", compare=False)


def weighted(rng: random.Random, choices: Sequence[tuple[str, float]]) -> str:
    """One of ``choices`` by weight."""
    return rng.choices([name for name, _ in choices], [weight for _, weight in choices])[0]


def purchase_days(rng: random.Random, segment: str, days: int) -> list[float]:
    """Day offsets of a customer's purchases in the simulated span: their rhythm with jitter."""
    if segment == "one-time":
        return [rng.uniform(0, days)]
    if segment == "churn":  # a few purchases at a steady pace, then they stop
        gap, moment = rng.uniform(10, 40), rng.uniform(0, days / 2)
        offsets = []
        for _ in range(rng.randint(2, 5)):
            offsets.append(moment)
            moment += gap * rng.lognormvariate(0, 0.25)
        return offsets
    gap = rng.uniform(20, 45) if segment == "monthly" else rng.uniform(5, 14)
    moment, offsets = rng.uniform(0, gap), []
    while moment < days:
        offsets.append(moment)
        moment += gap * rng.lognormvariate(0, 0.3)
    return offsets


def local_instant(day: date, zone: ZoneInfo, hour: int, minute: int) -> datetime:
    """That wall-clock time in ``zone``, as UTC (a time the clocks skip resolves to just after the gap)."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)


def make_people(options: Options, start: datetime, shop_zone: ZoneInfo) -> list[Person]:
    """The shop's customers, the same for the same seed: segments, zones, languages, purchase times."""
    end = start + timedelta(days=options.days)
    people = []
    for index in range(options.customers):
        rng = random.Random(f"{options.seed}:{index}")
        abroad = rng.random() < 0.15
        zone_name = rng.choice(FOREIGN_ZONES) if abroad else None
        zone = ZoneInfo(zone_name) if zone_name else shop_zone
        english = rng.random() < (0.8 if abroad else 0.1)
        user = FakeUser(
            id=FIRST_USER_ID + index, first_name=f"Kunde{index}", language_code="en" if english else "de"
        )
        segment = weighted(rng, SEGMENTS)
        first_day = start.astimezone(zone).date()
        times: list[datetime] = []
        for offset in purchase_days(rng, segment, options.days):
            hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
            moment = local_instant(first_day + timedelta(days=int(offset)), zone, hour, rng.randrange(60))
            times.append(moment)
            if rng.random() < 0.05:  # a forgotten item, ordered the same evening: the same visit
                times.append(moment + timedelta(minutes=rng.uniform(10, 240)))
        times = sorted(t for t in times if start < t < end)
        if not times:
            times = [
                start + timedelta(days=rng.uniform(0.5, options.days - 0.01 if options.days > 1 else 0.9))
            ]
        temperament = weighted(rng, TEMPERAMENTS)
        mean = {"eager": 8.3, "lazy": 7.5, "silent": 7.0}[temperament]
        people.append(
            Person(index, user, zone_name, zone, segment, temperament, rng.gauss(mean, 1.8), times, rng)
        )
    return people


def scripted_actions(person: Person, start: datetime, end: datetime) -> list[tuple[datetime, str, str]]:
    """What a customer does on their own, not in answer to a message: opening the bot, /pause, /stop and
    /start again, and writing to the shop now and then."""
    rng, first = person.rng, person.purchases[0]
    # Everyone opens the bot at or before their first purchase; a third only when it comes.
    opens = first if rng.random() < 0.35 else start + (first - start) * rng.random()
    actions = [(opens, "start", "/start")]
    if rng.random() < 0.03:
        at = opens + (end - opens) * rng.random()
        days, text = rng.choice(((30, "/pause"), (90, "/pause 90d"), (14, "/pause 2w")))
        actions.append((at, "pause", text))
        if rng.random() < 0.3:  # changes their mind during the pause
            actions.append((at + timedelta(days=rng.uniform(1, days)), "start", "/start"))
    if rng.random() < 0.02:
        at = opens + (end - opens) * rng.random()
        actions.append((at, "stop", "/stop"))
        if rng.random() < 0.5:
            actions.append((at + timedelta(days=rng.uniform(20, 120)), "start", "/start"))
    if rng.random() < 0.12:  # writes to the shop every few weeks
        moment = opens + timedelta(days=rng.expovariate(1 / 35))
        while moment < end:
            actions.append((waking(moment, person.zone, rng), "text", rng.choice(CHATTER[person.language])))
            moment += timedelta(days=rng.expovariate(1 / 35))
    return [(at, what, text) for at, what, text in actions if at < end]


def waking(moment: datetime, zone: ZoneInfo, rng: random.Random) -> datetime:
    """``moment``, or the next morning in ``zone`` when it falls into the customer's night."""
    local = moment.astimezone(zone)
    if WAKING[0] <= local.time() <= WAKING[1]:
        return moment
    day = local.date() if local.time() < WAKING[0] else local.date() + timedelta(days=1)
    morning = local_instant(day, zone, WAKING[0].hour, WAKING[0].minute)
    return morning + timedelta(minutes=rng.uniform(0, 180))


# ------------------------------------------------------------------------------------ the simulation


@dataclass
class Progress:
    """Counts for the progress lines and the summary."""

    purchases: int = 0
    rejected: list[str] = field(default_factory=list)
    actions: int = 0
    steps: int = 0
    seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Wall seconds per phase of a step."""


class Shop:
    """The shop's side of the purchase API (POST /api/purchases), on one aiohttp session: a third of the
    CPU per call that httpx costs (bench/README.md), and a year has a hundred thousand purchases."""

    def __init__(self, port: int) -> None:
        self._url = f"http://127.0.0.1:{port}/api/purchases"
        self._headers = {"Authorization": f"Bearer {INGEST_KEY}", "Content-Type": "application/json"}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Shop:
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def report(self, body: dict[str, Any]) -> tuple[int, str]:
        """Report one purchase; return the HTTP status and the answer."""
        if self._session is None:
            raise RuntimeError("the shop's session is not open")
        async with self._session.post(self._url, data=orjson.dumps(body), headers=self._headers) as response:
            return response.status, await response.text()


class Simulation:
    """Steps the bot's clock through the year: purchases, customers' actions, the bot settling."""

    def __init__(
        self,
        env: RunningBot,
        shop: Shop,
        clock: MovableClock,
        people: list[Person],
        options: Options,
        start: datetime,
    ) -> None:
        self.env, self.shop, self.api, self.clock = env, shop, env.api, clock
        self.people = people
        self.by_chat = {person.user.id: person for person in people}
        self.options = options
        self.start = start
        self.end = start + timedelta(days=options.days)
        self.progress = Progress()
        self.sqlite = is_sqlite(env.engine)
        self.planned: list[Planned] = []
        self._seq = 0
        self._cursor = 0
        self._next_order = 0
        services = env.bot.services
        self.reminder_intro = tuple(str(services.text(lang, "survey_reminder"))[:16] for lang in ("de", "en"))
        for person in people:
            for at, what, text in scripted_actions(person, start, self.end):
                self._plan(Planned(at, 0, person.index, what, text=text))
        self.orders = sorted(
            (moment, person.index, number)
            for person in people
            for number, moment in enumerate(person.purchases, start=1)
        )

    def _plan(self, action: Planned) -> None:
        self._seq += 1
        action.seq = self._seq
        heapq.heappush(self.planned, action)

    async def run(self, on_month: Callable[[int, float], None]) -> None:
        """The whole span, one step at a time (see ``step``)."""
        started = time.monotonic()
        steps = math.ceil((self.end - self.start) / self.options.step)
        next_report = 30
        for number in range(1, steps + 1):
            await self.step(min(self.start + number * self.options.step, self.end))
            self.progress.steps = number
            day = (self.clock.now - self.start) / timedelta(days=1)
            if day >= next_report or number == steps:
                on_month(round(day), time.monotonic() - started)
                next_report += 30

    async def step(self, boundary: datetime) -> None:
        """Move the clock to ``boundary``; customers do what they planned until then and the bot handles it;
        the shop reports the purchases made since the last step; the bot sweeps once and sends what may go;
        customers look at what arrived.

        Customers act before the shop reports: a customer who opens the bot when they buy has opened it
        before the order arrives (both at once would race to create the same Telegram user). The clock
        moves right after the sender has drained, while nothing is in flight: a call made before a move
        and recorded after it would carry the wrong time.
        """
        if boundary > self.clock.now:
            self.clock.move_to(boundary)
        mark = time.perf_counter()
        acted = self._act(boundary)
        mark = self._took("customers act", mark)
        if acted:
            await self._wait_stored()
            mark = self._took("poller stores updates", mark)
            await self._handle_updates()
            mark = self._took("worker.drain", mark)
        due = []
        while self._next_order < len(self.orders) and self.orders[self._next_order][0] <= boundary:
            due.append(self.orders[self._next_order])
            self._next_order += 1
        await self._report(due)
        mark = self._took("purchase API", mark)
        await self.env.bot.sweep()
        mark = self._took("sweep", mark)
        await self.env.bot.sender.drain()
        mark = self._took("sender.drain", mark)
        self._look_at_chats()
        self._took("customers look at chats", mark)

    # ------------------------------------------------------------------------------------- the shop

    async def _report(self, due: list[tuple[datetime, int, int]]) -> None:
        """Report the purchases that happened in this step through the purchase API, at once."""
        if not due:
            return
        slots = asyncio.Semaphore(8)

        async def one(moment: datetime, index: int, number: int) -> None:
            person = self.people[index]
            body: dict[str, Any] = {
                "order_id": person.order_id(number),
                "customer_id": person.customer_id,
                "telegram_user_id": person.user.id,
                "name": person.user.first_name,
                "language": person.language,
                "amount": f"{person.rng.uniform(5, 300):.2f}",
                "purchased_at": moment.isoformat(),
            }
            if person.zone_name is not None:
                body["time_zone"] = person.zone_name
            async with slots:
                reported = self.clock.now
                status, text = await self.shop.report(body)
            if status != 201:
                self.progress.rejected.append(f"{body['order_id']}: HTTP {status} {text}")
                return
            self.progress.purchases += 1
            person.did.append(Did(moment, "purchase", order_id=body["order_id"], reported_at=reported))

        await asyncio.gather(*(one(*order) for order in due))

    # -------------------------------------------------------------------------------- the customers

    def _act(self, boundary: datetime) -> int:
        """Do what customers planned up to ``boundary``; return how many updates that queued."""
        queued = 0
        while self.planned and self.planned[0].at <= boundary:
            action = heapq.heappop(self.planned)
            queued += self._do(self.people[action.person], action)
        self.progress.actions += queued
        return queued

    def _do(self, person: Person, action: Planned) -> int:
        """One planned action, on the chat as it is now; return 1 if it queued an update."""
        now = self.clock.now
        user = person.user
        if action.what in ("start", "stop", "text"):
            self.api.user_sends_text(user, action.text)
            person.did.append(Did(now, action.what, value=action.text))
            return 1
        if action.what == "pause":
            self.api.user_sends_text(user, action.text)
            days = {"/pause": 30, "/pause 90d": 90, "/pause 2w": 14}[action.text]
            person.did.append(Did(now, "pause", until=now + timedelta(days=days)))
            return 1
        message = self._message(user.id, action.message_id)
        if message is None:
            return 0
        offered = _buttons(message)
        if action.what == "checkin":
            data = next((d for d in offered if d.startswith("ci:") and d.endswith(f":{action.answer}")), None)
            if data is None:
                return 0
            self.api.user_presses_button(user, message, data)
            person.did.append(Did(now, "checkin_answer", value=action.answer))
            if action.answer == "question":  # then they write their question
                later = waking(now + timedelta(minutes=person.rng.uniform(30, 180)), person.zone, person.rng)
                self._plan(Planned(later, 0, person.index, "text", text=QUESTIONS[person.language]))
            return 1
        return self._answer(person, action, message, offered, now)

    def _answer(
        self, person: Person, action: Planned, message: dict[str, Any], offered: list[str], now: datetime
    ) -> int:
        """Answer the survey question the message shows, if it still shows the one planned for."""
        buttons = [(data, parsed) for data in offered if (parsed := parse_answer_callback(data)) is not None]
        if not buttons or buttons[0][1][1] != action.question_id:
            return 0  # answered, expired or asked again elsewhere since: nothing to do here any more
        delivery_id, question_id = buttons[0][1][0], buttons[0][1][1]
        plan = person.plans[delivery_id]
        rng = person.rng
        if question_id == "nps":
            data = next((d for d, p in buttons if p[2] == str(plan.score)), None)
            value = str(plan.score)
        elif question_id in ("comment", "improve") and rng.random() < 0.6:
            text = rng.choice(COMMENTS[person.language])
            self.api.user_sends_text(person.user, text)
            person.did.append(
                Did(now, "survey_answer", delivery_id=delivery_id, question_id=question_id, value=text)
            )
            return 1
        else:  # a choice, or Skip on a text question
            data, parsed = rng.choice(buttons)
            value = parsed[2]
        if data is None:
            return 0
        self.api.user_presses_button(person.user, message, data)
        person.did.append(
            Did(now, "survey_answer", delivery_id=delivery_id, question_id=question_id, value=value)
        )
        return 1

    def _message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        return next((m for m in self.api.messages_to(chat_id) if m["message_id"] == message_id), None)

    def _look_at_chats(self) -> None:
        """Customers look at the messages with buttons that arrived or changed in this step, and decide
        whether and when to act on them."""
        requests = self.api.requests
        chats: set[int] = set()
        cursor = self._cursor
        while cursor < len(requests):
            request = requests[cursor]
            if request.status is None:
                break  # still being answered: looked at next step
            cursor += 1
            chat = request.params.get("chat_id")
            shown = request.status == 200 and request.method in ("sendMessage", "editMessageText")
            if shown and isinstance(chat, int) and chat in self.by_chat:
                chats.add(chat)
        self._cursor = cursor
        now = self.clock.now
        for chat in sorted(chats):
            person = self.by_chat[chat]
            for message in self.api.messages_to(chat):
                if "reply_markup" not in message:
                    continue
                key = (int(message["message_id"]), str(message.get("text", "")))
                if key not in person.seen:
                    person.seen.add(key)
                    self._react(person, message, now)

    def _react(self, person: Person, message: dict[str, Any], now: datetime) -> None:
        """A customer sees a message with buttons: a check-in, a survey's first question, its next question
        (the answered one edited in place) or its reminder; plan what they do about it, if anything."""
        rng = person.rng
        offered = _buttons(message)
        message_id = int(message["message_id"])
        if any(data.startswith("ci:") for data in offered):
            answer = weighted(rng, CHECKIN_WEIGHTS)
            if answer:
                self._plan(
                    Planned(
                        self._reaction(person, now),
                        0,
                        person.index,
                        "checkin",
                        message_id=message_id,
                        answer=answer,
                    )
                )
            return
        parsed = next((p for data in offered if (p := parse_answer_callback(data)) is not None), None)
        if parsed is None:
            return
        delivery_id, question_id, _ = parsed
        plan = person.plans.get(delivery_id)
        if plan is None:
            score = min(10, max(0, round(person.base_score + rng.gauss(0, 1.5))))
            plan = SurveyPlan(weighted(rng, PLAN_WEIGHTS[person.temperament]), score)
            if plan.style == "midway" and rng.random() < 0.5:
                plan.style = "midway-resumes"  # picks up again when the reminder comes
            person.plans[delivery_id] = plan
        reminder = str(message.get("text", "")).startswith(self.reminder_intro)
        if reminder:
            plan.reminded = True
            act, quick = plan.answers_reminder, False
        elif question_id == "nps":
            act, quick = plan.answers_at_once or plan.style == "midway-resumes", False
        else:  # the next question, shown in place of the answered one
            act, quick = not plan.style.startswith("midway") or plan.reminded, True
        if act:
            at = self._reaction(person, now, quick=quick)
            self._plan(Planned(at, 0, person.index, "survey", message_id=message_id, question_id=question_id))

    def _reaction(self, person: Person, now: datetime, *, quick: bool = False) -> datetime:
        """When a customer gets round to a message: soon if they are answering already, else within hours
        (rarely a day), in their waking hours."""
        rng = person.rng
        if quick:
            minutes = rng.uniform(1, 30)
        else:
            roll = rng.random()
            minutes = (
                rng.uniform(5, 120)
                if roll < 0.6
                else rng.uniform(120, 480)
                if roll < 0.9
                else rng.uniform(480, 1800)
            )
        return waking(now + timedelta(minutes=minutes), person.zone, rng)

    # ---------------------------------------------------------------------------------------- the bot

    async def _wait_stored(self) -> None:
        """Wait until the poller has stored every update queued at the fake (it confirms them after)."""
        try:
            await self.api.wait_until(lambda: not self.api.pending_updates, timeout=60)
        except AssertionError as error:
            raise BenchError(f"the bot did not fetch the customers' updates: {error}") from None

    async def _handle_updates(self) -> None:
        """Handle every update the poller stored (like the e2e tests: ``worker.drain()``)."""
        while True:
            await self.env.bot.worker.drain()
            # On SQLite the drain waited for the background worker's transaction (one writer); on
            # PostgreSQL that worker may still hold some of them (SKIP LOCKED).
            if self.sqlite or not await asyncio.to_thread(_updates_waiting, self.env.engine):
                return
            await asyncio.sleep(0.005)

    def _took(self, phase: str, since: float) -> float:
        """Add the seconds since ``since`` to ``phase``; return now (where the time goes, for the report)."""
        now = time.perf_counter()
        self.progress.seconds[phase] += now - since
        return now


def _updates_waiting(engine: Engine) -> bool:
    with Session(engine) as session:
        found = session.exec(
            select(InboundUpdate.update_id)
            .where(col(InboundUpdate.status) == UpdateStatus.PENDING.value)
            .where(col(InboundUpdate.next_attempt_at) <= datetime.now(UTC))
            .limit(1)
        ).first()
    return found is not None


def _buttons(message: dict[str, Any]) -> list[str]:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
    return [str(key.get("callback_data")) for row in rows for key in row if key.get("callback_data")]


# ------------------------------------------------------------------------------ what the bot stored


@dataclass(frozen=True, slots=True)
class Sent:
    """A message the bot sent to a customer's chat (an outbox row with status sent)."""

    chat_id: int
    kind: str
    method: str
    delivery_id: int | None
    sent_at: datetime
    unprompted: object
    text: str
    key: str


@dataclass(frozen=True, slots=True)
class Survey:
    """One purchase's survey as stored."""

    id: int
    chat_id: int
    order_id: str
    purchased_at: datetime
    status: str
    due_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    expires_at: datetime | None
    expired_at: datetime | None
    reminded_at: datetime | None


@dataclass(frozen=True, slots=True)
class Decision:
    """One stored contact decision (contact_events)."""

    chat_id: int
    kind: str
    outcome: str
    reason: str | None
    at: datetime


@dataclass
class Stored:
    """Everything the checks read from the database, loaded once at the end."""

    sent: list[Sent]
    unsent: list[tuple[int, str, str, datetime]]
    """Customer rows not sent: chat, kind, status, next attempt."""
    surveys: list[Survey]
    purchases: Counter[str]
    events: list[Decision]
    skipped_deliveries: set[int]
    reminder_events: Counter[int]
    """Reminder decisions "sent" per delivery."""
    checkins: list[tuple[int, datetime, str | None]]
    answers: dict[tuple[int, str], str]


def load_stored(engine: Engine) -> Stored:
    """Read what the checks need; chats stand for customers (each customer has their own chat)."""
    with Session(engine) as session:
        chat_of = {
            int(cid): int(chat)
            for cid, chat in session.exec(select(Customer.id, Customer.telegram_user_id)).all()
            if cid is not None and chat is not None
        }
        sent, unsent = [], []
        rows = session.exec(select(OutboxMessage).where(col(OutboxMessage.chat_id) > 0)).all()
        for row in rows:
            if row.status == OutboxStatus.SENT.value and row.sent_at is not None:
                sent.append(
                    Sent(
                        int(row.chat_id or 0),
                        row.kind,
                        row.method,
                        row.delivery_id,
                        row.sent_at,
                        row.payload.get(UNPROMPTED),
                        str(row.payload.get("text", "")),
                        row.dedupe_key,
                    )
                )
            elif row.status != OutboxStatus.CANCELLED.value:
                unsent.append((int(row.chat_id or 0), row.kind, row.status, row.next_attempt_at))
        surveys = [
            Survey(
                int(d.id or 0),
                chat_of.get(d.customer_id, 0),
                p.order_id,
                p.purchased_at,
                d.status,
                d.due_at,
                d.started_at,
                d.completed_at,
                d.expires_at,
                d.expired_at,
                d.reminded_at,
            )
            for d, p in session.exec(
                select(SurveyDelivery, Purchase).join(
                    Purchase, col(Purchase.id) == SurveyDelivery.purchase_id
                )
            ).all()
        ]
        purchases = Counter(session.exec(select(Purchase.order_id)).all())
        events, skipped, reminders = [], set(), Counter[int]()
        for event in session.exec(select(ContactEvent)).all():
            chat = chat_of.get(event.customer_id, 0)
            events.append(Decision(chat, event.kind, event.outcome, event.reason, event.at))
            if event.kind == "survey" and event.outcome == "skipped" and event.delivery_id is not None:
                skipped.add(event.delivery_id)
            if event.kind == "reminder" and event.outcome == "sent" and event.delivery_id is not None:
                reminders[event.delivery_id] += 1
        checkins = [
            (chat_of.get(c.customer_id, 0), c.sent_at, c.answer) for c in session.exec(select(Checkin)).all()
        ]
        answers = {
            (a.delivery_id, a.question_id): _answer_value(a) for a in session.exec(select(Answer)).all()
        }
    return Stored(sent, unsent, surveys, purchases, events, skipped, reminders, checkins, answers)


def _answer_value(answer: Answer) -> str:
    if answer.skipped:
        return "skip"
    if answer.score is not None:
        return str(answer.score)
    return answer.choice or (answer.text or "").strip()


@dataclass(frozen=True, slots=True)
class Unprompted:
    """A message the customer did not ask for, as sent: a survey's first question, a reminder, a check-in."""

    chat_id: int
    kind: str
    sent_at: datetime
    delivery_id: int | None


def unprompted_messages(stored: Stored, reminder_intro: tuple[str, ...]) -> list[Unprompted]:
    """The sent rows that carry the outbox's unprompted flag, by kind (a reminder starts with its intro)."""
    found = []
    for row in stored.sent:
        if not row.unprompted:
            continue
        if row.kind == KIND_CHECKIN:
            kind = "check-in"
        elif row.kind == KIND_QUESTION:
            kind = "reminder" if row.text.startswith(reminder_intro) else "survey"
        else:
            kind = f"other ({row.kind})"
        found.append(Unprompted(row.chat_id, kind, row.sent_at, row.delivery_id))
    return sorted(found, key=lambda message: message.sent_at)


# ---------------------------------------------------------------------------------------- the rules


@dataclass
class Rule:
    """One contact rule's verdict: how much was checked, and every violation in words."""

    name: str
    checked: int
    unit: str
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the verdict alone does not say (printed under its line)."""

    @property
    def ok(self) -> bool:
        """No violation."""
        return not self.violations


@dataclass(frozen=True)
class World:
    """What every check may read: the stored rows, the customers' own log, the settings, the time span."""

    stored: Stored
    unprompted: list[Unprompted]
    people: dict[int, Person]
    settings: Settings
    start: datetime
    end: datetime
    step: timedelta

    def zone(self, chat_id: int) -> ZoneInfo:
        """The customer's own zone, from the simulation (not from the bot's flag)."""
        return self.people[chat_id].zone

    def by_chat(self) -> dict[int, list[Unprompted]]:
        """The unprompted messages per customer, oldest first."""
        grouped: dict[int, list[Unprompted]] = defaultdict(list)
        for message in self.unprompted:
            grouped[message.chat_id].append(message)
        return grouped


def _at(moment: datetime | None, zone: ZoneInfo | None = None) -> str:
    if moment is None:
        return "–"
    return moment.astimezone(zone or UTC).strftime("%Y-%m-%d %H:%M" + ("" if zone else " UTC"))


def check_quiet_hours(world: World) -> Rule:
    """No unprompted message in the customer's own night: a survey at 23:00 is the message that gets the
    bot blocked. Answers to what the customer just did carry no unprompted flag and are not counted."""
    quiet = QuietHours.parse(world.settings.quiet_hours)
    rule = Rule(
        f"1. quiet hours {world.settings.quiet_hours} (customer's zone)", len(world.unprompted), "sends"
    )
    if quiet is None:
        return rule
    for message in world.unprompted:
        zone = world.zone(message.chat_id)
        local = message.sent_at.astimezone(zone).time()
        inside = (
            quiet.start <= local or local < quiet.end
            if quiet.start > quiet.end
            else quiet.start <= local < quiet.end
        )
        if inside:
            rule.violations.append(
                f"customer {message.chat_id}: {message.kind} sent {_at(message.sent_at, zone)} ({zone})"
            )
    return rule


def crowded_weeks(times: Sequence[datetime], cap: int) -> list[tuple[int, int]]:
    """Index ranges ``(first, last)`` of more than ``cap`` instants within 7 days (``t - 7d < s <= t``),
    one per instant that ends such a window; ``times`` sorted."""
    found, first = [], 0
    for last, moment in enumerate(times):
        while times[first] <= moment - WEEK:
            first += 1
        if last - first + 1 > cap:
            found.append((first, last))
    return found


def check_weekly_cap(world: World) -> Rule:
    """At most MAX_PROACTIVE_PER_WEEK unprompted messages in any sliding 7 days, by the time they were
    sent: what the customer sees, and what the bot counts (the outbox row a decision names); a note says
    how the same windows look by the decision times (contact_events.at)."""
    cap = world.settings.max_proactive_per_week
    rule = Rule(f"2. weekly cap {cap} in any 7 days (by send time)", len(world.people), "customers")
    decided: dict[int, list[Decision]] = defaultdict(list)
    for event in world.stored.events:
        if event.outcome == "sent":
            decided[event.chat_id].append(event)
    shortest: timedelta | None = None
    for chat, messages in world.by_chat().items():
        times = [m.sent_at for m in messages]
        decisions = sorted(decided[chat], key=lambda event: event.at)
        for first, last in crowded_weeks(times, cap):
            within = messages[first : last + 1]
            taken = times[last] - times[first]
            shortest = taken if shortest is None else min(shortest, taken)
            sent = ", ".join(f"{m.kind} {m.sent_at.isoformat(timespec='milliseconds')}" for m in within)
            asked = ", ".join(
                f"{e.kind} {e.at.isoformat(timespec='milliseconds')}"
                for e in decisions
                if times[first] - PROCESSING_GRACE <= e.at <= times[last]
            )
            rule.violations.append(
                f"customer {chat}: {len(within)} sent within {exact(taken)} ({exact(WEEK - taken)} short of 7"
                f" days): {sent}; decided (contact_events.at): {asked}"
            )
    by_decision = sum(len(crowded_weeks(sorted(e.at for e in events), cap)) for events in decided.values())
    rule.notes.append(f"by decision time (contact_events.at): {by_decision} over the cap")
    if shortest is not None:
        rule.notes.append(f"the tightest window by send time: {cap + 1} messages within {exact(shortest)}")
    return rule


def first_questions(world: World) -> dict[int, datetime]:
    """When each survey's first question was sent (its first sendMessage), by delivery."""
    found: dict[int, datetime] = {}
    for row in world.stored.sent:
        if row.kind == KIND_QUESTION and row.method == "sendMessage" and row.delivery_id is not None:
            previous = found.get(row.delivery_id)
            if previous is None or row.sent_at < previous:
                found[row.delivery_id] = row.sent_at
    return found


def check_cooldown(world: World) -> Rule:
    """No two surveys for one customer within SURVEY_COOLDOWN, by when their first questions were sent: a
    regular buyer is not asked every week. The bot counts the same (its first question's ``sent_at``); a
    note says how the pairs look by the decision times (``started_at``)."""
    cooldown = world.settings.survey_cooldown
    asked = first_questions(world)
    surveys = {survey.id: survey for survey in world.stored.surveys}
    per_chat: dict[int, list[tuple[datetime, int]]] = defaultdict(list)
    for survey_id, moment in asked.items():
        per_chat[surveys[survey_id].chat_id].append((moment, survey_id))
    rule = Rule(f"3. survey cooldown {span(cooldown)} (by send time)", len(asked), "surveys")
    by_decision = 0
    for chat, items in per_chat.items():
        items.sort()
        for (earlier, first_id), (later, second_id) in itertools.pairwise(items):
            decided = [surveys[first_id].started_at, surveys[second_id].started_at]
            if decided[0] is not None and decided[1] is not None and decided[1] - decided[0] < cooldown:
                by_decision += 1
            if later - earlier < cooldown:
                rule.violations.append(
                    f"customer {chat}: survey #{first_id} sent {earlier.isoformat(timespec='milliseconds')}, "
                    f"#{second_id} {later.isoformat(timespec='milliseconds')}: "
                    f"{exact(later - earlier)} apart "
                    f"({exact(cooldown - (later - earlier))} short); decided (started_at) "
                    + " and ".join(m.isoformat(timespec="milliseconds") if m else "–" for m in decided)
                )
    rule.notes.append(f"by decision time (started_at): {by_decision} pairs too close")
    return rule


def open_periods(world: World) -> dict[int, tuple[int, datetime, datetime]]:
    """Each asked survey's open period: first question sent → completed, expired, stopped, or still open."""
    asked = first_questions(world)
    periods = {}
    for survey in world.stored.surveys:
        begin = asked.get(survey.id)
        if begin is None:
            continue
        if survey.status == DeliveryStatus.COMPLETED.value:
            finish = survey.completed_at
        elif survey.status == DeliveryStatus.EXPIRED.value:
            finish = survey.expired_at
        elif survey.status == DeliveryStatus.STOPPED.value:
            person = world.people[survey.chat_id]
            finish = next(
                (d.at for d in person.did if d.what == "stop" and d.at >= begin - PROCESSING_GRACE), None
            )
        else:
            finish = world.end
        periods[survey.id] = (survey.chat_id, begin, finish or world.end)
    return periods


def check_one_at_a_time(world: World) -> Rule:
    """A customer answers one survey at a time: open periods of their surveys never overlap."""
    periods = open_periods(world)
    per_chat: dict[int, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    for survey_id, (chat, begin, finish) in periods.items():
        per_chat[chat].append((begin, finish, survey_id))
    rule = Rule("4. one survey at a time", len(periods), "surveys")
    for chat, items in per_chat.items():
        items.sort()
        for (begin, finish, first_id), (later, _, second_id) in itertools.pairwise(items):
            if later < finish:
                rule.violations.append(
                    f"customer {chat}: #{first_id} open {_at(begin)} → {_at(finish)}, #{second_id} asked "
                    f"{_at(later)}"
                )
    return rule


def check_reminders(world: World) -> Rule:
    """One reminder per survey at most, and only while it is unfinished: never after it was completed."""
    surveys = {survey.id: survey for survey in world.stored.surveys}
    reminders: dict[int, list[datetime]] = defaultdict(list)
    for message in world.unprompted:
        if message.kind == "reminder" and message.delivery_id is not None:
            reminders[message.delivery_id].append(message.sent_at)
    rule = Rule("5. at most one reminder, only for unfinished surveys", len(reminders), "reminders")
    for delivery_id, count in world.stored.reminder_events.items():
        if count > 1:
            rule.violations.append(f'survey #{delivery_id}: {count} reminder decisions "sent"')
    for delivery_id, times in reminders.items():
        survey = surveys.get(delivery_id)
        if len(times) > 1:
            rule.violations.append(
                f"survey #{delivery_id}: {len(times)} reminders sent ({', '.join(map(_at, times))})"
            )
        if survey is None:
            continue
        for moment in times:
            if survey.completed_at is not None and survey.completed_at <= moment:
                rule.violations.append(
                    f"customer {survey.chat_id}: survey #{delivery_id} completed {_at(survey.completed_at)}, "
                    f"reminded {_at(moment)}"
                )
            if survey.expired_at is not None and survey.expired_at <= moment:
                rule.violations.append(
                    f"survey #{delivery_id} expired {_at(survey.expired_at)}, reminded {_at(moment)}"
                )
            if survey.started_at is None or survey.started_at >= moment:
                rule.violations.append(f"survey #{delivery_id} reminded {_at(moment)} before it was asked")
    return rule


def visit_median(times: Iterable[datetime]) -> timedelta | None:
    """The median gap between visits (orders within a day are one visit); None for one visit."""
    visits: list[datetime] = []
    for moment in sorted(times):
        if not visits or moment - visits[-1] >= SAME_VISIT:
            visits.append(moment)
    if len(visits) < 2:
        return None
    return timedelta(
        seconds=statistics.median((b - a).total_seconds() for a, b in itertools.pairwise(visits))
    )


def check_checkins(world: World) -> Rule:
    """One check-in per silence, and none before the customer was silent for their own rhythm.

    From the customers' own log: between two check-ins they bought or wrote; and at a check-in, the last
    purchase or word the bot could know (older than PROCESSING_GRACE) lies at least CHECKIN_FACTOR × the
    median visit gap (CHECKIN_AFTER for one visit) back. Later is allowed (quiet hours, the weekly cap, an
    open survey postpone it); earlier only by the bot's "last seen" resolution.
    """
    settings = world.settings
    checkins = [m for m in world.unprompted if m.kind == "check-in"]
    rule = Rule("6. one check-in per silence, never before it", len(checkins), "check-ins")
    per_chat: dict[int, list[datetime]] = defaultdict(list)
    for message in checkins:
        per_chat[message.chat_id].append(message.sent_at)
    for chat, times in per_chat.items():
        person = world.people[chat]
        for previous, current in zip([None, *times], times, strict=False):
            known = current - PROCESSING_GRACE
            bought = [
                d.at for d in person.did if d.what == "purchase" and d.reported_at and d.reported_at < known
            ]
            activity = [d.at for d in person.did if (d.talking and d.at < known)] + bought
            if previous is not None and not any(
                previous - PROCESSING_GRACE < moment < current for moment in activity
            ):
                rule.violations.append(
                    f"customer {chat}: check-ins {_at(previous)} and {_at(current)}, "
                    "no purchase or word between"
                )
            if not activity:
                rule.violations.append(
                    f"customer {chat}: check-in {_at(current)} without any purchase or word before"
                )
                continue
            median = visit_median(bought)
            silent_after = (
                settings.checkin_after
                if median is None
                else timedelta(seconds=median.total_seconds() * settings.checkin_factor)
            )
            silent_at = max(activity) + silent_after
            if current < silent_at - LAST_SEEN_RESOLUTION:
                rule.violations.append(
                    f"customer {chat}: check-in {_at(current)}, silent only from {_at(silent_at)} "
                    f"(last activity {_at(max(activity))}, rhythm {silent_after})"
                )
    return rule


def _state_at(person: Person, moment: datetime) -> str | None:
    """What the customer wished at ``moment`` as far as the bot could know: "stopped", "paused" or None.

    /start undoes both. A /stop or /pause younger than PROCESSING_GRACE may not have been read yet (then
    the one before it, if any, still holds); a /start counts at once (until the bot reads it, it only
    holds back more).
    """
    known = moment - PROCESSING_GRACE
    starts = [d.at for d in person.did if d.what == "start" and d.at < moment]
    since = max(starts, default=None)
    wishes = [
        d
        for d in person.did
        if d.what in ("stop", "pause") and d.at < known and (since is None or d.at > since)
    ]
    if any(d.what == "stop" for d in wishes):
        return "stopped"
    pauses = [d for d in wishes if d.what == "pause"]
    if pauses and pauses[-1].until is not None and moment < pauses[-1].until:
        return "paused"
    return None


def check_wishes(world: World) -> Rule:
    """A customer's own wish outranks everything: nothing unprompted after /stop (until /start), none
    during a /pause (until it ends or /start), and no check-in after "not interested"."""
    watched = {
        chat
        for chat, person in world.people.items()
        if any(d.what in ("stop", "pause") or d.value == "not_interested" for d in person.did)
    }
    messages = [m for m in world.unprompted if m.chat_id in watched]
    rule = Rule(
        '7. /stop, /pause and "not interested" respected', len(messages), f"sends to {len(watched)} customers"
    )
    for message in messages:
        person = world.people[message.chat_id]
        state = _state_at(person, message.sent_at)
        if state is not None:
            rule.violations.append(
                f"customer {message.chat_id}: {message.kind} sent {_at(message.sent_at)} while {state}"
            )
        if message.kind == "check-in":
            refused = [
                d.at
                for d in person.did
                if d.value == "not_interested" and d.at < message.sent_at - PROCESSING_GRACE
            ]
            if refused:
                rule.violations.append(
                    f'customer {message.chat_id}: check-in {_at(message.sent_at)} after "not interested" '
                    f"{_at(refused[0])}"
                )
    return rule


def check_nothing_lost(world: World, rejected: list[str]) -> Rule:
    """Every purchase reported is stored once with its survey; every survey's state fits the time (nothing
    overdue, nothing stuck); every answer a customer gave is stored with its value; nothing for a customer
    is stuck in the outbox."""
    stored = world.stored
    late = world.end - world.step - PROCESSING_GRACE
    reported = {d.order_id: d for person in world.people.values() for d in person.did if d.what == "purchase"}
    rule = Rule("8. nothing lost", len(reported) + len(stored.surveys), "purchases + surveys")
    problems = rule.violations
    problems.extend(f"purchase refused: {line}" for line in rejected)
    for order_id in reported:
        if stored.purchases[order_id or ""] != 1:
            problems.append(f"purchase {order_id} stored {stored.purchases[order_id or '']} times")
    unknown = set(stored.purchases) - set(reported)
    problems.extend(f"purchase {order_id} stored but never reported" for order_id in sorted(unknown))
    per_order = Counter(survey.order_id for survey in stored.surveys)
    problems.extend(f"purchase {order} has {n} surveys" for order, n in per_order.items() if n != 1)
    problems.extend(f"purchase {order} has no survey" for order in reported if per_order[order or ""] == 0)
    surveys = {survey.id: survey for survey in stored.surveys}
    for survey in stored.surveys:
        problem = _survey_problem(world, survey, late)
        if problem:
            problems.append(f"customer {survey.chat_id}: survey #{survey.id} ({survey.order_id}) {problem}")
    for person in world.people.values():
        given: dict[tuple[int, str], list[tuple[datetime, str]]] = defaultdict(list)
        for did in person.did:
            if did.what == "survey_answer" and did.delivery_id is not None and did.question_id is not None:
                given[(did.delivery_id, did.question_id)].append((did.at, (did.value or "").strip()))
        written = [(did.at, (did.value or "").strip()) for did in person.did if did.what == "text"]
        for did in person.did:
            if did.what != "survey_answer" or did.delivery_id is None or did.question_id is None:
                continue
            got = stored.answers.get((did.delivery_id, did.question_id))
            # Two answers to one question in the same moment: the bot keeps the one it handled first, and
            # neither is lost. A message written while a comment question is open is that comment, so
            # Skip pressed in the same moment as a message (the simulation's hour step) may lose to it.
            together = {
                value
                for at, value in [*given[(did.delivery_id, did.question_id)], *written]
                if abs(at - did.at) <= PROCESSING_GRACE
            }
            asked = surveys.get(did.delivery_id)
            # Too late is not lost: the survey had expired, or the customer had said /stop just before.
            expired = asked is not None and asked.expired_at is not None and asked.expired_at <= did.at
            stopped = asked is not None and asked.status == DeliveryStatus.STOPPED.value
            closed = expired or (stopped and _state_at(person, did.at + PROCESSING_GRACE) == "stopped")
            if got not in together and not closed:
                around = [
                    f"{d.what}{'=' + d.value if d.value else ''} {d.at.isoformat(timespec='seconds')}"
                    for d in person.did
                    if abs(d.at - did.at) <= timedelta(hours=3) and d is not did
                ]
                state = f"{asked.status}, asked {_at(asked.started_at)}" if asked else "no such survey"
                problems.append(
                    f"customer {person.user.id}: answer {did.question_id}={did.value!r} to survey "
                    f"#{did.delivery_id} ({state}) at {did.at.isoformat(timespec='seconds')} "
                    f"stored as {got!r}; "
                    f"around it: {', '.join(around) or 'nothing'}"
                )
    for chat, kind, status, next_at in stored.unsent:
        if status != OutboxStatus.PENDING.value or next_at <= late:
            problems.append(f"customer {chat}: {kind} message {status}, next attempt {_at(next_at)}")
    return rule


def _survey_problem(world: World, survey: Survey, late: datetime) -> str | None:
    status = survey.status
    if status == DeliveryStatus.COMPLETED.value:
        ok = (
            survey.completed_at is not None
            and survey.started_at is not None
            and survey.started_at <= survey.completed_at
        )
        return None if ok else f"completed without a start or completion time ({_at(survey.completed_at)})"
    if status == DeliveryStatus.EXPIRED.value:
        if survey.expired_at is None or survey.expires_at is None or survey.expired_at < survey.expires_at:
            return f"expired {_at(survey.expired_at)}, due to expire {_at(survey.expires_at)}"
        if survey.expired_at - survey.expires_at > world.step + PROCESSING_GRACE:
            return f"expired {_at(survey.expired_at)}, long after {_at(survey.expires_at)}"
        return None
    if status == DeliveryStatus.ACTIVE.value:
        if survey.expires_at is None or survey.expires_at <= late:
            return f"still open at the end, due to expire {_at(survey.expires_at)}"
        return None
    if status == DeliveryStatus.SCHEDULED.value:
        return None if survey.due_at > late else f"still scheduled, due {_at(survey.due_at)}"
    if status == DeliveryStatus.SKIPPED.value:
        return None if survey.id in world.stored.skipped_deliveries else "skipped without a stored reason"
    if status == DeliveryStatus.STOPPED.value:
        stopped = any(d.what == "stop" for d in world.people[survey.chat_id].did)
        return None if stopped else "stopped, but the customer never said /stop"
    return f"left as {status} (due {_at(survey.due_at)})"


def check_all(world: World, rejected: list[str]) -> list[Rule]:
    """Every rule, in the order of the report."""
    return [
        check_quiet_hours(world),
        check_weekly_cap(world),
        check_cooldown(world),
        check_one_at_a_time(world),
        check_reminders(world),
        check_checkins(world),
        check_wishes(world),
        check_nothing_lost(world, rejected),
    ]


# ---------------------------------------------------------------------------------------- the report


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of ``values`` (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def max_in_week(times_by_chat: dict[int, list[datetime]]) -> tuple[int, int | None]:
    """The most instants any customer has in any 7 days, and who."""
    best, who = 0, None
    for chat, times in times_by_chat.items():
        for first, last in crowded_weeks(sorted(times), 0):
            if last - first + 1 > best:
                best, who = last - first + 1, chat
    return best, who


def _counts(items: Iterable[str | None]) -> str:
    counted = Counter(item or "–" for item in items)
    return ", ".join(f"{name} {count}" for name, count in counted.most_common()) or "none"


def print_figures(world: World, out: Callable[[str], None]) -> None:
    """How many unprompted messages customers got, and what the rules decided."""
    weeks = (world.end - world.start) / WEEK
    people = len(world.people)
    per_chat = Counter(message.chat_id for message in world.unprompted)
    averages = [per_chat[chat] / weeks for chat in world.people]
    most, who = max_in_week({chat: [m.sent_at for m in ms] for chat, ms in world.by_chat().items()})
    decided: dict[int, list[datetime]] = defaultdict(list)
    for event in world.stored.events:
        if event.outcome == "sent":
            decided[event.chat_id].append(event.at)
    most_decided, _ = max_in_week(decided)
    cap = world.settings.max_proactive_per_week
    out(f"unprompted messages sent: {len(world.unprompted)} over {weeks:.1f} weeks")
    out(
        f"  per customer per week: mean {len(world.unprompted) / people / weeks:.3f}, median "
        f"{statistics.median(averages):.3f}, p95 {percentile(averages, 0.95):.3f}; max in any 7 days for any "
        f"customer {most} by send time (customer {who}), {most_decided} by decision time; "
        f"MAX_PROACTIVE_PER_WEEK {cap}"
    )
    kinds = Counter(message.kind for message in world.unprompted)
    out(
        "  by kind: "
        + ", ".join(
            f"{kind} {count} ({count / people / weeks:.3f}/customer/week)"
            for kind, count in kinds.most_common()
        )
    )
    events = world.stored.events
    for kind in ("survey", "reminder", "checkin"):
        mine = [e for e in events if e.kind == kind]
        out(
            f"  {kind} decisions (contact_events): sent {sum(e.outcome == 'sent' for e in mine)}; skipped: "
            f"{_counts(e.reason for e in mine if e.outcome == 'skipped')}; postponed: "
            f"{_counts(e.reason for e in mine if e.outcome == 'postponed')}"
        )
    statuses = Counter(survey.status for survey in world.stored.surveys)
    asked = sum(1 for survey in world.stored.surveys if survey.started_at is not None)
    completed = statuses[DeliveryStatus.COMPLETED.value]
    out(
        f"  surveys: {len(world.stored.surveys)} purchases, {asked} asked, completed {completed} "
        f"({completed / asked:.0%} of asked); by status: {_counts(s.status for s in world.stored.surveys)}"
        if asked
        else f"  surveys: {len(world.stored.surveys)} purchases, none asked"
    )
    reminded = sum(1 for s in world.stored.surveys if s.reminded_at is not None)
    after = sum(
        1 for s in world.stored.surveys if s.reminded_at and s.completed_at and s.completed_at > s.reminded_at
    )
    out(f"  reminders: {reminded} surveys reminded, {after} of them completed after the reminder")
    out(
        f"  check-ins: {len(world.stored.checkins)}; answers: "
        f"{_counts(answer or 'unanswered' for _, _, answer in world.stored.checkins)}"
    )


def print_rules(rules: list[Rule], out: Callable[[str], None]) -> None:
    """One line per rule (its notes under it), then up to five violations of each broken one."""
    out("rules:")
    for rule in rules:
        verdict = "PASS" if rule.ok else "FAIL"
        checked = f"checked {rule.checked} {rule.unit}"
        out(f"  {rule.name} — {checked} — violations {len(rule.violations)}: {verdict}")
        for note in rule.notes:
            out(f"      ({note})")
    for rule in rules:
        if not rule.ok:
            out(f"{rule.name}: {len(rule.violations)} violations, the first ones:")
            for line in rule.violations[:5]:
                out(f"    {line}")


# -------------------------------------------------------------------------------------------- running


class _ErrorLog(logging.Handler):
    """ERROR records of the bot: a run that logged one hid a failure."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        detail = f" ({type(error).__name__}: {str(error)[:300]})" if error is not None else ""
        self.lines.append(f"{record.name}: {record.getMessage()}{detail}")


@dataclass
class Outcome:
    """What a run produced for the report."""

    world: World
    progress: Progress
    wall: float
    cpu: float
    """CPU seconds of this process (all threads) while the year ran."""
    errors: list[str]


def _port(env: RunningBot) -> int:
    if env.bot.http_port is None:
        raise BenchError("the bot's purchase API did not start")
    return env.bot.http_port


def start_of_year(zone: ZoneInfo) -> datetime:
    """The next local midnight in the shop's zone at least an hour from now (the clock only moves on)."""
    local = (datetime.now(UTC) + timedelta(hours=1)).astimezone(zone) + timedelta(days=1)
    return local_instant(local.date(), zone, 0, 0)


async def simulate(options: Options, database_url: str, say: Callable[[str], None]) -> Outcome:
    """Start the bot, run the year, load what it stored."""
    errors = _ErrorLog()
    watched = [logging.getLogger(name) for name in ("bot", "handlers", "storage", "telegram", "tests")]
    for logger in watched:
        logger.addHandler(errors)
    clock = MovableClock()
    started = time.monotonic()
    try:
        async with (
            running_bot(database_url, clock=clock, expect_errors=True, **SHIPPED_OVERRIDES) as env,
            contextlib.AsyncExitStack() as stack,
        ):
            settings = env.bot.settings
            start = start_of_year(settings.timezone)
            clock.move_to(start)
            people = make_people(options, start, settings.timezone)
            shop = await stack.enter_async_context(Shop(_port(env)))
            simulation = Simulation(env, shop, clock, people, options, start)

            def month(day: int, seconds: float) -> None:
                p = simulation.progress
                say(
                    f"day {day:>3}/{options.days}: {p.purchases} purchases, {p.actions} customer updates, "
                    f"{len(env.api.requests)} Bot API calls, {seconds:.0f} s"
                )

            cpu = time.process_time()
            await simulation.run(month)
            wall, cpu = time.monotonic() - started, time.process_time() - cpu
            for person in people:  # a purchase is logged when reported, after what happened since
                person.did.sort(key=lambda did: did.at)
            stored = await asyncio.to_thread(load_stored, env.engine)
            errors.lines.extend(f"Bot API spec: {line}" for line in env.api.violations)
            errors.lines.extend(f"fake server: {line}" for line in env.api.internal_errors)
            world = World(
                stored,
                unprompted_messages(stored, simulation.reminder_intro),
                {person.user.id: person for person in people},
                settings,
                start,
                simulation.end,
                options.step,
            )
    except AssertionError as error:  # running_bot checks the Bot API spec when it stops
        errors.lines.append(f"on stop: {error}")
        raise BenchError(f"the bot did not stop cleanly: {error}") from None
    finally:
        for logger in watched:
            logger.removeHandler(errors)
    return Outcome(world, simulation.progress, wall, cpu, errors.lines)


def main(argv: list[str] | None = None) -> int:
    """Run the year and say whether every rule held."""
    options = parse_args(argv)
    out: Callable[[str], None] = print
    preview = make_settings("sqlite://", "http://127.0.0.1:1", **SHIPPED_OVERRIDES)
    out(settings_line(preview))
    sys.stdout.flush()

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    fingerprint = code_fingerprint()
    say(f"machine: {machine()}; code under test: {code_version()}, fingerprint {fingerprint}")
    try:
        if options.keep is not None:
            outcome = asyncio.run(simulate(options, f"sqlite:///{options.keep}", say))
            say(f"the database is kept in {options.keep}")
        else:
            with workdir() as path, fresh_database(options.database, path) as database:
                outcome = asyncio.run(simulate(options, database.url, say))
    except BenchError as error:
        out(f"simulation aborted: {error}")
        return 2
    except KeyboardInterrupt:
        out("interrupted; the bot was stopped")
        return 2
    except Exception as error:  # the bot or the fake broke: no figures to trust
        traceback.print_exc()
        out(f"simulation aborted: {error!r}")
        return 2
    world = outcome.world
    out(
        f"customers {options.customers}, purchases {outcome.progress.purchases}, simulated days "
        f"{options.days} ({outcome.progress.steps} steps of {span(options.step)}), customer updates "
        f"{outcome.progress.actions}, database {options.database}, seed {options.seed}, "
        f"wall time {outcome.wall:.0f} s (CPU {outcome.cpu:.0f} s)"
    )
    phases = outcome.progress.seconds
    out(
        "  wall time by phase: "
        + ", ".join(
            f"{name} {seconds:.0f} s" for name, seconds in sorted(phases.items(), key=lambda i: -i[1])
        )
    )
    print_figures(world, out)
    rules = check_all(world, outcome.progress.rejected)
    rules.append(Rule("9. clean run: no ERROR logged, no Bot API spec violation", 1, "run", outcome.errors))
    if code_fingerprint() != fingerprint:
        rules[-1].violations.append("the bot's code changed during the run: the figures mix two versions")
    print_rules(rules, out)
    ok = all(rule.ok for rule in rules)
    out("all rules held" if ok else "a rule was broken")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
