"""The error handler: a failing handler must never lose the update or crash the bot."""

from __future__ import annotations

import logging

from telegram.ext import ContextTypes

from handlers.context import _current_work

log = logging.getLogger(__name__)


async def record_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Marks the update's unit of work as failed, so the worker rolls it back and tries again later."""
    work = _current_work.get()
    if work is not None:
        work.error = context.error
        return
    # Errors outside update handling (jobs, the network layer) have nobody to roll back: log them.
    log.error("unhandled error outside update handling", exc_info=context.error)
