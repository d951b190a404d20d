"""/mydata and /forget: customers see everything stored about them and can have it erased (GDPR art. 15, 17).

``/mydata`` answers with a readable summary in the customer's language and the whole of it as a JSON file
(``sendDocument``). Both go through the outbox like every message, flagged so that their payloads, which
are the customer's data, are scrubbed from it once sent.

``/forget`` asks first, with two buttons. The press counts only on that question's own message in the
customer's own chat, once; anything else (another person's press, forged data, a second press) changes
nothing and is answered politely. "Yes" erases (:func:`erase_person`, which ``kundenpuls forget`` uses too):
storage/personal_data.py says what is erased and what stays as anonymous statistics, and every staff card
of the customer's cases is shown again saying "erased". Staff-internal notes on a case are erased, and are
not part of ``/mydata``: they are the team's working notes and may name colleagues (art. 15(4)); what the
customer and the shop wrote to each other is.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlmodel import Session
from telegram import Update
from telegram.ext import CallbackQueryHandler, CommandHandler, filters

from handlers import cases as cases_flow
from handlers import conversation, messages
from handlers.context import BotContext
from handlers.services import Services
from handlers.visitor import visitor
from storage import case_group, outbox, personal_data
from storage import cases as stored_cases
from storage.models import Answer
from storage.outbox import KIND_CASE_TOPIC, KIND_CLOSED, KIND_PRIVACY, SCRUB_AFTER_SEND, OutboundCall
from storage.personal_data import Erased, Person, PersonalData, Replacements
from surveys.definition import SurveyDefinition
from surveys.flow import answer_label
from surveys.languages import Language, normalize_language
from surveys.texts import Html

FORGET_PREFIX = "forget"
_MAX_ID_DIGITS = 18
_LISTED = (5, 2, 0)
"""How many purchases and surveys the summary lists, tried in turn until it fits one message."""
_TEXT_LIMIT = 4000
"""Telegram allows 4,096 characters after entity parsing; the HTML source is always longer."""
_COMMENT_PREVIEW = 80


def forget_key(ask_update_id: int) -> str:
    """The outbox key of the /forget question asked in answer to that update."""
    return f"{FORGET_PREFIX}:{ask_update_id}"


def forget_callback(ask_update_id: int, *, erase: bool) -> str:
    """Button data of the /forget question; parsed by :func:`parse_forget_callback`, never trusted."""
    return f"{FORGET_PREFIX}:{ask_update_id}:{'yes' if erase else 'no'}"


def parse_forget_callback(data: str | None) -> tuple[int, bool] | None:
    """(the update that asked, erase?) from /forget button data, or None for anything else."""
    parts = (data or "").split(":")
    if len(parts) != 3 or parts[0] != FORGET_PREFIX:
        return None
    if not parts[1].isdigit() or len(parts[1]) > _MAX_ID_DIGITS or parts[2] not in ("yes", "no"):
        return None
    return int(parts[1]), parts[2] == "yes"


# ------------------------------------------------------------------------------------------- /mydata


async def my_data(update: Update, context: BotContext) -> None:
    """Sends the customer what is stored about them: a summary to read and all of it as a JSON file."""
    person = visitor(update, context)
    if person is None:
        return
    session, services, work = context.session, context.services, context.work
    lang = person.language
    days = services.settings.raw_update_retention.days
    data = personal_data.read(session, personal_data.of_telegram_user(session, person.row.id))
    if not data.customers:
        person.reply(
            "mydata_not_customer",
            language=lang,
            name=person.row.first_name or "—",
            telegram_id=person.row.id,
            days=days,
        )
        return
    text = summary(services, data, lang=lang, days=days, now=work.now)
    document = orjson.dumps(
        export(services, data, lang=lang, days=days, now=work.now), option=orjson.OPT_INDENT_2
    )
    date = work.now.astimezone(services.settings.timezone).strftime("%Y-%m-%d")
    calls = [
        (f"mydata:{work.update_id}", "sendMessage", messages.text_message(person.chat_id, text)),
        (
            f"mydata:{work.update_id}:file",
            "sendDocument",
            outbox.document_payload(
                filename=services.plain_text(lang, "mydata_filename", date=date),
                content=document,
                caption=services.text(lang, "mydata_document_caption"),
            ),
        ),
    ]
    for key, method, payload in calls:
        payload[SCRUB_AFTER_SEND] = "payload"  # the customer's data: not kept in the outbox once sent
        call = OutboundCall(key, KIND_PRIVACY, method, person.chat_id, payload)
        outbox.enqueue(session, call, now=work.now)
    work.queued_messages = True


def summary(services: Services, data: PersonalData, *, lang: Language, days: int, now: datetime) -> str:
    """The readable part of /mydata (HTML): who they are to us, their purchases and surveys, and counts
    of everything else; as many purchases and surveys as fit into one message (the file has all)."""
    lines: list[str] = []
    for listed in _LISTED:
        lines = _summary(services, data, lang=lang, days=days, now=now, listed=listed)
        if len("\n".join(lines)) <= _TEXT_LIMIT:
            return "\n".join(lines)
    # Many customer ids on one account: whole lines only, so that no HTML tag is cut in two.
    kept: list[str] = []
    for line in lines:
        if len("\n".join([*kept, line])) > _TEXT_LIMIT - 2:
            break
        kept.append(line)
    return "\n".join([*kept, "…"])


def _summary(
    services: Services, data: PersonalData, *, lang: Language, days: int, now: datetime, listed: int
) -> list[str]:
    zone = services.settings.timezone

    def text(key: str, **params: str | int) -> Html:
        return services.text(lang, key, **params)

    def day(moment: datetime | None) -> str:
        return moment.astimezone(zone).strftime("%d.%m.%Y") if moment is not None else "—"

    lines: list[str] = [text("mydata_head")]
    user = data.user
    if user is not None:
        language = user.chosen_language or user.language_code
        lines.append(
            text(
                "mydata_telegram",
                name=user.first_name or "—",
                telegram_id=user.id,
                language=_language_name(services, lang, language),
            )
        )
        if user.opted_out_at is not None:
            lines.append(text("mydata_contact_stopped", date=day(user.opted_out_at)))
        elif user.paused_until is not None and user.paused_until > now:
            lines.append(text("mydata_contact_paused", date=day(user.paused_until)))
        else:
            lines.append(text("mydata_contact_on"))
    for record in data.customers:
        customer = record.customer
        lines += [
            "",
            text(
                "mydata_customer",
                customer_id=customer.external_id,
                name=customer.name or "—",
                language=_language_name(services, lang, customer.language),
                time_zone=customer.time_zone or "—",
            ),
            text("mydata_purchases", count=len(record.purchases)),
        ]
        shown = record.purchases[-listed:] if listed else []
        lines += [
            text(
                "mydata_purchase",
                date=day(purchase.purchased_at),
                order_id=purchase.order_id,
                amount=_money(purchase.amount, purchase.currency),
            )
            for purchase in shown
        ]
        if len(record.purchases) > len(shown):
            lines.append(text("mydata_more", count=len(record.purchases) - len(shown)))
        lines.append(text("mydata_surveys", count=len(record.surveys)))
        surveys = record.surveys[-listed:] if listed else []
        lines += [
            text(
                "mydata_survey",
                date=day(survey.delivery.started_at or survey.delivery.due_at),
                order_id=survey.purchase.order_id,
                answers=Html(_answers_line(services, survey, lang)),
            )
            for survey in surveys
        ]
        if len(record.surveys) > len(surveys):
            lines.append(text("mydata_more", count=len(record.surveys) - len(surveys)))
        lines.append(
            text(
                "mydata_counts",
                checkins=len(record.checkins),
                cases=len(record.cases),
                decisions=len(record.contacts),
            )
        )
    lines += ["", text("mydata_messages", count=len(data.messages), days=days), text("mydata_footer")]
    return lines


def _answers_line(services: Services, survey: personal_data.SurveyRecord, lang: Language) -> str:
    definition = services.surveys.get(survey.delivery.survey_id)
    parts: list[str] = []
    for answer in survey.answers:
        if answer.skipped:
            continue
        if answer.score is not None:
            parts.append(services.text(lang, "mydata_answer_score", score=answer.score))
        elif answer.choice is not None:
            parts.append(
                services.text(lang, "mydata_answer_choice", choice=_choice_label(definition, answer, lang))
            )
        elif answer.text:
            preview = (
                answer.text if len(answer.text) <= _COMMENT_PREVIEW else answer.text[:_COMMENT_PREVIEW] + "…"
            )
            parts.append(services.text(lang, "mydata_answer_comment", comment=preview))
    return ", ".join(parts) if parts else services.text(lang, "mydata_no_answers")


def _choice_label(definition: SurveyDefinition | None, answer: Answer, lang: Language) -> str:
    """A choice answer's label in ``lang``; its stored id when the survey no longer has the question."""
    try:
        question = definition.question(answer.question_id) if definition is not None else None
    except KeyError:
        question = None
    label = answer_label(question, answer.choice, lang) if question is not None else None
    return label or str(answer.choice)


def _question_text(definition: SurveyDefinition | None, question_id: str, lang: Language) -> str | None:
    try:
        return definition.question(question_id).text.get(lang) if definition is not None else None
    except KeyError:
        return None


def _language_name(services: Services, lang: Language, code: str | None) -> str:
    """A language as the customer reads it ("Deutsch", "English"), or its code when the bot has no name."""
    language = normalize_language(code)
    if language is None:
        return code or "—"
    return str(services.text(lang, f"language_name_{language}"))


def _money(amount: Decimal | None, currency: str) -> str:
    return "—" if amount is None else f"{amount:,.2f} {currency}".replace(",", " ")


def export(
    services: Services, data: PersonalData, *, lang: Language, days: int, now: datetime
) -> dict[str, Any]:
    """Everything stored about the person as a JSON document (times in ISO 8601, UTC).

    Left out on purpose: the link tokens (a secret that connects a chat, not information about anyone),
    staff members' names and the team's internal notes on cases (see the module docstring).
    """
    user = data.user
    return {
        "about": services.plain_text(lang, "mydata_file_about", days=days),
        "created_at": _iso(now),
        "telegram_account": None
        if user is None
        else {
            "id": user.id,
            "first_name": user.first_name,
            "language_code": user.language_code,
            "chosen_language": user.chosen_language,
            "opened_the_bot": user.has_started,
            "stopped_at": _iso(user.opted_out_at),
            "paused_until": _iso(user.paused_until),
            "blocked_at": _iso(user.blocked_at),
            "first_seen_at": _iso(user.created_at),
            "last_seen_at": _iso(user.last_seen_at),
        },
        "customers": [_customer_export(services, record, lang) for record in data.customers],
        "messages_to_the_bot": [
            {"received_at": _iso(message.received_at), "kind": message.kind, "text": message.text}
            for message in data.messages
        ],
    }


def _customer_export(
    services: Services, record: personal_data.CustomerRecord, lang: Language
) -> dict[str, Any]:
    customer = record.customer
    return {
        "customer_id": customer.external_id,
        "name": customer.name,
        "language": customer.language,
        "time_zone": customer.time_zone,
        "known_since": _iso(customer.created_at),
        "last_purchase_at": _iso(customer.last_purchase_at),
        "checkins_stopped_at": _iso(customer.checkins_stopped_at),
        "purchases": [
            {
                "order_id": purchase.order_id,
                "amount": None if purchase.amount is None else str(purchase.amount),
                "currency": purchase.currency,
                "purchased_at": _iso(purchase.purchased_at),
                "reported_by": purchase.source,
                "connected_to_telegram_at": _iso(purchase.link_used_at),
            }
            for purchase in record.purchases
        ],
        "surveys": [_survey_export(services, survey, lang) for survey in record.surveys],
        "checkins": [
            {
                "silent_since": _iso(checkin.silent_since),
                "sent_at": _iso(checkin.sent_at),
                "answer": checkin.answer,
                "answered_at": _iso(checkin.answered_at),
            }
            for checkin in record.checkins
        ],
        "cases": [
            {
                "case": case.case.id,
                "kind": case.case.kind,
                "status": case.case.status,
                "opened_at": _iso(case.case.opened_at),
                "taken_at": _iso(case.case.taken_at),
                "resolved_at": _iso(case.case.resolved_at),
                "problem_solved": case.case.recovered,
                "messages": [
                    {
                        "at": _iso(event.at),
                        "from": "shop" if event.action == "replied" else "you",
                        "text": event.text,
                    }
                    for event in case.messages
                ],
            }
            for case in record.cases
        ],
        "contact_decisions": [
            {
                "at": _iso(event.at),
                "kind": event.kind,
                "outcome": event.outcome,
                "reason": event.reason,
                "planned_for": _iso(event.planned_for),
                "detail": event.detail,
            }
            for event in record.contacts
        ],
    }


def _survey_export(services: Services, survey: personal_data.SurveyRecord, lang: Language) -> dict[str, Any]:
    delivery = survey.delivery
    definition = services.surveys.get(delivery.survey_id)
    return {
        "order_id": survey.purchase.order_id,
        "survey": delivery.survey_id,
        "status": delivery.status,
        "language": delivery.language,
        "due_at": _iso(delivery.due_at),
        "asked_at": _iso(delivery.started_at),
        "reminded_at": _iso(delivery.reminded_at),
        "completed_at": _iso(delivery.completed_at),
        "expired_at": _iso(delivery.expired_at),
        "score": delivery.nps_score,
        "category": delivery.nps_category,
        "answers": [
            {
                "question_id": answer.question_id,
                "question": _question_text(definition, answer.question_id, lang),
                "type": answer.question_type,
                "score": answer.score,
                "choice": answer.choice,
                "choice_label": _choice_label(definition, answer, lang)
                if answer.choice is not None
                else None,
                "comment": answer.text,
                "skipped": answer.skipped,
                "sentiment": answer.sentiment,
                "answered_at": _iso(answer.created_at),
            }
            for answer in survey.answers
        ],
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


# ------------------------------------------------------------------------------------------- /forget


async def forget(update: Update, context: BotContext) -> None:
    """Asks the customer to confirm that everything stored about them is to be erased."""
    person = visitor(update, context)
    if person is None:
        return
    lang = person.language
    ask = context.work.update_id
    keyboard = {
        "inline_keyboard": [
            [
                {
                    "text": str(person.text("forget_yes", language=lang)),
                    "callback_data": forget_callback(ask, erase=True),
                },
                {
                    "text": str(person.text("forget_cancel", language=lang)),
                    "callback_data": forget_callback(ask, erase=False),
                },
            ]
        ]
    }
    payload = messages.text_message(
        person.chat_id, person.text("forget_confirm", language=lang), reply_markup=keyboard
    )
    call = OutboundCall(forget_key(ask), KIND_PRIVACY, "sendMessage", person.chat_id, payload)
    outbox.enqueue(context.session, call, now=context.work.now)
    context.work.queued_messages = True


async def forget_answer(update: Update, context: BotContext) -> None:
    """Erases everything about the customer when they said yes on their own question, else keeps it."""
    query, person = update.callback_query, visitor(update, context)
    if query is None or person is None:
        return
    session, work = context.session, context.work
    lang = person.language
    parsed = parse_forget_callback(query.data)
    asked = outbox.call_of(session, forget_key(parsed[0])) if parsed is not None else None
    pressed_on = query.message.message_id if query.message is not None else None
    if parsed is None or asked is None or asked.chat_id is None or pressed_on is None:
        person.toast(query, "button_invalid", language=lang)
        return
    if asked.chat_id != person.row.id or person.chat_id != person.row.id:
        person.toast(query, "button_not_yours", language=lang)
        return
    answered_key = f"{forget_key(parsed[0])}:answered"
    shown_in = asked.sent_message_id
    if shown_in not in (None, pressed_on) or outbox.call_of(session, answered_key) is not None:
        person.toast(query, "button_invalid", language=lang)  # another message, or answered already
        return
    edit: dict[str, Any] = {"chat_id": person.chat_id, "message_id": pressed_on, "parse_mode": "HTML"}
    if not parsed[1]:
        edit["text"] = person.text("forget_cancelled", language=lang)
    else:
        erase_person(
            session, context.services, personal_data.of_telegram_user(session, person.row.id), now=work.now
        )
        edit["text"] = person.text("forget_done", language=lang)
        edit[SCRUB_AFTER_SEND] = "chat"  # their last message from us: their chat id goes once it is out
    outbox.enqueue(
        session,
        OutboundCall(answered_key, KIND_PRIVACY, "editMessageText", person.chat_id, edit),
        now=work.now,
    )
    work.queued_messages = True
    person.toast(query, None)


def erase_person(session: Session, services: Services, person: Person, *, now: datetime) -> Erased:
    """Erase everything stored about ``person`` (see storage/personal_data.py for what stays, anonymous)
    and show their cases' staff cards again, saying "erased".

    Nothing is sent to them afterwards: their surveys are stopped, the sweep skips an erased customer,
    unsent messages to their chat are cancelled, and only the buttons of a question they were answering
    are taken off (flagged, so that the chat id goes once that is done).
    """
    terms = personal_data.terms_of(session, person)
    erased = personal_data.erase_records(session, person, now=now)
    lang = services.settings.default_language
    replacements = Replacements(
        name=services.plain_text(lang, "erased_name"),
        case_text=lambda case_id: services.text(lang, "case_erased_notice", case_id=case_id),
        topic_name=lambda case_id: services.plain_text(lang, "case_topic_erased", case_id=case_id),
    )
    erased.messages_cancelled, erased.messages_scrubbed = personal_data.scrub_outbox(
        session, person, terms, cases=erased.cases, replacements=replacements
    )
    erased.raw_updates = personal_data.scrub_updates(session, terms, now=now)
    personal_data.erase_account(session, person, erased)
    # The statements above went past the ORM: what the session holds is read again where it is used.
    session.expire_all()
    for case_id in erased.cases:
        case = stored_cases.get_case(session, case_id)
        if case is None:
            continue
        cases_flow.show_card(session, services, case, now=now)
        topic = case_group.topic_key(case_id)
        thread = outbox.thread_of(session, topic) if case.in_topic else None
        if thread is not None:
            outbox.enqueue(
                session,
                OutboundCall(
                    f"{topic}:erased",
                    KIND_CASE_TOPIC,
                    "editForumTopic",
                    services.settings.staff_chat_id,
                    {"message_thread_id": thread, "name": replacements.topic_name(case_id)},
                    case.delivery_id,
                ),
                now=now,
            )
    if person.telegram_user_id is not None:
        _take_buttons_off(session, erased, person.telegram_user_id, now=now)
    return erased


def _take_buttons_off(session: Session, erased: Erased, chat_id: int, *, now: datetime) -> None:
    for delivery, question_id in erased.open_questions:
        key = conversation.question_key(delivery, question_id)
        message_id = outbox.message_id_of(session, key)
        if message_id is None:
            continue
        payload = {"message_id": message_id, SCRUB_AFTER_SEND: "chat"}
        call = OutboundCall(
            f"erase:{key}", KIND_CLOSED, "editMessageReplyMarkup", chat_id, payload, delivery.id
        )
        outbox.enqueue(session, call, now=now)


PRIVATE = filters.ChatType.PRIVATE

HANDLERS = [
    CommandHandler("mydata", my_data, filters=PRIVATE),
    CommandHandler("forget", forget, filters=PRIVATE),
    CallbackQueryHandler(forget_answer, pattern=f"^{FORGET_PREFIX}:"),
]
"""The customers' privacy commands and the /forget buttons, registered after the other commands."""
