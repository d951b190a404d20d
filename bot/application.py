"""The composition root: builds the Application and runs the bot's parts side by side.

Nothing is constructed at import time. ``KundenpulsBot`` owns the engine, the python-telegram-bot
Application, the durable poller, the update worker, the outbox sender, the survey sweep and the HTTP API,
and starts and stops them in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Coroutine
from datetime import datetime
from functools import partial
from typing import Any

from aiohttp import web
from sqlalchemy.engine import Engine
from sqlmodel import Session
from telegram import BotCommand
from telegram.error import TelegramError
from telegram.ext import Application, ContextTypes, Defaults, filters

from bot import jobs
from bot.handler_loop import HandlerLoop
from bot.health import delivery_health
from bot.http_api import build_http_app, start_http_server
from bot.polling import DurablePoller
from bot.sender import OutboxSender, assign_staff_chat
from bot.settings import Settings
from bot.telegram_http import AiohttpRequest
from bot.update_worker import UpdateWorker
from bot.webhook import use_polling, webhook_for
from handlers import chat_member, customer_commands, customer_survey, customers, manager, privacy, staff
from handlers.context import BotApplication, BotContext, UpdateWork
from handlers.errors import record_error
from handlers.services import Services
from storage import outbox
from storage.db import create_db_engine, unit_of_work
from storage.migrate import upgrade_database
from storage.models import TelegramUser, utcnow
from surveys import sentiment
from surveys.loader import POST_PURCHASE_SURVEY_ID, load_builtin_survey
from surveys.texts import load_catalogue

log = logging.getLogger(__name__)

FAILPOINT_VARIABLE = "KUNDENPULS_FAILPOINT"
HOLD_UPDATES = "hold-updates"
SENDS_IN_FLIGHT = 4
"""A few Bot API calls in flight keep the connection busy without queueing work in the client
(FIELD-NOTES: 4 at once was fastest)."""
ANSWERS_IN_FLIGHT = 4
"""Callback answers have slots of their own, so they never wait behind sends."""


def build_application(
    settings: Settings, services: Services, in_staff_chat: filters.Chat | None = None
) -> BotApplication:
    """Build the python-telegram-bot Application with every handler registered in one place."""
    # Opt into PTB's timedelta durations now (its int durations are deprecated and warn on every 429).
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    builder = (
        Application.builder()
        .token(settings.token)
        .base_url(f"{settings.telegram_api_url}/bot")
        .base_file_url(f"{settings.telegram_api_url}/file/bot")
        .updater(None)  # our DurablePoller stores updates before confirming them
        .context_types(ContextTypes(context=BotContext))
        .defaults(Defaults(tzinfo=settings.timezone))
        .request(AiohttpRequest(connection_pool_size=SENDS_IN_FLIGHT + ANSWERS_IN_FLIGHT + 2))
        # Our DurablePoller makes the getUpdates calls; PTB's own updates client stays idle.
        .get_updates_request(AiohttpRequest(connection_pool_size=1))
    )
    # No AIORateLimiter: its limits live in one process and it has no per-chat limit for private chats
    # (FIELD-NOTES). Every message goes through the outbox, whose sender keeps Telegram's limits for all
    # processes together (bot/sender.py); callback answers are not messages and are not limited.
    application: BotApplication = builder.build()
    application.bot_data["services"] = services
    # Order matters: commands first, then survey answers, then the catch-alls that make sure every
    # message and button press still gets an answer.
    # Staff first: in a private staff chat their replies to a card must not be taken for a customer's.
    in_staff_chat = in_staff_chat if in_staff_chat is not None else staff.staff_chat_filter(settings)
    if settings.staff_chat_id is not None:
        application.add_handler(staff.forum_watch(in_staff_chat), group=-1)
    application.add_handlers(staff.handlers_for(settings, in_staff_chat))
    application.add_handlers(manager.HANDLERS)
    application.add_handlers(customer_commands.HANDLERS)
    application.add_handlers(privacy.HANDLERS)
    application.add_handlers(customer_survey.HANDLERS)
    application.add_handlers(chat_member.HANDLERS)
    application.add_handlers(customer_survey.FALLBACK_HANDLERS)
    application.add_error_handler(record_error)
    return application


def command_menu(services: Services, lang: str) -> list[BotCommand]:
    """Return the command menu in one language, described by the catalogue."""
    language = services.language(lang)
    return [
        BotCommand(name, services.text(language, f"commands_{name}")) for name in customer_commands.COMMANDS
    ]


class KundenpulsBot:
    """A running bot: start it, let it run, stop it; everything important is in the database."""

    def __init__(
        self, settings: Settings, *, engine: Engine | None = None, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.settings = settings
        # What "now" is for the sweep (due surveys, reminders, expiry, quiet hours): tests move it.
        self.clock = clock
        self.engine = engine or create_db_engine(settings.database_url)
        survey = load_builtin_survey(POST_PURCHASE_SURVEY_ID)
        self.services = Services(settings=settings, surveys={survey.id: survey}, catalogue=load_catalogue())
        self.in_staff_chat = staff.staff_chat_filter(settings)
        self.application = build_application(settings, self.services, self.in_staff_chat)
        self.sender = OutboxSender(
            engine=self.engine,
            bot=self.application.bot,
            http_slots=asyncio.Semaphore(SENDS_IN_FLIGHT),
            send_rate=settings.send_rate,
            staff_chat_id=settings.staff_chat_id,
            clock=lambda: self.clock(),
            quiet_hours=settings.contact_policy.quiet_hours,
            zone=settings.timezone,
        )
        self.sender.on_staff_chat_moved = self.in_staff_chat.add_chat_ids
        self.handler_loop = HandlerLoop()
        self.worker = UpdateWorker(
            engine=self.engine,
            application=self.application,
            on_messages_queued=self.sender.wake,
            on_sweep_needed=self.request_sweep,
            on_give_up=self._tell_update_failed,
            http_slots=asyncio.Semaphore(ANSWERS_IN_FLIGHT),
            handler_loop=self.handler_loop
            if os.environ.get("KUNDENPULS_X_HANDLER_THREAD", "1") == "1"
            else None,
            clock=lambda: self.clock(),
        )
        self.poller = DurablePoller(
            engine=self.engine,
            api_url=settings.telegram_api_url,
            token=settings.token,
            on_stored=self.worker.wake,
        )
        self.ready = False
        self.http_port: int | None = None
        self._http_runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._sweep_lock = asyncio.Lock()
        self._sweeps: set[asyncio.Future[int]] = set()
        self._sweep_requested = False
        self.sweeps_run = 0
        """How many sweeps this process ran (one each SWEEP_INTERVAL, plus those asked for sooner)."""
        # Set when a part of the bot died: better to exit and be restarted than to run half a bot.
        self.crashed = asyncio.Event()

    async def start(self) -> None:
        """Migrate the database, connect to Telegram and start every part."""
        upgrade_database(self.engine)
        # The language model and the lexicons (about a second), before the first comment waits for them.
        sentiment.preload()
        # Webhook mode: Telegram posts to this same server, and each update is stored before the 200.
        webhook = webhook_for(self.settings, engine=self.engine, on_stored=self.worker.wake)
        http_app = build_http_app(
            engine=self.engine,
            settings=self.settings,
            bot_username=lambda: self.services.bot_username,
            is_ready=lambda: self.ready,
            on_purchase_recorded=self.request_sweep,
            webhook=webhook,
            health=self.health_report,
        )
        self._http_runner, self.http_port = await start_http_server(
            http_app, host=self.settings.http_host, port=self.settings.http_port
        )
        await self.application.initialize()
        self.services.bot_username = self.application.bot.username
        await self._set_commands()
        staff_chat = assign_staff_chat(self.engine, self.settings.staff_chat_id, utcnow())
        if staff_chat is None:
            log.warning("STAFF_CHAT_ID is not set: critic alerts are kept until it is")
        else:
            if staff_chat != self.settings.staff_chat_id:
                self.in_staff_chat.add_chat_ids(staff_chat)
            await self._learn_forum(staff_chat)
        await self.application.start()
        job_queue = self.application.job_queue
        if job_queue is None:  # pragma: no cover - the job-queue extra is a dependency
            raise RuntimeError("python-telegram-bot was installed without its job-queue extra")
        job_queue.run_repeating(
            self._sweep_job,
            interval=self.settings.sweep_interval,
            first=0,
            name="survey-sweep",
            job_kwargs={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        if os.environ.get(FAILPOINT_VARIABLE) == HOLD_UPDATES:
            # Crash tests: store and acknowledge updates but never handle them, then kill the process.
            log.warning("%s=%s: updates are stored but not handled", FAILPOINT_VARIABLE, HOLD_UPDATES)
        else:
            self.handler_loop.start()
            self._spawn(self.worker.run(), "update-worker")
        self._spawn(self.sender.run(), "outbox-sender")
        if webhook is not None:
            # Every replica registers the same URL and secret (idempotent) and serves it; the webhook
            # stays registered on stop because the other replicas still do.
            await webhook.register(self.application.bot)
        else:
            # A webhook left from webhook mode would make every getUpdates fail with 409.
            await use_polling(self.application.bot)
            self._spawn(self.poller.run(), "poller")
        self.ready = True
        log.info("Kundenpuls is running as @%s", self.services.bot_username)

    async def _learn_forum(self, chat_id: int) -> None:
        """Ask Telegram whether the staff chat is a forum (then every case gets a topic of its own)."""
        if chat_id > 0:
            return  # a private staff chat has no topics
        try:
            chat = await self.application.bot.get_chat(chat_id)
        except TelegramError as error:
            # The sender says what to fix when the chat refuses the first alert; topics wait until then.
            log.warning("could not ask whether the staff chat %s is a forum: %s", chat_id, error)
            return
        forum = bool(chat.is_forum)
        with unit_of_work(self.engine) as session:
            outbox.set_forum(session, chat_id, is_forum=forum, now=utcnow())
        self.services.staff_chat_forum[chat_id] = forum
        if forum:
            log.info("the staff chat %s is a forum: every case gets a topic of its own", chat_id)

    async def health_report(self) -> dict[str, Any]:
        """What /healthz says beyond "ok": how updates arrive here, 429s, and the staff chat."""
        staff_chat_id = self.settings.staff_chat_id

        def read() -> dict[str, Any]:
            with unit_of_work(self.engine) as session:
                return delivery_health(session, staff_chat_id=staff_chat_id, now=utcnow())

        report = await asyncio.to_thread(read)
        report["mode"] = "webhook" if self.settings.webhook_mode else "polling"
        report["polling_here"] = self.poller.is_polling
        report["telegram"]["throttled_here"] = self.sender.throttled
        report["sender"] = self.sender.owner
        return report

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coroutine, name=name)
        task.add_done_callback(self._task_ended)
        self._tasks.append(task)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.critical("%s stopped", task.get_name(), exc_info=task.exception())
            self.ready = False
            self.crashed.set()

    async def _set_commands(self) -> None:
        bot = self.application.bot
        await bot.set_my_commands(command_menu(self.services, self.settings.default_language))
        for lang in ("de", "en"):
            await bot.set_my_commands(command_menu(self.services, lang), language_code=lang)

    async def _sweep_job(self, _context: object) -> None:
        await self.sweep()

    async def sweep(self) -> int:
        """Open due surveys now; return how many questions were queued."""
        async with self._sweep_lock:
            return await self._sweep_holding_lock()

    async def _sweep_holding_lock(self) -> int:
        # In a thread: a sweep over hundreds of due surveys must not hold up sending and answering.
        # The thread is waited for on stop (it must not hold a connection when the engine goes).
        self.sweeps_run += 1
        work = partial(jobs.sweep, self.engine, self.services, now=self.clock())
        future = asyncio.get_running_loop().run_in_executor(None, work)
        self._sweeps.add(future)
        future.add_done_callback(self._sweeps.discard)
        asked = await asyncio.shield(future)
        if asked:
            self.sender.wake()
        return asked

    def request_sweep(self) -> None:
        """Run the sweep soon, without waiting for SWEEP_INTERVAL (a new purchase, a customer who arrived)."""
        job_queue = self.application.job_queue
        if job_queue is None or not self.application.running or self._sweep_requested:
            return  # one sweep already waiting to run covers every purchase reported meanwhile
        self._sweep_requested = True
        job_queue.run_once(self._sweep_soon_job, when=0, name="survey-sweep-now")

    async def _sweep_soon_job(self, _context: object) -> None:
        async with self._sweep_lock:
            # Cleared only once this sweep runs: every request made while it waited for the one before is
            # covered by it, so a burst of 500 purchases makes two sweeps, not 500 queued on the lock.
            self._sweep_requested = False
            await self._sweep_holding_lock()

    def _tell_update_failed(self, session: Session, update_id: int, chat_id: int) -> None:
        user_row = session.get(TelegramUser, chat_id)
        lang = (
            customers.user_language(self.services, session, user_row)
            if user_row
            else self.services.language()
        )
        work = UpdateWork(session=session, now=utcnow(), update_id=update_id)
        customers.queue_reply(
            session,
            work,
            chat_id=chat_id,
            text=self.services.text(lang, "error_generic"),
            key_suffix=":failed",
        )

    async def stop(self) -> None:
        """Stop every part; whatever was not finished stays in the database for the next start."""
        self.ready = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self.handler_loop.stop()
        await self.worker.close()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        if self._http_runner is not None:
            await self._http_runner.cleanup()
            self._http_runner = None
        if self._sweeps:
            await asyncio.wait(set(self._sweeps), timeout=30)
        self.engine.dispose()
