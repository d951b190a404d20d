"""What the critics in a group of updates need for their cards, read once for the whole group.

Every answer of a critic renders the card of their case: the case itself, the card's outbox row, the
last exchange with the shop, and the customer's purchases, revenue and earlier scores. Looked up critic
by critic that was about a dozen statements each, and a burst of critics (a third of the answers in
``bench/survey_throughput.py``) halved the answers a process handled. So the first card a group renders
loads all of that for every delivery the group holds (storage/preload.py), in five statements, and the
other cards of the group are rendered from memory.

The loads run without autoflush: the group's changes to its deliveries are written once, at its end,
and nothing loaded here depends on them. A person has at most one update in a group, so no card in it
reads what another update of the group wrote about the same customer; a row the group itself adds (a
case opened by one of its answers) is recorded here as it is added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from storage.models import Case, CaseEvent, OutboxMessage, Purchase, SurveyDelivery
from storage.preload import GroupRows

EXCHANGE_ACTIONS = ("replied", "customer_replied")
"""The case events a card shows as the last message between shop and customer."""
PREVIOUS_SCORES = 5
"""How many earlier NPS scores a card shows."""


def card_key(case_id: int) -> str:
    """The outbox key of a case's card."""
    return f"case:{case_id}:card"


def topic_key(case_id: int) -> str:
    """The outbox key of the ``createForumTopic`` row of a case (its topic in a forum staff chat)."""
    return f"case:{case_id}:topic"


def message_key(case: Case) -> str:
    """The outbox key of the message that shows the case: its own card, or the one it shares."""
    return case.card_message_key or card_key(_id(case.id))


def head_of(key: str) -> int | None:
    """The case a key names: whose card (the first case of a shared message), or whose topic."""
    parts = key.split(":")
    return int(parts[1]) if len(parts) == 3 and parts[0] == "case" and parts[1].isdigit() else None


def _id(value: int | None) -> int:
    if value is None:
        raise RuntimeError("case without id")
    return value


@dataclass(frozen=True)
class CustomerFigures:
    """A customer's purchases, revenue since a date, and their newest scores with the delivery of each."""

    purchases: int
    revenue: Decimal
    scores: list[tuple[int, int]]
    """(delivery id, NPS score), newest first; one more than a card shows, so one can be left out."""


@dataclass
class CaseRows:
    """The group's cases and what their cards show; lives on the group's :class:`GroupRows`."""

    cases: dict[int, Case | None]
    """The case of each delivery the group holds, by delivery id; None: it has none (yet)."""
    messages: dict[str, list[Case]] = field(default_factory=dict)
    """The cases each of their card messages shows, first case first, by message key."""
    exchanges: dict[int, CaseEvent] = field(default_factory=dict)
    """The newest exchange of each of those cases, by case id."""
    figures: dict[int, CustomerFigures] | None = None
    """Figures of the group's customers, by customer id; None until a card asks for them."""
    figures_since: datetime | None = None
    staff_backlog: int | None = None
    """Messages waiting for the staff chat when the group first asked, plus the cards it queued since."""
    staff_is_forum: bool | None = None
    """Whether the staff chat is a forum (new cases get topics), once a new case asked."""
    joinable: str | None = None
    """The waiting card message the group's new cases join (handlers/cases.py), once one was chosen."""


def case_rows(session: Session, group: GroupRows) -> CaseRows:
    """The group's case rows, loaded on the first call: cases, their cards' outbox rows, exchanges."""
    if group.cases is not None:
        return group.cases
    delivery_ids = sorted(delivery_id for delivery_id, found in group.deliveries.items() if found)
    rows = CaseRows(cases=dict.fromkeys(delivery_ids))
    group.cases = rows
    if not delivery_ids:
        return rows
    with session.no_autoflush:
        found_cases = session.exec(select(Case).where(col(Case.delivery_id).in_(delivery_ids))).all()
        by_id = {case.id: case for case in found_cases if case.id is not None}
        rows.cases.update({case.delivery_id: case for case in found_cases if case.delivery_id is not None})
        if not by_id:
            return rows
        keys = sorted({message_key(case) for case in found_cases})
        heads = [head for key in keys if (head := head_of(key)) is not None]
        shown = session.exec(
            select(Case)
            .where(sa.or_(col(Case.card_message_key).in_(keys), col(Case.id).in_(heads)))
            .order_by(col(Case.id))
        ).all()
        rows.messages.update({key: [] for key in keys})
        for case in shown:
            rows.messages.setdefault(message_key(case), []).append(case)
        cards = session.exec(select(OutboxMessage).where(col(OutboxMessage.dedupe_key).in_(keys))).all()
        group.outbox_rows.update(dict.fromkeys(keys))
        group.outbox_rows.update({card.dedupe_key: card for card in cards})
        events = session.exec(
            select(CaseEvent)
            .where(col(CaseEvent.case_id).in_(list(by_id)))
            .where(col(CaseEvent.action).in_(EXCHANGE_ACTIONS))
            .order_by(col(CaseEvent.id))
        ).all()
    rows.exchanges.update({event.case_id: event for event in events})
    return rows


def opened(group: GroupRows, case: Case) -> None:
    """Record a case the group opened, so its later lookups in the group find it."""
    if group.cases is not None and case.delivery_id is not None:
        group.cases.cases[case.delivery_id] = case
        if case.card_message_key is None:
            group.cases.messages[card_key(_id(case.id))] = [case]


def joined(group: GroupRows, case: Case, cases: list[Case]) -> None:
    """Record that a case the group opened shares the message of ``cases`` now."""
    if group.cases is not None:
        group.cases.messages.pop(card_key(_id(case.id)), None)  # it was opened with a card of its own
        group.cases.messages[message_key(case)] = [*cases, case]


def figures_of(
    session: Session, group: GroupRows, customer_id: int, *, since: datetime
) -> CustomerFigures | None:
    """A customer's figures from the group's load (made on the first call), or None if not a group's."""
    rows = case_rows(session, group)
    if rows.figures is None or rows.figures_since is None or rows.figures_since.date() != since.date():
        customer_ids = sorted({found[1].id for found in group.deliveries.values() if found and found[1].id})
        if customer_id not in customer_ids:
            return None
        rows.figures = _load_figures(session, customer_ids, since=since)
        rows.figures_since = since
    return rows.figures.get(customer_id)


def _load_figures(
    session: Session, customer_ids: list[int], *, since: datetime
) -> dict[int, CustomerFigures]:
    recent = sa.case((col(Purchase.purchased_at) >= since, Purchase.amount), else_=0)
    numbered = (
        select(
            col(SurveyDelivery.customer_id).label("customer_id"),
            col(SurveyDelivery.id).label("delivery_id"),
            col(SurveyDelivery.nps_score).label("score"),
            func.row_number()
            .over(partition_by=col(SurveyDelivery.customer_id), order_by=col(SurveyDelivery.id).desc())
            .label("rank"),
        )
        .where(col(SurveyDelivery.customer_id).in_(customer_ids))
        .where(col(SurveyDelivery.nps_score).is_not(None))
        .subquery()
    )
    with session.no_autoflush:
        totals = session.exec(
            select(Purchase.customer_id, func.count(), func.coalesce(func.sum(recent), 0))
            .where(col(Purchase.customer_id).in_(customer_ids))
            .group_by(col(Purchase.customer_id))
        ).all()
        scored = session.exec(
            select(numbered.c.customer_id, numbered.c.delivery_id, numbered.c.score)
            .where(numbered.c.rank <= PREVIOUS_SCORES + 1)
            .order_by(numbered.c.customer_id, numbered.c.delivery_id.desc())
        ).all()
    scores: dict[int, list[tuple[int, int]]] = {}
    for customer_id, delivery_id, score in scored:
        scores.setdefault(int(customer_id), []).append((int(delivery_id), int(score)))
    figures = dict.fromkeys(customer_ids, CustomerFigures(0, Decimal(0), []))
    for customer_id, count, revenue in totals:
        figures[customer_id] = CustomerFigures(int(count), Decimal(revenue or 0), [])
    return {
        customer_id: CustomerFigures(found.purchases, found.revenue, scores.get(customer_id, []))
        for customer_id, found in figures.items()
    }
