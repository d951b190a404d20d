"""The survey conversation: starting a survey, recording an answer, asking what comes next.

Every function here only changes rows in the session it is given (answers, deliveries, outbox). The
caller's unit of work commits them together, so an answer, the alert it triggers and the next question
are stored all at once or not at all.
"""

from __future__ import annotations

import enum
import html
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session

from handlers import cases as cases_flow
from handlers import messages
from handlers.services import Services
from storage import answers as stored_answers
from storage import outbox
from storage.answers import StoredAnswer
from storage.models import (
    Customer,
    DeliveryStatus,
    SurveyDelivery,
    TelegramUser,
)
from storage.outbox import KIND_ANSWERED, KIND_QUESTION, KIND_THANKS, OutboundCall
from surveys import sentiment
from surveys.definition import AnswerValue, Question, QuestionType, SurveyDefinition
from surveys.flow import next_question
from surveys.languages import Language
from surveys.nps import NpsCategory, classify


class AnswerOutcome(enum.Enum):
    """How an attempt to answer ended; handlers turn it into a short reply."""

    RECORDED = "answer_recorded"
    ALREADY_ANSWERED = "answer_already"
    NOT_YOURS = "button_not_yours"
    INVALID = "button_invalid"


def customer_language(services: Services, customer: Customer, user: TelegramUser | None) -> Language:
    """Pick the customer's language: their /language choice, Telegram's, the shop's, the default."""
    if user is None:
        return services.language(customer.language)
    return services.language(user.chosen_language, user.language_code, customer.language)


def question_key(delivery: SurveyDelivery, question_id: str) -> str:
    """Return the outbox key of the current asking of a question."""
    return f"ask:{delivery.id}:{question_id}:{delivery.ask_seq}"


@dataclass(frozen=True)
class AnsweredInPlace:
    """A question answered with a button: its message turns into the next step instead of a new one.

    One message per survey keeps the chat tidy, notifies the customer once, and saves a Bot API call per
    answer. The answered question stays on top of the message, ticked.
    """

    question: Question
    value: AnswerValue
    message_id: int


def ask_question(
    session: Session,
    services: Services,
    *,
    delivery: SurveyDelivery,
    question: Question,
    chat_id: int,
    now: datetime,
    after: AnsweredInPlace | None = None,
    intro: str | None = None,
    unprompted: bool | str = False,
) -> str:
    """Make ``question`` the open one and queue the message that asks it (``intro`` above it: the
    reminder's line); return the queued message's outbox key."""
    survey = services.survey(delivery.survey_id)
    lang = services.language(delivery.language)
    delivery.current_question_id = question.id
    delivery.ask_seq += 1
    delivery.status = DeliveryStatus.ACTIVE.value
    _save_progress(session, delivery)
    payload = messages.question_message(
        services,
        survey=survey,
        question=question,
        delivery_id=_id(delivery.id),
        chat_id=chat_id,
        lang=lang,
        above=_answered_text(services, survey, after, lang) or intro,
        message_id=after.message_id if after else None,
    )
    if unprompted:
        payload[outbox.UNPROMPTED] = unprompted
    key = question_key(delivery, question.id)
    _queue_step(session, key, KIND_QUESTION, delivery, payload, after, now)
    return key


_PROGRESS_COLUMNS = ("status", "current_question_id", "ask_seq", "nps_score", "nps_category", "completed_at")


def _save_progress(session: Session, delivery: SurveyDelivery) -> None:
    """Write a delivery's progress, always as the same columns.

    The ORM writes the deliveries a group of updates changed with one executemany per set of changed
    columns, but only for runs of neighbours (by id) that share the set. Asking a next question and
    completing a survey change different columns, so a group mixing both took a statement per delivery;
    naming every progress column each time makes it one statement per group.
    """
    for column in _PROGRESS_COLUMNS:
        flag_modified(delivery, column)
    session.add(delivery)


def _queue_step(
    session: Session,
    key: str,
    kind: str,
    delivery: SurveyDelivery,
    payload: dict[str, Any],
    after: AnsweredInPlace | None,
    now: datetime,
) -> None:
    """Queue a survey step: an edit of the message whose button was pressed, or a new message."""
    outbox.enqueue(
        session,
        OutboundCall(
            dedupe_key=key,
            kind=kind,
            method="editMessageText" if after else "sendMessage",
            chat_id=int(payload["chat_id"]),
            payload=payload,
            delivery_id=delivery.id,
        ),
        now=now,
    )


def start_survey(
    session: Session,
    services: Services,
    *,
    delivery: SurveyDelivery,
    customer: Customer,
    user: TelegramUser,
    now: datetime,
    unprompted: bool = False,
) -> str | None:
    """Open a due survey: fix its language and ask the first (or the still open) question
    (``unprompted``: the sweep asks it, not the customer's own /start); return the outbox key of the
    question's message (None: nothing was left to ask, and the survey completed)."""
    survey = services.survey(delivery.survey_id)
    if delivery.language is None:
        delivery.language = customer_language(services, customer, user)
    if delivery.started_at is None:
        delivery.started_at = now
        schedule_reminder_and_expiry(services, delivery, asked_at=now)
    answers = recorded_answers(session, delivery)
    question = next_question(survey, answers)
    if question is None:
        _complete(session, services, delivery=delivery, chat_id=user.id, now=now)
        return None
    return ask_question(
        session,
        services,
        delivery=delivery,
        question=question,
        chat_id=user.id,
        now=now,
        unprompted=unprompted_flag(customer) if unprompted else False,
    )


def unprompted_flag(customer: Customer) -> bool | str:
    """The outbox flag of an unprompted message to this customer: their own zone's name when the shop
    gave one (the sender keeps their night quiet), else True (the shop's TIMEZONE)."""
    return customer.time_zone or True


def schedule_reminder_and_expiry(services: Services, delivery: SurveyDelivery, *, asked_at: datetime) -> None:
    """Set when the sweep reminds the customer once (REMINDER_AFTER) and closes the survey
    (SURVEY_EXPIRES_AFTER), counted from the first time it was put to them."""
    settings = services.settings
    if delivery.reminded_at is None:
        delivery.reminder_due_at = asked_at + settings.reminder_after
    delivery.expires_at = asked_at + settings.survey_expires_after


def recorded_answers(session: Session, delivery: SurveyDelivery) -> dict[str, AnswerValue]:
    """Return the answers of a delivery as the flow sees them (a skipped question maps to None)."""
    rows = stored_answers.answers_of(session, _id(delivery.id))
    return {row.question_id: _answer_value(row) for row in rows}


def _answer_value(row: StoredAnswer) -> AnswerValue:
    if row.skipped:
        return None
    if row.score is not None:
        return row.score
    if row.choice is not None:
        return row.choice
    return row.text


def record_answer(
    session: Session,
    services: Services,
    *,
    delivery: SurveyDelivery,
    question: Question,
    value: AnswerValue,
    chat_id: int,
    answered_message_id: int | None,
    now: datetime,
    in_place: bool = False,
) -> AnswerOutcome:
    """Store an answer to the open question, tell staff about critics, and ask the next question.

    The caller holds the delivery row (locked on PostgreSQL, the database lock on SQLite), so the check of
    the open question cannot race. Should it ever, the unique key on (delivery, question) makes the
    transaction fail, and the retried update then finds the answer already recorded.
    """
    answers = recorded_answers(session, delivery)
    if delivery.status != DeliveryStatus.ACTIVE.value or delivery.current_question_id != question.id:
        return AnswerOutcome.ALREADY_ANSWERED if question.id in answers else AnswerOutcome.INVALID
    row: dict[str, Any] = {
        "delivery_id": _id(delivery.id),
        "question_id": question.id,
        "question_type": question.type.value,
        "score": None,
        "choice": None,
        "text": None,
        "skipped": value is None,
        "nps_category": None,
        "polarity": None,
        "sentiment": None,
        "text_language": None,
        "created_at": now,
    }
    if question.type in (QuestionType.NPS, QuestionType.RATING) and isinstance(value, int):
        row["score"] = value
    elif question.type is QuestionType.CHOICE and isinstance(value, str):
        row["choice"] = value
    elif value is not None:
        row["text"] = str(value)
        # The comment's own language decides how it is scored; the survey's only helps with "👍".
        found = sentiment.score(row["text"], hint=delivery.language)
        row["polarity"], row["sentiment"] = round(found.polarity, 4), found.label.value
        row["text_language"] = found.language
    if question.type is QuestionType.NPS and isinstance(value, int):
        category = classify(value)
        row["nps_category"] = category.value
        delivery.nps_score = value
        delivery.nps_category = category.value
    stored_answers.insert_answer(session, row)
    answers[question.id] = value

    survey = services.survey(delivery.survey_id)
    lang = services.language(delivery.language)
    after = None
    if answered_message_id is not None and in_place:
        after = AnsweredInPlace(question=question, value=value, message_id=answered_message_id)
    elif answered_message_id is not None:
        outbox.enqueue(
            session,
            OutboundCall(
                dedupe_key=f"answered:{delivery.id}:{question.id}",
                kind=KIND_ANSWERED,
                method="editMessageText",
                chat_id=chat_id,
                payload=messages.answered_question_edit(
                    services,
                    survey=survey,
                    question=question,
                    value=value,
                    chat_id=chat_id,
                    message_id=answered_message_id,
                    lang=lang,
                ),
                delivery_id=delivery.id,
            ),
            now=now,
        )
    if delivery.nps_category == NpsCategory.CRITIC.value:
        # The score opens the case; every later answer updates its one card.
        cases_flow.case_for_answer(session, services, delivery=delivery, kind=cases_flow.KIND_CRITIC, now=now)
    elif row["polarity"] is not None and row["polarity"] <= services.settings.negative_comment_threshold:
        # A passive or promoter who writes something clearly negative needs an answer just as much.
        cases_flow.case_for_answer(
            session, services, delivery=delivery, kind=cases_flow.KIND_NEGATIVE_COMMENT, now=now
        )

    following = next_question(survey, answers)
    if following is None:
        _complete(session, services, delivery=delivery, chat_id=chat_id, now=now, after=after)
    else:
        ask_question(
            session, services, delivery=delivery, question=following, chat_id=chat_id, now=now, after=after
        )
    return AnswerOutcome.RECORDED


def _complete(
    session: Session,
    services: Services,
    *,
    delivery: SurveyDelivery,
    chat_id: int,
    now: datetime,
    after: AnsweredInPlace | None = None,
) -> None:
    """Close the survey with the thank-you (in place of the last question's buttons, if pressed)."""
    survey = services.survey(delivery.survey_id)
    lang = services.language(delivery.language)
    delivery.status = DeliveryStatus.COMPLETED.value
    delivery.current_question_id = None
    delivery.completed_at = now
    _save_progress(session, delivery)
    thanks = html.escape(survey.thanks.get(lang), quote=False)
    above = _answered_text(services, survey, after, lang)
    payload = messages.text_message(chat_id, f"{above}\n\n{thanks}" if above else thanks)
    if after is not None:
        payload["message_id"] = after.message_id
    _queue_step(session, f"thanks:{delivery.id}", KIND_THANKS, delivery, payload, after, now)


def _answered_text(
    services: Services, survey: SurveyDefinition, after: AnsweredInPlace | None, lang: Language
) -> str | None:
    if after is None:
        return None
    return messages.answered_text(
        services, survey=survey, question=after.question, value=after.value, lang=lang
    )


def _id(value: int | None) -> int:
    if value is None:
        raise RuntimeError("row has no primary key")
    return value
