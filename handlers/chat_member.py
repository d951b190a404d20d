"""Telegram tells the bot when a customer blocks or unblocks it, or when it joins a group.

A customer's block holds their messages at once, and unblocking releases them. When the bot is added to
a group, it says there which ``STAFF_CHAT_ID`` line to put into ``.env`` (and ``/setup`` says it again),
so a shop owner never has to look up a numeric chat id.
"""

from __future__ import annotations

from telegram import Chat, ChatMember, Update
from telegram.ext import ChatMemberHandler, CommandHandler, filters

from handlers import customers
from handlers.context import BotContext
from storage import outbox
from storage.models import OutboxStatus
from storage.outbox import KIND_SETUP, OutboundCall

_PRESENT = (ChatMember.MEMBER, ChatMember.ADMINISTRATOR, ChatMember.OWNER)


async def membership_changed(update: Update, context: BotContext) -> None:
    """Marks a customer who blocked the bot, and releases held messages when they unblock it."""
    change = update.my_chat_member
    if change is None:
        return
    if change.chat.type in (Chat.GROUP, Chat.SUPERGROUP):
        joined = change.new_chat_member.status in _PRESENT and change.old_chat_member.status not in _PRESENT
        if joined:
            explain_setup(context, change.chat)
        return
    if change.chat.type != Chat.PRIVATE:
        return
    session, work = context.session, context.work
    status = change.new_chat_member.status
    blocked = status in (ChatMember.BANNED, ChatMember.LEFT)
    user_row = customers.touch_user(session, work, change.from_user, lift_block=not blocked)
    if blocked:
        if user_row.blocked_at is None:
            user_row.blocked_at = work.now
            session.add(user_row)
        # Nothing queued for them can be delivered now; hold it instead of trying (and failing) first.
        outbox.hold_chat(session, user_row.id, status=OutboxStatus.BLOCKED)
    elif status == ChatMember.MEMBER:
        # touch_user already lifted an old block; (re)starting the chat counts as contact too.
        customers.mark_started(session, work, user_row)


def explain_setup(context: BotContext, chat: Chat) -> None:
    """Say in a group which line makes it the staff chat, whether it is a forum, and whether it already is."""
    services, settings = context.services, context.services.settings
    lang = settings.default_language
    lines = [
        services.text(lang, "setup_intro", line=f"STAFF_CHAT_ID={chat.id}"),
        services.text(lang, "setup_forum_yes" if chat.is_forum else "setup_forum_no"),
    ]
    if settings.staff_chat_id == chat.id:
        lines.append(services.text(lang, "setup_already"))
    outbox.enqueue(
        context.session,
        OutboundCall(
            dedupe_key=f"setup:{chat.id}:{context.work.update_id}",
            kind=KIND_SETUP,
            method="sendMessage",
            chat_id=chat.id,
            payload={"text": "\n".join(lines), "parse_mode": "HTML"},
        ),
        now=context.work.now,
    )
    context.work.queued_messages = True


async def setup_command(update: Update, context: BotContext) -> None:
    """``/setup`` in a group: the same explanation as when the bot was added."""
    chat = update.effective_chat
    if chat is not None:
        explain_setup(context, chat)


HANDLERS = [
    ChatMemberHandler(membership_changed, ChatMemberHandler.MY_CHAT_MEMBER),
    CommandHandler("setup", setup_command, filters=filters.ChatType.GROUPS),
]
"""Registered with the customer handlers: my_chat_member updates, and /setup in groups."""
