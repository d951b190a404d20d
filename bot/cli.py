"""The ``kundenpuls`` command: run the bot, migrate the database, import purchases, check surveys,
explain and report."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from bot import report_cli
from bot.settings import Settings, SettingsError, load_settings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

log = logging.getLogger("kundenpuls")


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr; httpx would log every request URL, and those URLs contain the bot token."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore", "apscheduler", "aiohttp.access", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kundenpuls", description="Kundenpuls: post-purchase surveys in Telegram."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="start the bot (long polling or a webhook) and the purchase API")
    run.add_argument(
        "--webhook",
        metavar="URL",
        help="receive updates at this public https:// URL instead of polling (overrides WEBHOOK_URL; "
        "needs WEBHOOK_SECRET)",
    )
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="apply all database migrations")
    importer = commands.add_parser("import", help="import purchases from a CSV file")
    importer.add_argument("file", type=Path, help="CSV with a header row: order_id,customer_id,...")
    surveys = commands.add_parser("surveys", help="survey definitions")
    survey_commands = surveys.add_subparsers(dest="surveys_command", required=True, metavar="ACTION")
    check = survey_commands.add_parser("check", help="validate a survey definition file")
    check.add_argument("file", type=Path)
    sentiment = commands.add_parser(
        "sentiment",
        help='score comments: JSON lines {"text": ..., "lang": "de"|"en"} in, one result each out',
    )
    sentiment.add_argument("file", nargs="?", type=Path, help="input file (default: standard input)")
    why = commands.add_parser(
        "why", help="what the bot plans for a customer next, when, and why (or why not)"
    )
    why.add_argument("customer_id", help="the shop's customer_id, as reported with the purchases")
    forget = commands.add_parser(
        "forget", help="erase everything stored about a customer (a request by mail; /forget in the chat)"
    )
    forget.add_argument("customer_id", help="the shop's customer_id, as reported with the purchases")
    forget.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    report_cli.add_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = _parser().parse_args(argv)
    configure_logging()
    console = Console(stderr=True)
    if args.command == "surveys":
        return _check_survey(args.file, console)
    if args.command == "sentiment":
        return _sentiment(args.file)
    try:
        # --webhook overrides WEBHOOK_URL and is validated like it; None would override it with "unset".
        overrides = {"webhook_url": args.webhook} if getattr(args, "webhook", None) is not None else {}
        settings = load_settings(**overrides)
        if args.command == "run":
            _check_run_settings(settings)
    except SettingsError as error:
        print(f"kundenpuls: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "db":
        return _db_upgrade(settings, console)
    if args.command == "import":
        return _import(settings, args.file, console)
    if args.command == "why":
        return _why(settings, args.customer_id)
    if args.command == "forget":
        from bot.forget_cli import forget

        return forget(settings, args.customer_id, confirmed=args.yes)
    if args.command == "report":
        from storage.models import utcnow

        return report_cli.run(args, settings, now=utcnow())
    return _run(settings)


def _why(settings: Settings, customer_id: str) -> int:
    from bot.why import UnknownCustomer, explain
    from storage.db import create_db_engine
    from storage.migrate import upgrade_database
    from storage.models import utcnow

    engine = create_db_engine(settings.database_url)
    try:
        upgrade_database(engine)
        answer = explain(engine, settings, customer_id, now=utcnow())
    except UnknownCustomer as error:
        print(f"kundenpuls why: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        engine.dispose()
    print("\n".join(answer.lines()))
    return EXIT_OK


def _sentiment(path: Path | None) -> int:
    """Score JSON lines from ``path`` or standard input; needs no settings and no database."""
    from surveys.sentiment.bulk import score_lines

    try:
        source = path.open(encoding="utf-8") if path is not None else sys.stdin
    except OSError as error:
        print(f"kundenpuls: cannot read {path}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    with source:
        for line in score_lines(source):
            print(line, flush=False)
    sys.stdout.flush()
    return EXIT_OK


def _check_run_settings(settings: Settings) -> None:
    """Raise SettingsError for what would stop the bot later: a missing token, an unusable webhook."""
    token = settings.token
    if settings.webhook_url is not None:
        from bot.webhook import webhook_endpoint

        settings.require_webhook_secret()
        webhook_endpoint(settings.webhook_url, token=token)


def _check_survey(path: Path, console: Console) -> int:
    from surveys.loader import SurveyFileError, load_survey

    try:
        survey = load_survey(path)
    except SurveyFileError as error:
        console.print(str(error), markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILED
    console.print(
        f"{path}: OK — survey '{survey.id}' version {survey.version}, {len(survey.questions)} questions"
    )
    return EXIT_OK


def _db_upgrade(settings: Settings, console: Console) -> int:
    from storage.db import create_db_engine
    from storage.migrate import current_revision, upgrade_database

    engine = create_db_engine(settings.database_url)
    try:
        upgrade_database(engine)
        console.print(f"database is at revision {current_revision(engine)}")
    finally:
        engine.dispose()
    return EXIT_OK


def _import(settings: Settings, path: Path, console: Console) -> int:
    from bot.csv_import import CsvFileError, import_purchases, render_summary
    from storage.db import create_db_engine
    from storage.migrate import upgrade_database

    engine = create_db_engine(settings.database_url)
    try:
        upgrade_database(engine)
        summary = import_purchases(path, engine=engine, settings=settings, console=console)
    except CsvFileError as error:
        console.print(f"kundenpuls import: {error}", markup=False, highlight=False, soft_wrap=True)
        return EXIT_FAILED
    finally:
        engine.dispose()
    render_summary(summary, console)
    return EXIT_OK if not summary.rejected else EXIT_FAILED


class BotCrashed(Exception):
    """A part of the running bot stopped; the log says which and why."""


def _run(settings: Settings) -> int:
    from telegram.error import InvalidToken, TelegramError

    from bot.webhook import WebhookRefused

    try:
        asyncio.run(_serve(settings))
    except WebhookRefused as error:
        print(f"kundenpuls: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BotCrashed:
        print(
            "kundenpuls: a part of the bot stopped unexpectedly (see the log above); exiting", file=sys.stderr
        )
        return EXIT_FAILED
    except InvalidToken:
        print(
            "kundenpuls: Telegram rejected TELEGRAM_BOT_TOKEN. Check the token @BotFather gave you "
            "(in .env or the environment).",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except TelegramError as error:
        print(
            f"kundenpuls: could not reach the Bot API at {settings.telegram_api_url} ({error}). "
            "Check TELEGRAM_API_URL and the network.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except OSError as error:
        print(f"kundenpuls: could not start: {error}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


async def _serve(settings: Settings) -> None:
    from bot.application import KundenpulsBot
    from bot.heap import freeze_startup_objects

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    bot = KundenpulsBot(settings)
    try:
        await bot.start()
        freeze_startup_objects()
        if bot.http_port is not None:
            log.info("purchase API on http://%s:%s/api/purchases", settings.http_host, bot.http_port)
            if settings.webhook_url is not None:
                from bot.webhook import webhook_endpoint

                path = webhook_endpoint(settings.webhook_url).path
                log.info(
                    "Telegram's webhook posts on http://%s:%s%s", settings.http_host, bot.http_port, path
                )
        stopping = asyncio.create_task(stop.wait())
        crashing = asyncio.create_task(bot.crashed.wait())
        await asyncio.wait({stopping, crashing}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        crashing.cancel()
    finally:
        await bot.stop()
    if bot.crashed.is_set():
        raise BotCrashed


if __name__ == "__main__":
    sys.exit(main())
