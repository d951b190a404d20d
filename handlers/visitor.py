"""The person behind an update, with the few things every customer handler does with them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram import CallbackQuery, Update

from handlers import customers
from handlers.context import BotContext
from storage.models import TelegramUser
from surveys.languages import Language


@dataclass
class Visitor:
    """A Telegram user writing to the bot, already recorded (and unblocked) in the database."""

    context: BotContext
    row: TelegramUser
    chat_id: int

    @property
    def language(self) -> Language:
        """The language to answer in (their /language choice, Telegram's, the shop's, the default)."""
        return customers.user_language(self.context.services, self.context.session, self.row)

    def text(self, key: str, *, language: Language | None = None, **params: str | int) -> str:
        """Return a catalogue text in the visitor's language (or the given one)."""
        return self.context.services.text(language or self.language, key, **params)

    def reply(
        self,
        key: str,
        *,
        language: Language | None = None,
        reply_markup: dict[str, Any] | None = None,
        **params: str | int,
    ) -> None:
        """Queue a catalogue text as the reply to this update (sent after the commit, once)."""
        customers.queue_reply(
            self.context.session,
            self.context.work,
            chat_id=self.chat_id,
            text=self.text(key, language=language, **params),
            reply_markup=reply_markup,
        )

    def toast(self, query: CallbackQuery, key: str | None, *, language: Language | None = None) -> None:
        """Answer a button press after the commit, with a short text or silently (``key=None``)."""
        text = self.text(key, language=language) if key is not None else None
        self.context.work.after_commit.append(lambda: query.answer(text))


def visitor(update: Update, context: BotContext, *, talking: bool = True) -> Visitor | None:
    """Record the sender of an update and return them, or None for updates without a person
    (``talking=False``: an answer to a check-in, which does not count as the customer writing again)."""
    user = update.effective_user
    if user is None:
        return None
    row = customers.touch_user(context.session, context.work, user, talking=talking)
    chat = update.effective_chat
    return Visitor(context=context, row=row, chat_id=chat.id if chat is not None else user.id)
