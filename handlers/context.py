"""The per-update unit of work and the callback context that hands it to handlers.

The update worker opens one database session per update, runs python-telegram-bot's handlers inside it
and commits the session together with the "update handled" mark. Handlers reach the session through
``context.session``; anything that must happen only after the commit (answering a callback query,
waking the sender) goes into ``context.after_commit``, so no network call ever runs while a
transaction holds the database.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session
from telegram.ext import Application, CallbackContext, ExtBot

if TYPE_CHECKING:
    from handlers.services import Services

AfterCommit = Callable[[], Awaitable[object]]


@dataclass
class UpdateWork:
    """What handling one update produced, beyond the rows in its session."""

    session: Session
    now: datetime
    update_id: int
    after_commit: list[AfterCommit] = field(default_factory=list)
    error: BaseException | None = None
    queued_messages: bool = False
    wake_sweep: bool = False


_current_work: ContextVar[UpdateWork | None] = ContextVar("kundenpuls_update_work", default=None)


def begin_work(work: UpdateWork) -> object:
    """Make ``work`` the current unit of work for the handlers of this task; returns a reset token."""
    return _current_work.set(work)


def end_work(token: object) -> None:
    """Forget the current unit of work."""
    _current_work.reset(token)  # type: ignore[arg-type]


def current_work() -> UpdateWork:
    """Return the unit of work of the update being handled."""
    work = _current_work.get()
    if work is None:
        raise RuntimeError("no update is being handled: handlers run only inside the update worker")
    return work


class BotContext(CallbackContext[ExtBot[None], dict[Any, Any], dict[Any, Any], dict[Any, Any]]):
    """Callback context with typed access to the unit of work and the bot's services."""

    @property
    def work(self) -> UpdateWork:
        """The unit of work of the update being handled."""
        return current_work()

    @property
    def session(self) -> Session:
        """The database session of this update's unit of work."""
        return current_work().session

    @property
    def services(self) -> Services:
        """Settings, surveys and texts, set up once by the composition root."""
        return services_of(self.application)


BotApplication = Application[ExtBot[None], BotContext, dict[Any, Any], dict[Any, Any], dict[Any, Any], Any]


def services_of(application: Application[Any, Any, Any, Any, Any, Any]) -> Services:
    """Return the services the composition root stored on the application."""
    return application.bot_data["services"]  # type: ignore[no-any-return]
