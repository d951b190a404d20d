"""``kundenpuls import``: spreadsheet exports of purchases, on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from bot.csv_import import (
    COLUMNS,
    CsvFileError,
    ImportSummary,
    RejectedRow,
    import_purchases,
    render_summary,
)
from bot.settings import Settings
from storage.models import Customer, Purchase, SurveyDelivery
from surveys.purchase_report import PurchaseReport

DELAY = timedelta(days=2)


@pytest.fixture
def settings(engine: Engine) -> Settings:
    """Settings independent of a developer's .env: Berlin time, two days' delay."""
    return Settings(
        _env_file=None,
        telegram_bot_token="123:abc",
        ingest_api_key="secret-key",
        database_url=engine.url.render_as_string(hide_password=False),
        survey_delay=DELAY,
        timezone=ZoneInfo("Europe/Berlin"),
    )


def quiet() -> Console:
    """A console that writes into memory, so progress bars stay out of the test output."""
    return Console(file=io.StringIO(), width=200)


def write(tmp_path: Path, text: str, *, encoding: str = "utf-8", name: str = "purchases.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def run(path: Path, engine: Engine, settings: Settings) -> ImportSummary:
    return import_purchases(path, engine=engine, settings=settings, console=quiet())


def count(engine: Engine, table: type[Any]) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(table)).one()


def stored(engine: Engine, order_id: str) -> tuple[Purchase, Customer, SurveyDelivery]:
    with Session(engine) as session:
        purchase = session.exec(select(Purchase).where(Purchase.order_id == order_id)).one()
        customer = session.exec(select(Customer).where(Customer.id == purchase.customer_id)).one()
        delivery = session.exec(select(SurveyDelivery).where(SurveyDelivery.purchase_id == purchase.id)).one()
        return purchase, customer, delivery


class TestFormats:
    def test_csv_columns_are_the_api_fields(self) -> None:
        """The CSV header uses exactly the API's field names, so one document describes both."""
        assert set(COLUMNS) == set(PurchaseReport.model_fields)

    def test_comma_file_imports_every_field(self, tmp_path: Path, engine: Engine, settings: Settings) -> None:
        """A comma-separated file with all columns stores customer, purchase and a scheduled survey."""
        path = write(
            tmp_path,
            "order_id,customer_id,telegram_user_id,name,language,amount,currency,purchased_at\n"
            "A-1,c-1,123456789,Anna Müller,de,49.90,eur,2026-11-20T10:00:00+00:00\n"
            "A-2,c-2,,Bob,en,,,\n",
        )
        summary = run(path, engine, settings)
        assert (summary.imported, summary.duplicates, summary.rejected) == (2, 0, [])
        purchase, customer, delivery = stored(engine, "A-1")
        assert (customer.external_id, customer.name, customer.language) == ("c-1", "Anna Müller", "de")
        assert customer.telegram_user_id == 123456789
        assert (purchase.amount, purchase.currency, purchase.source) == (Decimal("49.90"), "EUR", "csv")
        assert delivery.due_at == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)

    def test_blank_cells_mean_not_given(self, tmp_path: Path, engine: Engine, settings: Settings) -> None:
        """Empty cells leave optional fields unset and the currency at EUR instead of failing validation."""
        path = write(tmp_path, "order_id,customer_id,name,amount,currency\nA-2,c-2, ,,\n")
        assert run(path, engine, settings).imported == 1
        purchase, customer, _ = stored(engine, "A-2")
        assert (customer.name, purchase.amount, purchase.currency) == (None, None, "EUR")

    def test_semicolon_file_with_german_amounts_and_dates(
        self, tmp_path: Path, engine: Engine, settings: Settings
    ) -> None:
        """A German export (; separated, 1.234,50 amounts, 23.11.2026 14:05 local dates) imports correctly."""
        path = write(
            tmp_path,
            "order_id;customer_id;amount;purchased_at\n"
            "A-1;c-1;12,50;23.11.2026 14:05\n"
            "A-2;c-2;1.234,50;01.07.2026\n",
        )
        summary = run(path, engine, settings)
        assert (summary.imported, summary.rejected) == (2, [])
        first, _, first_delivery = stored(engine, "A-1")
        assert first.amount == Decimal("12.50")
        # 14:05 in Berlin in November is 13:05 UTC.
        assert first.purchased_at == datetime(2026, 11, 23, 13, 5, tzinfo=UTC)
        assert first_delivery.due_at == datetime(2026, 11, 25, 13, 5, tzinfo=UTC)
        second, _, _ = stored(engine, "A-2")
        assert second.amount == Decimal("1234.50")
        assert second.purchased_at == datetime(2026, 6, 30, 22, 0, tzinfo=UTC)

    def test_utf8_bom_from_excel_is_ignored(self, tmp_path: Path, engine: Engine, settings: Settings) -> None:
        """Excel's "CSV UTF-8" starts with a BOM; the first column is still recognised as order_id."""
        path = write(tmp_path, "order_id;customer_id;name\nA-1;c-1;Jörg Übel\n", encoding="utf-8-sig")
        assert path.read_bytes().startswith(b"\xef\xbb\xbf")
        assert run(path, engine, settings).imported == 1
        assert stored(engine, "A-1")[1].name == "Jörg Übel"

    def test_header_names_ignore_case_and_spaces(
        self, tmp_path: Path, engine: Engine, settings: Settings
    ) -> None:
        """Header cells like " Order_ID " match the field names regardless of case and surrounding spaces."""
        path = write(tmp_path, " Order_ID ; CUSTOMER_ID ;Name\nA-1;c-1;Anna\n")
        assert run(path, engine, settings).imported == 1

    def test_quoted_fields_keep_delimiters_and_newlines(
        self, tmp_path: Path, engine: Engine, settings: Settings
    ) -> None:
        """Quoted cells may hold the separator and line breaks; later rows keep their physical line number."""
        path = write(
            tmp_path,
            "order_id,customer_id,name,amount\n"
            'A-1,c-1,"Müller, Anna","12,50"\n'
            'A-2,c-2,"Line one\nline two\nline three",1\n'
            "A-3,c-3,Bad,-1\n",
        )
        summary = run(path, engine, settings)
        assert summary.imported == 2
        assert stored(engine, "A-1")[1].name == "Müller, Anna"
        assert stored(engine, "A-1")[0].amount == Decimal("12.50")
        assert stored(engine, "A-2")[1].name == "Line one\nline two\nline three"
        # A-2 spans lines 3-5, so A-3 is on line 6.
        assert [rejected.line for rejected in summary.rejected] == [6]

    def test_windows_line_endings(self, tmp_path: Path, engine: Engine, settings: Settings) -> None:
        """CRLF line endings, as Excel on Windows writes them, import like LF."""
        path = write(tmp_path, "order_id;customer_id\r\nA-1;c-1\r\nA-2;c-2\r\n")
        assert run(path, engine, settings).imported == 2

    def test_blank_lines_and_empty_rows_are_skipped(
        self, tmp_path: Path, engine: Engine, settings: Settings
    ) -> None:
        """Blank lines and rows of empty cells (spreadsheet leftovers) are neither imported nor rejected."""
        path = write(tmp_path, "order_id;customer_id;name\nA-1;c-1;Anna\n\n;;\n ; ; \n")
        summary = run(path, engine, settings)
        assert (summary.imported, summary.duplicates, summary.rejected, summary.total) == (1, 0, [], 1)


class TestIdempotence:
    def test_duplicate_order_in_the_same_file_is_counted_not_imported(
        self, tmp_path: Path, engine: Engine, settings: Settings
    ) -> None:
        """An order_id repeated inside one file is stored once and the repeat counts as a duplicate."""
        path = write(tmp_path, "order_id,customer_id\nA-1,c-1\nA-2,c-1\nA-1,c-1\n")
        summary = run(path, engine, settings)
        assert (summary.imported, summary.duplicates, summary.total) == (2, 1, 3)
        assert count(engine, SurveyDelivery) == 2
        assert count(engine, Customer) == 1

    def test_importing_the_same_file_twice_adds_nothing(
        self, tmp_path: Path, engine: Engine, settings: Settings
    ) -> None:
        """The second run of a file finds every order known: all duplicates, no new surveys."""
        path = write(tmp_path, "order_id;customer_id\nA-1;c-1\nA-2;c-2\nA-3;c-3\n")
        first = run(path, engine, settings)
        second = run(path, engine, settings)
        assert (first.imported, first.duplicates) == (3, 0)
        assert (second.imported, second.duplicates, second.rejected) == (0, 3, [])
        assert count(engine, SurveyDelivery) == 3

    def test_a_thousand_rows_import_across_batches(
        self, tmp_path: Path, engine: Engine, settings: Settings
    ) -> None:
        """1,000 rows (several commit batches) all arrive, each with its own survey."""
        lines = ["order_id;customer_id;amount"]
        lines += [f"A-{number:04d};c-{number % 97};{number},99" for number in range(1000)]
        path = write(tmp_path, "\n".join(lines) + "\n")
        summary = run(path, engine, settings)
        assert (summary.imported, summary.duplicates, summary.rejected) == (1000, 0, [])
        assert count(engine, SurveyDelivery) == 1000
        assert count(engine, Customer) == 97
        assert stored(engine, "A-0999")[0].amount == Decimal("999.99")


class TestRejectedRows:
    def test_bad_rows_are_rejected_with_line_and_reason_and_the_rest_imported(
        self, tmp_path: Path, engine: Engine, settings: Settings
    ) -> None:
        """Each invalid row is reported with its line and the field at fault; the valid rows still import."""
        path = write(
            tmp_path,
            "order_id;customer_id;language;amount;telegram_user_id\n"  # line 1
            "A-1;c-1;de;10,00;\n"  # 2
            "A-2;c-2;fr;;\n"  # 3: unsupported language
            "A-3;;de;;\n"  # 4: no customer
            "A-4;c-4;de;-5;abc\n"  # 5: negative amount and a non-numeric Telegram id
            "A-5;c-5;de\n"  # 6: too few cells
            "A-6;c-6;en;1;2;3\n"  # 7: too many cells
            "A-7;c-7;en;;\n",  # 8
        )
        summary = run(path, engine, settings)
        assert summary.imported == 2
        reasons = {rejected.line: rejected.reasons for rejected in summary.rejected}
        assert sorted(reasons) == [3, 4, 5, 6, 7]
        assert reasons[3][0].startswith("language: ")
        assert reasons[4] == ["customer_id: is required"]
        assert {reason.split(":")[0] for reason in reasons[5]} == {"amount", "telegram_user_id"}
        assert "has 3 cells but the header has 5 columns" in reasons[6][0]
        assert "has 6 cells" in reasons[7][0]
        assert summary.total == 7

    def test_value_in_a_column_without_header_name_is_rejected(
        self, tmp_path: Path, engine: Engine, settings: Settings
    ) -> None:
        """An unnamed trailing column is fine while empty, but a value there is not silently dropped."""
        path = write(tmp_path, "order_id;customer_id;\nA-1;c-1;\nA-2;c-2;surprise\n")
        summary = run(path, engine, settings)
        assert summary.imported == 1
        assert summary.rejected == [RejectedRow(3, ["column 3 has a value but no name in the header"])]


class TestFileErrors:
    @pytest.mark.parametrize(
        ("content", "says"),
        [
            pytest.param(
                "order_id;name\nA-1;Anna\n", "missing required column(s): customer_id", id="missing"
            ),
            pytest.param(
                "order_id;customer_id;coupon\nA-1;c-1;X\n",
                "unknown column(s) 'coupon'; allowed columns are: order_id, customer_id",
                id="unknown",
            ),
            pytest.param(
                "order_id;customer_id;Order_ID\nA-1;c-1;A-1\n",
                "named more than once: order_id",
                id="duplicate",
            ),
            pytest.param("A-1;c-1;Anna\nA-2;c-2;Bob\n", "no header row", id="no-header"),
            pytest.param("", "is empty", id="empty"),
            pytest.param("\n \n", "is empty", id="only-blank-lines"),
            pytest.param("\ufeff", "is empty", id="only-bom"),
        ],
    )
    def test_unusable_file_raises_with_the_reason(
        self, tmp_path: Path, engine: Engine, settings: Settings, content: str, says: str
    ) -> None:
        """A file whose header or content cannot work is refused as a whole and the message says why."""
        path = write(tmp_path, content)
        with pytest.raises(CsvFileError, match=re.escape(says)):
            run(path, engine, settings)
        assert count(engine, Purchase) == 0

    def test_latin1_file_is_refused_before_anything_is_imported(
        self, tmp_path: Path, engine: Engine, settings: Settings
    ) -> None:
        """A Latin-1 export fails naming the line and suggesting "CSV UTF-8", even if early rows are ASCII."""
        path = write(tmp_path, "order_id;customer_id;name\nA-1;c-1;Anna\nA-2;c-2;Jörg\n", encoding="latin-1")
        with pytest.raises(CsvFileError) as raised:
            run(path, engine, settings)
        message = str(raised.value)
        assert "not UTF-8" in message
        assert "line 3" in message
        assert '"CSV UTF-8"' in message
        assert count(engine, Purchase) == 0

    def test_excel_workbook_is_refused_with_how_to_export(
        self, tmp_path: Path, engine: Engine, settings: Settings
    ) -> None:
        """An .xlsx handed in by mistake is recognised and the message says to save as CSV UTF-8."""
        path = tmp_path / "purchases.csv"
        path.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
        with pytest.raises(CsvFileError, match="Excel workbook"):
            run(path, engine, settings)

    def test_unreadable_row_mid_file_stops_but_keeps_the_rows_before_it(
        self, tmp_path: Path, engine: Engine, settings: Settings
    ) -> None:
        """A never-closed quote swallowing the rest of the file stops at its line; earlier rows are kept."""
        swallowed = "\n".join(f"B-{number};c-{number};{'x' * 100}" for number in range(2000))
        path = write(tmp_path, f'order_id;customer_id;name\nA-1;c-1;Anna\nA-2;c-2;"Bob\n{swallowed}\n')
        with pytest.raises(CsvFileError, match="line 3 cannot be read as CSV") as raised:
            run(path, engine, settings)
        assert "The rows before it were imported (1 new)" in str(raised.value)
        assert count(engine, Purchase) == 1

    def test_missing_file_is_a_file_error(self, tmp_path: Path, engine: Engine, settings: Settings) -> None:
        """A path that does not exist is reported as unreadable, not as a traceback."""
        with pytest.raises(CsvFileError, match="cannot read"):
            run(tmp_path / "nope.csv", engine, settings)


class TestSummary:
    def test_summary_shows_counts_and_caps_the_rejected_table(self) -> None:
        """The summary prints the three counts and at most 50 rejected rows, then how many more."""
        rejected = [RejectedRow(line, [f"amount: bad [{line}]"]) for line in range(2, 62)]
        summary = ImportSummary(imported=5, duplicates=2, rejected=rejected)
        console = Console(file=io.StringIO(), width=120)
        render_summary(summary, console)
        output = console.file.getvalue()  # type: ignore[attr-defined]
        assert "Imported: 5" in output
        assert "Skipped as duplicates (order_id already known): 2" in output
        assert "Rejected: 60" in output
        assert "amount: bad [51]" in output  # brackets from the file are text, not rich markup
        assert "amount: bad [52]" not in output
        assert "... and 10 more" in output
        assert summary.total == 67

    def test_summary_without_rejections_has_no_table(self) -> None:
        """A clean import prints only the counts."""
        console = Console(file=io.StringIO(), width=120)
        render_summary(ImportSummary(imported=3, duplicates=0, rejected=[]), console)
        output = console.file.getvalue()  # type: ignore[attr-defined]
        assert "Imported: 3" in output
        assert "Rejected rows" not in output


class TestOldOrders:
    def test_last_years_orders_are_imported_without_surveys_and_the_summary_says_so(
        self, tmp_path: Path, engine: Engine, settings: Settings
    ) -> None:
        """Rows older than SURVEY_MAX_AGE are stored (rhythm, revenue) but schedule no survey."""
        recent = (datetime.now(UTC) - timedelta(days=3)).isoformat()
        path = write(
            tmp_path,
            "order_id,customer_id,purchased_at\n"
            f"O-1,c-1,2025-11-02T10:00:00+01:00\nO-2,c-1,2025-12-01T10:00:00+01:00\nO-3,c-1,{recent}\n",
        )
        summary = run(path, engine, settings)
        assert (summary.imported, summary.too_old) == (3, 2)
        with Session(engine) as session:
            statuses = sorted(d.status for d in session.exec(select(SurveyDelivery)).all())
        assert statuses == ["scheduled", "skipped", "skipped"]
        console = Console(file=io.StringIO(), width=160)
        render_summary(summary, console)
        assert "Without a survey (bought more than SURVEY_MAX_AGE ago" in console.file.getvalue()  # type: ignore[attr-defined]
