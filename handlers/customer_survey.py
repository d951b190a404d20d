"""Answers to survey questions: button presses and typed comments."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, MessageHandler, filters

from handlers import conversation, customers, messages
from handlers.context import BotContext
from handlers.visitor import Visitor, visitor
from storage import outbox
from storage.models import SurveyDelivery
from surveys.definition import QuestionType
from surveys.flow import InvalidAnswer, parse_button_value, parse_text_answer


async def answer_button(update: Update, context: BotContext) -> None:
    """Records the answer behind a survey button, after checking everything the button claims."""
    query, person = update.callback_query, visitor(update, context)
    if query is None or person is None:
        return
    parsed = messages.parse_answer_callback(query.data)
    found = customers.delivery_with_customer(context.session, parsed[0]) if parsed else None
    if parsed is None or found is None:
        person.toast(query, conversation.AnswerOutcome.INVALID.value)
        return
    delivery, customer = found
    if customer.telegram_user_id != person.row.id:
        person.toast(query, conversation.AnswerOutcome.NOT_YOURS.value)
        return
    _, question_id, raw = parsed
    message_id = query.message.message_id if query.message is not None else None
    outcome = _record_button(context, person, delivery, question_id, raw, message_id=message_id)
    person.toast(query, outcome.value, language=context.services.language(delivery.language))


def _record_button(
    context: BotContext,
    person: Visitor,
    delivery: SurveyDelivery,
    question_id: str,
    raw: str,
    *,
    message_id: int | None,
) -> conversation.AnswerOutcome:
    try:
        question = context.services.survey(delivery.survey_id).question(question_id)
        value = parse_button_value(question, raw)
    except (KeyError, InvalidAnswer):
        return conversation.AnswerOutcome.INVALID
    outcome = conversation.record_answer(
        context.session,
        context.services,
        delivery=delivery,
        question=question,
        value=value,
        chat_id=person.chat_id,
        answered_message_id=message_id,
        now=context.work.now,
        in_place=True,
    )
    if outcome is conversation.AnswerOutcome.RECORDED:
        context.work.queued_messages = True
    return outcome


async def text_answer(update: Update, context: BotContext) -> None:
    """Takes a typed message as the answer to an open text question, or explains what to do."""
    message, person = update.effective_message, visitor(update, context)
    if message is None or person is None:
        return
    session, services = context.session, context.services
    delivery = customers.active_delivery(session, person.row.id)
    if delivery is None or delivery.current_question_id is None:
        person.reply("unknown_message")
        return
    lang = services.language(delivery.language)
    question = services.survey(delivery.survey_id).question(delivery.current_question_id)
    if question.type is not QuestionType.TEXT or not message.text:
        person.reply("choose_with_buttons", language=lang)
        return
    try:
        value = parse_text_answer(question, message.text)
    except InvalidAnswer as problem:
        if problem.reason == "too_long":
            person.reply("text_too_long", language=lang, max_length=question.max_length)
        else:
            person.reply("text_empty", language=lang)
        return
    conversation.record_answer(
        session,
        services,
        delivery=delivery,
        question=question,
        value=value,
        chat_id=person.chat_id,
        answered_message_id=outbox.message_id_of(session, conversation.question_key(delivery, question.id)),
        now=context.work.now,
    )
    context.work.queued_messages = True


async def anything_else(update: Update, context: BotContext) -> None:
    """Answers stickers, photos, unknown commands and the like with a short pointer to what to do."""
    person = visitor(update, context)
    if person is None:
        return
    open_survey = customers.active_delivery(context.session, person.row.id) is not None
    person.reply("choose_with_buttons" if open_survey else "unknown_message")


async def stale_button(update: Update, context: BotContext) -> None:
    """Answers presses on buttons whose data we do not recognise (forged or from an old version)."""
    query, person = update.callback_query, visitor(update, context)
    if query is not None and person is not None:
        person.toast(query, "button_invalid")


PRIVATE_MESSAGES = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE

HANDLERS = [
    CallbackQueryHandler(answer_button, pattern=f"^{messages.ANSWER_PREFIX}{messages.CALLBACK_SEPARATOR}"),
    MessageHandler(PRIVATE_MESSAGES & filters.TEXT & ~filters.COMMAND, text_answer),
]
"""Survey answers, registered after the commands."""

FALLBACK_HANDLERS = [
    CallbackQueryHandler(stale_button),
    MessageHandler(PRIVATE_MESSAGES, anything_else),
]
"""Registered last: whatever no other handler took still gets an answer."""
