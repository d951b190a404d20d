"""The answers export: every answer of the period once, in a CSV that Python's csv module and Excel
read back as written (umlauts, ``;`` and line breaks in a comment, decimal commas); SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from storage.answer_export import answers_between
from surveys.answer_csv import BOM, COLUMNS, PERSONAL_COLUMNS, write_csv
from tests.report_shop import BERLIN, IN_WEEK, WEEK, Shop, with_shop

COMMENT = 'Lieferung kam zu spät; "Qualität" mäßig\nzweite Zeile'


def _shop(shop: Shop) -> None:
    customer = shop.customer(seen=IN_WEEK)
    critic = shop.survey(customer, score=3)
    shop.answer(critic, "reason", "choice", choice="delivery")
    shop.answer(critic, "comment", "text", text=COMMENT, polarity=-0.625)
    shop.survey(customer, score=10)
    shop.survey(customer, score=9, started=WEEK.end)  # the Monday after: not in the export


def _export(engine: Engine, *, personal_data: bool = False, page: int = 2000) -> bytes:
    with Session(engine) as session:
        rows = answers_between(session, WEEK.start, WEEK.end, personal_data=personal_data, page=page)
        return write_csv(rows, BERLIN, personal_data=personal_data)


def _read(data: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))


class TestAnswerExport:
    def test_one_row_per_answer_of_the_period_round_trips_through_csv(self, engine: Engine) -> None:
        with_shop(engine, _shop)
        data = _export(engine)
        assert data.startswith(BOM.encode("utf-8"))
        rows = _read(data)
        assert len(rows) == 4  # critic: score, reason, comment; promoter: score
        assert list(rows[0]) == list(COLUMNS)
        comment = next(row for row in rows if row["question"] == "comment")
        assert comment["text"] == COMMENT
        assert comment["polarity"] == "-0,625"
        assert comment["customer_id"] == "c-1"
        assert [row["score"] for row in rows if row["question"] == "nps"] == ["3", "10"]
        assert rows[0]["answered_at"] == IN_WEEK.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M:%S")

    def test_no_personal_data_beyond_the_customer_id_unless_asked_for(self, engine: Engine) -> None:
        with_shop(engine, _shop)
        plain = _export(engine).decode("utf-8-sig")
        assert "U1" not in plain and "9001" not in plain
        rows = _read(_export(engine, personal_data=True))
        assert list(rows[0])[-2:] == list(PERSONAL_COLUMNS)
        assert {(row["name"], row["telegram_id"]) for row in rows} == {("U1", "9001")}

    def test_pages_together_give_every_answer_once(self, engine: Engine) -> None:
        with_shop(engine, _shop)
        assert _read(_export(engine, page=1)) == _read(_export(engine))

    def test_an_empty_period_is_a_header_only(self, engine: Engine) -> None:
        with Session(engine) as session:
            rows = list(answers_between(session, WEEK.start, WEEK.start + timedelta(days=1)))
        assert rows == []
        assert _read(write_csv(rows, BERLIN)) == []
