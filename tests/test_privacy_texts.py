"""/mydata's summary and /forget's button data, without a bot: what fits one message, what is accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bot.settings import Settings
from handlers.privacy import forget_callback, parse_forget_callback, summary
from handlers.services import Services
from storage.models import Answer, Customer, Purchase, SurveyDelivery, TelegramUser
from storage.personal_data import CustomerRecord, PersonalData, SurveyRecord
from surveys.loader import POST_PURCHASE_SURVEY_ID, load_builtin_survey
from surveys.texts import load_catalogue
from tests.fakes.bot_api_spec import parse_formatted_text

NOW = datetime(2026, 12, 8, 12, tzinfo=UTC)


def _services() -> Services:
    survey = load_builtin_survey(POST_PURCHASE_SURVEY_ID)
    return Services(
        settings=Settings(_env_file=None), surveys={survey.id: survey}, catalogue=load_catalogue()
    )


def _record(number: int, purchases: int) -> CustomerRecord:
    customer = Customer(id=number, external_id=f"C-{number}", name="Zoë <Zett> & Co", language="de")
    bought = [
        Purchase(
            id=number * 1000 + n,
            order_id=f"O-{number}-{n}",
            customer_id=number,
            amount=Decimal("12.50"),
            purchased_at=NOW - timedelta(days=n),
            link_token=f"t{number}-{n}",
        )
        for n in range(purchases)
    ]
    surveys = [
        SurveyRecord(
            SurveyDelivery(
                id=p.id, purchase_id=p.id or 0, customer_id=number, survey_id=POST_PURCHASE_SURVEY_ID
            ),
            p,
            [
                Answer(delivery_id=p.id or 0, question_id="nps", question_type="nps", score=3),
                Answer(
                    delivery_id=p.id or 0, question_id="reason", question_type="choice", choice="delivery"
                ),
                Answer(
                    delivery_id=p.id or 0,
                    question_id="comment",
                    question_type="text",
                    text="<b>lang</b> " * 90,
                ),
            ],
        )
        for p in bought
    ]
    return CustomerRecord(customer, bought, surveys, [], [], [])


class TestSummary:
    def test_a_long_history_fits_one_message_and_stays_valid_html(self) -> None:
        """Forty purchases and surveys with long comments: the summary lists a few and says how many more."""
        data = PersonalData(
            user=TelegramUser(id=42, first_name="Zoë", language_code="de"),
            customers=[_record(1, 40)],
            messages=[],
        )
        text = summary(_services(), data, lang="de", days=30, now=NOW)
        assert len(text) <= 4000
        parsed = parse_formatted_text(text, "HTML")
        assert not parsed.errors, parsed.errors
        assert "… und 35 weitere (in der Datei)" in parsed.text
        assert (
            "Zoë <Zett> & Co" in parsed.text
            and "Bewertung 3/10" in parsed.text
            and "Lieferung" in parsed.text
        )

    def test_many_customer_ids_are_cut_at_whole_lines(self) -> None:
        """An account with very many customer ids still gets one valid message."""
        data = PersonalData(user=None, customers=[_record(n, 3) for n in range(1, 60)], messages=[])
        text = summary(_services(), data, lang="en", days=30, now=NOW)
        assert len(text) <= 4000 and text.endswith("…")
        assert not parse_formatted_text(text, "HTML").errors


class TestForgetButtons:
    def test_its_own_data_round_trips(self) -> None:
        """What the question's buttons carry is read back as it was meant."""
        assert parse_forget_callback(forget_callback(123, erase=True)) == (123, True)
        assert parse_forget_callback(forget_callback(123, erase=False)) == (123, False)

    @pytest.mark.parametrize(
        "data",
        [
            None,
            "",
            "forget",
            "forget:1",
            "forget:x:yes",
            "forget:1:maybe",
            "forget:1:yes:2",
            "forget:-1:yes",
            "forget:" + "1" * 19 + ":yes",
            "a:1:yes",
        ],
    )
    def test_anything_else_is_refused(self, data: str | None) -> None:
        """Garbage and forged shapes are not a /forget answer."""
        assert parse_forget_callback(data) is None
