"""Cases: opened by a critic's answer, shown on one card kept current, and worked on by staff.

Every function here only changes rows in the session it is given; the update's unit of work commits the
answer, the case, its events and the card's outbox rows together. The card goes through the outbox like
every message: it waits at the staff group's pace and never holds up a customer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session, col, select

from handlers import case_card
from handlers.case_card import CardFacts
from handlers.services import Services
from storage import answers as stored_answers
from storage import case_group, cases, outbox
from storage.models import Case, CaseStatus, Customer, OutboxMessage, Purchase, SurveyDelivery, TelegramUser
from storage.outbox import (
    KIND_CASE_CARD,
    KIND_CASE_MESSAGE,
    KIND_CASE_TOPIC,
    KIND_REPLY,
    THREAD_OF,
    OutboundCall,
)
from storage.pacing import chat_pace
from storage.preload import group_of

KIND_CRITIC = "critic"
KIND_NEGATIVE_COMMENT = "negative_comment"
KIND_QUESTION = "question"
"""A customer who went quiet answered a check-in with "I have a question" (handlers/checkins.py)."""
_EXCHANGE_PREVIEW = 200


card_key = case_group.card_key


def case_for_answer(
    session: Session, services: Services, *, delivery: SurveyDelivery, kind: str, now: datetime
) -> None:
    """Open the delivery's case if this answer is the first to call for one; keep its card current.

    A new case's card is rendered once the case has its id: in an update group, when the group closes
    (storage/cases.py), so it shows every answer the group recorded.
    """
    delivery_id = _id(delivery.id)
    case = cases.case_of_delivery(session, delivery_id)
    if case is not None:
        show_card(session, services, case, now=now)
        return
    if cases.opening_in_group(session, delivery_id):
        return  # its card is rendered when the group closes, with this answer
    cases.open_case(
        session,
        customer_id=delivery.customer_id,
        delivery_id=delivery_id,
        kind=kind,
        now=now,
        then=lambda case: _show_new_case(session, services, case, now=now),
    )


def open_question_case(
    session: Session,
    services: Services,
    *,
    customer_id: int,
    now: datetime,
    then: Callable[[Case], None] | None = None,
) -> None:
    """Open a case for a customer's question, with the same card, buttons and relay as a critic's: what
    the customer writes next goes into it, as if the shop had written to them."""

    def opened(case: Case) -> None:
        _show_new_case(session, services, case, now=now)
        if then is not None:
            then(case)

    cases.open_case(
        session,
        customer_id=customer_id,
        delivery_id=None,
        kind=KIND_QUESTION,
        now=now,
        then=opened,
        awaiting_customer=True,
    )


def _show_new_case(session: Session, services: Services, case: Case, *, now: datetime) -> None:
    """Queue a new case's card: a message of its own, or, while the staff chat lags, a shared one."""
    shared = _message_to_join(session, services, now=now)
    group = group_of(session)
    if shared is not None:
        case.card_message_key = shared[0]
        if group is not None:
            case_group.joined(group, case, shared[1])
    elif _staff_chat_is_forum(session, services):
        _queue_topic(session, services, case, now=now)
    # A case opened just now has no exchange yet, and its own card was never queued: nothing to look up.
    show_card(session, services, case, now=now, last_exchange="", new=shared is None)
    if shared is None and group is not None and group.cases is not None:
        group.cases.joinable = card_key(_id(case.id))
        if group.cases.staff_backlog is not None:
            group.cases.staff_backlog += 1


def _staff_chat_is_forum(session: Session, services: Services) -> bool:
    """Whether new cases get a topic of their own (asked once per update group)."""
    group = group_of(session)
    rows = case_group.case_rows(session, group) if group is not None else None
    if rows is not None and rows.staff_is_forum is not None:
        return rows.staff_is_forum
    forum = outbox.is_forum(session, services.settings.staff_chat_id)
    if rows is not None:
        rows.staff_is_forum = forum
    return forum


def _queue_topic(session: Session, services: Services, case: Case, *, now: datetime) -> None:
    """Queue the case's forum topic, right before its card: the card and everything after it go there.

    Only for a case with a card of its own: in a burst, cases share messages in the General topic, since
    a topic costs a message of the group's 20 a minute too, and a case must be seen before it is sorted.
    """
    customer = session.get(Customer, case.customer_id)
    delivery = session.get(SurveyDelivery, case.delivery_id) if case.delivery_id is not None else None
    score = delivery.nps_score if delivery is not None and delivery.nps_score is not None else "–"
    name = services.plain_text(
        services.settings.default_language,
        "case_topic_name",
        case_id=_id(case.id),
        name=((customer.name if customer else None) or "—")[:80],
        score=str(score),
    )
    call = OutboundCall(
        case_group.topic_key(_id(case.id)),
        KIND_CASE_TOPIC,
        "createForumTopic",
        services.settings.staff_chat_id,
        {"name": name[:128]},
        case.delivery_id,
    )
    outbox.enqueue(session, call, now=now)
    case.in_topic = True


def _message_to_join(session: Session, services: Services, *, now: datetime) -> tuple[str, list[Case]] | None:
    """A card message still waiting for the staff chat that a new case can share, with its cases; None
    while the chat keeps up (then every case gets its own card) or when no waiting message has room."""
    chat_id = services.settings.staff_chat_id
    group = group_of(session)
    rows = case_group.case_rows(session, group) if group is not None else None
    backlog = rows.staff_backlog if rows is not None else None
    if backlog is None:
        backlog = cases.waiting_for_chat(session, chat_id=chat_id)
        if rows is not None:
            rows.staff_backlog = backlog
    # Once more messages wait than the chat's pace lets out at once, a new card would wait its turn: at
    # a group's 20 a minute, the 200th critic of a burst would be seen ten minutes late.
    if chat_id is None or backlog < chat_pace(chat_id).burst:
        return None
    key = rows.joinable if rows is not None and rows.joinable else None
    key = key or cases.joinable_message(session, chat_id=chat_id, now=now)
    if key is None:
        return None
    shown = cases.message_cases(session, key)
    if not shown or len(shown) >= case_card.SHARED_MESSAGE_CASES:
        if rows is not None:
            rows.joinable = None  # full: the next new case starts a message of its own
        return None
    if rows is not None:
        rows.joinable = key
    return key, shown


def show_card(
    session: Session,
    services: Services,
    case: Case,
    *,
    now: datetime,
    last_exchange: str | None = None,
    new: bool = False,
) -> None:
    """Render the case's message and queue it (or its edit); a message on its way is edited later.

    The message is the case's own card, or the one it shares with other cases of a burst; its first
    case counts its renderings, so an edit queued for an older one is known to be superseded.
    """
    key = case_group.message_key(case)
    shown = [case] if new else cases.message_cases(session, key)
    head = shown[0] if shown else case
    facts = _facts(session, services, case, now=now, last_exchange=last_exchange)
    timezone = services.settings.timezone
    # Kept for every case, so that a case joining this message later finds its entry ready instead
    # of loading this one's customer, order, answers and figures again.
    case.card_entry = case_card.list_entry(services, facts)
    if len(shown) <= 1:
        payload = case_card.card_payload(services, facts, timezone=timezone)
        if head.in_topic:
            payload[THREAD_OF] = case_group.topic_key(_id(head.id))
    else:
        for other in shown:
            if other.card_entry is None:  # a case that had its own card until others joined it
                other.card_entry = case_card.list_entry(
                    services, _facts(session, services, other, now=now, last_exchange="")
                )
        payload = case_card.list_payload(services, [other.card_entry or {} for other in shown])
    if not new:  # a new case counts its first rendering already (storage.cases.open_case)
        head.card_version += 1
    queued = outbox.keep_current(
        session,
        key=key,
        kind=KIND_CASE_CARD,
        chat_id=services.settings.staff_chat_id,
        payload=payload,
        version=head.card_version,
        delivery_id=head.delivery_id,
        now=now,
        force=head.card_stale,
        new=new,
    )
    head.card_stale = not queued
    session.add(head)


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
    if customer.erased_at is not None:
        last_exchange = ""  # what was written on the case is erased with the customer's data
    elif last_exchange is None:
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
    (after Resolve); return False when the reply is neither and changes nothing. Nothing is kept about a
    customer who had their data erased: a note would bring it back."""
    customer = session.get(Customer, case.customer_id)
    if customer is None or customer.erased_at is not None:
        return False
    if case.status == CaseStatus.RESOLVED.value:
        case.resolution_note = text
        cases.record_event(session, case, action="note", at=now, actor_id=user_id, actor_name=name, text=text)
        show_card(session, services, case, now=now)
        return True
    if case.replying_id != user_id:
        return False
    chat_id = customer.telegram_user_id
    if chat_id is None:
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
    if case is not None and case.in_topic:
        payload[THREAD_OF] = case_group.topic_key(_id(case.id))
    reply_to = outbox.sent_message_id(session, case_group.message_key(case)) if case is not None else None
    if reply_to is not None:
        payload["reply_parameters"] = {"message_id": reply_to, "allow_sending_without_reply": True}
    delivery_id = case.delivery_id if case is not None else None
    call = OutboundCall(
        key, KIND_CASE_MESSAGE, "sendMessage", services.settings.staff_chat_id, payload, delivery_id
    )
    outbox.enqueue(session, call, now=now)


def cases_of_card_message(session: Session, *, chat_id: int, message_id: int) -> list[Case]:
    """The cases a card message in this chat shows (what a press or a reply refers to), first case first.

    One for a card of its own; several for a message that cases of a burst share."""
    key = session.exec(
        select(OutboxMessage.dedupe_key)
        .where(col(OutboxMessage.kind) == KIND_CASE_CARD)
        .where(col(OutboxMessage.chat_id) == chat_id)
        .where(col(OutboxMessage.sent_message_id) == message_id)
    ).first()
    return cases.message_cases(session, key) if key is not None else []


def case_of_press(session: Session, *, chat_id: int, message_id: int, case_id: int) -> Case | None:
    """The case a card button names, if that message really shows it (locked, so presses take turns)."""
    shown = {case.id for case in cases_of_card_message(session, chat_id=chat_id, message_id=message_id)}
    if not shown:
        # Pressed while the send's outcome is still being written (a fraction of a second): the message
        # the case is on has no id yet, so there is nothing to compare with, as for survey buttons. (On
        # PostgreSQL the outcome may commit between the two reads: then its id is this message's.)
        named = cases.get_case(session, case_id)
        key = case_group.message_key(named) if named is not None else None
        row = session.exec(select(OutboxMessage).where(col(OutboxMessage.dedupe_key) == key)).first()
        if row is not None and row.chat_id == chat_id and row.sent_message_id in (None, message_id):
            shown = {case.id for case in cases.message_cases(session, row.dedupe_key)}
    return cases.get_case(session, case_id, lock=True) if case_id in shown else None


def case_of_reply(session: Session, *, chat_id: int, message_id: int, user_id: int) -> Case | None:
    """The case a staff member's reply to a card message is about.

    On a card of its own: that case. On a shared message: the case they pressed Reply on, or the one
    they resolved last (its note); None when the reply could be about any of them.
    """
    shown = cases_of_card_message(session, chat_id=chat_id, message_id=message_id)
    if len(shown) == 1:
        return cases.get_case(session, _id(shown[0].id), lock=True)
    replying = [case for case in shown if case.replying_id == user_id]
    resolved = [c for c in shown if c.resolved_by_id == user_id and c.resolved_at is not None]
    if replying:
        chosen = replying[-1]
    elif resolved:
        chosen = max(resolved, key=lambda case: case.resolved_at or case.opened_at)
    else:
        return None
    return cases.get_case(session, _id(chosen.id), lock=True)


def case_of_topic(session: Session, *, chat_id: int, thread_id: int) -> Case | None:
    """The case whose forum topic this is (locked, so messages in it take turns); None for other topics."""
    key = session.exec(
        select(OutboxMessage.dedupe_key)
        .where(col(OutboxMessage.kind) == KIND_CASE_TOPIC)
        .where(col(OutboxMessage.chat_id) == chat_id)
        .where(col(OutboxMessage.sent_message_id) == thread_id)
    ).first()
    case_id = case_group.head_of(key) if key is not None else None
    return cases.get_case(session, case_id, lock=True) if case_id is not None else None


def _assign(case: Case, *, user_id: int, name: str, now: datetime) -> None:
    case.status = CaseStatus.TAKEN.value
    case.assignee_id, case.assignee_name, case.taken_at = user_id, name, now


def _id(value: int | None) -> int:
    if value is None:
        raise RuntimeError("row without id")
    return value
