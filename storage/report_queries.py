"""The figures of a report, counted by the database: aggregates over indexed ranges, never rows loaded
into Python to be counted (1,000,000 answers must not cross the connection to give one NPS).

Every function takes the period as a half-open UTC range ``[start, end)``; which days a report covers is
decided in surveys/report_period.py, and what the figures mean is documented in surveys/report_figures.py.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, func, select

from storage.models import (
    Answer,
    Case,
    CaseStatus,
    ContactEvent,
    ContactOutcome,
    Customer,
    DeliveryStatus,
    OutboxMessage,
    OutboxStatus,
    Purchase,
    SurveyDelivery,
    TelegramUser,
)
from storage.outbox import KIND_QUESTION
from surveys.contact_rules import ContactPolicy
from surveys.nps import NpsCategory
from surveys.nps_stats import NpsCounts
from surveys.report_figures import (
    CaseFigures,
    CriticComment,
    OpenCase,
    ReasonCount,
    ReportFigures,
    RetentionFigures,
    SurveyCounts,
    WeekNps,
)
from surveys.report_period import ReportPeriod

YEAR = datetime.timedelta(days=365)
TOP_SHARE = 0.2
"""The top 20 % of customers by revenue (Pareto)."""
SURVEY_CASE_KINDS = ("critic", "negative_comment")
"""Cases opened by an answer (handlers/cases.py); a check-in question is a question, not a complaint."""
_REASONS = 5
_COMMENTS = 3
_OLDEST_OPEN = 5
_HELD = (OutboxStatus.BLOCKED.value, OutboxStatus.AWAITING_CONTACT.value)


def report(
    session: Session,
    period: ReportPeriod,
    *,
    now: datetime.datetime,
    policy: ContactPolicy,
    trend_weeks: Sequence[ReportPeriod] = (),
) -> ReportFigures:
    """All figures of one report; retention is as of ``now`` (who is a critic or silent today)."""
    rating_average, rating_count = rating(session, period.start, period.end)
    return ReportFigures(
        period=period,
        as_of=now,
        nps=nps_counts(session, period.start, period.end),
        previous_nps=nps_counts(session, period.previous().start, period.previous().end),
        surveys=survey_counts(session, period.start, period.end),
        rating_average=rating_average,
        rating_count=rating_count,
        reasons=critic_reasons(session, period.start, period.end),
        comments=critic_comments(session, period.start, period.end),
        cases=case_figures(session, period.start, period.end, now=now),
        retention=retention(session, now=now, policy=policy),
        trend=nps_trend(session, trend_weeks),
    )


def _in(column: Any, start: datetime.datetime, end: datetime.datetime) -> sa.ColumnElement[bool]:
    return sa.and_(column >= start, column < end)


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    """COUNT of the rows meeting ``condition`` (portable: SUM over a CASE, 0 for no rows)."""
    return func.coalesce(func.sum(sa.case((condition, 1), else_=0)), 0)


def _nps_answers(start: datetime.datetime, end: datetime.datetime) -> list[sa.ColumnElement[bool]]:
    return [
        col(Answer.question_type) == "nps",
        col(Answer.skipped).is_(False),
        col(Answer.nps_category).is_not(None),
        _in(col(Answer.created_at), start, end),
    ]


def nps_counts(session: Session, start: datetime.datetime, end: datetime.datetime) -> NpsCounts:
    """Promoters, passives and critics among the NPS answers given in ``[start, end)``."""
    category = col(Answer.nps_category)
    row = session.exec(
        select(
            _count_if(category == NpsCategory.PROMOTER.value),
            _count_if(category == NpsCategory.PASSIVE.value),
            _count_if(category == NpsCategory.CRITIC.value),
        ).where(*_nps_answers(start, end))
    ).one()
    return NpsCounts(promoters=int(row[0]), passives=int(row[1]), critics=int(row[2]))


def nps_trend(session: Session, weeks: Sequence[ReportPeriod]) -> tuple[WeekNps, ...]:
    """The NPS counts of consecutive weeks in one pass over their answers (a CASE puts each in its week:
    the weeks' edges are local midnights, which only Python knows across DST)."""
    if not weeks:
        return ()
    bucket = sa.case(
        *((col(Answer.created_at) < week.end, index) for index, week in enumerate(weeks)),
        else_=len(weeks),
    ).label("week")
    category = col(Answer.nps_category)
    rows = session.exec(
        select(
            bucket,
            _count_if(category == NpsCategory.PROMOTER.value),
            _count_if(category == NpsCategory.PASSIVE.value),
            _count_if(category == NpsCategory.CRITIC.value),
        )
        .where(*_nps_answers(weeks[0].start, weeks[-1].end))
        .group_by(bucket)
    ).all()
    found = {int(index): NpsCounts(int(p), int(n), int(c)) for index, p, n, c in rows}
    return tuple(WeekNps(week, found.get(index, NpsCounts(0, 0, 0))) for index, week in enumerate(weeks))


def _question_sent() -> sa.Exists:
    return sa.exists().where(
        col(OutboxMessage.delivery_id) == col(SurveyDelivery.id),
        col(OutboxMessage.kind) == KIND_QUESTION,
        col(OutboxMessage.sent_at).is_not(None),
    )


def survey_counts(session: Session, start: datetime.datetime, end: datetime.datetime) -> SurveyCounts:
    """Sent, delivered, answered, reminded, skipped by the rules and undeliverable surveys of the period."""
    answered = sa.exists().where(
        col(Answer.delivery_id) == col(SurveyDelivery.id),
        col(Answer.question_type) == "nps",
        col(Answer.skipped).is_(False),
    )
    held = sa.exists().where(
        col(OutboxMessage.delivery_id) == col(SurveyDelivery.id),
        col(OutboxMessage.kind) == KIND_QUESTION,
        col(OutboxMessage.status).in_(_HELD),
    )
    delivered = _question_sent()
    started = session.exec(
        select(
            func.count(),
            _count_if(delivered),
            _count_if(sa.and_(delivered, answered)),
            _count_if(sa.and_(held, sa.not_(delivered))),
        ).where(_in(col(SurveyDelivery.started_at), start, end))
    ).one()
    reminded = session.exec(
        select(func.count()).where(_in(col(SurveyDelivery.reminded_at), start, end))
    ).one()
    never_reached = session.exec(
        select(func.count()).where(
            col(SurveyDelivery.status) == DeliveryStatus.AWAITING_CONTACT.value,
            col(SurveyDelivery.started_at).is_(None),
            _in(col(SurveyDelivery.due_at), start, end),
        )
    ).one()
    skipped = session.exec(
        select(ContactEvent.reason, func.count())
        .where(
            col(ContactEvent.kind) == "survey",
            col(ContactEvent.outcome) == ContactOutcome.SKIPPED.value,
            _in(col(ContactEvent.at), start, end),
        )
        .group_by(col(ContactEvent.reason))
    ).all()
    return SurveyCounts(
        sent=int(started[0]),
        delivered=int(started[1]),
        answered=int(started[2]),
        reminded=int(reminded),
        skipped={str(reason or "other"): int(count) for reason, count in skipped},
        undeliverable=int(started[3]) + int(never_reached),
    )


def rating(session: Session, start: datetime.datetime, end: datetime.datetime) -> tuple[float | None, int]:
    """The average of the rating answers (1-5) of the period and how many there were."""
    average, count = session.exec(
        select(func.avg(Answer.score), func.count()).where(
            col(Answer.question_type) == "rating",
            col(Answer.skipped).is_(False),
            col(Answer.score).is_not(None),
            _in(col(Answer.created_at), start, end),
        )
    ).one()
    return (float(average) if average is not None else None), int(count)


def _critic_answers(start: datetime.datetime, end: datetime.datetime) -> list[sa.ColumnElement[bool]]:
    return [
        col(SurveyDelivery.nps_category) == NpsCategory.CRITIC.value,
        col(Answer.skipped).is_(False),
        _in(col(Answer.created_at), start, end),
    ]


def critic_reasons(
    session: Session, start: datetime.datetime, end: datetime.datetime
) -> tuple[ReasonCount, ...]:
    """The options critics chose most often in the period, most frequent first."""
    count = func.count().label("n")
    rows = session.exec(
        select(SurveyDelivery.survey_id, Answer.question_id, Answer.choice, count)
        .join(SurveyDelivery, col(SurveyDelivery.id) == col(Answer.delivery_id))
        .where(col(Answer.question_type) == "choice", col(Answer.choice).is_not(None))
        .where(*_critic_answers(start, end))
        .group_by(col(SurveyDelivery.survey_id), col(Answer.question_id), col(Answer.choice))
        .order_by(count.desc(), col(Answer.choice))
        .limit(_REASONS)
    ).all()
    return tuple(ReasonCount(str(s), str(q), str(c), int(n)) for s, q, c, n in rows)


def critic_comments(
    session: Session, start: datetime.datetime, end: datetime.datetime
) -> tuple[CriticComment, ...]:
    """Critics' comments of the period, most negative first (unscored ones last)."""
    rows = session.exec(
        select(Answer.text, Answer.polarity, Answer.created_at)
        .join(SurveyDelivery, col(SurveyDelivery.id) == col(Answer.delivery_id))
        .where(col(Answer.question_type) == "text", col(Answer.text).is_not(None), col(Answer.text) != "")
        .where(*_critic_answers(start, end))
        .order_by(col(Answer.polarity).is_(None), col(Answer.polarity), col(Answer.created_at))
        .limit(_COMMENTS)
    ).all()
    return tuple(CriticComment(str(text), polarity, at) for text, polarity, at in rows)


def _epoch(session: Session, moment: Any) -> sa.ColumnElement[Any]:
    """Seconds since 1970 of a timestamp column, in the database's own dialect."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(moment) - 2440587.5) * 86400.0
    return sa.cast(sa.extract("epoch", moment), sa.Float)


def case_figures(
    session: Session, start: datetime.datetime, end: datetime.datetime, *, now: datetime.datetime
) -> CaseFigures:
    """Cases of unhappy customers: opened and resolved in the period, open now, time to resolve, and the
    recovery answers ("is the problem solved?") given in the period."""
    kinds = col(Case.kind).in_(SURVEY_CASE_KINDS)
    opened = session.exec(select(func.count()).where(kinds, _in(col(Case.opened_at), start, end))).one()
    resolved_in = sa.and_(
        kinds, col(Case.status) == CaseStatus.RESOLVED.value, _in(col(Case.resolved_at), start, end)
    )
    resolved = session.exec(select(func.count()).where(resolved_in)).one()
    open_now = sa.and_(kinds, col(Case.status) != CaseStatus.RESOLVED.value, col(Case.opened_at) <= now)
    still_open = session.exec(select(func.count()).where(open_now)).one()
    oldest = session.exec(
        select(Case.id, Case.opened_at, Case.status)
        .where(open_now)
        .order_by(col(Case.opened_at), col(Case.id))
        .limit(_OLDEST_OPEN)
    ).all()
    recovery = session.exec(
        select(func.count(), _count_if(col(Case.recovered).is_(True))).where(
            kinds, _in(col(Case.recovery_answered_at), start, end)
        )
    ).one()
    return CaseFigures(
        opened=int(opened),
        resolved=int(resolved),
        still_open=int(still_open),
        oldest_open=tuple(
            OpenCase(int(case_id or 0), opened_at, status == CaseStatus.TAKEN.value)
            for case_id, opened_at, status in oldest
        ),
        median_time_to_resolve=_median_seconds(session, resolved_in, int(resolved)),
        recovery_answered=int(recovery[0]),
        recovered=int(recovery[1]),
    )


def _median_seconds(session: Session, which: sa.ColumnElement[bool], count: int) -> datetime.timedelta | None:
    """The median time from opened to resolved of the cases ``which`` selects: the middle one or two of
    them ordered by that time, found by the database (OFFSET), not by loading every case."""
    if count == 0:
        return None
    took = (_epoch(session, col(Case.resolved_at)) - _epoch(session, col(Case.opened_at))).label("took")
    middle = session.exec(
        select(took).where(which).order_by(took).offset((count - 1) // 2).limit(2 - count % 2)
    ).all()
    seconds = sum(float(value) for value in middle) / len(middle)
    return datetime.timedelta(seconds=round(seconds))


def retention(session: Session, *, now: datetime.datetime, policy: ContactPolicy) -> RetentionFigures:
    """Repeat purchases, revenue at risk, critics among the top customers and revenue lost, over the 12
    months up to ``now`` (see RetentionFigures for what each means)."""
    amount = func.coalesce(func.sum(Purchase.amount), 0)
    year = (
        select(
            col(Purchase.customer_id).label("customer_id"),
            amount.label("revenue"),
            func.count().label("purchases"),
        )
        .where(_in(col(Purchase.purchased_at), now - YEAR, now))
        .group_by(col(Purchase.customer_id))
        .subquery("year")
    )
    latest = _latest_nps(now)
    silent = _silent(session, now=now, policy=policy)
    critic = latest.c.nps_category == NpsCategory.CRITIC.value
    # One pass: each customer of the year with their rank by revenue and the number of customers, so the
    # top 20 % are "rank <= ceil(total / 5)" (as integers: 5 * rank <= total + 4). A separate ranking
    # joined back to the latest answers made SQLite loop 33,000 × 474,000 times (723 s at 200,000
    # customers, bench/summary_scale.py).
    scored = (
        sa.select(
            year.c.revenue,
            year.c.purchases,
            sa.or_(critic, silent).label("at_risk"),
            critic.label("critic"),
            func.row_number().over(order_by=(year.c.revenue.desc(), year.c.customer_id)).label("rank"),
            func.count().over().label("total"),
        )
        .select_from(year)
        .join(Customer, col(Customer.id) == year.c.customer_id)
        .outerjoin(TelegramUser, col(TelegramUser.id) == col(Customer.telegram_user_id))
        .outerjoin(latest, latest.c.customer_id == year.c.customer_id)
        .subquery("scored")
    )
    totals = session.execute(
        sa.select(
            func.count(),
            _count_if(scored.c.purchases >= 2),
            func.coalesce(func.sum(scored.c.revenue), 0),
            func.coalesce(func.sum(sa.case((scored.c.at_risk, scored.c.revenue), else_=0)), 0),
            _count_if(scored.c.at_risk),
            _count_if(sa.and_(scored.c.critic, scored.c.rank * 5 <= scored.c.total + 4)),
        )
    ).one()
    customers = int(totals[0])
    top = math.ceil(customers * TOP_SHARE)
    critics_among_top = int(totals[5])
    lost_revenue, lost_customers = _revenue_lost(session, now=now)
    return RetentionFigures(
        customers=customers,
        repeat_customers=int(totals[1]),
        revenue=Decimal(totals[2]),
        revenue_at_risk=Decimal(totals[3]),
        customers_at_risk=int(totals[4]),
        top_customers=top,
        critics_among_top=int(critics_among_top),
        revenue_lost=lost_revenue,
        customers_lost=lost_customers,
        currency=_currency(session, now=now),
    )


def _latest_nps(now: datetime.datetime) -> sa.Subquery:
    """Each customer's latest NPS category (their most recent answer before ``now``)."""
    numbered = (
        select(
            col(SurveyDelivery.customer_id).label("customer_id"),
            col(Answer.nps_category).label("nps_category"),
            func.row_number()
            .over(
                partition_by=col(SurveyDelivery.customer_id),
                order_by=(col(Answer.created_at).desc(), col(Answer.id).desc()),
            )
            .label("n"),
        )
        .join(SurveyDelivery, col(SurveyDelivery.id) == col(Answer.delivery_id))
        .where(
            col(Answer.question_type) == "nps",
            col(Answer.skipped).is_(False),
            col(Answer.nps_category).is_not(None),
            col(Answer.created_at) < now,
        )
        .subquery("numbered")
    )
    return select(numbered.c.customer_id, numbered.c.nps_category).where(numbered.c.n == 1).subquery("latest")


def _silent(session: Session, *, now: datetime.datetime, policy: ContactPolicy) -> sa.ColumnElement[bool]:
    """Whether a customer (joined with their Telegram user) has neither bought nor written for longer than
    their own rhythm: CHECKIN_FACTOR × their median gap, CHECKIN_AFTER for one visit (surveys/silence.py)."""
    bought = col(Customer.last_purchase_at)
    seen = col(TelegramUser.last_seen_at)
    activity = sa.case((sa.and_(seen.is_not(None), seen > bought), seen), else_=bought)
    rhythm = sa.case(
        (
            col(Customer.median_purchase_gap_s).is_(None),
            policy.rhythm(None).silent_after.total_seconds(),
        ),
        else_=col(Customer.median_purchase_gap_s) * policy.checkin_factor,
    )
    return sa.and_(bought.is_not(None), now.timestamp() - _epoch(session, activity) > rhythm)


def _revenue_lost(session: Session, *, now: datetime.datetime) -> tuple[Decimal, int]:
    """What customers who bought in the 12 months before the last 12 and not since spent in those months."""
    earlier = (
        select(col(Purchase.customer_id).label("customer_id"), func.sum(Purchase.amount).label("revenue"))
        .where(_in(col(Purchase.purchased_at), now - 2 * YEAR, now - YEAR))
        .group_by(col(Purchase.customer_id))
        .subquery("earlier")
    )
    returned = sa.exists().where(
        col(Purchase.customer_id) == earlier.c.customer_id,
        _in(col(Purchase.purchased_at), now - YEAR, now),
    )
    revenue, customers = session.exec(
        select(func.coalesce(func.sum(earlier.c.revenue), 0), func.count())
        .select_from(earlier)
        .where(sa.not_(returned))
    ).one()
    return Decimal(revenue), int(customers)


def _currency(session: Session, *, now: datetime.datetime) -> str:
    """The currency of most purchases of the last 12 months (a shop sells in one; EUR without any)."""
    count = func.count().label("n")
    found = session.exec(
        select(Purchase.currency, count)
        .where(_in(col(Purchase.purchased_at), now - YEAR, now))
        .group_by(col(Purchase.currency))
        .order_by(count.desc())
        .limit(1)
    ).first()
    return str(found[0]) if found else "EUR"
