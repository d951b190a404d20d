"""The two measurements: a bare echo bot and Kundenpuls, driven the same way.

Both bots run as subprocesses against the same kind of fake Bot API server (in this process, on its own
thread). A burst of N updates, one per customer, is enqueued at once; the clock runs from the moment the
last of them is queued until the last customer's reply *arrives at the fake* (the fake stamps every
request with ``time.monotonic()`` on arrival, so polling latency does not enter the number).

For Kundenpuls "done" means: every answer is stored and every customer has received their next message.
The next message is sent from the outbox only after the transaction that stored the answer committed, so
its arrival also bounds the commit; the answers are still counted in the database before a burst is
accepted. After that, the benchmark waits for the burst's other customer-facing effects (callback
answers, edits of the answered question if the bot does that) and for the bot to go quiet, so that the
request and statement counts cover the work an answer causes. It does not wait for the critics' staff
alerts: the bot keeps Telegram's 20 messages a minute per group (there is no switch for that), so they
trickle into the staff chat for minutes, and calls to the staff chat are left out of "quiet". Whether
the bot sends the next step as a new message or edits it into the answered one does not matter: the
benchmark looks for the next step's buttons (or the thank-you text).
"""

from __future__ import annotations

import html
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.harness import (
    INGEST_KEY,
    STAFF_CHAT,
    TOKEN,
    BenchError,
    BotProcess,
    Call,
    CpuMeter,
    CpuUse,
    Database,
    FakeServer,
    count_by,
    free_port,
    fresh_database,
    make_users,
    wait_for,
    workdir,
)
from surveys.loader import load_builtin_survey
from tests.fakes.bot_api_server import FakeBotApi, FakeUser

BENCH = Path(__file__).resolve().parent
QUIET_SECONDS = 0.3
EFFICIENCY_SEND_RATE = 1000
"""SEND_RATE for the efficiency runs: the setting's maximum (shipped default 25), so it is not the limit."""
PROFILE_DIR = Path(tempfile.gettempdir())
"""Where the raw cProfile data is kept after a run (kundenpuls-bench-<database>.prof), for pstats/snakeviz."""

# Step 1 is the NPS question; step 2 the follow-up each group gets (critic: reason, promoter: liked, both
# choice questions; passive: the text question "improve", answered with its Skip button).
STEP_QUESTIONS = ({"nps"}, {"reason", "liked", "improve"})
FOLLOW_UP = {"critic": "reason", "passive": "improve", "promoter": "liked"}
# The start of the German thank-you that ends the survey (the customers' language is German).
THANKS_MARKER = html.escape(load_builtin_survey("post_purchase").thanks.get("de")[:30], quote=False)


@dataclass
class Burst:
    """One timed burst of N updates and what it cost."""

    label: str
    units: int
    elapsed: float
    """Seconds from the burst being queued until the last customer's reply arrived at the fake."""
    drained: float
    """Seconds until the last request the burst caused (callback answers, edits) arrived; staff chat aside."""
    cpu: CpuUse
    """CPU used from just before the burst until every effect of it was done."""
    calls: dict[str, int]
    failed_calls: dict[str, int]
    statements: dict[str, int] = field(default_factory=dict)
    statement_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Units (updates or answers) per second."""
        return self.units / self.elapsed


@dataclass
class RunResult:
    """One bot run: its timed bursts and everything that was wrong with it."""

    bot: str
    bursts: list[Burst]
    problems: list[str]
    profile: Path | None = None

    @property
    def units(self) -> int:
        """Updates or answers completed in the timed bursts."""
        return sum(burst.units for burst in self.bursts)

    @property
    def elapsed(self) -> float:
        """Timed seconds over all bursts."""
        return sum(burst.elapsed for burst in self.bursts)

    @property
    def rate(self) -> float:
        """Units per timed second over all bursts."""
        return self.units / self.elapsed


# ---------------------------------------------------------------------------------- fake-side helpers
# These run on the fake server's loop (FakeServer.call), because its state is not thread-safe.


def send_texts(server: FakeBotApi, users: list[FakeUser], texts: list[str]) -> float:
    for user, text in zip(users, texts, strict=True):
        server.user_sends_text(user, text)
    return time.monotonic()


def press_all(server: FakeBotApi, presses: list[tuple[FakeUser, dict[str, Any], str]]) -> float:
    for user, message, data in presses:
        server.user_presses_button(user, message, data)
    return time.monotonic()


def keyboards(server: FakeBotApi, chat_ids: list[int]) -> dict[int, tuple[dict[str, Any], list[str]]]:
    """Each chat's newest message with buttons, and the callback data of its buttons."""
    found: dict[int, tuple[dict[str, Any], list[str]]] = {}
    for chat_id in chat_ids:
        for message in reversed(server.messages_to(chat_id)):
            rows = (message.get("reply_markup") or {}).get("inline_keyboard", [])
            if rows:
                found[chat_id] = (message, [str(b["callback_data"]) for row in rows for b in row])
                break
    return found


def _replies(server: FakeBotApi, users: list[FakeUser]) -> dict[int, list[str]]:
    return {user.id: server.sent_texts(user.id) for user in users}


# ---------------------------------------------------------------------------------- measuring a burst


Reply = Callable[[Call], bool]
"""Whether a call that put content into a customer's chat is the reply the benchmark waits for."""


def any_message(_call: Call) -> bool:
    """Any new or edited message counts (setup: the answer to /start)."""
    return True


def asks(question: str) -> Reply:
    """The reply shows the buttons of ``question``, whether as a new message or edited into the old one."""
    return lambda call: any(b.split(":")[2:3] == [question] for b in call.buttons)


def says(text: str) -> Reply:
    """The reply's text contains ``text`` (HTML as sent)."""
    return lambda call: call.text is not None and text in call.text


def echoes(text: str) -> Reply:
    """The reply's text is exactly ``text``."""
    return lambda call: call.text == text


def _first_reply_times(calls: list[Call], expected: dict[int, Reply]) -> dict[int, float]:
    """When each customer's expected reply first arrived in the window."""
    first: dict[int, float] = {}
    for call in calls:
        chat = call.chat_id
        if call.shows_message and isinstance(chat, int) and chat not in first:
            reply = expected.get(chat)
            if reply is not None and reply(call):
                first[chat] = call.time
    return first


def wait_replies(
    fake: FakeServer, bot: BotProcess, start: int, expected: dict[int, Reply], timeout: float
) -> float:
    """Wait until every customer got the reply expected from them; return when the last one arrived."""
    seen: dict[int, float] = {}

    def done() -> float | None:
        bot.check_alive()
        seen.update(_first_reply_times(fake.calls_since(start), expected))
        return max(seen.values()) if len(seen) == len(expected) else None

    return wait_for(
        done,
        timeout=timeout,
        what=f"{bot.name} to answer every customer",
        describe=lambda: f"{len(seen)} of {len(expected)} got the expected reply",
    )


def _wait_effects(
    fake: FakeServer,
    bot: BotProcess,
    start: int,
    expected: dict[str, int],
    timeout: float,
    *,
    ignore_chat: int | None = None,
) -> None:
    """Wait until the window holds the burst's other effects, then until the bot has gone quiet.

    ``expected`` maps a method to a minimum count of successful calls. Calls to ``ignore_chat`` (the
    staff group, whose alerts trickle out at 20 a minute) count neither as effects nor against "quiet".
    """
    got: dict[str, int] = {}

    def done() -> bool | None:
        bot.check_alive()
        calls = [
            c
            for c in fake.calls_since(start)
            if c.status == 200 and (ignore_chat is None or c.chat_id != ignore_chat)
        ]
        got.clear()
        got.update(count_by(c.method for c in calls))
        return True if all(got.get(m, 0) >= n for m, n in expected.items()) else None

    wait_for(
        done,
        timeout=timeout,
        what=f"every effect of the burst from {bot.name}",
        describe=lambda: f"expected at least {expected}, got {got}",
    )
    fake.wait_quiet(quiet=QUIET_SECONDS, timeout=timeout, ignore_chat=ignore_chat)


def _burst_result(label: str, units: int, t0: float, end: float, calls: list[Call], cpu: CpuUse) -> Burst:
    """Summarise a burst's window of requests.

    Calls to the staff chat are counted under their own name (``sendMessage → staff chat``): they trickle
    out at the group's pace, so a window holds only the few that happened to go out during it.
    """
    # The long poll still parked at the end of the window has no status yet; it is not a failure.
    failed = count_by(
        f"{c.method}: {c.status} {c.error}"
        for c in calls
        if c.status != 200 and not (c.method == "getUpdates" and c.status is None)
    )
    drained = max(
        (c.time for c in calls if c.method != "getUpdates" and c.chat_id != STAFF_CHAT), default=end
    )
    return Burst(
        label=label,
        units=units,
        elapsed=end - t0,
        drained=drained - t0,
        cpu=cpu,
        calls=count_by(f"{c.method} → staff chat" if c.chat_id == STAFF_CHAT else c.method for c in calls),
        failed_calls=failed,
    )


# ---------------------------------------------------------------------------------- the echo bot


def run_echo(customers: int, timeout: float) -> RunResult:
    """N users each send one message at once; time until all N echoes arrived."""
    users = make_users(customers)
    texts = [f"Hallo, hier ist Kunde {i}" for i in range(customers)]
    env = {"TELEGRAM_BOT_TOKEN": TOKEN}
    with workdir() as wd, FakeServer() as fake:
        env["TELEGRAM_API_URL"] = fake.url
        with BotProcess("echo bot", [str(BENCH / "echo_bot.py")], env, wd) as bot:

            def polling() -> bool | None:
                bot.check_alive()
                return True if fake.poll_is_parked() else None

            wait_for(polling, timeout=timeout, what="the echo bot to start polling")
            start = fake.request_count()
            meter = CpuMeter(bot, fake)
            t0 = fake.call(send_texts, users, texts)
            expected = {u.id: echoes(text) for u, text in zip(users, texts, strict=True)}
            end = wait_replies(fake, bot, start, expected, timeout)
            _wait_effects(fake, bot, start, {"sendMessage": customers}, timeout)
            burst = _burst_result("echo", customers, t0, end, fake.calls_since(start), meter.stop())
            replies = fake.call(_replies, users)
            bot.stop()
            problems = fake_problems(fake, [burst]) + log_problems(bot)
        wrong = [uid for uid, text in zip(replies, texts, strict=True) if replies[uid] != [text]]
        if wrong:
            problems.append(f"{len(wrong)} users did not get exactly their own text back (e.g. {wrong[0]})")
    return RunResult("echo", [burst], problems)


def fake_problems(fake: FakeServer, bursts: list[Burst]) -> list[str]:
    violations, crashes = fake.problems()
    problems = [f"Bot API violation: {v}" for v in violations[:5]]
    problems += [f"fake server error: {e}" for e in crashes[:5]]
    for burst in bursts:
        problems += [f"{burst.label}: {n} × {what}" for what, n in burst.failed_calls.items()]
    return problems


def log_problems(bot: BotProcess) -> list[str]:
    errors = bot.error_lines()
    code = bot.process.returncode
    problems = [f"{bot.name} logged {len(errors)} error lines, first: {errors[0]}"] if errors else []
    if code != 0:
        problems.append(f"{bot.name} exited with {code}")
    return problems


# ---------------------------------------------------------------------------------- Kundenpuls


@dataclass
class Customer:
    """One benchmark customer: the fake user, their NPS group and the score they give."""

    index: int
    user: FakeUser
    group: str
    score: int


def plan_customers(count: int) -> list[Customer]:
    """A third critics (0-6, which also alerts staff), a third passives (7-8), a third promoters (9-10)."""
    plan = []
    for i, user in enumerate(make_users(count)):
        group = ("critic", "passive", "promoter")[i % 3]
        cycle = i // 3
        score = {"critic": cycle % 7, "passive": 7 + cycle % 2, "promoter": 9 + cycle % 2}[group]
        plan.append(Customer(i, user, group, score))
    return plan


def next_steps(plan: list[Customer], step: int) -> dict[int, Reply]:
    """What each customer must see after pressing in ``step``: the follow-up question after the NPS
    answer; after the follow-up, the comment question (critics) or the thank-you (everyone else).
    New message or edited in place, both count."""
    replies: dict[int, Reply] = {}
    for customer in plan:
        if step == 0:
            replies[customer.user.id] = asks(FOLLOW_UP[customer.group])
        elif customer.group == "critic":
            replies[customer.user.id] = asks("comment")
        else:
            replies[customer.user.id] = says(THANKS_MARKER)
    return replies


def choose(customer: Customer, step: int, buttons: list[str]) -> str:
    """The button this customer presses in ``step``; checks the bot asked the question we expect."""
    question = "nps" if step == 0 else FOLLOW_UP[customer.group]
    offered = [b for b in buttons if b.split(":")[2:3] == [question]]
    if not offered:
        raise BenchError(
            f"customer {customer.index} ({customer.group}) was not asked {question!r}: {buttons}"
        )
    if step == 0:
        return next(b for b in offered if b.rsplit(":", 1)[1] == str(customer.score))
    return offered[customer.index % len(offered)]


class KundenpulsRun:
    """One ``kundenpuls run`` process on a fresh database, set up and driven through the survey."""

    def __init__(
        self, *, customers: int, database: str, timeout: float, steps: int, instrumented: bool, profile: bool
    ) -> None:
        self.plan = plan_customers(customers)
        self.database = database
        self.timeout = timeout
        self.steps = steps
        self.instrumented = instrumented
        self.profile = profile
        self.port = free_port()
        # (delivery id, question id) -> the raw button value pressed, to check what was stored.
        self.pressed: dict[tuple[int, str], str] = {}

    def run(self) -> RunResult:
        """Start the bot, set up, time the bursts, stop it, check the database; always cleans up."""
        with workdir() as wd, fresh_database(self.database, wd) as db, FakeServer() as fake:
            argv, env = self._command(fake, db, wd)
            with BotProcess("kundenpuls", argv, env, wd) as bot:
                wait_ready(bot, self.port, self.timeout)
                self._set_up(fake, bot)
                bursts = [self._burst(fake, bot, db, step) for step in range(self.steps)]
                bot.stop()
                problems = fake_problems(fake, bursts) + log_problems(bot)
            problems += self._check_database(db)
            if self.instrumented:
                self._attach_statements(wd / "stats.json", bursts, problems)
            profile = None
            if self.profile and (wd / "profile.prof").exists():
                keep = PROFILE_DIR / f"kundenpuls-bench-{self.database}.prof"
                profile = Path(shutil.copyfile(wd / "profile.prof", keep))
        return RunResult("kundenpuls", bursts, problems, profile)

    def _command(self, fake: FakeServer, db: Database, wd: Path) -> tuple[list[str], dict[str, str]]:
        # The fake has no flood limits here and SEND_RATE is raised from the shipped 25 to its maximum, so
        # the rate is what the bot can do; its per-chat limits (1/s per customer, 20/min for the staff
        # group) stay on, as they always do.
        env = kundenpuls_env(fake, db, self.port, SURVEY_DELAY="0s", SEND_RATE=str(EFFICIENCY_SEND_RATE))
        if not self.instrumented:
            return ["-m", "bot.cli", "run"], env
        env["KUNDENPULS_BENCH_STATS"] = str(wd / "stats.json")
        if self.profile:
            env["KUNDENPULS_BENCH_PROFILE"] = str(wd / "profile.prof")
        if os.environ.get("KUNDENPULS_BENCH_STATEMENTS"):  # the statements' texts, for looking into
            env["KUNDENPULS_BENCH_STATEMENTS"] = os.environ["KUNDENPULS_BENCH_STATEMENTS"]
        return [str(BENCH / "run_bot.py")], env

    def _set_up(self, fake: FakeServer, bot: BotProcess) -> None:
        """Not timed: every customer opens the bot, the shop reports their purchase, the NPS question
        arrives. Customers who never opened the bot could not be written to on Telegram."""
        set_up_surveys(fake, bot, self.port, self.plan, self.timeout)

    def _burst(self, fake: FakeServer, bot: BotProcess, db: Database, step: int) -> Burst:
        """All customers press a button at once; time until every answer is stored and answered."""
        shown = fake.call(keyboards, [c.user.id for c in self.plan])
        presses = []
        for customer in self.plan:
            message, buttons = shown[customer.user.id]
            data = choose(customer, step, buttons)
            _, delivery, question, value = data.split(":")
            self.pressed[(int(delivery), question)] = value
            presses.append((customer.user, message, data))
        n = len(self.plan)
        if self.instrumented:
            bot.signal(signal.SIGUSR1)
            time.sleep(0.1)  # let the bot open its window before the burst
        start = fake.request_count()
        meter = CpuMeter(bot, fake)
        t0 = fake.call(press_all, presses)
        end = wait_replies(fake, bot, start, self._next_steps(step), self.timeout)
        self._wait_answers_stored(db, STEP_QUESTIONS[step], n)
        # Not the critics' staff alerts: the bot sends them at the group's 20 a minute, so a burst's
        # alerts take minutes; customers never wait for them (their chats are paced separately).
        expected = {"answerCallbackQuery": n}
        _wait_effects(fake, bot, start, expected, self.timeout, ignore_chat=STAFF_CHAT)
        cpu = meter.stop()
        if self.instrumented:
            bot.signal(signal.SIGUSR2)
            time.sleep(0.1)
        label = "NPS question" if step == 0 else "follow-up"
        return _burst_result(label, n, t0, end, fake.calls_since(start), cpu)

    def _next_steps(self, step: int) -> dict[int, Reply]:
        return next_steps(self.plan, step)

    def _wait_answers_stored(self, db: Database, questions: set[str], expected: int) -> None:
        """Count the burst's answers from this process, as a reader of the bot's database."""
        query = sa.text("SELECT count(*) FROM answers WHERE question_id IN :q").bindparams(
            sa.bindparam("q", expanding=True)
        )
        stored = [0]

        def all_stored() -> bool | None:
            with db.engine.connect() as connection:
                stored[0] = int(connection.execute(query, {"q": sorted(questions)}).scalar_one())
            return True if stored[0] >= expected else None

        wait_for(
            all_stored,
            timeout=self.timeout,
            what="every answer to be stored",
            describe=lambda: f"{stored[0]} of {expected} stored",
        )

    def _check_database(self, db: Database) -> list[str]:
        """Every answer stored exactly once, with the value that was pressed."""
        problems = []
        with db.engine.connect() as connection:
            duplicates = connection.execute(
                sa.text(
                    "SELECT delivery_id, question_id, count(*) FROM answers "
                    "GROUP BY delivery_id, question_id HAVING count(*) > 1"
                )
            ).all()
            rows = connection.execute(
                sa.text("SELECT delivery_id, question_id, score, choice, skipped FROM answers")
            ).all()
        if duplicates:
            problems.append(f"{len(duplicates)} answers stored more than once, e.g. {tuple(duplicates[0])}")
        stored = {(int(r[0]), str(r[1])): r for r in rows}
        for step, questions in enumerate(STEP_QUESTIONS[: self.steps]):
            count = sum(1 for key in stored if key[1] in questions)
            if count != len(self.plan):
                problems.append(f"step {step + 1}: {count} answers stored, expected {len(self.plan)}")
        wrong = [key for key, value in self.pressed.items() if not _stored_as(stored.get(key), value)]
        if wrong:
            problems.append(f"{len(wrong)} answers stored with another value than pressed, e.g. {wrong[0]}")
        return problems

    def _attach_statements(self, stats_path: Path, bursts: list[Burst], problems: list[str]) -> None:
        """Give each burst the statements run_bot.py counted in its window."""
        if not stats_path.exists():
            problems.append("run_bot.py wrote no statement counts (did it stop cleanly?)")
            return
        windows = json.loads(stats_path.read_text())["windows"]
        if len(windows) != len(bursts):
            problems.append(f"run_bot.py recorded {len(windows)} windows for {len(bursts)} bursts")
            return
        for burst, window in zip(bursts, windows, strict=True):
            start, end = window["start"], window["end"]
            burst.statements = {
                k: v - start["counts"].get(k, 0)
                for k, v in end["counts"].items()
                if v - start["counts"].get(k, 0)
            }
            burst.statement_seconds = {k: v - start["seconds"].get(k, 0.0) for k, v in end["seconds"].items()}


def _stored_as(row: Any, pressed: str) -> bool:
    """Whether a stored answer row (score, choice, skipped) is the button value that was pressed."""
    if row is None:
        return False
    _, _, score, choice, skipped = row
    if pressed == "skip":
        return bool(skipped)
    return (score is not None and str(score) == pressed) or choice == pressed


# ---------------------------------------------------------------------------------- setting Kundenpuls up
# Shared with bench/delivery.py.


QUIET_HOURS_OFF = (
    "QUIET_HOURS is empty (a contact rule, not a rate limit: a run at night would wait for 09:00)"
)
"""Said in the first output line of every benchmark that runs the bot through ``kundenpuls_env``."""


def kundenpuls_env(fake: FakeServer, db: Database, port: int, **settings: str) -> dict[str, str]:
    """The environment of ``kundenpuls run`` against ``fake`` and ``db``; ``settings`` add to it
    (``SEND_RATE``, ``SURVEY_DELAY``, ...). Anything not named keeps its shipped default, except
    QUIET_HOURS, which is empty: a run at night would otherwise hold every survey until 09:00."""
    return {
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": fake.url,
        "DATABASE_URL": db.url,
        "STAFF_CHAT_ID": str(STAFF_CHAT),
        "INGEST_API_KEY": INGEST_KEY,
        "HTTP_HOST": "127.0.0.1",
        "HTTP_PORT": str(port),
        "QUIET_HOURS": "",
        **settings,
    }


def wait_ready(bot: BotProcess, port: int, timeout: float) -> None:
    """Wait until the bot answers 200 on ``/healthz`` (migrated, polling, sender running)."""

    def ready() -> bool | None:
        bot.check_alive()
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        except httpx.TransportError:
            return None
        return True if response.status_code == 200 else None

    wait_for(ready, timeout=timeout, what=f"{bot.name} to report ready on /healthz")


def open_bot(fake: FakeServer, bot: BotProcess, users: list[FakeUser], timeout: float) -> None:
    """Every user sends ``/start`` at once (a bot cannot write to anyone first); wait for every reply."""
    start = fake.request_count()
    fake.call(send_texts, users, ["/start"] * len(users))
    wait_replies(fake, bot, start, dict.fromkeys((u.id for u in users), any_message), timeout)


def report_purchases(port: int, plan: list[Customer]) -> None:
    """POST one purchase per customer through the purchase API, four at a time like a busy shop."""
    headers = {"Authorization": f"Bearer {INGEST_KEY}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:

        def report(customer: Customer) -> int:
            body = {
                "order_id": f"B-{customer.index:06d}",
                "customer_id": f"bench-{customer.index}",
                "telegram_user_id": customer.user.id,
                "name": customer.user.first_name,
                "amount": 59.90,
            }
            return client.post("/api/purchases", json=body).status_code

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(report, plan))
    if any(status != 201 for status in statuses):
        raise BenchError(f"the purchase API answered {count_by(str(s) for s in statuses)}, not all 201")


def wait_asked(fake: FakeServer, bot: BotProcess, chat_ids: list[int], timeout: float) -> None:
    """Wait until every chat shows the NPS question's buttons."""
    asked: set[int] = set()

    def everyone_asked() -> bool | None:
        bot.check_alive()
        asked.update(
            chat for chat, kb in fake.call(keyboards, chat_ids).items() if any(":nps:" in b for b in kb[1])
        )
        return True if len(asked) == len(chat_ids) else None

    wait_for(
        everyone_asked,
        timeout=timeout,
        what="every customer to get the NPS question",
        describe=lambda: f"{len(asked)} of {len(chat_ids)} asked",
    )


def set_up_surveys(
    fake: FakeServer, bot: BotProcess, port: int, plan: list[Customer], timeout: float
) -> None:
    """Every customer opens the bot, the shop reports their purchase (the bot must run with
    ``SURVEY_DELAY=0s``), the NPS question arrives, and the bot goes quiet (the staff chat aside)."""
    open_bot(fake, bot, [c.user for c in plan], timeout)
    report_purchases(port, plan)
    wait_asked(fake, bot, [c.user.id for c in plan], timeout)
    fake.wait_quiet(quiet=0.5, timeout=timeout, ignore_chat=STAFF_CHAT)


def run_kundenpuls(**options: Any) -> RunResult:
    """Run Kundenpuls once (see KundenpulsRun for the options)."""
    return KundenpulsRun(**options).run()
