"""Cases: opened by a critic's answer, shown on one card kept current, and worked on by staff.

Every function here only changes rows in the session it is given; the update's unit of work commits the
answer, the case, its events and the card's outbox rows together. The card goes through the outbox like
every message: it waits at the staff group's pace and never holds up a customer.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from handlers import case_card
from handlers.case_card import CardFacts
from handlers.services import Services
from storage import answers as stored_answers
from storage import case_group, cases, outbox
from storage.models import Case, CaseStatus, Customer, OutboxMessage, Purchase, SurveyDelivery, TelegramUser
from storage.outbox import KIND_CASE_CARD, KIND_CASE_MESSAGE, KIND_REPLY, OutboundCall

KIND_CRITIC = "critic"
KIND_NEGATIVE_COMMENT = "negative_comment"
_EXCHANGE_PREVIEW = 200


card_key = case_group.card_key


def case_for_answer(
    session: Session, services: Services, *, delivery: SurveyDelivery, kind: str, now: datetime
) -> Case:
    """The delivery's case, opened now if this answer is the first to call for one; its card is current."""
    case = cases.case_of_delivery(session, _id(delivery.id))
    opened = case is None
    if case is None:
        case = cases.open_case(
            session, customer_id=delivery.customer_id, delivery_id=delivery.id, kind=kind, now=now
        )
    # A case opened just now has no card and no exchange yet: nothing to look up for either.
    show_card(session, services, case, now=now, last_exchange="" if opened else None, new=opened)
    return case


def show_card(
    session: Session,
    services: Services,
    case: Case,
    *,
    now: datetime,
    last_exchange: str | None = None,
    new: bool = False,
) -> None:
    """Render the card and queue it (or its edit); a card on its way is edited by the sweep later."""
    facts = _facts(session, services, case, now=now, last_exchange=last_exchange)
    if not new:  # a new case counts its first rendering already (storage.cases.open_case)
        case.card_version += 1
    shown = outbox.keep_current(
        session,
        key=card_key(_id(case.id)),
        kind=KIND_CASE_CARD,
        chat_id=services.settings.staff_chat_id,
        payload=case_card.card_payload(services, facts, timezone=services.settings.timezone),
        version=case.card_version,
        delivery_id=case.delivery_id,
        now=now,
        force=case.card_stale,
        new=new,
    )
    case.card_stale = not shown
    session.add(case)


def refresh_stale_cards(session: Session, services: Services, *, now: datetime) -> int:
    """Edit the cards that changed while their message was on its way (run by the sweep)."""
    refreshed = 0
    for case in cases.stale_cards(session):
        show_card(session, services, case, now=now)
        refreshed += 0 if case.card_stale else 1
    return refreshed


def _facts(
    session: Session, services: Services, case: Case, *, now: datetime, last_exchange: str | None
) -> CardFacts:
    customer = session.get(Customer, case.customer_id)
    if customer is None:
        raise RuntimeError(f"case {case.id} has no customer")
    delivery = session.get(SurveyDelivery, case.delivery_id) if case.delivery_id is not None else None
    purchase = session.get(Purchase, delivery.purchase_id) if delivery is not None else None
    survey = services.surveys.get(delivery.survey_id) if delivery is not None else None
    answers = stored_answers.answers_of(session, _id(delivery.id)) if delivery is not None else []
    value = cases.customer_value(session, customer_id=customer.id or 0, delivery_id=case.delivery_id, now=now)
    if last_exchange is None:
        last_exchange = _last_exchange(session, services, case)
    return CardFacts(case, customer, delivery, purchase, survey, answers, value, last_exchange)


def _last_exchange(session: Session, services: Services, case: Case) -> str | None:
    """The newest message between shop and customer on this case, as a card line (HTML)."""
    lang = services.settings.default_language
    event = cases.last_exchange(session, case)
    if event is None:
        return None
    text = (event.text or "")[:_EXCHANGE_PREVIEW]
    if event.action == "replied":
        return services.text(lang, "case_card_last_staff", name=event.actor_name or "—", text=text)
    return services.text(lang, "case_card_last_customer", text=text)


# ------------------------------------------------------------------------------------------ staff actions


def take(session: Session, services: Services, case: Case, *, user_id: int, name: str, now: datetime) -> str:
    """Assign the case to whoever pressed Take; return the catalogue key of the answer to the press."""
    if case.status == CaseStatus.RESOLVED.value:
        return "case_already_resolved"
    if case.status == CaseStatus.TAKEN.value and case.assignee_id != user_id:
        return "case_taken_by_other"
    _assign(case, user_id=user_id, name=name, now=now)
    cases.record_event(session, case, action="taken", at=now, actor_id=user_id, actor_name=name)
    show_card(session, services, case, now=now)
    return "case_taken_toast"


def start_reply(
    session: Session, services: Services, case: Case, *, user_id: int, name: str, now: datetime
) -> str:
    """Arm Reply: this staff member's next reply to the card goes to the customer (taking an open case)."""
    if case.status == CaseStatus.RESOLVED.value:
        return "case_already_resolved"
    if case.status == CaseStatus.OPEN.value:
        _assign(case, user_id=user_id, name=name, now=now)
        cases.record_event(session, case, action="taken", at=now, actor_id=user_id, actor_name=name)
    case.replying_id, case.replying_name = user_id, name
    cases.record_event(session, case, action="reply_started", at=now, actor_id=user_id, actor_name=name)
    show_card(session, services, case, now=now)
    return "case_reply_toast"


def resolve(
    session: Session, services: Services, case: Case, *, user_id: int, name: str, now: datetime
) -> str:
    """Mark the case resolved by whoever pressed Resolve; a reply to the card afterwards is its note."""
    if case.status == CaseStatus.RESOLVED.value:
        return "case_already_resolved"
    if case.assignee_id is None:
        _assign(case, user_id=user_id, name=name, now=now)
    case.status = CaseStatus.RESOLVED.value
    case.resolved_by_id, case.resolved_by_name, case.resolved_at = user_id, name, now
    case.replying_id = case.replying_name = None
    case.awaiting_customer = False
    cases.record_event(session, case, action="resolved", at=now, actor_id=user_id, actor_name=name)
    show_card(session, services, case, now=now)
    return "case_resolved_toast"


def send_full_comment(
    session: Session, services: Services, case: Case, *, update_id: int, now: datetime
) -> None:
    """Send the whole comment into the staff chat, as a reply to the card."""
    facts = _facts(session, services, case, now=now, last_exchange=None)
    for index, text in enumerate(case_card.full_comment_messages(services, facts)):
        tell_staff(
            session, services, key=f"case:{case.id}:full:{update_id}:{index}", text=text, now=now, case=case
        )


def staff_reply(
    session: Session,
    services: Services,
    case: Case,
    *,
    user_id: int,
    name: str,
    text: str,
    update_id: int,
    now: datetime,
) -> bool:
    """A staff member replied to the card: relay it to the customer (after Reply) or keep it as the note
    (after Resolve); return False when the reply is neither and changes nothing."""
    if case.status == CaseStatus.RESOLVED.value:
        case.resolution_note = text
        cases.record_event(session, case, action="note", at=now, actor_id=user_id, actor_name=name, text=text)
        show_card(session, services, case, now=now)
        return True
    if case.replying_id != user_id:
        return False
    customer = session.get(Customer, case.customer_id)
    chat_id = customer.telegram_user_id if customer is not None else None
    if customer is None or chat_id is None:
        return False
    user = session.get(TelegramUser, chat_id)
    from handlers.conversation import customer_language

    lang = customer_language(services, customer, user)
    outbox.enqueue(
        session,
        OutboundCall(
            dedupe_key=f"case:{case.id}:reply:{update_id}",
            kind=KIND_REPLY,
            method="sendMessage",
            chat_id=chat_id,
            payload={"text": services.text(lang, "case_reply_to_customer", text=text), "parse_mode": "HTML"},
            delivery_id=case.delivery_id,
        ),
        now=now,
    )
    case.replying_id = case.replying_name = None
    case.awaiting_customer = True
    cases.record_event(session, case, action="replied", at=now, actor_id=user_id, actor_name=name, text=text)
    show_card(session, services, case, now=now)
    return True


def customer_wrote(
    session: Session, services: Services, *, telegram_user_id: int, text: str, update_id: int, now: datetime
) -> bool:
    """A customer the shop wrote to answered: put it into the case; False when no case waits for them."""
    customer_ids = [
        int(found)
        for found in session.exec(
            select(Customer.id).where(col(Customer.telegram_user_id) == telegram_user_id)
        ).all()
        if found is not None
    ]
    case = cases.awaiting_customer(session, customer_ids)
    if case is None:
        return False
    customer = session.get(Customer, case.customer_id)
    lang = services.settings.default_language
    message = services.text(
        lang,
        "case_customer_message",
        case_id=_id(case.id),
        name=(customer.name if customer else None) or "—",
        text=text,
    )
    tell_staff(
        session, services, key=f"case:{case.id}:customer:{update_id}", text=message, now=now, case=case
    )
    cases.record_event(session, case, action="customer_replied", at=now, actor_id=telegram_user_id, text=text)
    show_card(session, services, case, now=now)
    return True


def tell_staff(
    session: Session, services: Services, *, key: str, text: str, now: datetime, case: Case | None = None
) -> None:
    """Queue a message (HTML) to the staff chat: the answer to ``/open``, or, with ``case``, a reply to
    that case's card (once the card has its message id)."""
    payload: dict[str, object] = {"text": text, "parse_mode": "HTML"}
    reply_to = outbox.sent_message_id(session, card_key(_id(case.id))) if case is not None else None
    if reply_to is not None:
        payload["reply_parameters"] = {"message_id": reply_to, "allow_sending_without_reply": True}
    delivery_id = case.delivery_id if case is not None else None
    call = OutboundCall(
        key, KIND_CASE_MESSAGE, "sendMessage", services.settings.staff_chat_id, payload, delivery_id
    )
    outbox.enqueue(session, call, now=now)


def case_of_card_message(session: Session, *, chat_id: int, message_id: int) -> Case | None:
    """The case whose card is this message in this chat (what a press or a reply refers to)."""
    row = session.exec(
        select(OutboxMessage.dedupe_key)
        .where(col(OutboxMessage.kind) == KIND_CASE_CARD)
        .where(col(OutboxMessage.chat_id) == chat_id)
        .where(col(OutboxMessage.sent_message_id) == message_id)
    ).first()
    if row is None:
        return None
    case_id = row.split(":")[1]
    return cases.get_case(session, int(case_id), lock=True) if case_id.isdigit() else None


def _assign(case: Case, *, user_id: int, name: str, now: datetime) -> None:
    case.status = CaseStatus.TAKEN.value
    case.assignee_id, case.assignee_name, case.taken_at = user_id, name, now


def _id(value: int | None) -> int:
    if value is None:
        raise RuntimeError("row without id")
    return value
