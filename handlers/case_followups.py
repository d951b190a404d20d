"""What the sweep does for cases: escalate the ones nobody acts on, and ask whether the problem was solved.

The due times follow from the case's own timestamps (opened, taken, resolved) and the settings; what was
done is stamped on the case in the same transaction as the messages it queues. So a restart, or a second
process running the same sweep (rows are claimed ``FOR UPDATE SKIP LOCKED``), neither loses nor repeats
an escalation or a recovery question.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from handlers import cases as cases_flow
from handlers.case_card import age_text
from handlers.services import Services
from storage import cases as stored_cases
from storage import outbox
from storage.models import Case, CaseStatus, Customer, SurveyDelivery, TelegramUser
from storage.outbox import KIND_ESCALATION, KIND_RECOVERY, OutboundCall

log = logging.getLogger(__name__)

RECOVERY_PREFIX = "rec"
_BATCH = 100


def recovery_key(case_id: int) -> str:
    """The outbox key of a case's recovery question."""
    return f"case:{case_id}:recovery"


def recovery_callback(case_id: int, answer: str) -> str:
    """Button data of the recovery question; parsed by :func:`parse_recovery_callback`, never trusted."""
    return f"{RECOVERY_PREFIX}:{case_id}:{answer}"


def parse_recovery_callback(data: str | None) -> tuple[int, bool] | None:
    """(case id, solved) from recovery button data, or None."""
    parts = (data or "").split(":")
    if len(parts) != 3 or parts[0] != RECOVERY_PREFIX or not parts[1].isdigit() or len(parts[1]) > 18:
        return None
    return (int(parts[1]), parts[2] == "yes") if parts[2] in ("yes", "no") else None


def run_due(session: Session, services: Services, *, now: datetime) -> int:
    """Escalate and ask what is due now; return how many messages were queued."""
    settings = services.settings
    queued = 0
    untaken = _due(
        session,
        col(Case.opened_at),
        col(Case.status) == CaseStatus.OPEN.value,
        col(Case.escalated_untaken_at).is_(None),
        col(Case.opened_at) <= now - settings.alert_escalate_after,
    )
    for case in untaken:
        queued += _escalate(session, services, case, kind="untaken", since=case.opened_at, now=now)
        case.escalated_untaken_at = now
        session.add(case)
    unresolved = _due(
        session,
        col(Case.taken_at),
        col(Case.status) == CaseStatus.TAKEN.value,
        col(Case.escalated_unresolved_at).is_(None),
        col(Case.taken_at) <= now - settings.alert_resolve_within,
    )
    for case in unresolved:
        queued += _escalate(session, services, case, kind="unresolved", since=case.taken_at or now, now=now)
        case.escalated_unresolved_at = now
        session.add(case)
    recoveries = _due(
        session,
        col(Case.resolved_at),
        col(Case.status) == CaseStatus.RESOLVED.value,
        col(Case.recovery_asked_at).is_(None),
        col(Case.resolved_at) <= now - settings.recovery_check_after,
    )
    for case in recoveries:
        queued += _ask_recovery(session, services, case, now=now)
        case.recovery_asked_at = now
        session.add(case)
    return queued


def _due(session: Session, order: Any, *conditions: object) -> list[Case]:
    """Due cases, oldest first by the moment that made them due: ordered by id, PostgreSQL walked the
    primary key through every case a shop ever had (bench/sweep_scale.py) instead of the status index."""
    return list(
        session.exec(
            select(Case)
            .where(*conditions)  # type: ignore[arg-type]
            .order_by(order, col(Case.id))
            .limit(_BATCH)
            .with_for_update(skip_locked=True)
        ).all()
    )


def _escalate(
    session: Session, services: Services, case: Case, *, kind: str, since: datetime, now: datetime
) -> int:
    settings = services.settings
    if not settings.manager_chat_ids:
        log.warning("case %s is due for escalation (%s), but MANAGER_CHAT_IDS is empty", case.id, kind)
        return 0
    customer = session.get(Customer, case.customer_id)
    delivery = session.get(SurveyDelivery, case.delivery_id) if case.delivery_id is not None else None
    lang = settings.default_language
    score = delivery.nps_score if delivery is not None and delivery.nps_score is not None else "–"
    text = services.text(
        lang,
        f"escalate_{kind}",
        case_id=case.id or 0,
        name=(customer.name if customer else None) or "—",
        score=str(score),
        age=age_text(now - since),
        assignee=case.assignee_name or "—",
    )
    for chat_id in settings.manager_chat_ids:
        outbox.enqueue(
            session,
            OutboundCall(
                f"case:{case.id}:escalate:{kind}:{chat_id}",
                KIND_ESCALATION,
                "sendMessage",
                chat_id,
                {"text": text, "parse_mode": "HTML"},
                case.delivery_id,
            ),
            now=now,
        )
    stored_cases.record_event(session, case, action=f"escalated_{kind}", at=now)
    return len(settings.manager_chat_ids)


def _ask_recovery(session: Session, services: Services, case: Case, *, now: datetime) -> int:
    customer = session.get(Customer, case.customer_id)
    user_id = customer.telegram_user_id if customer is not None else None
    user = session.get(TelegramUser, user_id) if user_id is not None else None
    if customer is None or user is None or user.opted_out_at is not None:
        return 0  # nobody to ask, or they asked us to stop writing
    from handlers.conversation import customer_language

    lang = customer_language(services, customer, user)
    keyboard = [
        [
            {
                "text": str(services.text(lang, "recovery_yes")),
                "callback_data": recovery_callback(case.id or 0, "yes"),
            },
            {
                "text": str(services.text(lang, "recovery_no")),
                "callback_data": recovery_callback(case.id or 0, "no"),
            },
        ]
    ]
    outbox.enqueue(
        session,
        OutboundCall(
            recovery_key(case.id or 0),
            KIND_RECOVERY,
            "sendMessage",
            user.id,
            {
                "text": str(services.text(lang, "recovery_question")),
                "parse_mode": "HTML",
                "reply_markup": {"inline_keyboard": keyboard},
            },
            case.delivery_id,
        ),
        now=now,
    )
    stored_cases.record_event(session, case, action="recovery_asked", at=now)
    return 1


def record_recovery(
    session: Session, services: Services, case: Case, *, solved: bool, user_id: int, now: datetime
) -> str:
    """Store the customer's answer once, show it on the card; return the catalogue key of the thanks."""
    if case.recovered is None:
        case.recovered, case.recovery_answered_at = solved, now
        stored_cases.record_event(
            session,
            case,
            action="recovery_answered",
            at=now,
            actor_id=user_id,
            text="yes" if solved else "no",
        )
        cases_flow.show_card(session, services, case, now=now)
    return "recovery_thanks_yes" if case.recovered else "recovery_thanks_no"
