"""The weekly summary's text: what a manager reads, in German and English, from given figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from surveys.loader import load_builtin_survey
from surveys.nps_stats import NpsCounts
from surveys.report_figures import (
    CaseFigures,
    CriticComment,
    OpenCase,
    ReasonCount,
    ReportFigures,
    RetentionFigures,
    SurveyCounts,
)
from surveys.summary_text import money, number, percent, shortened, summary_text
from surveys.texts import load_catalogue
from tests.report_shop import BERLIN, IN_WEEK, NOW, WEEK

SURVEYS = {"post_purchase": load_builtin_survey()}


def _figures(**changes: object) -> ReportFigures:
    values: dict[str, object] = {
        "period": WEEK,
        "as_of": WEEK.end,
        "nps": NpsCounts(50, 30, 20),
        "previous_nps": NpsCounts(40, 30, 30),
        "surveys": SurveyCounts(sent=140, delivered=135, answered=100, reminded=20, skipped={"cooldown": 12}),
        "rating_average": None,
        "rating_count": 0,
        "reasons": (
            ReasonCount("post_purchase", "reason", "price", 8),
            ReasonCount("post_purchase", "reason", "x", 1),
        ),
        "comments": (CriticComment("Viel zu <b>teuer</b> & kaputt", -0.8, IN_WEEK),),
        "cases": CaseFigures(
            opened=20,
            resolved=15,
            still_open=6,
            oldest_open=(OpenCase(12, WEEK.end - timedelta(days=9), False),),
            median_time_to_resolve=timedelta(hours=5),
            recovery_answered=10,
            recovered=8,
        ),
        "retention": RetentionFigures(
            customers=1000,
            repeat_customers=380,
            revenue=Decimal("100000"),
            revenue_at_risk=Decimal("12300.5"),
            customers_at_risk=410,
            top_customers=200,
            critics_among_top=7,
            revenue_lost=Decimal("25000"),
            customers_lost=90,
        ),
        "trend": (),
    }
    values.update(changes)
    return ReportFigures(**values)  # type: ignore[arg-type]


class TestSummaryText:
    def test_the_german_summary_has_every_section_with_german_numbers(self) -> None:
        text = summary_text(_figures(), load_catalogue(), "de", SURVEYS)
        assert text.startswith("<b>Kundenpuls · 30.11.2026–06.12.2026</b>")
        assert "NPS <b>+30</b> ±15 aus 100 Antworten" in text
        assert "→ +20 gegenüber dem Zeitraum davor (nicht signifikant)" in text  # no arrow for chance
        assert "50 Promotoren · 30 Passive · 20 Kritiker" in text
        assert "Antwortquote 74 %" in text
        assert "Preis 8, x 1" in text  # an option the survey file no longer has shows its id
        assert "„Viel zu &lt;b&gt;teuer&lt;/b&gt; &amp; kaputt“" in text  # escaped by the catalogue
        assert "#12 seit 9,0 Tagen" in text
        assert "Median bis zur Lösung: 5,0 Std." in text
        assert "80 % von 10 Antworten" in text
        assert "38 % der 1.000 Kunden kauften erneut" in text
        assert "Umsatz in Gefahr: <b>12.300,50 €</b> von 410" in text
        assert "7 von 200" in text
        assert "25.000,00 € (90 Kunden)" in text

    def test_the_english_summary_says_the_same_in_english(self) -> None:
        text = summary_text(_figures(), load_catalogue(), "en", SURVEYS)
        assert text.startswith("<b>Kundenpuls · 2026-11-30 – 2026-12-06</b>")
        assert "NPS <b>+30</b> ±15 from 100 responses" in text
        assert "response rate 74%" in text
        assert "Price 8" in text
        assert "Revenue at risk: <b>€12,300.50</b>" in text

    def test_a_week_without_responses_is_one_line(self) -> None:
        text = summary_text(_figures(nps=NpsCounts(0, 0, 0)), load_catalogue(), "en", SURVEYS)
        assert text.splitlines() == [
            "<b>Kundenpuls · 2026-11-30 – 2026-12-06</b>",
            "No responses in this period.",
        ]

    def test_a_late_summary_says_when_it_was_due(self) -> None:
        due = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
        text = summary_text(_figures(), load_catalogue(), "de", SURVEYS, late_for=due)
        assert "geplant war 07.12.2026 09:00" in text

    def test_a_significant_drop_points_down_and_says_so(self) -> None:
        figures = _figures(nps=NpsCounts(200, 300, 500), previous_nps=NpsCounts(500, 300, 200))
        text = summary_text(figures, load_catalogue(), "en", SURVEYS)
        assert "↓ -60 against the period before (significant)" in text

    def test_no_comparison_when_the_week_before_had_no_responses(self) -> None:
        text = summary_text(_figures(previous_nps=NpsCounts(0, 0, 0)), load_catalogue(), "en", SURVEYS)
        assert "No comparison with the period before" in text

    def test_one_response_has_no_margin_and_is_marked_rough(self) -> None:
        text = summary_text(_figures(nps=NpsCounts(1, 0, 0)), load_catalogue(), "en", SURVEYS)
        assert "NPS <b>+100</b> from 1 response (few responses: a rough guide only)" in text


@pytest.mark.parametrize(
    ("value", "lang", "expected"),
    [(12300, "de", "12.300"), (12300, "en", "12,300"), (7, "de", "7")],
)
def test_numbers_use_the_languages_thousands_separator(value: int, lang: str, expected: str) -> None:
    assert number(value, lang) == expected  # type: ignore[arg-type]


def test_money_and_percent_follow_the_language() -> None:
    assert money(Decimal("1234.5"), "EUR", "de") == "1.234,50 €"
    assert money(Decimal("1234.5"), "EUR", "en") == "€1,234.50"
    assert money(Decimal("3"), "SEK", "en") == "3.00 SEK"
    assert (percent(0.745, "de"), percent(0.745, "en"), percent(None, "en")) == ("74 %", "74%", "–")


def test_long_comments_are_cut_at_a_word() -> None:
    text = "sehr " * 40
    cut = shortened(text, 30)
    assert len(cut) <= 30 and cut.endswith("…") and not cut.endswith(" …")
    assert shortened("kurz\nund gut") == "kurz und gut"


def test_the_fixture_week_is_the_one_before_now() -> None:
    assert WEEK.end <= NOW and WEEK.zone == BERLIN
