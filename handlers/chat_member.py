"""Telegram tells the bot when a customer blocks or unblocks it; the outbox follows at once."""

from __future__ import annotations

from telegram import ChatMember, Update
from telegram.ext import ChatMemberHandler

from handlers import customers
from handlers.context import BotContext
from storage import outbox
from storage.models import OutboxStatus


async def membership_changed(update: Update, context: BotContext) -> None:
    """Marks a customer who blocked the bot, and releases held messages when they unblock it."""
    change = update.my_chat_member
    if change is None or change.chat.type != "private":
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


HANDLERS = [ChatMemberHandler(membership_changed, ChatMemberHandler.MY_CHAT_MEMBER)]
"""Registered with the customer handlers; it sees only my_chat_member updates."""
