"""/start (with or without a deep link), /help, /stop and /language for customers."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlmodel import col, select
from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from handlers import customers, messages
from handlers.context import BotContext
from storage.models import Customer, SurveyDelivery
from surveys.languages import normalize_language

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PRIVATE = filters.ChatType.PRIVATE


async def start(update: Update, context: BotContext) -> None:
    """Greets the customer, links a deep-link token to them, and lets waiting surveys go out."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    session, work, services = context.session, context.work, context.services
    user_row = customers.touch_user(session, work, user)
    resumed = customers.resume_everything(session, work, user_row)
    customers.mark_started(session, work, user_row)
    key, order_id = "start_welcome", None
    if context.args:
        token = context.args[0]
        key, order_id = (
            ("link_invalid", None)
            if not _TOKEN.match(token)
            else customers.link_customer(session, work, token=token, user_row=user_row)
        )
        if key == "start_linked":
            customers.mark_started(session, work, user_row)
    elif resumed:
        key = "start_resumed"
    lang = customers.user_language(services, session, user_row)
    text = services.text(lang, key, order_id=order_id) if order_id else services.text(lang, key)
    customers.queue_reply(session, work, chat_id=chat.id, text=text)


async def help_command(update: Update, context: BotContext) -> None:
    """Explains what the bot does and lists the commands."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    user_row = customers.touch_user(context.session, context.work, user)
    lang = customers.user_language(context.services, context.session, user_row)
    customers.queue_reply(
        context.session, context.work, chat_id=chat.id, text=context.services.text(lang, "help")
    )


async def stop(update: Update, context: BotContext) -> None:
    """Stops all surveys and messages to the customer and confirms it."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    session, work = context.session, context.work
    user_row = customers.touch_user(session, work, user)
    stopped = customers.stop_everything(session, work, user_row)
    lang = customers.user_language(context.services, session, user_row)
    key = "stop_confirmed" if stopped else "stop_already"
    customers.queue_reply(session, work, chat_id=chat.id, text=context.services.text(lang, key))


async def language(update: Update, context: BotContext) -> None:
    """Asks the customer which language they want."""
    user, chat = update.effective_user, update.effective_chat
    if user is None or chat is None:
        return
    services = context.services
    user_row = customers.touch_user(context.session, context.work, user)
    lang = customers.user_language(services, context.session, user_row)
    customers.queue_reply(
        context.session,
        context.work,
        chat_id=chat.id,
        text=services.text(lang, "language_choose"),
        reply_markup=messages.language_keyboard(services),
    )


async def language_chosen(update: Update, context: BotContext) -> None:
    """Stores the chosen language; surveys not yet started will use it too."""
    query, user = update.callback_query, update.effective_user
    if query is None or user is None:
        return
    services, session, work = context.services, context.session, context.work
    user_row = customers.touch_user(session, work, user)
    _, _, code = (query.data or "").partition(messages.CALLBACK_SEPARATOR)
    chosen = normalize_language(code) if code in ("de", "en") else None
    if chosen is None:
        lang = customers.user_language(services, session, user_row)
        toast = services.text(lang, "button_invalid")
        work.after_commit.append(lambda: query.answer(toast))
        return
    user_row.chosen_language = chosen
    session.add(user_row)
    _relanguage_unstarted_surveys(context, user_row.id)
    name = services.text(chosen, f"language_name_{chosen}")
    text = services.text(chosen, "language_set", language_name=name)
    customers.queue_reply(session, work, chat_id=user_row.id, text=text)
    work.after_commit.append(lambda: query.answer())


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
    CommandHandler("language", language, filters=PRIVATE),
    CallbackQueryHandler(
        language_chosen, pattern=f"^{messages.LANGUAGE_PREFIX}{messages.CALLBACK_SEPARATOR}"
    ),
]
"""The customer commands, in the order they are registered."""

COMMANDS = ("start", "help", "language", "stop")
"""The commands shown in Telegram's menu, each described by the catalogue key ``commands_<name>``."""
