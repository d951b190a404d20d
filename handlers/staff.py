"""Staff handlers: the card's buttons, replies to a card, and ``/open``, all in the staff chat only.

Nothing a button claims is trusted. A press counts only on the case's own card message, in the chat the
card went to, by a staff member (``STAFF_USER_IDS``, or when that is empty whoever can press it in the
staff chat). Anyone else gets a polite answer to the press and nothing changes. A reply to a card from
someone who is not staff reaches no customer.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session
from telegram import CallbackQuery, Update, User
from telegram.ext import BaseHandler, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.settings import Settings
from handlers import case_card, cases
from handlers.context import BotContext
from handlers.services import Services
from storage import cases as stored_cases
from storage import outbox as stored_outbox
from storage.models import Case, CaseStatus, Customer, SurveyDelivery

_MAX_LISTED = 30


def is_staff(settings: Settings, user: User) -> bool:
    """Whether ``user`` may work on cases (the press already came from the staff chat)."""
    return not settings.staff_user_ids or user.id in settings.staff_user_ids


def _name(user: User) -> str:
    return user.full_name[:128] or str(user.id)


def _answer(context: BotContext, query: CallbackQuery, key: str | None) -> None:
    """Answer the press after the commit (a toast with a catalogue text, or silently)."""
    services = context.services
    text = str(services.text(services.settings.default_language, key)) if key else None
    context.work.after_commit.append(lambda: query.answer(text))


async def case_button(update: Update, context: BotContext) -> None:
    """Take, Reply, Resolve or Full comment on a card, after checking everything the press claims."""
    query, user = update.callback_query, update.effective_user
    if query is None or user is None:
        return
    parsed = case_card.parse_case_callback(query.data)
    message = query.message
    case = (
        cases.case_of_press(
            context.session, chat_id=message.chat.id, message_id=message.message_id, case_id=parsed[0]
        )
        if parsed is not None and message is not None
        else None
    )
    if parsed is None or case is None:
        _answer(context, query, "case_not_found")
        return
    if not is_staff(context.services.settings, user):
        _answer(context, query, "case_not_staff")
        return
    session, services, now = context.session, context.services, context.work.now
    action = parsed[1]
    if action == "full":
        cases.send_full_comment(session, services, case, update_id=context.work.update_id, now=now)
        context.work.queued_messages = True
        _answer(context, query, None)
        return
    act = {"take": cases.take, "reply": cases.start_reply, "resolve": cases.resolve}[action]
    key = act(session, services, case, user_id=user.id, name=_name(user), now=now)
    context.work.queued_messages = True
    _answer(context, query, key)


async def reply_to_card(update: Update, context: BotContext) -> None:
    """A reply to a card: to the customer after Reply, the note after Resolve; otherwise nothing."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None or message.reply_to_message is None or not message.text:
        return
    session = context.session
    case = cases.case_of_reply(
        session, chat_id=message.chat.id, message_id=message.reply_to_message.message_id, user_id=user.id
    )
    if case is None and message.is_topic_message and message.message_thread_id is not None:
        # Written in a case's topic: Telegram marks it as a reply to the topic's first message.
        case = cases.case_of_topic(session, chat_id=message.chat.id, thread_id=message.message_thread_id)
    if case is None or not is_staff(context.services.settings, user):
        return
    if cases.staff_reply(
        session,
        context.services,
        case,
        user_id=user.id,
        name=_name(user),
        text=message.text,
        update_id=context.work.update_id,
        now=context.work.now,
    ):
        context.work.queued_messages = True


async def note_forum(update: Update, context: BotContext) -> None:
    """Keep up with whether the staff chat is a forum: topics switched on or off while the bot runs."""
    chat = update.effective_chat
    if chat is None or chat.type != "supergroup":
        return
    forum = bool(chat.is_forum)
    known = context.services.staff_chat_forum
    if known.get(chat.id) != forum:
        stored_outbox.set_forum(context.session, chat.id, is_forum=forum, now=context.work.now)
        known[chat.id] = forum


async def open_cases(update: Update, context: BotContext) -> None:
    """``/open``: the unresolved cases, oldest first, with their age and who has them."""
    user = update.effective_user
    if user is None or not is_staff(context.services.settings, user):
        return
    session, services, now = context.session, context.services, context.work.now
    lang = services.settings.default_language
    found = stored_cases.unresolved(session, limit=_MAX_LISTED)
    if not found:
        text = str(services.text(lang, "open_cases_none"))
    else:
        lines: list[str] = [services.text(lang, "open_cases_head")]
        lines += [_open_line(session, services, case, now) for case in found]
        text = "\n".join(lines)
    cases.tell_staff(session, services, key=f"open:{context.work.update_id}", text=text, now=now)
    context.work.queued_messages = True


def _open_line(session: Session, services: Services, case: Case, now: datetime) -> str:
    lang = services.settings.default_language
    customer = session.get(Customer, case.customer_id)
    delivery = session.get(SurveyDelivery, case.delivery_id) if case.delivery_id is not None else None
    status = (
        services.text(lang, "open_cases_status_taken", name=case.assignee_name or "—")
        if case.status == CaseStatus.TAKEN.value
        else services.text(lang, "open_cases_status_open")
    )
    score = delivery.nps_score if delivery is not None and delivery.nps_score is not None else "–"
    return services.text(
        lang,
        "open_cases_line",
        case_id=case.id or 0,
        name=(customer.name if customer else None) or "—",
        score=str(score),
        age=case_card.age_text(now - case.opened_at),
        status=status,
    )


def staff_chat_filter(settings: Settings) -> filters.Chat:
    """The staff chat, as a filter that can follow it: when it becomes a supergroup, the sender adds the
    new id (``add_chat_ids``), so replies and ``/open`` there count before STAFF_CHAT_ID is updated."""
    return (
        filters.Chat(chat_id=settings.staff_chat_id) if settings.staff_chat_id is not None else filters.Chat()
    )


def forum_watch(in_staff_chat: filters.Chat) -> BaseHandler[Update, BotContext, None]:
    """Runs (in a group of its own, before the others) for every message in the staff chat."""
    return MessageHandler(in_staff_chat & filters.ChatType.SUPERGROUP, note_forum)


def handlers_for(
    settings: Settings, in_staff_chat: filters.Chat | None = None
) -> list[BaseHandler[Update, BotContext, None]]:
    """The staff handlers, registered before the customers': in a private staff chat they come first."""
    if settings.staff_chat_id is None:
        return [CallbackQueryHandler(case_button, pattern=f"^{case_card.CASE_PREFIX}:")]
    in_staff_chat = in_staff_chat if in_staff_chat is not None else staff_chat_filter(settings)
    return [
        CallbackQueryHandler(case_button, pattern=f"^{case_card.CASE_PREFIX}:"),
        CommandHandler("open", open_cases, filters=in_staff_chat),
        MessageHandler(in_staff_chat & filters.REPLY & filters.TEXT & ~filters.COMMAND, reply_to_card),
    ]
