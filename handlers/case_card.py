"""The case card: the one message in the staff chat that shows a case and carries its buttons.

Everything a staff member needs to act without leaving Telegram is on it: who the customer is, their
score and reason, the comment with its sentiment, the order, their earlier scores, purchases and revenue,
and whether they are among the shop's top 20 % (then the card is marked urgent). Texts come from the
catalogue, which escapes every value, so a customer's ``<b>`` or an order id like ``A&B`` shows as typed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from handlers.messages import CALLBACK_SEPARATOR
from handlers.services import Services
from storage.answers import StoredAnswer
from storage.cases import CustomerValue
from storage.models import Case, CaseStatus, Customer, Purchase, SurveyDelivery
from surveys.definition import QuestionType, SurveyDefinition
from surveys.flow import answer_label
from surveys.languages import Language
from surveys.texts import Html

CASE_PREFIX = "case"
ACTIONS = frozenset({"take", "reply", "resolve", "full"})
COMMENT_ON_CARD = 600
"""Characters of a comment the card shows; longer ones are shortened, and "Full comment" sends them all.
The card's other lines take well under 1,000 of Telegram's 4,096 characters."""
FULL_COMMENT_CHUNK = 3500
"""A full comment is sent in parts of at most this many characters (Telegram allows 4,096)."""


def case_callback_data(case_id: int, action: str) -> str:
    """Encode a card button; parsed back by :func:`parse_case_callback` and never trusted."""
    return CALLBACK_SEPARATOR.join((CASE_PREFIX, str(case_id), action))


def parse_case_callback(data: str | None) -> tuple[int, str] | None:
    """Split card button data into (case id, action), or None if it is not a card button."""
    parts = (data or "").split(CALLBACK_SEPARATOR)
    if len(parts) != 3 or parts[0] != CASE_PREFIX or not parts[1].isdigit() or len(parts[1]) > 18:
        return None
    return (int(parts[1]), parts[2]) if parts[2] in ACTIONS else None


@dataclass(frozen=True)
class CardFacts:
    """What a card is made of, loaded by the caller."""

    case: Case
    customer: Customer
    delivery: SurveyDelivery | None
    purchase: Purchase | None
    survey: SurveyDefinition | None
    answers: list[StoredAnswer]
    value: CustomerValue
    last_exchange: str | None = None


def comment_of(facts: CardFacts) -> str | None:
    """The customer's comments (text answers) in survey order, joined; None when there are none."""
    if facts.survey is None:
        return None
    by_question = {answer.question_id: answer for answer in facts.answers}
    texts = [
        answer.text
        for question in facts.survey.questions
        if question.type is QuestionType.TEXT
        and (answer := by_question.get(question.id)) is not None
        and answer.text
    ]
    return "\n".join(texts) if texts else None


def _who(services: Services, customer: Customer, lang: Language) -> tuple[str, str]:
    """The customer's name and the shop's id for them as a card shows them: "erased" once they had their
    data erased (the anonymous row's ``erased-<id>`` means nothing to staff)."""
    if customer.erased_at is not None:
        erased = services.plain_text(lang, "erased_name")
        return erased, erased
    return customer.name or "—", customer.external_id


def card_payload(services: Services, facts: CardFacts, *, timezone: ZoneInfo) -> dict[str, Any]:
    """The card as a ``sendMessage`` payload (text, HTML, buttons); without ``chat_id``."""
    lang = services.settings.default_language
    case = facts.case
    name, customer_id = _who(services, facts.customer, lang)
    lines: list[str] = [
        services.text(
            lang,
            "case_card_head",
            icon=Html("⭐" if facts.value.top_customers else "❓" if case.kind == "question" else "🔴"),
            case_id=_id(case.id),
            name=name,
            customer_id=customer_id,
        )
    ]
    if facts.customer.erased_at is not None:
        lines.append(services.text(lang, "case_card_erased", at=_when(facts.customer.erased_at, timezone)))
    if facts.value.top_customers:
        lines.append(services.text(lang, "case_card_urgent"))
    if case.kind == "question":
        last = facts.customer.last_purchase_at
        when = last.astimezone(timezone).strftime("%d.%m.%Y") if last is not None else "—"
        lines.append(services.text(lang, "case_card_question", last_purchase=when))
    delivery = facts.delivery
    if delivery is not None and delivery.nps_score is not None and delivery.nps_category is not None:
        category = services.text(lang, f"nps_category_{delivery.nps_category}")
        lines.append(services.text(lang, "case_card_score", score=delivery.nps_score, category=category))
    reason = _reason(facts, lang)
    if reason:
        lines.append(services.text(lang, "case_card_reason", reason=reason))
    comment = comment_of(facts)
    shortened = comment is not None and len(comment) > COMMENT_ON_CARD
    if comment is not None:
        sentiment = _comment_sentiment(facts)
        shown = comment[: COMMENT_ON_CARD - 1].rstrip() + "…" if shortened else comment
        label = services.text(lang, f"sentiment_{sentiment}") if sentiment else Html("—")
        lines.append(services.text(lang, "case_card_comment", sentiment=label, comment=shown))
        if shortened:
            lines.append(services.text(lang, "case_card_comment_shortened", length=len(comment)))
    if facts.purchase is not None:
        lines.append(
            services.text(
                lang,
                "case_card_order",
                order_id=customer_id if facts.customer.erased_at is not None else facts.purchase.order_id,
                amount=_money(facts.purchase.amount, facts.purchase.currency),
                date=facts.purchase.purchased_at.astimezone(timezone).strftime("%d.%m.%Y"),
            )
        )
    scores = ", ".join(str(score) for score in facts.value.previous_scores)
    lines.append(
        services.text(
            lang,
            "case_card_history",
            purchases=facts.value.purchases,
            revenue=_money(facts.value.revenue, facts.purchase.currency if facts.purchase else "EUR"),
            scores=scores or services.text(lang, "case_card_no_scores"),
        )
    )
    erased = facts.customer.erased_at is not None
    if not erased or case.resolved_by_name is not None:  # closed by the erasure: its line says so
        lines.append("")
        lines.extend(_status_lines(services, case, lang, timezone, erased=erased))
    if facts.last_exchange:
        lines.append(services.text(lang, "case_card_last", text=Html(facts.last_exchange)))
    return {
        "text": "\n".join(lines),
        "parse_mode": "HTML",
        "reply_markup": {"inline_keyboard": _buttons(services, case, lang, shortened=shortened)},
    }


COMMENT_IN_LIST = 100
"""Characters of a comment an entry of a shared message shows ("Full comment" shows the rest)."""
NAME_IN_LIST = 32
SHARED_MESSAGE_CASES = 10
"""At most this many cases share a message: ten entries stay well within Telegram's 4,096 characters
(an entry shows at most about 300) and 100 buttons (at most four each)."""


def list_entry(services: Services, facts: CardFacts) -> dict[str, Any]:
    """The case's part of a message several cases share: a few lines and its own row of buttons.

    Kept on the case (``Case.card_entry``), so the shared message is rendered again from its cases' rows
    whenever one of them changes.
    """
    lang = services.settings.default_language
    case, delivery = facts.case, facts.delivery
    score = delivery.nps_score if delivery is not None and delivery.nps_score is not None else "—"
    lines = [
        services.text(
            lang,
            "case_list_entry",
            icon=Html("⭐" if facts.value.top_customers else "❓" if case.kind == "question" else "🔴"),
            case_id=_id(case.id),
            name=_shorten(_who(services, facts.customer, lang)[0], NAME_IN_LIST),
            score=score,
            amount=_money(facts.purchase.amount, facts.purchase.currency) if facts.purchase else "—",
        )
    ]
    reason = _reason(facts, lang)
    if reason:
        lines.append(services.text(lang, "case_list_reason", reason=_shorten(reason, NAME_IN_LIST)))
    comment = comment_of(facts)
    if comment is not None:
        sentiment = _comment_sentiment(facts)
        label = services.text(lang, f"sentiment_{sentiment}") if sentiment else Html("—")
        shown = _shorten(comment, COMMENT_IN_LIST)
        lines.append(services.text(lang, "case_list_comment", sentiment=label, comment=shown))
    if facts.customer.erased_at is not None and case.resolved_by_name is None:
        status = services.text(lang, "erased_name")  # closed because the customer's data was erased
    elif case.status == CaseStatus.RESOLVED.value:
        status = services.text(
            lang, "case_list_resolved", name=_shorten(case.resolved_by_name or "—", NAME_IN_LIST)
        )
    elif case.status == CaseStatus.TAKEN.value:
        status = services.text(
            lang, "case_list_taken", name=_shorten(case.assignee_name or "—", NAME_IN_LIST)
        )
    else:
        status = services.text(lang, "case_list_open")
    lines.append(services.text(lang, "case_list_status", status=status))
    if case.replying_name and case.status != CaseStatus.RESOLVED.value:
        lines.append(
            services.text(lang, "case_list_replying", name=_shorten(case.replying_name, NAME_IN_LIST))
        )
    shortened = comment is not None and len(comment) > COMMENT_IN_LIST
    rows = _buttons(services, case, lang, shortened=shortened)
    buttons = [button for row in rows for button in row]
    if buttons:  # the case's number on its first button says which entry the row belongs to
        buttons[0] = {**buttons[0], "text": f"#{_id(case.id)} {buttons[0]['text']}"}
    return {"text": "\n".join(lines), "buttons": [buttons] if buttons else []}


def list_payload(services: Services, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A message several cases share (``sendMessage`` payload without ``chat_id``), from their entries."""
    lang = services.settings.default_language
    head = services.text(lang, "case_list_head", count=len(entries))
    texts = [str(entry.get("text", "")) for entry in entries]
    keyboard = [row for entry in entries for row in entry.get("buttons", [])]
    return {
        "text": "\n\n".join([head, *texts]),
        "parse_mode": "HTML",
        "reply_markup": {"inline_keyboard": keyboard},
    }


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _status_lines(
    services: Services, case: Case, lang: Language, timezone: ZoneInfo, *, erased: bool = False
) -> list[str]:
    lines: list[str] = []
    if case.status == CaseStatus.RESOLVED.value:
        lines.append(
            services.text(
                lang,
                "case_card_resolved",
                name=case.resolved_by_name or "—",
                at=_when(case.resolved_at, timezone),
            )
        )
        if case.resolution_note:
            lines.append(services.text(lang, "case_card_note", note=case.resolution_note[:COMMENT_ON_CARD]))
        elif not erased:  # no notes about someone whose data was erased (handlers/cases.staff_reply)
            lines.append(services.text(lang, "case_card_note_hint"))
        if case.recovered is not None:
            key = "case_card_recovered_yes" if case.recovered else "case_card_recovered_no"
            lines.append(services.text(lang, key, at=_when(case.recovery_answered_at, timezone)))
        return lines
    if case.status == CaseStatus.TAKEN.value:
        lines.append(
            services.text(
                lang, "case_card_taken", name=case.assignee_name or "—", at=_when(case.taken_at, timezone)
            )
        )
    else:
        lines.append(services.text(lang, "case_card_open"))
    if case.replying_name:
        lines.append(services.text(lang, "case_card_replying", name=case.replying_name))
    return lines


def _buttons(
    services: Services, case: Case, lang: Language, *, shortened: bool
) -> list[list[dict[str, str]]]:
    case_id = _id(case.id)
    row: list[dict[str, str]] = []
    if case.status != CaseStatus.RESOLVED.value:
        if case.status == CaseStatus.OPEN.value:
            row.append(_button(services, lang, "case_button_take", case_id, "take"))
        row.append(_button(services, lang, "case_button_reply", case_id, "reply"))
        row.append(_button(services, lang, "case_button_resolve", case_id, "resolve"))
    rows = [row] if row else []
    if shortened:
        rows.append([_button(services, lang, "case_button_full", case_id, "full")])
    return rows


def _button(services: Services, lang: Language, key: str, case_id: int, action: str) -> dict[str, str]:
    # Button labels are plain text, not HTML; the catalogue's labels contain no markup.
    return {"text": str(services.text(lang, key)), "callback_data": case_callback_data(case_id, action)}


def _reason(facts: CardFacts, lang: Language) -> str | None:
    """The labels of the customer's choice answers after the score (the reason), joined."""
    if facts.survey is None:
        return None
    first = facts.survey.first_question().id
    by_question = {answer.question_id: answer for answer in facts.answers}
    labels = []
    for question in facts.survey.questions:
        answer = by_question.get(question.id)
        if question.id == first or answer is None or question.type is not QuestionType.CHOICE:
            continue
        label = answer_label(question, answer.choice, lang)
        if label:
            labels.append(label)
    return ", ".join(labels) if labels else None


def _comment_sentiment(facts: CardFacts) -> str | None:
    """The sentiment of the most negative comment (a complaint anywhere is what staff must see)."""
    order = {"negative": 0, "neutral": 1, "positive": 2}
    found = [answer.sentiment for answer in facts.answers if answer.text and answer.sentiment in order]
    return min(found, key=lambda label: order[label]) if found else None


def full_comment_messages(services: Services, facts: CardFacts) -> list[str]:
    """The whole comment as one or more staff-chat messages (HTML), each within Telegram's limit."""
    comment = comment_of(facts) or ""
    lang = services.settings.default_language
    parts = [comment[i : i + FULL_COMMENT_CHUNK] for i in range(0, len(comment), FULL_COMMENT_CHUNK)] or [""]
    return [
        services.text(
            lang,
            "case_full_comment",
            case_id=_id(facts.case.id),
            name=_who(services, facts.customer, lang)[0],
            comment=part,
        )
        for part in parts
    ]


def age_text(elapsed: timedelta) -> str:
    """How long ago, as staff read it at a glance: 12 min, 5 h, 3 d."""
    minutes = int(elapsed.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


def _money(amount: Decimal | None, currency: str) -> str:
    if amount is None:
        return "—"
    return f"{amount:,.2f} {currency}".replace(",", " ")


def _when(moment: datetime | None, timezone: ZoneInfo) -> str:
    return moment.astimezone(timezone).strftime("%d.%m. %H:%M") if moment is not None else "—"


def _id(value: int | None) -> int:
    if value is None:
        raise RuntimeError("case without id")
    return value
