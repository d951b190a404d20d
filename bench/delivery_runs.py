"""The runs behind ``bench/delivery.py``: Kundenpuls against a fake Bot API that keeps Telegram's limits.

Kundenpuls runs as ``python -m bot.cli run`` in a subprocess, the fake on its own thread in this process
(as in bench/scenarios.py), now with flood limits on: it answers 429 like Telegram when the bot is too
fast. Three runs:

- :func:`run_send_rate`: N messages to N private chats queued at once; the rate at which the fake accepts
  them, against ``SEND_RATE``.
- :func:`run_answers`: N customers press a score at once, shipped defaults; answers per second until each
  sees their next step, against what Telegram allows for that load.
- :func:`run_critic_burst`: N customers (most of them critics) answer the whole survey at once; when the
  last survey completes, and when the staff group shows every critic's card (at 20 messages a minute).

Every run also counts 429s (the fake's limiter and any 429 status at all) and checks that nothing was
delivered twice.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import col

from bench.harness import (
    STAFF_CHAT,
    BenchError,
    BotProcess,
    Call,
    CpuMeter,
    Database,
    FakeServer,
    free_port,
    fresh_database,
    make_users,
    wait_for,
    workdir,
)
from bench.scenarios import (
    THANKS_MARKER,
    Customer,
    choose,
    fake_problems,
    keyboards,
    kundenpuls_env,
    log_problems,
    next_steps,
    open_bot,
    plan_customers,
    press_all,
    report_purchases,
    set_up_surveys,
    wait_asked,
    wait_ready,
    wait_replies,
)
from bot.settings import Settings
from storage.models import Answer, Case, DeliveryStatus, SurveyDelivery, utcnow
from storage.pacing import GROUP_CHAT_PACE
from tests.fakes.bot_api_server import BucketLimit, FakeBotApi, FloodLimits

SHIPPED_SEND_RATE: float = Settings.model_fields["send_rate"].default
TELEGRAM = FloodLimits.telegram()
TELEGRAM_OVERALL = TELEGRAM.overall.rate
"""About 30 message calls a second for a bot as a whole (Bot API FAQ)."""
GROUP_PER_SECOND = TELEGRAM.group.rate
"""20 messages a minute into one group."""
POLL_SECONDS = 0.1


def fake_limits(send_rate: float) -> FloodLimits:
    """Telegram's limits, with the overall bucket raised to ``send_rate`` when that is above 30/s (what a
    bot with paid broadcasts may send); the per-chat and per-group buckets stay Telegram's."""
    if send_rate <= TELEGRAM_OVERALL:
        return TELEGRAM
    burst = math.ceil(send_rate)
    return FloodLimits(TELEGRAM.private_chat, TELEGRAM.group, BucketLimit(rate=send_rate, burst=burst))


def describe_limits(limits: FloodLimits) -> str:
    """The fake's buckets in one line."""
    parts = (
        ("private chat", limits.private_chat),
        ("group", limits.group),
        ("overall", limits.overall),
    )
    return "; ".join(f"{name} {b.rate:.3g}/s burst {b.burst}" for name, b in parts)


def answers_limit() -> float:
    """Customer steps per second Telegram allows while critics' alerts fill the staff group.

    Each answer needs one message call to the customer (the survey message is edited into the next
    step); critics' alerts go to one group, which Telegram caps at 20 a minute. Of the overall 30/s, the
    group can take at most 20/60 a second, which leaves 30 - 1/3 ≈ 29.7 customer steps a second.
    """
    return TELEGRAM_OVERALL - GROUP_PER_SECOND


def group_drain_seconds(messages: int) -> float:
    """How long the bot's group pace (a burst, then one per interval) needs for ``messages``."""
    extra = max(0, messages - GROUP_CHAT_PACE.burst)
    return extra * GROUP_CHAT_PACE.interval.total_seconds()


# ---------------------------------------------------------------------------------- the running bot


@dataclass(frozen=True, slots=True)
class Throttling:
    """The 429s of a run: those the fake's flood limiter answered, and every request answered 429."""

    limiter: int
    status_429: int

    @property
    def none(self) -> bool:
        """Whether the run saw no 429 at all."""
        return self.limiter == 0 and self.status_429 == 0


@dataclass
class Running:
    """A started Kundenpuls process, its fake server and its database."""

    fake: FakeServer
    bot: BotProcess
    db: Database
    port: int

    def throttling(self) -> Throttling:
        """429s so far, over the whole run (setup included)."""
        statuses = sum(1 for c in self.fake.calls_since(0) if c.status == 429)
        return Throttling(len(self.fake.throttled()), statuses)

    def finish(self) -> list[str]:
        """Stop the bot; return what was wrong (Bot API violations, failed calls, log errors, exit code).

        429s are left out here: every run reports them on their own line.
        """
        # Taken before the stop, which cuts the parked long poll (that is no failure).
        failed = [
            f"{c.method} to {c.chat_id}: {c.status} {c.error}"
            for c in self.fake.calls_since(0)
            if c.status not in (200, 429) and not (c.method == "getUpdates" and c.status is None)
        ]
        self.bot.stop()
        problems = fake_problems(self.fake, []) + log_problems(self.bot)
        if failed:
            problems.append(f"{len(failed)} failed Bot API calls, first: {failed[0]}")
        return problems


@contextlib.contextmanager
def running_kundenpuls(
    *, database: str, limits: FloodLimits, settings: dict[str, str], timeout: float
) -> Iterator[Running]:
    """Kundenpuls (``python -m bot.cli run``) with ``settings`` on top of the shipped defaults, against a
    fake that keeps ``limits``, on a fresh database; stopped and cleaned up whatever happens."""
    port = free_port()
    with workdir() as wd, fresh_database(database, wd) as db, FakeServer(limits) as fake:
        env = kundenpuls_env(fake, db, port, **settings)
        with BotProcess("kundenpuls", ["-m", "bot.cli", "run"], env, wd) as bot:
            wait_ready(bot, port, timeout)
            yield Running(fake, bot, db, port)


def _duplicates(calls: list[Call], *, staff: bool) -> list[tuple[object, str | None]]:
    """(chat, text) pairs delivered more than once, among the customers' or the staff chat's calls."""
    shown = Counter(
        (c.chat_id, c.text) for c in calls if c.shows_message and (c.chat_id == STAFF_CHAT) is staff
    )
    return [key for key, n in shown.items() if n > 1]


def _answer_problems(db: Database, expected: int) -> list[str]:
    """Every answer stored exactly once (unique per delivery and question), and as many as expected."""
    with db.engine.connect() as connection:
        total = connection.execute(sa.select(sa.func.count()).select_from(Answer)).scalar_one()
        doubled = connection.execute(
            sa.select(col(Answer.delivery_id), col(Answer.question_id))
            .group_by(col(Answer.delivery_id), col(Answer.question_id))
            .having(sa.func.count() > 1)
        ).all()
    problems = []
    if doubled:
        problems.append(f"{len(doubled)} answers stored more than once, e.g. {tuple(doubled[0])}")
    if total != expected:
        problems.append(f"{total} answers stored, expected {expected}")
    return problems


# ---------------------------------------------------------------------------------- a. send rate


@dataclass
class SendRateResult:
    """What the fake accepted after N questions were queued at once."""

    send_rate: float
    messages: int
    accepted: int
    window: float
    """Seconds from the first to the last accepted message call."""
    queued_after: float
    """Seconds from making every survey due until the first message was accepted (not timed)."""
    bot_busy: float
    """The bot process's CPU from making the surveys due until the last was accepted (1.0 = one core)."""
    fake_busy: float
    """The fake server thread's CPU over the same time: near 1.0 would mean the fake set the pace."""
    throttling: Throttling
    problems: list[str]
    times: list[float] = field(default_factory=list)
    """Arrival time of each accepted message call, from the first."""

    @property
    def rate(self) -> float:
        """Accepted message calls per second between the first and the last."""
        return (self.accepted - 1) / self.window if self.window > 0 else 0.0

    @property
    def ratio(self) -> float:
        """Achieved rate ÷ SEND_RATE."""
        return self.rate / self.send_rate


def run_send_rate(*, send_rate: float, messages: int, database: str, timeout: float) -> SendRateResult:
    """Queue ``messages`` NPS questions to as many private chats at once; measure the rate they go out.

    Setup (not timed): every customer opens the bot, the shop reports one purchase each through the
    purchase API with ``SURVEY_DELAY=1h``, so nothing is due yet. Then the benchmark moves every due time
    to now in one UPDATE (as if the hour had passed) and the next sweep (``SWEEP_INTERVAL=1s``) queues all
    the questions in one go. The rate is taken from the first to the last accepted message call.
    """
    plan = plan_customers(messages)
    settings = {"SEND_RATE": f"{send_rate:g}", "SURVEY_DELAY": "1h", "SWEEP_INTERVAL": "1s"}
    drain = max(timeout, 3 * messages / send_rate + 30)
    with running_kundenpuls(
        database=database, limits=fake_limits(send_rate), settings=settings, timeout=timeout
    ) as run:
        open_bot(run.fake, run.bot, [c.user for c in plan], drain)
        report_purchases(run.port, plan)
        run.fake.wait_quiet(quiet=0.5, timeout=timeout)
        start = run.fake.request_count()
        meter = CpuMeter(run.bot, run.fake)
        due_at = time.monotonic()
        _make_everything_due(run.db, messages)
        _wait_accepted(run, start, messages, drain)
        cpu = meter.stop()
        run.fake.wait_quiet(quiet=0.5, timeout=timeout)
        wait_asked(run.fake, run.bot, [c.user.id for c in plan], timeout)
        calls = [c for c in run.fake.calls_since(start) if c.shows_message]
        throttling = run.throttling()
        problems = run.finish()
    per_chat = Counter(c.chat_id for c in calls)
    if len(per_chat) != messages or any(n != 1 for n in per_chat.values()):
        problems.append(f"{len(calls)} messages to {len(per_chat)} chats; expected one to each of {messages}")
    first, last = calls[0].time, calls[-1].time
    wall = cpu.wall if cpu.wall > 0 else 1.0
    return SendRateResult(
        send_rate=send_rate,
        messages=messages,
        accepted=len(calls),
        window=last - first,
        queued_after=first - due_at,
        bot_busy=cpu.bot / wall,
        fake_busy=cpu.fake / wall,
        throttling=throttling,
        problems=problems,
        times=[c.time - first for c in calls],
    )


def _accepted(server: FakeBotApi, start: int) -> int:
    """Successful message calls since request ``start`` (runs on the fake's loop; cheap on purpose, so
    that watching the run does not slow the fake down)."""
    return sum(
        1
        for r in server.requests[start:]
        if r.status == 200 and r.method in ("sendMessage", "editMessageText")
    )


def _wait_accepted(run: Running, start: int, expected: int, timeout: float) -> None:
    """Wait until the fake accepted ``expected`` message calls since request ``start``."""
    seen = [0]

    def done() -> bool | None:
        run.bot.check_alive()
        seen[0] = run.fake.call(_accepted, start)
        return True if seen[0] >= expected else None

    wait_for(
        done,
        timeout=timeout,
        what="every queued message to be accepted",
        describe=lambda: f"{seen[0]} of {expected} accepted",
    )


def _make_everything_due(db: Database, expected: int) -> None:
    """Move every scheduled survey's due time into the past, in one transaction."""
    now = utcnow() - timedelta(seconds=1)
    with db.engine.begin() as connection:
        moved = connection.execute(
            sa.update(SurveyDelivery)
            .where(col(SurveyDelivery.status) == DeliveryStatus.SCHEDULED.value)
            .values(due_at=now)
        ).rowcount
    if moved != expected:
        raise BenchError(f"{moved} surveys were scheduled, expected {expected}")


# ---------------------------------------------------------------------------------- b. answers at defaults


@dataclass
class AnswersResult:
    """N answers at the shipped defaults, under Telegram's limits."""

    customers: int
    critics: int
    elapsed: float
    """Seconds from the presses being queued until the last customer's next step arrived."""
    staff_sent: int
    """Staff alerts the fake accepted during that time."""
    send_rate: float
    throttling: Throttling
    duplicates: int
    problems: list[str]

    @property
    def rate(self) -> float:
        """Answers per second."""
        return self.customers / self.elapsed

    @property
    def limit(self) -> float:
        """Answers per second Telegram allows for this load (see :func:`answers_limit`)."""
        return answers_limit()


def run_answers(*, customers: int, database: str, timeout: float) -> AnswersResult:
    """N customers who have the NPS question press a score at once (a third critics); time until every
    customer sees their next step. Shipped defaults; only ``SURVEY_DELAY=0s`` for the setup."""
    plan = plan_customers(customers)
    drain = max(timeout, 3 * customers / SHIPPED_SEND_RATE + 30)
    with running_kundenpuls(
        database=database, limits=TELEGRAM, settings={"SURVEY_DELAY": "0s"}, timeout=timeout
    ) as run:
        set_up_surveys(run.fake, run.bot, run.port, plan, drain)
        shown = run.fake.call(keyboards, [c.user.id for c in plan])
        presses = [(c.user, shown[c.user.id][0], choose(c, 0, shown[c.user.id][1])) for c in plan]
        start = run.fake.request_count()
        t0 = run.fake.call(press_all, presses)
        end = wait_replies(run.fake, run.bot, start, next_steps(plan, 0), drain)
        window = run.fake.calls_since(start)
        staff_sent = sum(1 for c in window if c.shows_message and c.chat_id == STAFF_CHAT and c.time <= end)
        whole = run.fake.calls_since(0)
        throttling = run.throttling()
        problems = run.finish() + _answer_problems(run.db, customers)
    doubled = _duplicates(whole, staff=False) + _duplicates(whole, staff=True)
    if doubled:
        problems.append(f"{len(doubled)} messages delivered twice, e.g. {doubled[0]}")
    return AnswersResult(
        customers=customers,
        critics=sum(1 for c in plan if c.group == "critic"),
        elapsed=end - t0,
        staff_sent=staff_sent,
        send_rate=SHIPPED_SEND_RATE,
        throttling=throttling,
        duplicates=len(doubled),
        problems=problems,
    )


# ---------------------------------------------------------------------------------- c. critic burst


def plan_critic_burst(count: int, critics: int) -> list[Customer]:
    """``critics`` critics (0-6) first, then passives (7-8) and promoters (9-10) in turn."""
    plan = []
    for i, user in enumerate(make_users(count)):
        if i < critics:
            plan.append(Customer(i, user, "critic", i % 7))
        elif (i - critics) % 2 == 0:
            plan.append(Customer(i, user, "passive", 7 + i % 2))
        else:
            plan.append(Customer(i, user, "promoter", 9 + i % 2))
    return plan


@dataclass
class StaffProgress:
    """The staff chat so far: which queued alerts are visible, and when each arrived."""

    queued: dict[str, str]
    """Every case the bot opened (``#N``) -> the outbox key of the message that shows it: its own card,
    or the message it shares with other cases of the burst."""
    seen: dict[str, float] = field(default_factory=dict)
    """Case -> when the fake first accepted a staff message (a card, a shared message, an edit) showing it."""

    @property
    def first_alerts(self) -> list[str]:
        """The critics' cases: each shown on one message, edited as the answers arrive."""
        return list(self.queued)

    def seen_first_alerts(self) -> int:
        """How many critics' first alerts are visible."""
        return sum(1 for text in self.first_alerts if text in self.seen)


@dataclass
class CriticBurstResult:
    """N customers answering every question at once, most of them critics."""

    customers: int
    critics: int
    surveys_done: float
    """Seconds from the score presses until the last customer's thank-you arrived."""
    staff: StaffProgress
    t0: float
    throttling: Throttling
    waited_for_alerts: bool
    problems: list[str]

    def _after(self, times: list[float]) -> float:
        return max(times) - self.t0

    @property
    def last_first_alert(self) -> float | None:
        """Seconds until every critic's first alert was visible, if it was."""
        texts = self.staff.first_alerts
        if not texts or not all(text in self.staff.seen for text in texts):
            return None
        return self._after([self.staff.seen[text] for text in texts])

    @property
    def all_staff(self) -> float | None:
        """Seconds until every staff message (alerts and addenda) was visible, if it was."""
        if not self.staff.seen or len(self.staff.seen) < len(self.staff.queued):
            return None
        return self._after(list(self.staff.seen.values()))

    @property
    def pace(self) -> float | None:
        """Staff messages per second observed after the group's initial burst, if enough were seen."""
        # One time per message: cases sharing a message arrive together.
        times = sorted(set(self.staff.seen.values()))[GROUP_CHAT_PACE.burst - 1 :]
        if len(times) < 3 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0])

    def projected(self, *, first_alerts_only: bool) -> tuple[float, str]:
        """Seconds after the presses at which the last critic's first alert (or the last staff message)
        would be visible, and what that rests on: the observed pace, or the bot's group pace when too
        few were seen. The staff chat gets its messages in the order they were queued, so everything
        queued before the target still has to go first."""
        pace, basis = self.pace, "observed pace"
        if pace is None:
            pace, basis = 1 / GROUP_CHAT_PACE.interval.total_seconds(), "the bot's group pace"
        order = list(self.staff.queued)
        targets = set(self.staff.first_alerts) if first_alerts_only else set(order)
        last = max((i for i, text in enumerate(order) if text in targets), default=-1)
        # Messages, not cases, take the group's pace: cases sharing a message arrive together.
        ahead = len({self.staff.queued[text] for text in order[: last + 1] if text not in self.staff.seen})
        if self.staff.seen:
            return self._after(list(self.staff.seen.values())) + ahead / pace, basis
        burst = GROUP_CHAT_PACE.burst
        return self.surveys_done + max(0, ahead - burst) / pace, basis


Progress = Callable[[StaffProgress], None]


def run_critic_burst(
    *,
    customers: int,
    critics: int,
    database: str,
    timeout: float,
    alerts_timeout: float,
    wait_alerts: bool,
    on_progress: Progress | None = None,
    on_surveys_done: Callable[[float], None] | None = None,
) -> CriticBurstResult:
    """Everyone presses a score at once, then answers each follow-up with its first button (an option, or
    Skip) until thanked; then, unless told not to, wait until the staff chat shows every alert."""
    plan = plan_critic_burst(customers, critics)
    drain = max(timeout, 8 * customers / SHIPPED_SEND_RATE + 30)
    with running_kundenpuls(
        database=database, limits=TELEGRAM, settings={"SURVEY_DELAY": "0s"}, timeout=timeout
    ) as run:
        set_up_surveys(run.fake, run.bot, run.port, plan, drain)
        start = run.fake.request_count()
        shown = run.fake.call(keyboards, [c.user.id for c in plan])
        presses = [(c.user, shown[c.user.id][0], choose(c, 0, shown[c.user.id][1])) for c in plan]
        t0 = run.fake.call(press_all, presses)
        thanked = _answer_until_thanked(run, plan, _CallTail(run.fake, start), drain)
        if on_surveys_done is not None:
            on_surveys_done(max(thanked.values()) - t0)
        staff = StaffProgress(_queued_staff_messages(run.db))
        wait = alerts_timeout if wait_alerts else 0.0
        _follow_staff(run, _CallTail(run.fake, start), staff, wait, on_progress)
        whole = run.fake.calls_since(0)
        throttling = run.throttling()
        problems = run.finish()
        # NPS for everyone, reason and comment (skipped) for critics, one follow-up for the others.
        problems += _answer_problems(run.db, customers + 2 * critics + (customers - critics))
        problems += _completion_problems(run.db, customers)
    doubled = _duplicates(whole, staff=False) + _duplicates(whole, staff=True)
    if doubled:
        problems.append(f"{len(doubled)} messages delivered twice, e.g. {doubled[0]}")
    staff_texts = [c.text for c in whole if c.shows_message and c.chat_id == STAFF_CHAT]
    strangers = [
        text for text in staff_texts if text is not None and not set(cases_shown(text)) & staff.queued.keys()
    ]
    if strangers:
        problems.append(f"{len(strangers)} staff messages that are no queued card, e.g. {strangers[0]!r}")
    return CriticBurstResult(
        customers=customers,
        critics=critics,
        surveys_done=max(thanked.values()) - t0,
        staff=staff,
        t0=t0,
        throttling=throttling,
        waited_for_alerts=wait_alerts,
        problems=problems,
    )


class _CallTail:
    """Reads the fake's request log incrementally; calls still in flight are read again next time."""

    def __init__(self, fake: FakeServer, start: int) -> None:
        self._fake = fake
        self._cursor = start

    def poll(self) -> list[Call]:
        calls = self._fake.calls_since(self._cursor)
        open_at = next((i for i, c in enumerate(calls) if c.status is None), len(calls))
        self._cursor += open_at
        return calls


def _answer_until_thanked(
    run: Running, plan: list[Customer], tail: _CallTail, timeout: float
) -> dict[int, float]:
    """Press the first button of each new question a customer sees until every one is thanked; return
    when each thank-you arrived at the fake."""
    by_chat = {c.user.id: c for c in plan}
    thanked: dict[int, float] = {}
    pressed: set[tuple[int, str]] = {(c.user.id, "nps") for c in plan}
    news: set[int] = set()

    def step() -> bool | None:
        run.bot.check_alive()
        for call in tail.poll():
            chat = call.chat_id
            if not call.shows_message or not isinstance(chat, int) or chat not in by_chat:
                continue
            if call.text is not None and THANKS_MARKER in call.text:
                thanked.setdefault(chat, call.time)
            elif chat not in thanked:
                news.add(chat)
        waiting = sorted(news - thanked.keys())
        news.clear()
        presses = []
        for chat, (message, buttons) in run.fake.call(keyboards, waiting).items():
            question = buttons[0].split(":")[2]  # callback data: <prefix>:<delivery>:<question>:<value>
            if (chat, question) not in pressed:
                pressed.add((chat, question))
                presses.append((by_chat[chat].user, message, buttons[0]))
        if presses:
            run.fake.call(press_all, presses)
        return True if len(thanked) == len(plan) else None

    wait_for(
        step,
        timeout=timeout,
        what="every customer to be thanked",
        describe=lambda: f"{len(thanked)} of {len(plan)} thanked",
    )
    return thanked


def _queued_staff_messages(db: Database) -> dict[str, str]:
    """Every case the bot opened, ``#N`` -> the key of the message showing it, in the order opened."""
    with db.engine.connect() as connection:
        rows = connection.execute(
            sa.select(col(Case.id), col(Case.card_message_key)).order_by(col(Case.id))
        ).all()
    return {f"#{case_id}": str(shared or f"case:{case_id}:card") for case_id, shared in rows}


_CASE_NUMBER = re.compile(r"#(\d+)\b")


def cases_shown(text: str) -> list[str]:
    """The cases a staff message shows (``#N``): one on a card, several on a shared message."""
    return [f"#{number}" for number in _CASE_NUMBER.findall(text)]


def _follow_staff(
    run: Running, tail: _CallTail, staff: StaffProgress, timeout: float, on_progress: Progress | None
) -> None:
    """Record staff messages as they become visible, until all are (or ``timeout`` seconds passed)."""
    deadline = time.monotonic() + timeout
    while True:
        run.bot.check_alive()
        for call in tail.poll():
            if call.shows_message and call.chat_id == STAFF_CHAT and call.text is not None:
                for shown in cases_shown(call.text):
                    if shown in staff.queued:
                        staff.seen.setdefault(shown, call.time)
        if on_progress is not None:
            on_progress(staff)
        if len(staff.seen) >= len(staff.queued) or time.monotonic() >= deadline:
            return
        time.sleep(1.0)


def _completion_problems(db: Database, customers: int) -> list[str]:
    with db.engine.connect() as connection:
        completed = connection.execute(
            sa.select(sa.func.count())
            .select_from(SurveyDelivery)
            .where(col(SurveyDelivery.status) == DeliveryStatus.COMPLETED.value)
        ).scalar_one()
    return [] if completed == customers else [f"{completed} of {customers} surveys completed"]
