"""Bot API payloads for what the bot says to customers: survey questions, answered questions, replies.

Payloads are plain JSON-ready dicts because they are stored in the outbox before they are sent. All
messages use HTML parse mode, so every text that did not come from our own catalogue is escaped here.
"""

from __future__ import annotations

import html
from typing import Any

from handlers.services import Services
from surveys.definition import AnswerValue, Question, QuestionType, SurveyDefinition
from surveys.flow import answer_label, button_values
from surveys.languages import Language

ANSWER_PREFIX = "a"
LANGUAGE_PREFIX = "lang"
CALLBACK_SEPARATOR = ":"
_NPS_ROW_SPLIT = 6  # 0-5 on the first row, 6-10 on the second: fits a phone screen
_COMMENT_PREVIEW = 300


def answer_callback_data(delivery_id: int, question_id: str, value: str) -> str:
    """Encode a survey button; parsed back by ``parse_answer_callback`` and never trusted."""
    return CALLBACK_SEPARATOR.join((ANSWER_PREFIX, str(delivery_id), question_id, value))


def parse_answer_callback(data: str | None) -> tuple[int, str, str] | None:
    """Split survey button data into (delivery id, question id, raw value), or None if malformed."""
    if not data:
        return None
    parts = data.split(CALLBACK_SEPARATOR)
    if len(parts) != 4 or parts[0] != ANSWER_PREFIX:
        return None
    _, delivery, question_id, value = parts
    if not delivery.isdigit() or len(delivery) > 18 or not question_id or not value:
        return None
    return int(delivery), question_id, value


def _button(text: str, callback_data: str) -> dict[str, str]:
    return {"text": text, "callback_data": callback_data}


def question_keyboard(
    services: Services, delivery_id: int, question: Question, lang: Language
) -> dict[str, Any] | None:
    """Return the inline keyboard for a question, or None for a text question that cannot be skipped."""
    values = button_values(question)
    if not values:
        return None

    def data(value: str) -> str:
        return answer_callback_data(delivery_id, question.id, value)

    if question.type is QuestionType.NPS:
        rows = [
            [_button(value, data(value)) for value in values[:_NPS_ROW_SPLIT]],
            [_button(value, data(value)) for value in values[_NPS_ROW_SPLIT:]],
        ]
    elif question.type is QuestionType.RATING:
        rows = [[_button("⭐" * int(value), data(value)) for value in values]]
    elif question.type is QuestionType.CHOICE:
        rows = [[_button(option.label.get(lang), data(option.id))] for option in question.options]
    else:
        rows = [[_button(services.text(lang, "skip_button"), data(values[0]))]]
    return {"inline_keyboard": rows}


def question_text(survey: SurveyDefinition, question: Question, lang: Language) -> str:
    """Return the HTML text of a question, with the survey's intro above the first one."""
    text = html.escape(question.text.get(lang), quote=False)
    if question.id == survey.first_question().id:
        return f"{html.escape(survey.intro.get(lang), quote=False)}\n\n<b>{text}</b>"
    return f"<b>{text}</b>"


def answered_text(
    services: Services, *, survey: SurveyDefinition, question: Question, value: AnswerValue, lang: Language
) -> str:
    """Return a question as answered: its text with the answer ticked below it (HTML)."""
    label = answer_label(question, value, lang)
    shown = services.text(lang, "skipped") if label is None else _preview(label)
    answer_line = services.text(lang, "your_answer", answer=shown)
    return f"{question_text(survey, question, lang)}\n\n✅ {answer_line}"


def question_message(
    services: Services,
    *,
    survey: SurveyDefinition,
    question: Question,
    delivery_id: int,
    chat_id: int,
    lang: Language,
    above: str | None = None,
    message_id: int | None = None,
) -> dict[str, Any]:
    """Return the payload that asks a question: a new message, or (``message_id``) an edit of the message
    whose button was just pressed, with the answered question (``above``) kept on top."""
    text = question_text(survey, question, lang)
    payload: dict[str, Any] = {
        "chat_id": chat_id,
        "text": f"{above}\n\n{text}" if above else text,
        "parse_mode": "HTML",
    }
    if message_id is not None:
        payload["message_id"] = message_id
    keyboard = question_keyboard(services, delivery_id, question, lang)
    if keyboard is not None:
        payload["reply_markup"] = keyboard
    return payload


def answered_question_edit(
    services: Services,
    *,
    survey: SurveyDefinition,
    question: Question,
    value: AnswerValue,
    chat_id: int,
    message_id: int,
    lang: Language,
) -> dict[str, Any]:
    """Return the editMessageText payload that shows the answer and removes the buttons."""
    return {
        "chat_id": chat_id,
        "message_id": message_id,
        "text": answered_text(services, survey=survey, question=question, value=value, lang=lang),
        "parse_mode": "HTML",
    }


def text_message(chat_id: int, text: str, *, reply_markup: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return a sendMessage payload for a catalogue text (already valid HTML)."""
    payload: dict[str, Any] = {"chat_id": chat_id, "text": text, "parse_mode": "HTML"}
    if reply_markup is not None:
        payload["reply_markup"] = reply_markup
    return payload


def language_keyboard(services: Services) -> dict[str, Any]:
    """Return the keyboard of the /language question, each language named in itself."""
    return {
        "inline_keyboard": [
            [
                _button(services.text("de", "language_name_de"), f"{LANGUAGE_PREFIX}{CALLBACK_SEPARATOR}de"),
                _button(services.text("en", "language_name_en"), f"{LANGUAGE_PREFIX}{CALLBACK_SEPARATOR}en"),
            ]
        ]
    }


def _preview(text: str, limit: int = _COMMENT_PREVIEW) -> str:
    """Shorten long free text so an edited question stays well within 4096 characters."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
