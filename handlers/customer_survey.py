"""Answers to survey questions: button presses and typed comments."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, MessageHandler, filters

from handlers import conversation, customers, messages
from handlers.context import BotContext
from storage import outbox
from storage.models import Customer, SurveyDelivery
from surveys.definition import QuestionType
from surveys.flow import InvalidAnswer, parse_button_value, parse_text_answer


async def answer_button(update: Update, context: BotContext) -> None:
    """Records the answer behind a survey button, after checking everything the button claims."""
    query, user = update.callback_query, update.effective_user
    if query is None or user is None:
        return
    services, session, work = context.services, context.session, context.work
    user_row = customers.touch_user(session, work, user)
    lang = customers.user_language(services, session, user_row)
    outcome = conversation.AnswerOutcome.INVALID
    parsed = messages.parse_answer_callback(query.data)
    if parsed is not None:
        delivery_id, question_id, raw = parsed
        delivery = session.get(SurveyDelivery, delivery_id, with_for_update=True)
        customer = session.get(Customer, delivery.customer_id) if delivery is not None else None
        if delivery is None or customer is None:
            outcome = conversation.AnswerOutcome.INVALID
        elif customer.telegram_user_id != user.id:
            outcome = conversation.AnswerOutcome.NOT_YOURS
        else:
            lang = services.language(delivery.language)
            message_id = query.message.message_id if query.message is not None else None
            outcome = _record_button(
                context, delivery, question_id, raw, chat_id=user.id, message_id=message_id
            )
    toast = services.text(lang, outcome.value)
    if outcome is conversation.AnswerOutcome.RECORDED:
        work.queued_messages = True
    work.after_commit.append(lambda: query.answer(toast))


def _record_button(
    context: BotContext,
    delivery: SurveyDelivery,
    question_id: str,
    raw: str,
    *,
    chat_id: int,
    message_id: int | None,
) -> conversation.AnswerOutcome:
    survey = context.services.survey(delivery.survey_id)
    try:
        question = survey.question(question_id)
        value = parse_button_value(question, raw)
    except (KeyError, InvalidAnswer):
        return conversation.AnswerOutcome.INVALID
    # Private chats share the user's id, so the answer goes back where the button was pressed.
    return conversation.record_answer(
        context.session,
        context.services,
        delivery=delivery,
        question=question,
        value=value,
        chat_id=chat_id,
        answered_message_id=message_id,
        now=context.work.now,
    )


async def text_answer(update: Update, context: BotContext) -> None:
    """Takes a typed message as the answer to an open text question, or explains what to do."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    services, session, work = context.services, context.session, context.work
    user_row = customers.touch_user(session, work, user)
    delivery = customers.active_delivery(session, user.id)
    lang = customers.user_language(services, session, user_row)
    if delivery is None or delivery.current_question_id is None:
        customers.queue_reply(
            session, work, chat_id=message.chat_id, text=services.text(lang, "unknown_message")
        )
        return
    lang = services.language(delivery.language)
    question = services.survey(delivery.survey_id).question(delivery.current_question_id)
    if question.type is not QuestionType.TEXT or not message.text:
        customers.queue_reply(
            session, work, chat_id=message.chat_id, text=services.text(lang, "choose_with_buttons")
        )
        return
    try:
        value = parse_text_answer(question, message.text)
    except InvalidAnswer as problem:
        key = "text_too_long" if problem.reason == "too_long" else "text_empty"
        customers.queue_reply(
            session,
            work,
            chat_id=message.chat_id,
            text=services.text(lang, key, max_length=question.max_length)
            if key == "text_too_long"
            else services.text(lang, key),
        )
        return
    question_message_id = outbox.sent_message_id(session, conversation.question_key(delivery, question.id))
    conversation.record_answer(
        session,
        services,
        delivery=delivery,
        question=question,
        value=value,
        chat_id=message.chat_id,
        answered_message_id=question_message_id,
        now=work.now,
    )
    work.queued_messages = True


async def anything_else(update: Update, context: BotContext) -> None:
    """Answers stickers, photos, unknown commands and the like with a short pointer to /help."""
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    user_row = customers.touch_user(context.session, context.work, user)
    lang = customers.user_language(context.services, context.session, user_row)
    delivery = customers.active_delivery(context.session, user.id)
    key = "choose_with_buttons" if delivery is not None else "unknown_message"
    customers.queue_reply(
        context.session, context.work, chat_id=message.chat_id, text=context.services.text(lang, key)
    )


async def stale_button(update: Update, context: BotContext) -> None:
    """Answers presses on buttons whose data we do not recognise (forged or from an old version)."""
    query, user = update.callback_query, update.effective_user
    if query is None or user is None:
        return
    user_row = customers.touch_user(context.session, context.work, user)
    toast = context.services.text(
        customers.user_language(context.services, context.session, user_row), "button_invalid"
    )
    context.work.after_commit.append(lambda: query.answer(toast))


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
