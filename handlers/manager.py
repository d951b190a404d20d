"""/report and /export for managers: the summary of a period, or its answers as CSV, on demand.

Only chats in MANAGER_CHAT_IDS get figures; anyone else gets a polite refusal. The handler only asks for
the report (bot/report_jobs.py builds it outside the update's transaction and the sweep is woken at once),
so a manager asking for a year of figures never holds up a customer's answer.

Periods: nothing for the last complete week, ``4w`` for the last 28 days (today included), ``10d``, or
``2026-11-02..2026-11-15`` (surveys/report_period.py says what is accepted, and what is wrong otherwise).
"""

from __future__ import annotations

from sqlmodel import Session
from telegram import Update
from telegram.ext import CommandHandler

from handlers import customers
from handlers.context import BotContext
from handlers.services import Services
from handlers.visitor import visitor
from storage import report_requests
from storage.models import TelegramUser
from surveys.languages import Language, normalize_language
from surveys.report_period import PeriodError, parse_period


def manager_language(session: Session, services: Services, chat_id: int) -> Language:
    """The manager's own language when the chat is theirs and they told Telegram or the bot one, else
    DEFAULT_LANGUAGE (a group of managers)."""
    user = session.get(TelegramUser, chat_id)
    if user is not None:
        return services.language(user.chosen_language, normalize_language(user.language_code))
    return services.settings.default_language


def _is_manager_chat(context: BotContext, update: Update) -> bool:
    chat = update.effective_chat
    return chat is not None and chat.id in context.services.settings.manager_chat_ids


async def report(update: Update, context: BotContext) -> None:
    """/report [period]: the summary of the period, like the weekly one."""
    _ask(update, context, kind=report_requests.KIND_REPORT)


async def export(update: Update, context: BotContext) -> None:
    """/export [period]: every answer of the period as a CSV document."""
    _ask(update, context, kind=report_requests.KIND_EXPORT)


def _ask(update: Update, context: BotContext, *, kind: str) -> None:
    chat = update.effective_chat
    if chat is None:
        return
    session, services, work = context.session, context.services, context.work
    person = visitor(update, context)  # recorded like anyone who writes: their language is known then
    lang = person.language if person is not None and person.chat_id == person.row.id else None
    lang = lang or manager_language(session, services, chat.id)
    if not _is_manager_chat(context, update):
        customers.queue_reply(session, work, chat_id=chat.id, text=services.text(lang, "report_refused"))
        return
    settings = services.settings
    try:
        period = parse_period(" ".join(context.args or []), now=work.now, zone=settings.timezone)
    except PeriodError as error:
        text = services.text(lang, "report_period_invalid", problem=str(error))
        customers.queue_reply(session, work, chat_id=chat.id, text=text)
        return
    report_requests.ask(
        session,
        key=f"{kind}:{work.update_id}",
        chat_id=chat.id,
        kind=kind,
        start=period.start,
        end=period.end,
        language=lang,
        now=work.now,
    )
    work.wake_sweep = True


HANDLERS = [CommandHandler("report", report), CommandHandler("export", export)]
"""Registered before the customers' handlers: in a manager's private chat /report is theirs."""
