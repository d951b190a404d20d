"""The weekly summary (and /report) as a Telegram message a manager reads in thirty seconds.

Figures come from surveys/report_figures.py; the words from the text catalogue, which escapes every value
it puts in (a critic's comment with ``<b>`` shows as typed). Numbers are formatted here for the manager's
language: German writes 12.300,50 € and 74 %, English €12,300.50 and 74%.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from decimal import Decimal

from surveys.definition import SurveyDefinition
from surveys.languages import Language
from surveys.report_chart import ChartLabels
from surveys.report_figures import ReasonCount, ReportFigures
from surveys.texts import Catalogue, Html

QUOTE_LENGTH = 120
"""A comment is shortened to this many characters: the summary quotes, the case card has it all."""
_CURRENCY_SIGNS = {"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF"}


def reason_label(reason: ReasonCount, surveys: Mapping[str, SurveyDefinition], lang: Language) -> str:
    """The option's label from its survey file in ``lang``; its id when the survey or option is gone (the
    file changed since the answer was given)."""
    survey = surveys.get(reason.survey_id)
    if survey is None:
        return reason.option_id
    try:
        question = survey.question(reason.question_id)
    except KeyError:
        return reason.option_id
    option = question.option(reason.option_id)
    return option.label.get(lang) if option is not None else reason.option_id


def number(value: int, lang: Language) -> str:
    """A whole number with thousands separators: 12.300 (de), 12,300 (en)."""
    text = f"{value:,}"
    return text.replace(",", ".") if lang == "de" else text


def decimal(value: float, lang: Language, digits: int = 1) -> str:
    """A number with ``digits`` decimals: 4,5 (de), 4.5 (en)."""
    text = f"{value:,.{digits}f}"
    return _german(text) if lang == "de" else text


def money(amount: Decimal, currency: str, lang: Language) -> str:
    """An amount with its currency: 12.300,50 € (de), €12,300.50 (en); other currencies by their code."""
    text = f"{amount:,.2f}"
    sign = _CURRENCY_SIGNS.get(currency, currency)
    if lang == "de":
        return f"{_german(text)} {sign}"
    return f"{sign}{text}" if len(sign) == 1 else f"{text} {sign}"


def percent(share: float | None, lang: Language) -> str:
    """A share as a whole percentage: 74 % (de), 74% (en); – for none."""
    if share is None:
        return "–"
    value = round(100 * share)
    return f"{value} %" if lang == "de" else f"{value}%"


def points(value: float) -> str:
    """NPS points with their sign: +30, -5, 0."""
    rounded = round(value)
    return f"{rounded:+d}" if rounded else "0"


def _german(text: str) -> str:
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def shortened(text: str, length: int = QUOTE_LENGTH) -> str:
    """One line of at most ``length`` characters, cut at a word with an ellipsis."""
    flat = " ".join(text.split())
    if len(flat) <= length:
        return flat
    cut = flat[: length - 1]
    if " " in cut[length // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:") + "…"


def duration(value: datetime.timedelta, catalogue: Catalogue, lang: Language) -> Html:
    """Hours below two days, days from then on."""
    hours = value.total_seconds() / 3600
    if hours < 48:
        return catalogue.text(lang, "summary_hours", value=decimal(hours, lang))
    return catalogue.text(lang, "summary_days", value=decimal(hours / 24, lang))


def chart_labels(catalogue: Catalogue, lang: Language) -> ChartLabels:
    """The chart's words in the manager's language (plain text, the chart is no HTML)."""
    return ChartLabels(
        title=catalogue.plain(lang, "chart_title"),
        nps=catalogue.plain(lang, "chart_nps"),
        margin=catalogue.plain(lang, "chart_margin"),
        promoters=catalogue.plain(lang, "chart_promoters"),
        passives=catalogue.plain(lang, "chart_passives"),
        critics=catalogue.plain(lang, "chart_critics"),
        mix=catalogue.plain(lang, "chart_mix"),
        no_answers=catalogue.plain(lang, "chart_no_answers"),
    )


def summary_text(
    figures: ReportFigures,
    catalogue: Catalogue,
    lang: Language,
    surveys: Mapping[str, SurveyDefinition],
    *,
    late_for: datetime.datetime | None = None,
) -> Html:
    """The message: the title, then (with responses) NPS and its change, the mix, the surveys, the
    critics' reasons and words, the cases and retention; a period without responses is one line.
    ``late_for``: when the summary was due (it is being sent after downtime)."""
    period = figures.period
    label = f"{period.first_day:%d.%m.%Y}–{period.last_day:%d.%m.%Y}" if lang == "de" else period.label
    lines: list[str] = [catalogue.text(lang, "summary_title", period=label)]
    if late_for is not None:
        planned = late_for.astimezone(period.zone).strftime(
            "%d.%m.%Y %H:%M" if lang == "de" else "%Y-%m-%d %H:%M"
        )
        lines.append(catalogue.text(lang, "summary_late", planned=planned))
    if not figures.has_responses:
        lines.append(catalogue.text(lang, "summary_no_responses"))
        return Html("\n".join(lines))
    lines += _nps_lines(figures, catalogue, lang)
    lines.append("")
    lines += _survey_lines(figures, catalogue, lang, surveys)
    lines.append("")
    lines += _case_lines(figures, catalogue, lang)
    lines.append("")
    lines += _retention_lines(figures, catalogue, lang)
    return Html("\n".join(lines))


def _nps_lines(figures: ReportFigures, catalogue: Catalogue, lang: Language) -> list[Html]:
    nps, change = figures.nps, figures.change
    score = points(nps.nps or 0.0)
    if nps.margin is None:
        headline = catalogue.text(lang, "summary_nps_no_margin", nps=score, responses=number(nps.total, lang))
    else:
        headline = catalogue.text(
            lang,
            "summary_nps",
            nps=score,
            margin=decimal(nps.margin, lang, 0),
            responses=number(nps.total, lang),
        )
    if nps.few_responses:
        headline = Html(f"{headline} {catalogue.text(lang, 'summary_few_responses')}")
    lines = [headline]
    if change.change is None:
        lines.append(catalogue.text(lang, "summary_no_change"))
    else:
        verdict = catalogue.text(
            lang, "summary_significant" if change.significant else "summary_not_significant"
        )
        lines.append(
            catalogue.text(
                lang, "summary_change", arrow=change.arrow, change=points(change.change), verdict=verdict
            )
        )
    lines.append(
        catalogue.text(
            lang,
            "summary_mix",
            promoters=number(nps.promoters, lang),
            passives=number(nps.passives, lang),
            critics=number(nps.critics, lang),
        )
    )
    return lines


def _survey_lines(
    figures: ReportFigures, catalogue: Catalogue, lang: Language, surveys: Mapping[str, SurveyDefinition]
) -> list[Html]:
    counts = figures.surveys
    lines = [
        catalogue.text(
            lang,
            "summary_surveys",
            sent=number(counts.sent, lang),
            delivered=number(counts.delivered, lang),
            answered=number(counts.answered, lang),
            rate=percent(counts.response_rate, lang),
            reminded=number(counts.reminded, lang),
            skipped=number(counts.skipped_total, lang),
            undeliverable=number(counts.undeliverable, lang),
        )
    ]
    if figures.rating_average is not None and figures.rating_count:
        lines.append(
            catalogue.text(
                lang,
                "summary_rating",
                average=decimal(figures.rating_average, lang),
                count=number(figures.rating_count, lang),
            )
        )
    if figures.reasons:
        reasons = ", ".join(
            f"{reason_label(r, surveys, lang)} {number(r.count, lang)}" for r in figures.reasons
        )
        lines.append(catalogue.text(lang, "summary_reasons", reasons=reasons))
    if figures.comments:
        lines.append(catalogue.text(lang, "summary_comments"))
        lines += [
            catalogue.text(lang, "summary_comment", comment=shortened(c.text)) for c in figures.comments
        ]
    return lines


def _case_lines(figures: ReportFigures, catalogue: Catalogue, lang: Language) -> list[Html]:
    cases = figures.cases
    lines = [
        catalogue.text(
            lang,
            "summary_cases",
            opened=number(cases.opened, lang),
            resolved=number(cases.resolved, lang),
            still_open=number(cases.still_open, lang),
        )
    ]
    if cases.oldest_open:
        ages = ", ".join(
            catalogue.text(
                lang,
                "summary_case_age",
                case=case.case_id,
                age=duration(max(figures.as_of - case.opened_at, datetime.timedelta(0)), catalogue, lang),
            )
            for case in cases.oldest_open
        )
        lines.append(catalogue.text(lang, "summary_cases_oldest", cases=Html(ages)))
    if cases.median_time_to_resolve is not None:
        lines.append(
            catalogue.text(
                lang,
                "summary_cases_resolve",
                duration=duration(cases.median_time_to_resolve, catalogue, lang),
            )
        )
    if cases.recovery_answered:
        lines.append(
            catalogue.text(
                lang,
                "summary_cases_recovery",
                rate=percent(cases.recovery_rate, lang),
                count=number(cases.recovery_answered, lang),
            )
        )
    return lines


def _retention_lines(figures: ReportFigures, catalogue: Catalogue, lang: Language) -> list[Html]:
    retention = figures.retention
    currency = retention.currency
    return [
        catalogue.text(
            lang,
            "summary_retention",
            share=percent(retention.repeat_share, lang),
            customers=number(retention.customers, lang),
        ),
        catalogue.text(
            lang,
            "summary_at_risk",
            amount=money(retention.revenue_at_risk, currency, lang),
            count=number(retention.customers_at_risk, lang),
        ),
        catalogue.text(
            lang,
            "summary_top_critics",
            critics=number(retention.critics_among_top, lang),
            top=number(retention.top_customers, lang),
        ),
        catalogue.text(
            lang,
            "summary_lost",
            amount=money(retention.revenue_lost, currency, lang),
            count=number(retention.customers_lost, lang),
        ),
    ]
