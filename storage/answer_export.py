"""The answers of a period, one row each, for the CSV export (/export, ``kundenpuls report --csv``).

Rows come in pages by id (keyset pagination), so an export of a year of answers streams instead of
holding them all; surveys/answer_csv.py turns them into the file.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import sqlalchemy as sa
from sqlmodel import Session, col

from storage.models import Answer, Customer, Purchase, SurveyDelivery, TelegramUser
from surveys.answer_csv import ExportedAnswer

PAGE = 2000


def answers_between(
    session: Session,
    start: datetime.datetime,
    end: datetime.datetime,
    *,
    personal_data: bool = False,
    page: int = PAGE,
) -> Iterator[ExportedAnswer]:
    """Every answer given in ``[start, end)``, oldest first (by id, which follows the answering order)."""
    after = 0
    while True:
        rows = session.execute(
            sa.select(Answer, SurveyDelivery, col(Purchase.order_id), Customer, TelegramUser)
            .join(SurveyDelivery, col(SurveyDelivery.id) == col(Answer.delivery_id))
            .join(Purchase, col(Purchase.id) == col(SurveyDelivery.purchase_id))
            .join(Customer, col(Customer.id) == col(SurveyDelivery.customer_id))
            .outerjoin(TelegramUser, col(TelegramUser.id) == col(Customer.telegram_user_id))
            .where(col(Answer.created_at) >= start, col(Answer.created_at) < end, col(Answer.id) > after)
            .order_by(col(Answer.id))
            .limit(page)
        ).all()
        for answer, delivery, order_id, customer, user in rows:
            yield ExportedAnswer(
                answer_id=int(answer.id or 0),
                answered_at=answer.created_at,
                survey_id=delivery.survey_id,
                delivery_id=int(delivery.id or 0),
                order_id=order_id,
                customer_id=customer.external_id,
                question_id=answer.question_id,
                question_type=answer.question_type,
                score=answer.score,
                nps_category=answer.nps_category,
                choice=answer.choice,
                text=answer.text,
                skipped=answer.skipped,
                sentiment=answer.sentiment,
                polarity=answer.polarity,
                language=delivery.language,
                name=(customer.name or (user.first_name if user else None)) if personal_data else None,
                telegram_id=(user.id if user else None) if personal_data else None,
            )
        if len(rows) < page:
            return
        after = int(rows[-1][0].id or 0)
