"""Check-ins with customers who went quiet: found by the sweep, decided by the contact rules, answered
with one tap.

Who is due lives in one indexed column, ``customers.checkin_due_at``: a purchase sets it to the moment
the customer would count as silent (their rhythm, surveys/silence.py), and the sweep claims the due ones
a page at a time, ``FOR UPDATE SKIP LOCKED``, so it never reads all customers and two processes never
take the same one. Talking to the bot does not touch the column (it would cost a write per update): when
a customer comes due, the sweep looks at when they last wrote and, if that was recent, moves the column to
when that silence would begin. Every customer it looks at leaves with a later due time or none, so a
sweep ends.

One check-in per silence: ``checkin_done_at`` records when the current silence was dealt with (sent, or
skipped for good); only a purchase or a word after it starts a new silence. Pressing a check-in's own
buttons is not "talking again" (handlers/visitor.py), or every "All good" would start the next silence.
"""

from __future__ import annotations

import html
import logging
from dataclasses import replace
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from handlers import cases as cases_flow
from handlers import conversation
from handlers.services import Services
from storage import claims, contacts, outbox
from storage.models import Case, Checkin, CheckinAnswer, Customer, TelegramUser
from storage.outbox import KIND_CHECKIN, OutboundCall
from surveys.contact_rules import ContactDecision, ContactKind, ContactReason, decide
from surveys.definition import CheckinDefinition
from surveys.silence import Rhythm

log = logging.getLogger(__name__)

CHECKIN_PREFIX = "ci"
_BATCH = 200  # one transaction per page: short enough that answers never wait long for SQLite
_MAX_ID_DIGITS = 18


def checkin_key(checkin_id: int) -> str:
    """The outbox key of a check-in message."""
    return f"checkin:{checkin_id}"


def checkin_callback(checkin_id: int, answer: CheckinAnswer) -> str:
    """Button data of a check-in; parsed by :func:`parse_checkin_callback`, never trusted."""
    return f"{CHECKIN_PREFIX}:{checkin_id}:{answer.value}"


def parse_checkin_callback(data: str | None) -> tuple[int, CheckinAnswer] | None:
    """(check-in id, answer) from check-in button data, or None for anything else."""
    parts = (data or "").split(":")
    if len(parts) != 3 or parts[0] != CHECKIN_PREFIX:
        return None
    if not parts[1].isdigit() or len(parts[1]) > _MAX_ID_DIGITS:
        return None
    try:
        return int(parts[1]), CheckinAnswer(parts[2])
    except ValueError:
        return None


def checkin_texts(services: Services) -> CheckinDefinition | None:
    """The check-in wording: from the first loaded survey file that has one; None: no check-ins."""
    for survey in services.surveys.values():
        if survey.checkin is not None:
            return survey.checkin
    return None


def last_activity(customer: Customer, user: TelegramUser | None) -> datetime | None:
    """When the customer last bought or wrote to the bot (an opened chat only: a Telegram id the shop
    reported is not a word from the customer)."""
    moments = [customer.last_purchase_at]
    if user is not None and user.has_started:
        moments.append(user.last_seen_at)
    known = [moment for moment in moments if moment is not None]
    return max(known) if known else None


def rhythm_of(services: Services, customer: Customer) -> Rhythm:
    """The customer's rhythm under the shop's settings."""
    gap = customer.median_purchase_gap_s
    return services.settings.contact_policy.rhythm(timedelta(seconds=gap) if gap is not None else None)


def run_page(session: Session, services: Services, *, now: datetime) -> tuple[int, bool]:
    """Look at one page of customers whose check-in time has come; return (check-ins queued, whether a
    full page was claimed: more may be due). The caller commits each page (bot/jobs.py)."""
    texts = checkin_texts(services)
    rows = _claim(session, now=now)
    queued = sum(_consider(session, services, texts, customer, user, now=now) for customer, user in rows)
    return queued, len(rows) == _BATCH


def _claim(session: Session, *, now: datetime) -> list[tuple[Customer, TelegramUser | None]]:
    customers = session.exec(
        select(Customer)
        .where(col(Customer.checkin_due_at) <= now)
        .order_by(col(Customer.checkin_due_at), col(Customer.id))
        .limit(_BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    return claims.users_of(session, customers)


def _consider(
    session: Session,
    services: Services,
    texts: CheckinDefinition | None,
    customer: Customer,
    user: TelegramUser | None,
    *,
    now: datetime,
) -> int:
    """Decide one due customer; every path leaves ``checkin_due_at`` later than ``now`` or None."""
    session.add(customer)
    activity = last_activity(customer, user)
    stopped = customer.checkins_stopped_at is not None or customer.erased_at is not None
    if stopped or activity is None or texts is None:
        customer.checkin_due_at = None
        return 0
    rhythm = rhythm_of(services, customer)
    if customer.checkin_done_at is not None and customer.checkin_done_at >= activity:
        # This silence had its check-in. A new one begins with a purchase (which sets the column) or a
        # word (which does not): look again when a silence begun by a word now could end.
        customer.checkin_due_at = now + rhythm.silent_after
        return 0
    silent_at = activity + rhythm.silent_after
    if silent_at > now:
        customer.checkin_due_at = silent_at  # they bought or wrote since: not silent yet
        return 0
    customer_id = _id(customer.id)
    history = contacts.history(session, customer_id=customer_id, user=user, now=now, zone=customer.time_zone)
    decision = decide(ContactKind.CHECKIN, at=now, policy=services.settings.contact_policy, history=history)
    still_open = contacts.open_survey(session, customer_id=customer_id, other_than=0)
    if decision.send_at is not None and still_open is not None:
        decision = _after_open_survey(decision, still_open.expires_at or now + rhythm.silent_after)
    event = contacts.record(session, decision, customer_id=customer_id, delivery_id=None, now=now)
    if decision.skipped is ContactReason.PAUSED and user is not None and user.paused_until is not None:
        customer.checkin_due_at = user.paused_until  # still silent when the pause ends: ask then
        return 0
    if decision.send_at is None:
        customer.checkin_done_at = now  # stopped or unreachable: this silence is dealt with
        customer.checkin_due_at = now + rhythm.silent_after
        return 0
    if decision.send_at > now:
        customer.checkin_due_at = decision.send_at
        return 0
    if user is None:  # decide() skips unreachable customers; this keeps mypy and a future change honest
        customer.checkin_due_at = None
        return 0
    key = _send(session, services, texts, customer, user, silent_since=activity, now=now)
    contacts.sent_through(event, key)
    customer.checkin_done_at = now
    customer.checkin_due_at = now + rhythm.silent_after
    return 1


def _after_open_survey(decision: ContactDecision, until: datetime) -> ContactDecision:
    """A check-in waits while a survey is open: the customer hears from the shop one thing at a time."""
    return replace(
        decision,
        send_at=until,
        postponed=(*decision.postponed, ContactReason.COOLDOWN),
        explanation=f"postponed to {until.isoformat(timespec='minutes')} UTC: a survey is still open",
    )


def _send(
    session: Session,
    services: Services,
    texts: CheckinDefinition,
    customer: Customer,
    user: TelegramUser,
    *,
    silent_since: datetime,
    now: datetime,
) -> str:
    """Queue the check-in message; return its outbox key."""
    lang = conversation.customer_language(services, customer, user)
    checkin = Checkin(customer_id=_id(customer.id), silent_since=silent_since, sent_at=now, language=lang)
    session.add(checkin)
    session.flush()
    checkin_id = _id(checkin.id)
    keyboard = [
        [
            {
                "text": texts.option(answer.value).label.get(lang),
                "callback_data": checkin_callback(checkin_id, answer),
            }
        ]
        for answer in CheckinAnswer
    ]
    payload: dict[str, object] = {
        "text": html.escape(texts.text.get(lang), quote=False),
        "parse_mode": "HTML",
        "reply_markup": {"inline_keyboard": keyboard},
        outbox.UNPROMPTED: conversation.unprompted_flag(customer),
    }
    key = checkin_key(checkin_id)
    outbox.enqueue(session, OutboundCall(key, KIND_CHECKIN, "sendMessage", user.id, payload), now=now)
    return key


def answered_payload(
    services: Services, texts: CheckinDefinition, checkin: Checkin, answer: CheckinAnswer
) -> dict[str, object]:
    """The check-in message once answered: its text, the answer ticked, and what happens now; no buttons."""
    lang = services.language(checkin.language)
    option = texts.option(answer.value)
    text = "\n\n".join(
        (
            html.escape(texts.text.get(lang), quote=False),
            f"✅ {html.escape(option.label.get(lang), quote=False)}",
            html.escape(option.reply.get(lang), quote=False),
        )
    )
    return {"text": text, "parse_mode": "HTML"}


def record_answer(
    session: Session,
    services: Services,
    checkin: Checkin,
    customer: Customer,
    answer: CheckinAnswer,
    *,
    now: datetime,
) -> None:
    """Store a check-in's first answer and act on it: a question opens a case for staff (the customer's
    next message goes into it), "not interested" ends check-ins."""
    checkin.answer, checkin.answered_at = answer.value, now
    session.add(checkin)
    if answer is CheckinAnswer.NOT_INTERESTED:
        customer.checkins_stopped_at = now
        customer.checkin_due_at = None
        session.add(customer)
    elif answer is CheckinAnswer.QUESTION:

        def opened(case: Case) -> None:
            checkin.case_id = case.id
            session.add(checkin)

        cases_flow.open_question_case(session, services, customer_id=_id(customer.id), now=now, then=opened)


def _id(value: int | None) -> int:
    if value is None:
        raise RuntimeError("row has no primary key")
    return value
