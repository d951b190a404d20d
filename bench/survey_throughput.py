"""How many survey answers per second Kundenpuls handles, next to a bare python-telegram-bot echo bot.

    python bench/survey_throughput.py [--customers 500] [--database sqlite|postgresql] [--rounds 5]
                                      [--steps 2] [--profile] [--timeout 120]

Each round runs the echo bot (the floor: what PTB itself manages here), then Kundenpuls, then the echo
bot again, all as subprocesses against a fake Bot API server in this process, driven the same way: N
customers act at once and the clock stops when the last one has been answered. The round's floor pools
both echo runs, so it brackets the Kundenpuls run in time. After the rounds one more Kundenpuls run
goes through ``bench/run_bot.py`` to count database statements per answer (and, with ``--profile``, to
profile the timed windows with cProfile); that run is not part of the rates. See bench/README.md.

Exit status: 0 when every correctness check passed, 1 when one failed, 2 when the benchmark could not
run (a deadline passed, a bot died; the message says which).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# Run as a script (python bench/survey_throughput.py): make the repository importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console

from bench.harness import BenchError, FakeServer, code_fingerprint, code_version
from bench.report import (
    print_correctness,
    print_costs,
    print_header,
    print_profile,
    print_rounds,
    print_summary,
)
from bench.scenarios import RunResult, run_echo, run_kundenpuls


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; the defaults are the numbers in bench/README.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--customers", type=int, default=500, help="customers (= updates per burst)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--rounds", type=int, default=5, help="echo, Kundenpuls, echo rounds (median reported)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        choices=(1, 2),
        default=2,
        help="timed answers per customer: 1 = NPS only, 2 = NPS and the follow-up choice",
    )
    parser.add_argument("--profile", action="store_true", help="profile the instrumented run (cProfile)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds any single wait may take")
    args = parser.parse_args(argv)
    if args.customers < 3 or args.rounds < 1:
        parser.error("--customers must be at least 3 and --rounds at least 1")
    return args


def measure(
    args: argparse.Namespace, console: Console
) -> tuple[list[tuple[RunResult, RunResult]], RunResult]:
    """The rounds (echo, Kundenpuls, echo), then the instrumented Kundenpuls run.

    The host's speed moves within seconds on the project machines (an echo run alone gave 392-1,145
    updates/s in one benchmark), and an echo run takes half a second: a floor measured only before the
    Kundenpuls run could catch a fast or a slow moment that the Kundenpuls run did not. So each round's
    floor pools an echo run before and one after (their updates over their timed seconds).
    """
    kundenpuls_options = {
        "customers": args.customers,
        "database": args.database,
        "timeout": args.timeout,
        "steps": args.steps,
    }
    pairs = []
    for round_number in range(1, args.rounds + 1):
        before = run_echo(args.customers, args.timeout)
        kundenpuls = run_kundenpuls(**kundenpuls_options, instrumented=False, profile=False)
        after = run_echo(args.customers, args.timeout)
        echo = RunResult(
            bot=before.bot,
            bursts=[*before.bursts, *after.bursts],
            problems=[*before.problems, *after.problems],
        )
        console.print(
            f"round {round_number}: echo bot {before.rate:.0f} before, {after.rate:.0f} after, "
            f"{echo.rate:.0f} updates/s pooled; Kundenpuls {kundenpuls.rate:.0f} answers/s "
            f"(ratio {kundenpuls.rate / echo.rate:.2f})",
            highlight=False,
        )
        pairs.append((echo, kundenpuls))
    what = "statement counts and cProfile" if args.profile else "statement counts"
    console.print(f"instrumented Kundenpuls run ({what}, not part of the rates) ...", highlight=False)
    instrumented = run_kundenpuls(**kundenpuls_options, instrumented=True, profile=args.profile)
    return pairs, instrumented


def main(argv: list[str] | None = None) -> int:
    """Measure, print the tables, and say whether the numbers can be trusted."""
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 160)
    with FakeServer() as probe:
        validating = probe.validating
    fingerprint = code_fingerprint()
    print_header(console, vars(args), validating, f"{code_version()}, code fingerprint {fingerprint}")
    started = time.monotonic()
    try:
        pairs, instrumented = measure(args, console)
    except BenchError as error:
        console.print(f"[red]benchmark aborted:[/red] {error}", highlight=False)
        return 2
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]; the bots were stopped")
        return 2
    print_rounds(console, pairs)
    print_summary(console, pairs, args.database)
    runs = [run for pair in pairs for run in pair] + [instrumented]
    changed = code_fingerprint() != fingerprint
    ok = print_correctness(console, runs, code_changed=changed)
    kundenpuls_runs = [k for _, k in pairs]
    print_costs(console, [e for e, _ in pairs], kundenpuls_runs, instrumented)
    if args.profile:
        cpu_ms = 1000 * statistics.median(
            sum(b.cpu.bot for b in run.bursts) / run.units for run in kundenpuls_runs
        )
        print_profile(console, instrumented, cpu_ms)
    console.print(f"[dim]benchmark took {time.monotonic() - started:.0f}s[/dim]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
