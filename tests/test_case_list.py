"""A message that cases of a burst share stays within Telegram's limits and shows what customers typed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from bot.settings import Settings
from handlers import case_card
from handlers.case_card import CardFacts, list_entry, list_payload
from handlers.services import Services
from storage.answers import StoredAnswer
from storage.cases import CustomerValue
from storage.models import Case, Customer, Purchase, SurveyDelivery
from surveys.loader import load_builtin_survey
from surveys.texts import load_catalogue
from tests.fakes.bot_api_server import parse_formatted_text

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _services() -> Services:
    survey = load_builtin_survey()
    settings = Settings(_env_file=None, default_language="de")  # type: ignore[call-arg]
    return Services(settings=settings, surveys={survey.id: survey}, catalogue=load_catalogue())


def _worst_case_facts(services: Services, case_id: int) -> CardFacts:
    """A case with everything as long as the inputs allow: name, order id, reason, a 4,000-character
    comment full of markup and emoji, the case taken by someone with a long name and being replied to."""
    case = Case(id=case_id, customer_id=case_id, delivery_id=case_id, kind="critic", opened_at=NOW)
    case.status, case.assignee_name, case.replying_name = "taken", "<i>" + "M" * 124, "R&D " * 32
    customer = Customer(id=case_id, external_id="c" * 128, name="<b>Kunde</b> & " + "x" * 240)
    delivery = SurveyDelivery(
        id=case_id, purchase_id=case_id, customer_id=case_id, survey_id="post_purchase", due_at=NOW
    )
    delivery.nps_score, delivery.nps_category = 0, "critic"
    purchase = Purchase(
        id=case_id,
        customer_id=case_id,
        order_id="A&B" * 40,
        amount=Decimal("999999999999.99"),
        purchased_at=NOW,
    )
    answers = [
        StoredAnswer("nps", 0, None, None, False),
        StoredAnswer("reason", None, "other", None, False),
        StoredAnswer("comment", None, None, ("<script>&😡 " * 400)[:4000], False, "negative"),
    ]
    value = CustomerValue(
        purchases=999, revenue=Decimal("999999999999.99"), top_customers=True, previous_scores=[]
    )
    survey = services.survey("post_purchase")
    return CardFacts(case, customer, delivery, purchase, survey, answers, value)


def test_ten_cases_of_the_longest_kind_fit_one_message_with_their_buttons() -> None:
    services = _services()
    entries = [
        list_entry(services, _worst_case_facts(services, 1000 + n))
        for n in range(case_card.SHARED_MESSAGE_CASES)
    ]
    payload = list_payload(services, entries)
    visible = parse_formatted_text(payload["text"], "HTML")  # what Telegram counts: entities parsed
    assert len(visible.text.encode("utf-16-le")) // 2 <= 4096  # counted in UTF-16 units, emoji as two
    keyboard = payload["reply_markup"]["inline_keyboard"]
    buttons = [button for row in keyboard for button in row]
    assert len(buttons) <= 100 and all(len(row) <= 8 for row in keyboard)
    assert all(len(button["callback_data"].encode()) <= 64 for button in buttons)
    assert [row[0]["text"].split()[0] for row in keyboard] == [f"#{1000 + n}" for n in range(10)]


def test_an_entry_escapes_what_customers_and_staff_typed() -> None:
    services = _services()
    text = list_entry(services, _worst_case_facts(services, 7))["text"]
    assert "<b>Kunde</b>" not in text and "&lt;b&gt;Kunde&lt;/b&gt; &amp;" in text
    assert "<script>" not in text and "&lt;script&gt;&amp;😡" in text
    assert "<i>" not in text and "R&amp;D" in text
