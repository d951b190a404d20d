"""Kundenpuls under Telegram's limits: send rate, answers per second at the shipped defaults, a critic burst.

    python bench/delivery.py send-rate    [--rates 25,200] [--seconds 12] [--database sqlite|postgresql]
    python bench/delivery.py answers      [--customers 300] [--database ...]
    python bench/delivery.py critic-burst [--customers 300] [--critics 200] [--alerts-timeout 2400]
                                          [--no-wait-alerts] [--database ...]

The fake Bot API server (in this process) keeps Telegram's flood limits and answers 429 like Telegram;
Kundenpuls runs as ``python -m bot.cli run``. Each command prints its settings first, and its first line
says whether a production limit is changed. See bench/README.md.

Exit status: 0 when every check passed (no 429, nothing doubled, everything stored once), 1 when one
failed, 2 when the benchmark could not run (a deadline passed or the bot died).
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script (python bench/delivery.py): make the repository importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.delivery_runs import (
    SHIPPED_SEND_RATE,
    TELEGRAM,
    TELEGRAM_OVERALL,
    AnswersResult,
    CriticBurstResult,
    SendRateResult,
    StaffProgress,
    Throttling,
    answers_limit,
    describe_limits,
    fake_limits,
    group_drain_seconds,
    run_answers,
    run_critic_burst,
    run_send_rate,
)
from bench.harness import STAFF_CHAT, BenchError, code_fingerprint, code_version
from bench.report import machine
from bench.scenarios import QUIET_HOURS_OFF
from storage.pacing import GROUP_CHAT_PACE, PRIVATE_CHAT_PACE

SEND_RATE_TARGET = 0.95
PROGRESS_LINE_SECONDS = 60.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; the defaults are the runs in bench/README.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    common.add_argument(
        "--timeout", type=float, default=120.0, help="seconds any setup wait may take at least (120)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    add = functools.partial(commands.add_parser, parents=[common])
    rate = add("send-rate", help="N messages to N private chats at once; rate ÷ SEND_RATE")
    rate.add_argument("--rates", default="25,200", help="SEND_RATE values, comma-separated (25,200)")
    rate.add_argument(
        "--seconds", type=float, default=12.0, help="how long each run should send: N = SEND_RATE × this"
    )
    answers = add("answers", help="N score presses at once, shipped defaults; answers/s")
    answers.add_argument("--customers", type=int, default=300, help="customers, a third of them critics")
    burst = add("critic-burst", help="N customers, most critics, answer the whole survey")
    burst.add_argument("--customers", type=int, default=300)
    burst.add_argument("--critics", type=int, default=200)
    burst.add_argument(
        "--alerts-timeout",
        type=float,
        default=2400.0,
        help="seconds to wait for every staff alert after the surveys are done (default 40 min)",
    )
    burst.add_argument(
        "--no-wait-alerts",
        dest="wait_alerts",
        action="store_false",
        help="report the surveys and the alerts delivered so far, with the projected time for the rest",
    )
    args = parser.parse_args(argv)
    if args.command == "send-rate":
        try:
            args.rate_values = [float(r) for r in args.rates.split(",") if r.strip()]
        except ValueError:
            parser.error("--rates must be numbers separated by commas, such as 25,200")
        if not args.rate_values or any(not 0 < r <= 1000 for r in args.rate_values):
            parser.error("--rates must lie in (0, 1000], as SEND_RATE does")
    if args.command in ("answers", "critic-burst") and args.customers < 3:
        parser.error("--customers must be at least 3")
    if args.command == "critic-burst" and not 1 <= args.critics <= args.customers:
        parser.error("--critics must be between 1 and --customers")
    return args


def _context(console: Console, args: argparse.Namespace, fingerprint: str) -> None:
    console.print(f"Machine: {machine()}", highlight=False)
    console.print(f"Code under test: {code_version()}, code fingerprint {fingerprint}", highlight=False)
    console.print(
        f"Database {args.database} (fresh); the fake Bot API server runs in this process on its own thread "
        f"(127.0.0.1), the bot is `python -m bot.cli run`. STAFF_CHAT_ID={STAFF_CHAT} (a group). The bot "
        f"keeps its own per-chat limits (private chat: burst {PRIVATE_CHAT_PACE.burst}, then one per "
        f"{PRIVATE_CHAT_PACE.interval.total_seconds():g} s; group: burst {GROUP_CHAT_PACE.burst}, then one "
        f"per {GROUP_CHAT_PACE.interval.total_seconds():.2f} s) — they cannot be switched off.",
        highlight=False,
    )


def _throttling(result: Throttling) -> str:
    text = f"{result.limiter} (limiter) / {result.status_429} (any 429)"
    return ("[green]" if result.none else "[red]") + text


def _problems(console: Console, problems: list[str]) -> bool:
    if problems:
        console.print("[red]Checks failed:[/red]\n" + escape("\n".join(problems[:10])), highlight=False)
        return False
    return True


# ---------------------------------------------------------------------------------- a. send rate


def send_rate(console: Console, args: argparse.Namespace, fingerprint: str) -> bool:
    """Run the send-rate measurement at every requested SEND_RATE and print one table."""
    rates: list[float] = args.rate_values
    raised = [r for r in rates if r > TELEGRAM_OVERALL]
    changed = [r for r in rates if r != SHIPPED_SEND_RATE]
    if changed or raised:
        first = (
            f"[bold]Production limits changed:[/bold] Kundenpuls runs with SEND_RATE="
            f"{', '.join(f'{r:g}' for r in rates)} (shipped default {SHIPPED_SEND_RATE:g})"
        )
        if raised:
            first += (
                f"; for SEND_RATE above {TELEGRAM_OVERALL:g} the fake's overall bucket is raised to "
                "SEND_RATE (Telegram allows that only for paid broadcasts)"
            )
        first += f"; {QUIET_HOURS_OFF}; everything else keeps Telegram's limits."
    else:
        first = (
            "No production limit changed: shipped SEND_RATE, the fake keeps Telegram's flood limits; "
            f"{QUIET_HOURS_OFF}."
        )
    console.print(first, highlight=False, soft_wrap=True)
    console.rule("[bold]Send rate: N messages to N private chats queued at once")
    _context(console, args, fingerprint)
    for rate in rates:
        console.print(
            f"SEND_RATE={rate:g}: N = {_messages(rate, args.seconds)} customers; fake limits "
            f"{describe_limits(fake_limits(rate))}",
            highlight=False,
        )
    console.print(
        "Setup, not timed: every customer sends /start (one reply each), the shop reports one purchase "
        "each through the purchase API with SURVEY_DELAY=1h, SWEEP_INTERVAL=1s, QUIET_HOURS empty. Then "
        "the benchmark moves "
        "every due time to now in one UPDATE and the next sweep queues the N NPS questions at once. "
        "Rate = (accepted − 1) ÷ (time of the last − time of the first accepted message call at the fake).",
        highlight=False,
    )
    results = []
    for rate in rates:
        n = _messages(rate, args.seconds)
        console.print(f"SEND_RATE={rate:g}: {n} messages ...", highlight=False)
        results.append(
            run_send_rate(send_rate=rate, messages=n, database=args.database, timeout=args.timeout)
        )
    _send_rate_table(console, results)
    ok = all(r.throttling.none for r in results)
    return _problems(console, [p for r in results for p in r.problems]) and ok


def _messages(rate: float, seconds: float) -> int:
    return max(2, round(rate * seconds))


def _send_rate_table(console: Console, results: list[SendRateResult]) -> None:
    table = Table(title="Send rate (as seen at the fake)", title_justify="left")
    for name in (
        "SEND_RATE",
        "messages",
        "accepted",
        "first → last, s",
        "msg/s",
        "÷ SEND_RATE",
        f"≥ {SEND_RATE_TARGET}",
        "429 limiter",
        "429 any",
        "bot CPU",
        "fake CPU",
        "due → 1st, s",
    ):
        table.add_column(name, justify="right")
    for r in results:
        table.add_row(
            f"{r.send_rate:g}",
            str(r.messages),
            str(r.accepted),
            f"{r.window:.2f}",
            f"{r.rate:.1f}",
            f"[bold]{r.ratio:.3f}",
            "met" if r.ratio >= SEND_RATE_TARGET else "[red]NOT met",
            _count(r.throttling.limiter),
            _count(r.throttling.status_429),
            f"{r.bot_busy:.0%}",
            f"{r.fake_busy:.0%}",
            f"{r.queued_after:.2f}",
        )
    console.print(table)
    console.print(
        "[dim]429 limiter: answered by the fake's flood limiter; 429 any: every request answered 429; both "
        "over the whole run, setup included. 'due → 1st' is setup (the next sweep, then the sweep "
        "itself), not part of the window. CPU: the bot process and the fake's thread from making the "
        "surveys due until the last message was accepted (1 core = 100 %).[/dim]"
    )


def _count(n: int) -> str:
    return f"[green]{n}" if n == 0 else f"[red]{n}"


# ---------------------------------------------------------------------------------- b. answers


def answers(console: Console, args: argparse.Namespace, fingerprint: str) -> bool:
    """Answers per second at the shipped defaults against Telegram's limits."""
    console.print(
        f"No production limit changed: shipped defaults (SEND_RATE={SHIPPED_SEND_RATE:g}), and the fake "
        f"keeps Telegram's flood limits ({describe_limits(TELEGRAM)}); {QUIET_HOURS_OFF}.",
        highlight=False,
        soft_wrap=True,
    )
    console.rule("[bold]Production answers/s: N customers press a score at once")
    _context(console, args, fingerprint)
    console.print(
        f"{args.customers} customers, a third critics (each critic's answer queues a staff alert); "
        "SURVEY_DELAY=0s for the setup, QUIET_HOURS empty (a run at night would wait for 09:00), "
        "everything else at its shipped default. Setup, not timed: /start, "
        "a purchase each, the NPS question. Timed: from the moment all presses are queued until the last "
        "customer's next step arrives at the fake.",
        highlight=False,
    )
    limit = answers_limit()
    console.print(
        f"Telegram's limit for this load: each answer needs one message call to the customer (the survey "
        f"message is edited into the next step); the critics' alerts go to the staff group, which Telegram "
        f"caps at 20/min. Of the overall {TELEGRAM_OVERALL:g}/s at most 20/60 = {TELEGRAM.group.rate:.2f}/s "
        f"go to the group, which leaves {TELEGRAM_OVERALL:g} − {TELEGRAM.group.rate:.2f} = {limit:.1f} "
        f"customer steps/s: [bold]{limit:.1f} answers/s[/bold]. SEND_RATE={SHIPPED_SEND_RATE:g} (shipped) "
        f"sits below it on purpose, to keep headroom under Telegram's {TELEGRAM_OVERALL:g}/s, so the best "
        f"possible ratio at the defaults is {SHIPPED_SEND_RATE:g}/{limit:.1f} = "
        f"{SHIPPED_SEND_RATE / limit:.2f}.",
        highlight=False,
    )
    result = run_answers(customers=args.customers, database=args.database, timeout=args.timeout)
    _answers_table(console, result)
    return _problems(console, result.problems) and result.throttling.none


def _answers_table(console: Console, r: AnswersResult) -> None:
    table = Table(title="Production answers/s (shipped defaults, Telegram's limits)", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("answers", f"{r.customers} ({r.critics} critics)")
    table.add_row("until every customer saw their next step, s", f"{r.elapsed:.2f}")
    table.add_row("[bold]answers/s", f"[bold]{r.rate:.1f}")
    table.add_row(f"÷ Telegram's limit for this load ({r.limit:.1f}/s)", f"[bold]{r.rate / r.limit:.2f}")
    table.add_row(f"÷ SEND_RATE ({r.send_rate:g}/s)", f"{r.rate / r.send_rate:.2f}")
    table.add_row("staff alerts delivered meanwhile (the rest trickle at 20/min)", str(r.staff_sent))
    table.add_row("429s", _throttling(r.throttling))
    table.add_row("customer steps or staff alerts delivered twice", str(r.duplicates))
    console.print(table)


# ---------------------------------------------------------------------------------- c. critic burst


def critic_burst(console: Console, args: argparse.Namespace, fingerprint: str) -> bool:
    """The 300/200 burst: every survey to the end, then the staff chat's trickle."""
    console.print(
        f"No production limit changed: shipped defaults (SEND_RATE={SHIPPED_SEND_RATE:g}), and the fake "
        f"keeps Telegram's flood limits ({describe_limits(TELEGRAM)}); {QUIET_HOURS_OFF}.",
        highlight=False,
        soft_wrap=True,
    )
    console.rule("[bold]Critic burst: every customer answers the whole survey at once")
    _context(console, args, fingerprint)
    wait = f"up to {args.alerts_timeout:.0f} s" if args.wait_alerts else "not (--no-wait-alerts)"
    console.print(
        f"{args.customers} customers, {args.critics} critics; SURVEY_DELAY=0s for the setup, QUIET_HOURS "
        "empty (a run at night would wait for 09:00), everything else at its shipped default. All press a "
        "score at once, then each answers every follow-up with its "
        "first button (an option, or Skip) until thanked. A critic's score opens a case with one card in "
        "the staff chat; later answers update that card (in its queued row while it waits, by an edit once "
        f"it is shown). Waiting for the staff chat afterwards: {wait}.",
        highlight=False,
    )
    with Progress(
        TextColumn("staff chat"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        task = progress.add_task("staff", total=None, detail="")
        last_line = [time.monotonic()]

        def show(staff: StaffProgress) -> None:
            detail = "critics' cards visible"
            progress.update(task, total=len(staff.queued), completed=len(staff.seen), detail=detail)
            if not console.is_terminal and time.monotonic() - last_line[0] >= PROGRESS_LINE_SECONDS:
                # Redirected output gets no live bar: a line a minute instead.
                last_line[0] = time.monotonic()
                console.print(f"staff chat: {len(staff.seen)}/{len(staff.queued)} {detail}", highlight=False)

        result = run_critic_burst(
            customers=args.customers,
            critics=args.critics,
            database=args.database,
            timeout=args.timeout,
            alerts_timeout=args.alerts_timeout,
            wait_alerts=args.wait_alerts,
            on_progress=show,
            on_surveys_done=lambda seconds: console.print(
                f"every survey completed {seconds:.1f} s after the presses; now the staff chat ...",
                highlight=False,
            ),
        )
    _critic_table(console, result)
    return _problems(console, result.problems) and result.throttling.none


def _seconds(value: float | None, projected: Callable[[], tuple[float, str]]) -> str:
    if value is not None:
        return f"[bold]{value:.0f} s ({value / 60:.1f} min)"
    guess, basis = projected()
    return f"not yet; projected {guess:.0f} s ({guess / 60:.1f} min) from {basis}"


def _critic_table(console: Console, r: CriticBurstResult) -> None:
    queued = len(r.staff.queued)
    messages = len(set(r.staff.queued.values()))
    table = Table(title="Critic burst (shipped defaults, Telegram's limits)", title_justify="left")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("customers", f"{r.customers} ({r.critics} critics)")
    table.add_row(
        "[bold]until the last customer's survey completed (thank-you at the fake)",
        f"[bold]{r.surveys_done:.1f} s",
    )
    table.add_row(
        "until the last critic's case was visible in the staff chat",
        _seconds(r.last_first_alert, lambda: r.projected(first_alerts_only=True)),
    )
    table.add_row(
        f"until every case ({queued}) was visible",
        _seconds(r.all_staff, lambda: r.projected(first_alerts_only=False)),
    )
    table.add_row("cases visible", f"{len(r.staff.seen)} of {queued}")
    latencies = sorted(seen - r.t0 for seen in r.staff.seen.values())
    if latencies:
        median = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
        table.add_row(
            "case visible after the tap, median / p99 (cases visible)",
            f"{median:.1f} s / {p99:.1f} s ({len(latencies)})",
        )
    pace = r.pace
    table.add_row("observed staff chat pace", f"{pace * 60:.1f}/min" if pace is not None else "—")
    table.add_row(
        "at the bot's group pace the staff chat needs",
        f"{group_drain_seconds(messages):.0f} s for {messages} messages showing {queued} cases "
        "(Telegram: 20/min)",
    )
    table.add_row("429s", _throttling(r.throttling))
    console.print(table)


COMMANDS = {"send-rate": send_rate, "answers": answers, "critic-burst": critic_burst}


def main(argv: list[str] | None = None) -> int:
    """Run one command and say whether its numbers can be trusted."""
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    fingerprint = code_fingerprint()
    started = time.monotonic()
    try:
        ok = COMMANDS[args.command](console, args, fingerprint)
    except BenchError as error:
        console.print(f"[red]benchmark aborted:[/red] {escape(str(error))}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]; the bot was stopped")
        return 2
    if code_fingerprint() != fingerprint:
        console.print("[red]the bot's code changed during the run: the figures mix two versions")
        ok = False
    verdict = "[green]all checks passed" if ok else "[red]a check failed"
    console.print(f"{verdict}[/]; [dim]benchmark took {time.monotonic() - started:.0f}s[/dim]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
