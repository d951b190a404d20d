"""Cases for staff: opening one per delivery, what it records, and the figures its card shows.

A case is opened in the same transaction as the answer that calls for it, so a crash can lose neither;
the unique ``delivery_id`` makes a replayed answer find the case it opened instead of a second one.
Every staff action is a :class:`~storage.models.CaseEvent` with who did it and when.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from storage import case_group
from storage.models import (
    Case,
    CaseEvent,
    CaseStatus,
    OutboxMessage,
    OutboxStatus,
    Purchase,
    SurveyDelivery,
    utcnow,
)
from storage.outbox import KIND_CASE_CARD
from storage.preload import group_of, insert_cases, write_pending

REVENUE_WINDOW = timedelta(days=365)
"""The trailing window of a customer's revenue: the seed texts' "last 12 months"."""


def case_of_delivery(session: Session, delivery_id: int) -> Case | None:
    """The case a delivery opened, if any."""
    group = group_of(session)
    if group is not None and delivery_id in group.deliveries:
        return case_group.case_rows(session, group).cases.get(delivery_id)
    return session.exec(select(Case).where(col(Case.delivery_id) == delivery_id)).first()


def open_case(
    session: Session,
    *,
    customer_id: int,
    delivery_id: int | None,
    kind: str,
    now: datetime,
    then: Callable[[Case], None],
    awaiting_customer: bool = False,
) -> None:
    """Open a case with its first card rendering counted, record the event, and call ``then`` with it
    once it has its id (its card's key needs the id).

    In an update group the case is inserted when the group closes, with every other case the group
    opened, in one statement (storage/preload.py), and ``then`` runs there, in the order the cases were
    opened; so a card rendered then also shows whatever else the group recorded. Outside a group it is
    inserted now and ``then`` runs at once.
    """
    case = Case(
        customer_id=customer_id,
        delivery_id=delivery_id,
        kind=kind,
        opened_at=now,
        card_version=1,
        awaiting_customer=awaiting_customer,
    )
    group = group_of(session)
    if group is None:
        insert_cases(session, [case])
        record_event(session, case, action="opened", at=now)
        then(case)
        return

    def opened(case: Case) -> None:
        case_group.opened(group, case)
        group.new_case_events.append(
            {
                "case_id": case.id,
                "at": now,
                "actor_id": None,
                "actor_name": None,
                "action": "opened",
                "text": None,
            }
        )
        then(case)

    group.new_cases.append((case, opened))


def opening_in_group(session: Session, delivery_id: int) -> bool:
    """Whether the session's update group opens a case for this delivery already (not inserted yet)."""
    group = group_of(session)
    return group is not None and any(case.delivery_id == delivery_id for case, _ in group.new_cases)


def record_event(
    session: Session,
    case: Case,
    *,
    action: str,
    at: datetime,
    actor_id: int | None = None,
    actor_name: str | None = None,
    text: str | None = None,
) -> None:
    """Store what happened to a case, by whom and when."""
    session.add(
        CaseEvent(
            case_id=_id(case.id), at=at, actor_id=actor_id, actor_name=actor_name, action=action, text=text
        )
    )


def message_cases(session: Session, key: str) -> list[Case]:
    """The cases a card message shows, first case (the one the key names) first."""
    group = group_of(session)
    if group is not None and group.cases is not None and key in group.cases.messages:
        return group.cases.messages[key]
    head = case_group.head_of(key)
    found = session.exec(
        select(Case)
        .where(sa.or_(col(Case.card_message_key) == key, col(Case.id) == (head if head is not None else -1)))
        .order_by(col(Case.id))
    ).all()
    return list(found)


def joinable_message(session: Session, *, chat_id: int | None, now: datetime) -> str | None:
    """The key of the newest card message still waiting for the staff chat's pace, which a new case may
    join; None when the chat has nothing waiting, or only messages a sender holds already.

    In an update group, cards the group queued itself are not written yet and not found here: the
    group keeps track of those (handlers/cases.py), so the rows it collected are not written early."""
    if chat_id is None:
        return None
    return session.exec(
        select(OutboxMessage.dedupe_key)
        .where(col(OutboxMessage.chat_id) == chat_id)
        .where(col(OutboxMessage.kind) == KIND_CASE_CARD)
        .where(col(OutboxMessage.status) == OutboxStatus.PENDING.value)
        .where(col(OutboxMessage.method) == "sendMessage")
        .where(sa.or_(col(OutboxMessage.locked_until).is_(None), col(OutboxMessage.locked_until) < now))
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
    ).first()


def waiting_for_chat(session: Session, *, chat_id: int | None) -> int:
    """How many messages wait for a chat (the staff chat's backlog decides whether new cases merge)."""
    if chat_id is None:
        return 0
    return int(
        session.exec(
            select(func.count())
            .select_from(OutboxMessage)
            .where(col(OutboxMessage.chat_id) == chat_id)
            .where(col(OutboxMessage.status) == OutboxStatus.PENDING.value)
        ).one()
    )


def last_exchange(session: Session, case: Case) -> CaseEvent | None:
    """The newest message between shop and customer on a case (a "replied" or "customer_replied")."""
    group = group_of(session)
    if group is not None and case.delivery_id is not None and case.delivery_id in group.deliveries:
        rows = case_group.case_rows(session, group)
        if rows.cases.get(case.delivery_id) is case:
            return rows.exchanges.get(_id(case.id))
    return session.exec(
        select(CaseEvent)
        .where(col(CaseEvent.case_id) == _id(case.id))
        .where(col(CaseEvent.action).in_(case_group.EXCHANGE_ACTIONS))
        .order_by(col(CaseEvent.id).desc())
    ).first()


def events_of(session: Session, case_id: int) -> list[CaseEvent]:
    """A case's events, oldest first."""
    write_pending(session)
    return list(
        session.exec(
            select(CaseEvent).where(col(CaseEvent.case_id) == case_id).order_by(col(CaseEvent.id))
        ).all()
    )


def get_case(session: Session, case_id: int, *, lock: bool = False) -> Case | None:
    """A case by id; ``lock`` takes its row (PostgreSQL) so two staff presses take turns."""
    statement = select(Case).where(col(Case.id) == case_id)
    if lock:
        statement = statement.with_for_update()
    return session.exec(statement).first()


def unresolved(session: Session, *, limit: int = 50) -> list[Case]:
    """Cases not yet resolved, oldest first (``/open``)."""
    return list(
        session.exec(
            select(Case)
            .where(col(Case.status) != CaseStatus.RESOLVED.value)
            .order_by(col(Case.opened_at), col(Case.id))
            .limit(limit)
        ).all()
    )


def awaiting_customer(session: Session, customer_ids: list[int]) -> Case | None:
    """The newest unresolved case whose customer the shop wrote to, for any of these customers."""
    if not customer_ids:
        return None
    return session.exec(
        select(Case)
        .where(col(Case.customer_id).in_(customer_ids))
        .where(col(Case.awaiting_customer).is_(True))
        .where(col(Case.status) != CaseStatus.RESOLVED.value)
        .order_by(col(Case.id).desc())
    ).first()


def stale_cards(session: Session, *, limit: int = 100) -> list[Case]:
    """Cases whose card changed while its message was on its way (the sweep edits them)."""
    return list(session.exec(select(Case).where(col(Case.card_stale).is_(True)).limit(limit)).all())


@dataclass(frozen=True)
class CustomerValue:
    """What a card says about the customer's worth: purchases, the trailing year's revenue, Pareto."""

    purchases: int
    revenue: Decimal
    """Revenue of the last 12 months."""
    top_customers: bool
    """Among the shop's top 20 % of customers by that revenue."""
    previous_scores: list[int]
    """NPS scores of their earlier surveys, newest first."""


TOP_SHARE = Decimal("0.2")
"""The Pareto share: 80 % of revenue comes from 20 % of customers (the seed texts)."""


def customer_value(
    session: Session, *, customer_id: int, delivery_id: int | None, now: datetime
) -> CustomerValue:
    """Purchases, 12-month revenue, whether that puts them in the top 20 %, and their earlier scores."""
    since = now - REVENUE_WINDOW
    group = group_of(session)
    figures = case_group.figures_of(session, group, customer_id, since=since) if group is not None else None
    if figures is not None:
        excluded = delivery_id if delivery_id is not None else -1
        scores = [score for scored, score in figures.scores if scored != excluded][
            : case_group.PREVIOUS_SCORES
        ]
        return _value(session, since, figures.purchases, figures.revenue, scores)
    purchases = session.exec(
        select(func.count()).select_from(Purchase).where(col(Purchase.customer_id) == customer_id)
    ).one()
    revenue = Decimal(
        session.exec(
            select(func.coalesce(func.sum(Purchase.amount), 0))
            .where(col(Purchase.customer_id) == customer_id)
            .where(col(Purchase.purchased_at) >= since)
        ).one()
        or 0
    )
    previous = session.exec(
        select(SurveyDelivery.nps_score)
        .where(col(SurveyDelivery.customer_id) == customer_id)
        .where(col(SurveyDelivery.nps_score).is_not(None))
        .where(col(SurveyDelivery.id) != (delivery_id if delivery_id is not None else -1))
        .order_by(col(SurveyDelivery.id).desc())
        .limit(case_group.PREVIOUS_SCORES)
    ).all()
    return _value(
        session, since, int(purchases), revenue, [int(score) for score in previous if score is not None]
    )


def _value(
    session: Session, since: datetime, purchases: int, revenue: Decimal, previous_scores: list[int]
) -> CustomerValue:
    ranking = _revenue_ranking(session, since)
    at_least = len(ranking) - bisect.bisect_left(ranking, revenue)
    return CustomerValue(
        purchases=purchases,
        revenue=revenue,
        top_customers=in_top_share(at_least=at_least, paying=len(ranking), revenue=revenue),
        previous_scores=previous_scores,
    )


_RANKING_KEY = "kundenpuls.revenue_ranking"
RANKING_REUSED_FOR = timedelta(minutes=10)
"""How long one reading of the revenue ranking serves the cards rendered on a database connection."""


def _revenue_ranking(session: Session, since: datetime) -> list[Decimal]:
    """Every paying customer's revenue since ``since``, ascending; read at most every ten minutes.

    The ranking is one pass over the year's purchases, grouped by customer: cheap for a small shop, a
    scan of tens of thousands of rows for a big one, and a burst of critics renders a card for each of
    them. The Pareto mark on a card does not move with one purchase, so one reading serves every card
    rendered on the same database connection for ten minutes (and for the rest of that day's window).
    """
    cache = session.connection().info
    cached = cache.get(_RANKING_KEY)
    read_at = utcnow()
    if (
        isinstance(cached, tuple)
        and cached[0] == since.date()
        and timedelta(0) <= read_at - cached[1] < RANKING_REUSED_FOR
    ):
        ranking: list[Decimal] = cached[2]
        return ranking
    revenue = func.sum(Purchase.amount)
    with session.no_autoflush:  # purchases are not what an update group changes
        rows = session.exec(
            select(revenue)
            .where(col(Purchase.purchased_at) >= since)
            .group_by(col(Purchase.customer_id))
            .having(revenue > 0)
        ).all()
    ranking = sorted(Decimal(value) for value in rows if value is not None)
    cache[_RANKING_KEY] = (since.date(), read_at, ranking)
    return ranking


def in_top_share(*, at_least: int, paying: int, revenue: Decimal, share: Decimal = TOP_SHARE) -> bool:
    """Whether a customer is among the top ``share`` of the ``paying`` customers by revenue.

    ``at_least`` counts the customers with as much revenue or more, themselves included, so customers
    who all spent the same are not all "top": nobody stands out. At least one customer counts as the
    top, so a shop with four customers still has one.
    """
    if revenue <= 0 or paying <= 0:
        return False
    top = max(1, int((Decimal(paying) * share).to_integral_value(rounding="ROUND_CEILING")))
    return at_least <= top


def _id(value: int | None) -> int:
    if value is None:
        raise RuntimeError("case without id")
    return value
