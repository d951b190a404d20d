"""The answers export as a CSV file that Excel opens correctly in a German shop.

UTF-8 with a byte order mark (without it Excel reads UTF-8 as Windows-1252 and "Qualität" turns into
"QualitÃ¤t"), ``;`` as the delimiter and a decimal comma (what Excel expects where the comma is the decimal
separator, as in German), CRLF line ends (RFC 4180), and every field quoted that needs it (a comment with
a ``;`` or a line break stays one field). Times are the shop's local time.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

BOM = "\ufeff"
DELIMITER = ";"
COLUMNS = (
    "answered_at",
    "survey",
    "survey_delivery",
    "order_id",
    "customer_id",
    "question",
    "question_type",
    "score",
    "nps_category",
    "choice",
    "text",
    "skipped",
    "sentiment",
    "polarity",
    "language",
)
PERSONAL_COLUMNS = ("name", "telegram_id")
"""Only with EXPORT_PERSONAL_DATA=true: otherwise a person is named only by the shop's own customer id."""


@dataclass(frozen=True, slots=True)
class ExportedAnswer:
    """One answer with what identifies its survey; ``name`` and ``telegram_id`` are filled only when
    personal data is exported."""

    answer_id: int
    answered_at: datetime.datetime
    survey_id: str
    delivery_id: int
    order_id: str
    customer_id: str
    question_id: str
    question_type: str
    score: int | None
    nps_category: str | None
    choice: str | None
    text: str | None
    skipped: bool
    sentiment: str | None
    polarity: float | None
    language: str | None
    name: str | None = None
    telegram_id: int | None = None


def _decimal(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}".replace(".", ",")


def _plain(value: object) -> str:
    return "" if value is None else str(value)


def csv_line_values(answer: ExportedAnswer, zone: ZoneInfo, *, personal_data: bool) -> list[str]:
    """One answer's fields in the order of the header."""
    values = [
        answer.answered_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
        answer.survey_id,
        str(answer.delivery_id),
        answer.order_id,
        answer.customer_id,
        answer.question_id,
        answer.question_type,
        _plain(answer.score),
        _plain(answer.nps_category),
        _plain(answer.choice),
        _plain(answer.text),
        "1" if answer.skipped else "0",
        _plain(answer.sentiment),
        _decimal(answer.polarity),
        _plain(answer.language),
    ]
    if personal_data:
        values += [_plain(answer.name), _plain(answer.telegram_id)]
    return values


def write_csv(answers: Iterable[ExportedAnswer], zone: ZoneInfo, *, personal_data: bool = False) -> bytes:
    """The whole file: the byte order mark, a header line, then one line per answer."""
    buffer = io.StringIO(newline="")
    buffer.write(BOM)
    writer = csv.writer(buffer, delimiter=DELIMITER, lineterminator="\r\n")
    writer.writerow(COLUMNS + (PERSONAL_COLUMNS if personal_data else ()))
    for answer in answers:
        writer.writerow(csv_line_values(answer, zone, personal_data=personal_data))
    return buffer.getvalue().encode("utf-8")
