"""What a group of updates will ask the database for, worked out from the updates themselves.

The update worker handles several updates in one transaction (bot/update_worker.py). Before their
handlers run, this loads in one go the rows those handlers look up one by one: each sender's Telegram
user and, for survey buttons, the delivery the button names, with its customer, purchase and answers,
and the message that asks its open question (storage/preload.py explains how the lookups use them).
What a button claims is still checked by the handler against these rows, exactly as against rows it
had queried itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session
from telegram import Update

from handlers import conversation, messages
from storage import answers, outbox, preload


def person_of(update: Update) -> int | None:
    """Who an update is from: updates of one person are never in the same group."""
    if update.effective_user is not None:
        return update.effective_user.id
    if update.effective_chat is not None:
        return update.effective_chat.id
    return None


def load_for(session: Session, group: preload.GroupRows, updates: Sequence[Update]) -> None:
    """Load the users and survey deliveries ``updates`` refer to into ``group``."""
    user_ids = {user.id for update in updates if (user := update.effective_user) is not None}
    delivery_ids = set()
    for update in updates:
        query = update.callback_query
        parsed = messages.parse_answer_callback(query.data) if query is not None else None
        if parsed is not None:
            delivery_ids.add(parsed[0])
    found = preload.load(session, group, user_ids=user_ids, delivery_ids=delivery_ids)
    answers.load_answers(session, group, found)
    asked = []
    for delivery_id in found:
        loaded = group.deliveries.get(delivery_id)
        if loaded is not None and loaded[0].current_question_id is not None:
            asked.append(conversation.question_key(loaded[0], loaded[0].current_question_id))
    outbox.load_message_ids(session, group, asked)
