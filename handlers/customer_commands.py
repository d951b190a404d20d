"""/start (with or without a deep link), /help, /pause, /stop and /language for customers."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlmodel import col, select
from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from handlers import customers, messages
from handlers.context import BotContext
from handlers.visitor import visitor
from storage.models import Customer, SurveyDelivery
from surveys.languages import normalize_language

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PRIVATE = filters.ChatType.PRIVATE


async def start(update: Update, context: BotContext) -> None:
    """Greets the customer, links a deep-link token to them, and lets waiting surveys go out."""
    person = visitor(update, context)
    if person is None:
        return
    session, work = context.session, context.work
    resumed = customers.resume_everything(session, work, person.row)
    unpaused = customers.end_pause(session, work, person.row)
    key, order_id = "start_resumed" if resumed or unpaused else "start_welcome", None
    if context.args:
        token = context.args[0]
        key, order_id = (
            customers.link_customer(
                session,
                work,
                token=token,
                user_row=person.row,
                expires_after=context.services.settings.start_link_expires_after,
            )
            if _TOKEN.match(token)
            else ("link_invalid", None)
        )
    # After linking, so surveys of the customer just connected are released too.
    customers.mark_started(session, work, person.row)
    if order_id is not None:
        person.reply(key, order_id=order_id)
    else:
        person.reply(key)


PAUSE_DEFAULT_DAYS = 30
PAUSE_MAX_DAYS = 365
_PAUSE_LENGTH = re.compile(
    r"^(\d{1,3})\s*(d|t|tag|tage|day|days|w|wo|woche|wochen|week|weeks)?$", re.IGNORECASE
)


def pause_days(args: list[str]) -> int | None:
    """The length of a /pause in days: none given is 30; '90d', '90', '2w', '3 Wochen'; None if unreadable
    or outside 1-365 days."""
    if not args:
        return PAUSE_DEFAULT_DAYS
    match = _PAUSE_LENGTH.match(" ".join(args).strip())
    if match is None:
        return None
    number, unit = int(match.group(1)), (match.group(2) or "d").lower()
    days = number * 7 if unit.startswith("w") else number
    return days if 1 <= days <= PAUSE_MAX_DAYS else None


async def pause(update: Update, context: BotContext) -> None:
    """Pauses unprompted messages (surveys, reminders, check-ins) for 30 days or the length given."""
    person = visitor(update, context)
    if person is None:
        return
    days = pause_days(list(context.args or []))
    if days is None:
        person.reply("pause_invalid", max_days=PAUSE_MAX_DAYS)
        return
    until = customers.pause_contacts(context.session, context.work, person.row, days=days)
    local = until.astimezone(context.services.settings.timezone)
    person.reply("pause_confirmed", until=local.strftime("%d.%m.%Y"))


async def help_command(update: Update, context: BotContext) -> None:
    """Explains what the bot does and lists the commands."""
    person = visitor(update, context)
    if person is not None:
        person.reply("help")


async def stop(update: Update, context: BotContext) -> None:
    """Stops all surveys and messages to the customer and confirms it."""
    person = visitor(update, context)
    if person is None:
        return
    stopped = customers.stop_everything(context.session, context.work, person.row)
    person.reply("stop_confirmed" if stopped else "stop_already")


async def language(update: Update, context: BotContext) -> None:
    """Asks the customer which language they want."""
    person = visitor(update, context)
    if person is not None:
        person.reply("language_choose", reply_markup=messages.language_keyboard(context.services))


async def language_chosen(update: Update, context: BotContext) -> None:
    """Stores the chosen language; surveys not yet started will use it too."""
    query, person = update.callback_query, visitor(update, context)
    if query is None or person is None:
        return
    _, _, code = (query.data or "").partition(messages.CALLBACK_SEPARATOR)
    chosen = normalize_language(code) if code in ("de", "en") else None
    if chosen is None:
        person.toast(query, "button_invalid")
        return
    person.row.chosen_language = chosen
    context.session.add(person.row)
    _relanguage_unstarted_surveys(context, person.row.id)
    person.reply("language_set", language=chosen, language_name=person.text(f"language_name_{chosen}"))
    person.toast(query, None)


def _relanguage_unstarted_surveys(context: BotContext, telegram_user_id: int) -> None:
    """Forget the language fixed for surveys that have not started, so they follow the new choice."""
    customer_ids = select(Customer.id).where(col(Customer.telegram_user_id) == telegram_user_id)
    context.session.execute(
        sa.update(SurveyDelivery)
        .where(col(SurveyDelivery.customer_id).in_(customer_ids))
        .where(col(SurveyDelivery.started_at).is_(None))
        .values(language=None)
    )


HANDLERS = [
    CommandHandler("start", start, filters=PRIVATE),
    CommandHandler("help", help_command, filters=PRIVATE),
    CommandHandler("stop", stop, filters=PRIVATE),
    CommandHandler("pause", pause, filters=PRIVATE),
    CommandHandler("language", language, filters=PRIVATE),
    CallbackQueryHandler(
        language_chosen, pattern=f"^{messages.LANGUAGE_PREFIX}{messages.CALLBACK_SEPARATOR}"
    ),
]
"""The customer commands, in the order they are registered."""

COMMANDS = ("start", "help", "language", "pause", "stop", "mydata", "forget")
"""The commands shown in Telegram's menu, each described by the catalogue key ``commands_<name>``
(``/mydata`` and ``/forget`` live in handlers/privacy.py)."""
