"""Answers to survey questions: button presses and typed comments."""

from __future__ import annotations

from telegram import Update
from telegram.ext import CallbackQueryHandler, MessageHandler, filters

from handlers import case_followups, cases, checkins, conversation, customers, messages
from handlers.context import BotContext
from handlers.visitor import Visitor, visitor
from storage import cases as stored_cases
from storage import checkins as stored_checkins
from storage import outbox
from storage.models import Customer, DeliveryStatus, SurveyDelivery
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
    if delivery.status == DeliveryStatus.EXPIRED.value:
        # Closed unanswered (SURVEY_EXPIRES_AFTER): a friendly word, nothing recorded, nobody alerted.
        person.toast(query, "survey_expired", language=context.services.language(delivery.language))
        return
    _, question_id, raw = parsed
    message_id = query.message.message_id if query.message is not None else None
    if question_id == delivery.current_question_id and not _on_its_message(context, delivery, message_id):
        person.toast(query, "button_invalid", language=context.services.language(delivery.language))
        return
    outcome = _record_button(context, person, delivery, question_id, raw, message_id=message_id)
    person.toast(query, outcome.value, language=context.services.language(delivery.language))


def _on_its_message(context: BotContext, delivery: SurveyDelivery, message_id: int | None) -> bool:
    """Whether a press came from the message that asks the delivery's open question.

    The right callback data on any other message (one the bot never sent, a stale copy) is forged or
    stale and must change nothing. While the question's message id is not known yet (its send's outcome
    is written within a fraction of a second), there is nothing to compare with.
    """
    if delivery.current_question_id is None:
        return True
    key = conversation.question_key(delivery, delivery.current_question_id)
    expected = outbox.message_id_of(context.session, key)
    return expected is None or expected == message_id


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
    question = (
        services.survey(delivery.survey_id).question(delivery.current_question_id)
        if delivery is not None and delivery.current_question_id is not None
        else None
    )
    if delivery is None or question is None or question.type is not QuestionType.TEXT or not message.text:
        if message.text and _relayed_to_case(context, person, message.text):
            return
        if delivery is None or question is None:
            person.reply("unknown_message")
        else:
            person.reply("choose_with_buttons", language=services.language(delivery.language))
        return
    lang = services.language(delivery.language)
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


def _relayed_to_case(context: BotContext, person: Visitor, text: str) -> bool:
    """Pass a customer's message on to the case the shop wrote to them about, and thank them."""
    relayed = cases.customer_wrote(
        context.session,
        context.services,
        telegram_user_id=person.row.id,
        text=text,
        update_id=context.work.update_id,
        now=context.work.now,
    )
    if relayed:
        person.reply("case_customer_forwarded")
        context.work.queued_messages = True
    return relayed


async def anything_else(update: Update, context: BotContext) -> None:
    """Answers stickers, photos, unknown commands and the like with a short pointer to what to do."""
    person = visitor(update, context)
    if person is None:
        return
    open_survey = customers.active_delivery(context.session, person.row.id) is not None
    person.reply("choose_with_buttons" if open_survey else "unknown_message")


async def recovery_button(update: Update, context: BotContext) -> None:
    """ "Is the problem solved?" answered: stored once on the case, the question shows the answer."""
    query, person = update.callback_query, visitor(update, context)
    if query is None or person is None:
        return
    parsed = case_followups.parse_recovery_callback(query.data)
    session = context.session
    case = stored_cases.get_case(session, parsed[0], lock=True) if parsed is not None else None
    customer = session.get(Customer, case.customer_id) if case is not None else None
    asked_in = outbox.message_id_of(session, case_followups.recovery_key(parsed[0])) if parsed else None
    pressed_on = query.message.message_id if query.message is not None else None
    if parsed is None or case is None or customer is None or asked_in is None or asked_in != pressed_on:
        person.toast(query, "button_invalid")
        return
    if customer.telegram_user_id != person.row.id:
        person.toast(query, "button_not_yours")
        return
    key = case_followups.record_recovery(
        session, context.services, case, solved=parsed[1], user_id=person.row.id, now=context.work.now
    )
    answer = person.text("recovery_yes" if case.recovered else "recovery_no")
    outbox.enqueue(
        session,
        outbox.OutboundCall(
            dedupe_key=f"{case_followups.recovery_key(parsed[0])}:answered",
            kind=outbox.KIND_RECOVERY,
            method="editMessageText",
            chat_id=person.chat_id,
            payload={
                "text": f"{person.text('recovery_question')}\n\n✅ {answer}",
                "parse_mode": "HTML",
                "message_id": asked_in,
            },
            delivery_id=case.delivery_id,
        ),
        now=context.work.now,
    )
    context.work.queued_messages = True
    person.toast(query, key)


async def checkin_button(update: Update, context: BotContext) -> None:
    """A check-in answered: stored once, acted on (a question opens a case, "not interested" ends
    check-ins), and the message shows the answer and what happens now instead of its buttons."""
    query, person = update.callback_query, visitor(update, context, talking=False)
    if query is None or person is None:
        return
    session, services = context.session, context.services
    parsed = checkins.parse_checkin_callback(query.data)
    checkin = stored_checkins.get(session, parsed[0]) if parsed is not None else None
    customer = session.get(Customer, checkin.customer_id) if checkin is not None else None
    key = checkins.checkin_key(parsed[0]) if parsed is not None else None
    asked_in = outbox.message_id_of(session, key) if key is not None else None
    pressed_on = query.message.message_id if query.message is not None else None
    texts = checkins.checkin_texts(services)
    if parsed is None or checkin is None or customer is None or texts is None or asked_in != pressed_on:
        person.toast(query, "button_invalid")
        return
    if customer.telegram_user_id != person.row.id:
        person.toast(query, "button_not_yours")
        return
    if checkin.answer is not None:
        person.toast(query, "checkin_answered_already")
        return
    answer = parsed[1]
    checkins.record_answer(session, services, checkin, customer, answer, now=context.work.now)
    outbox.enqueue(
        session,
        outbox.OutboundCall(
            dedupe_key=f"{key}:answered",
            kind=outbox.KIND_CHECKIN,
            method="editMessageText",
            chat_id=person.chat_id,
            payload={**checkins.answered_payload(services, texts, checkin, answer), "message_id": asked_in},
        ),
        now=context.work.now,
    )
    context.work.queued_messages = True
    person.toast(query, None)


async def stale_button(update: Update, context: BotContext) -> None:
    """Answers presses on buttons whose data we do not recognise (forged or from an old version)."""
    query, person = update.callback_query, visitor(update, context)
    if query is not None and person is not None:
        person.toast(query, "button_invalid")


PRIVATE_MESSAGES = filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE

HANDLERS = [
    CallbackQueryHandler(answer_button, pattern=f"^{messages.ANSWER_PREFIX}{messages.CALLBACK_SEPARATOR}"),
    CallbackQueryHandler(recovery_button, pattern=f"^{case_followups.RECOVERY_PREFIX}:"),
    CallbackQueryHandler(checkin_button, pattern=f"^{checkins.CHECKIN_PREFIX}:"),
    MessageHandler(PRIVATE_MESSAGES & filters.TEXT & ~filters.COMMAND, text_answer),
]
"""Survey answers, registered after the commands."""

FALLBACK_HANDLERS = [
    CallbackQueryHandler(stale_button),
    MessageHandler(PRIVATE_MESSAGES, anything_else),
]
"""Registered last: whatever no other handler took still gets an answer."""
