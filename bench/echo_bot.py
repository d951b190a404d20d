"""The floor: a bare python-telegram-bot echo bot, run as a subprocess by ``survey_throughput.py``.

Kundenpuls does much more per update than this bot (a database transaction, an answer, outbox rows, three
Bot API calls), so the echo bot is not a competitor but a yardstick: it shows how many updates per second
python-telegram-bot itself manages on this machine against the same fake Bot API server. Everything is
PTB's defaults on purpose (sequential handling, ``run_polling``), so the number is what anyone would get
from the textbook example.

Configuration comes from the environment, with the names Kundenpuls uses: ``TELEGRAM_BOT_TOKEN`` and
``TELEGRAM_API_URL`` (the fake server's root URL). SIGTERM stops it cleanly (``run_polling`` handles it).
"""

from __future__ import annotations

import logging
import os

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


async def echo(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reply with the same text: one sendMessage per update, nothing else."""
    message = update.effective_message
    if message is not None and message.text is not None:
        await message.reply_text(message.text)


def main() -> None:
    """Build the textbook echo bot against ``TELEGRAM_API_URL`` and poll until SIGTERM."""
    # Same setting as Kundenpuls (bot/application.py), so both run the same PTB code paths.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    api_url = os.environ["TELEGRAM_API_URL"].rstrip("/")
    application = (
        Application.builder()
        .token(os.environ["TELEGRAM_BOT_TOKEN"])
        .base_url(f"{api_url}/bot")
        .base_file_url(f"{api_url}/file/bot")
        .build()
    )
    application.add_handler(MessageHandler(filters.TEXT, echo))
    application.run_polling()


if __name__ == "__main__":
    main()
