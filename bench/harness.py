"""Plumbing for the benchmark: the fake Bot API server in a thread, bot subprocesses, databases, waiting.

Everything here is bounded: every wait has a deadline that raises :class:`BenchError` with what was
still missing, subprocesses are stopped (SIGTERM, then SIGKILL) whatever happens, and all traffic stays
on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from storage.db import normalize_database_url
from tests.fakes.bot_api_server import (
    FakeBotApi,
    FakeBotApiThread,
    FakeUser,
    FloodLimits,
    RecordedRequest,
    ThrottledCall,
)

REPO = Path(__file__).resolve().parents[1]
TOKEN = "123456789:AAKundenpulsBench_0123456789abcdef"
INGEST_KEY = "bench-ingest-key"
STAFF_CHAT = -100900800
FIRST_USER_ID = 700_000_000
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POSTGRES_URL_VARIABLE = "KUNDENPULS_BENCH_POSTGRES_URL"
POLL_SECONDS = 0.05
CODE_DIRS = ("bot", "handlers", "storage", "surveys")

_T = TypeVar("_T")


class BenchError(Exception):
    """The benchmark cannot go on (a deadline passed, a process died); the message says what and why."""


def wait_for(
    check: Callable[[], _T | None], *, timeout: float, what: str, describe: Callable[[], str] | None = None
) -> _T:
    """Poll ``check`` until it returns something, or raise BenchError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            detail = f" ({describe()})" if describe is not None else ""
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(POLL_SECONDS)


def code_fingerprint() -> str:
    """A hash of the bot's code and survey files: other people change the tree, and a run that spans a
    change would mix two versions in one median."""
    digest = hashlib.sha256()
    for directory in CODE_DIRS:
        for path in sorted((REPO / directory).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(REPO)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def code_version() -> str:
    """The git commit under test and whether the bot's code differs from it (read-only git calls)."""
    git = ["git", "--no-optional-locks", "-C", str(REPO)]
    try:
        head = _output([*git, "rev-parse", "--short", "HEAD"]).strip()
        changed = _output([*git, "diff", "--name-only", "HEAD", "--", *CODE_DIRS]).split()
    except (OSError, subprocess.SubprocessError):
        return "unknown commit (git not available)"
    return f"commit {head}" + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


def _output(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=10, check=True).stdout  # noqa: S603


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for the bot's purchase API."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_users(count: int) -> list[FakeUser]:
    """``count`` distinct customers; their ids are their private chat ids."""
    return [FakeUser(id=FIRST_USER_ID + i, first_name=f"Kunde{i}", language_code="de") for i in range(count)]


@dataclass(frozen=True, slots=True)
class Call:
    """One request the fake server saw, reduced to what the benchmark needs."""

    method: str
    status: int | None
    time: float
    chat_id: object
    error: str | None
    text: str | None
    """The message text it sent or edited in, if any."""
    buttons: tuple[str, ...]
    """The callback data of the inline keyboard it attached, if any."""

    @property
    def shows_message(self) -> bool:
        """A successful call that put content into a chat (a new message or an edit of one)."""
        return self.status == 200 and self.method in ("sendMessage", "editMessageText")


def _call(record: RecordedRequest) -> Call:
    params = record.params
    text = params.get("text")
    markup = params.get("reply_markup")
    rows = markup.get("inline_keyboard", []) if isinstance(markup, dict) else []
    buttons = tuple(str(b.get("callback_data")) for row in rows for b in row if isinstance(b, dict))
    return Call(
        record.method,
        record.status,
        record.time,
        params.get("chat_id"),
        record.error,
        text if isinstance(text, str) else None,
        buttons,
    )


def _calls_since(server: FakeBotApi, start: int) -> list[Call]:
    return [_call(r) for r in server.requests[start:]]


def _activity(server: FakeBotApi, ignore_chat: int | None) -> tuple[float, bool, bool]:
    """When the last request other than getUpdates (and other than calls to ``ignore_chat``) arrived,
    whether one is still open, and whether a long poll is parked."""
    others = [
        r
        for r in server.requests[-200:]
        if r.method != "getUpdates" and (ignore_chat is None or r.params.get("chat_id") != ignore_chat)
    ]
    last = max((r.time for r in others), default=0.0)
    return last, any(r.status is None for r in others), _poll_is_parked(server)


def _poll_is_parked(server: FakeBotApi) -> bool:
    polls = server.requests_for("getUpdates")
    return bool(polls) and polls[-1].status is None


class FakeServer:
    """The fake Bot API server on its own thread and loop, with the few views the benchmark needs.

    Validation against the official Bot API spec stays on (the default), so a run that violates the API
    shows up as a violation instead of a fast number. The fake has no flood limits unless ``limits`` are
    given (``FloodLimits.telegram()``: it then answers 429 like Telegram).
    """

    def __init__(self, limits: FloodLimits | None = None) -> None:
        self.limits = limits
        self.thread = FakeBotApiThread(token=TOKEN, limits=limits)
        self._clock: int | None = None

    def __enter__(self) -> FakeServer:
        self.thread.start()
        self._clock = time.pthread_getcpuclockid(self.thread.call(threading.get_ident))
        return self

    def __exit__(self, *_exc: object) -> None:
        self.thread.stop()

    @property
    def url(self) -> str:
        """Root URL for ``TELEGRAM_API_URL``."""
        return self.thread.url

    @property
    def validating(self) -> bool:
        """Whether requests are checked against the spec (``api.json`` found)."""
        return self.thread.call(lambda: self.thread.server.spec_available)

    def call(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(server, *args)`` on the server's loop (its state is not thread-safe)."""
        return self.thread.call(fn, self.thread.server, *args)

    def request_count(self) -> int:
        """How many requests arrived so far; the index where a window of requests starts."""
        return self.call(lambda server: len(server.requests))

    def calls_since(self, start: int) -> list[Call]:
        """The requests since index ``start``, in arrival order."""
        return self.call(_calls_since, start)

    def poll_is_parked(self) -> bool:
        """Whether the bot has a getUpdates long poll waiting (so it is ready for the next update)."""
        return self.call(_poll_is_parked)

    def throttled(self) -> list[ThrottledCall]:
        """Every 429 the fake's flood limiter answered so far."""
        return self.call(lambda server: list(server.throttled))

    def problems(self) -> tuple[list[str], list[str]]:
        """Spec violations and fake-server crashes so far."""
        return self.call(lambda server: (list(server.violations), list(server.internal_errors)))

    def cpu_seconds(self) -> float:
        """CPU time the fake's thread has used (to tell whether the fake limited a run)."""
        if self._clock is None:
            raise BenchError("fake server is not running")
        return time.clock_gettime(self._clock)

    def wait_quiet(self, *, quiet: float, timeout: float, ignore_chat: int | None = None) -> None:
        """Wait until only the parked long poll is left: no other request for ``quiet`` seconds.

        Calls to ``ignore_chat`` do not count: the staff group's alerts trickle out at 20 a minute (the
        bot keeps Telegram's per-group limit), so a group chat is never quiet for long during a burst.
        """

        def settled() -> bool | None:
            last, in_flight, parked = self.call(_activity, ignore_chat)
            return True if parked and not in_flight and time.monotonic() - last >= quiet else None

        wait_for(settled, timeout=timeout, what="the bot to go quiet")


class BotProcess:
    """A bot in a subprocess, with its output in a log file; always stopped by ``__exit__``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name = name
        self.log_path = workdir / f"{name}.log"
        base = {key: os.environ[key] for key in ("PATH", "LANG", "LC_ALL", "TZ") if key in os.environ}
        self._argv = [sys.executable, *argv]
        self._env = {**base, "PYTHONPATH": str(REPO), **env}
        self._workdir = workdir
        self._process: subprocess.Popen[bytes] | None = None
        self._clock_ticks = os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> BotProcess:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and scripts
                self._argv, cwd=self._workdir, env=self._env, stdout=log, stderr=subprocess.STDOUT
            )
        return self

    def __exit__(self, _type: object, error: BaseException | None, _tb: object) -> None:
        self.stop()
        if isinstance(error, BenchError) and "log:" not in str(error):
            # The run's directory (and the log) is removed next; keep what the bot said in the message.
            error.args = (f"{error}\n{self.name} log:\n{self.log_tail()}",)

    @property
    def process(self) -> subprocess.Popen[bytes]:
        """The running process."""
        if self._process is None:
            raise BenchError(f"{self.name} was not started")
        return self._process

    def check_alive(self) -> None:
        """Raise with the end of the log if the process has exited."""
        code = self.process.poll()
        if code is not None:
            raise BenchError(f"{self.name} exited with {code}; log:\n{self.log_tail()}")

    def signal(self, signum: int) -> None:
        """Send a signal (the window marks of run_bot.py)."""
        self.check_alive()
        self.process.send_signal(signum)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the process so far (all its threads), from /proc."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self._clock_ticks

    def stop(self, grace: float = 20.0) -> int | None:
        """SIGTERM (clean shutdown, writes run_bot's stats), then SIGKILL after ``grace`` seconds."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the process's output."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def error_lines(self) -> list[str]:
        """Log lines at ERROR/CRITICAL level and tracebacks: a clean run has none."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        markers = (" ERROR ", " CRITICAL ", "Traceback")
        return [line for line in text.splitlines() if any(marker in line for marker in markers)]


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU seconds of the bot process and of the fake's thread over ``wall`` seconds."""

    bot: float
    fake: float
    wall: float


class CpuMeter:
    """Measures CPU over a stretch of wall time: a bot near 100 % is CPU-bound, and a fake near 100 %
    would mean the fake, not the bot, set the pace."""

    def __init__(self, bot: BotProcess, fake: FakeServer) -> None:
        self._bot, self._fake = bot, fake
        self._start = (bot.cpu_seconds(), fake.cpu_seconds(), time.monotonic())

    def stop(self) -> CpuUse:
        """CPU used since the meter was created."""
        bot, fake, wall = self._start
        return CpuUse(self._bot.cpu_seconds() - bot, self._fake.cpu_seconds() - fake, time.monotonic() - wall)


@dataclass
class Database:
    """A fresh, empty database for one Kundenpuls run, and a plain engine for the benchmark's reads."""

    kind: str
    url: str
    engine: Engine
    schema: str | None = None


@contextlib.contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[Database]:
    """An SQLite file in ``workdir``, or a new PostgreSQL schema that is dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'kundenpuls-bench.db'}"
        engine = sa.create_engine(url)
        try:
            yield Database(kind, url, engine)
        finally:
            engine.dispose()
        return
    base = normalize_database_url(os.environ.get(POSTGRES_URL_VARIABLE, DEFAULT_POSTGRES_URL))
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        try:
            with admin.connect() as connection:
                connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        except sa.exc.OperationalError as error:
            raise BenchError(
                f"PostgreSQL at {make_url(base).render_as_string()} is not reachable ({error.orig}); "
                f"start it (pg_ctlcluster 15 main start) or set {POSTGRES_URL_VARIABLE}"
            ) from None
        in_schema = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        rendered = in_schema.render_as_string(hide_password=False)
        engine = sa.create_engine(rendered)
        try:
            yield Database(kind, rendered, engine, schema)
        finally:
            engine.dispose()
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A temporary directory for a run's database file, logs and stats; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="kundenpuls-bench-") as path:
        yield Path(path)


def count_by(items: Iterable[str]) -> dict[str, int]:
    """Count equal strings (methods, statement kinds), most frequent first."""
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
