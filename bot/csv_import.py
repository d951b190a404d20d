"""``kundenpuls import purchases.csv``: bring purchases in from a spreadsheet export.

Shops without a system that can call the HTTP API export their orders from Excel, LibreOffice or their shop
backend. Those files come as UTF-8 with or without a BOM, separated by ``,`` or (German locale) ``;``, with
German amounts and dates; each row is validated by the same ``PurchaseReport`` the API uses, so both paths
accept exactly the same data.

Recording is idempotent on ``order_id`` and committed in batches: re-running a file after fixing rejected
rows, or after a crash, imports only what is missing and never schedules a survey twice.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from bot.settings import Settings
from storage.db import unit_of_work
from storage.purchases import record_purchase
from surveys.loader import POST_PURCHASE_SURVEY_ID
from surveys.purchase_report import PurchaseReport, describe_validation_error

COLUMNS: Final = (
    "order_id",
    "customer_id",
    "telegram_user_id",
    "name",
    "language",
    "amount",
    "currency",
    "purchased_at",
    "time_zone",
)
REQUIRED_COLUMNS: Final = ("order_id", "customer_id")
DELIMITERS: Final = (",", ";")
# Small enough that a crash loses little and SQLite's write lock is held only briefly (the bot keeps
# working during an import), large enough that commits do not dominate the run time.
BATCH_SIZE: Final = 200
MAX_LISTED_REJECTIONS: Final = 50

_SAVE_AS_UTF8 = (
    'Save it again as "CSV UTF-8" (Excel: File → Save As → "CSV UTF-8 (durch Trennzeichen getrennt)"; '
    'LibreOffice: character set "Unicode (UTF-8)").'
)


@dataclass
class RejectedRow:
    """A row that was not imported, with its physical line number in the file and why."""

    line: int
    reasons: list[str]


@dataclass
class ImportSummary:
    """What one import run did; rejected rows can be fixed and the file imported again."""

    imported: int
    duplicates: int
    rejected: list[RejectedRow]
    too_old: int = 0
    """Imported purchases older than SURVEY_MAX_AGE: stored, but no survey."""

    @property
    def total(self) -> int:
        """All data rows seen (blank lines are not rows)."""
        return self.imported + self.duplicates + len(self.rejected)


class _LineReader(Protocol):
    """The part of ``csv.reader`` used here: rows, and the physical line the last row ended on."""

    @property
    def line_num(self) -> int: ...

    def __next__(self) -> list[str]: ...


class CsvFileError(Exception):
    """The file as a whole cannot be imported (unreadable, not UTF-8, empty, bad header).

    Raised before anything is stored, except for a CSV syntax error the csv module only finds mid-file
    (such as a cell over its size limit): then the rows before it are committed and the message says so.
    """


class _UnreadableRow(Exception):
    """The csv module gave up at ``line``; the import stops there."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


def import_purchases(
    path: Path, *, engine: Engine, settings: Settings, console: Console | None = None
) -> ImportSummary:
    """Import every row of ``path``; raise CsvFileError when the file as a whole is unusable.

    The file is checked for encoding and header before the first row is stored, so a wrong file never
    half-imports.
    """
    console = console or Console(stderr=True)
    physical_lines = _check_file(path)
    summary = ImportSummary(imported=0, duplicates=0, rejected=[])
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise CsvFileError(f"cannot read {path}: {error.strerror or error}") from None
    with handle:
        first_line = handle.readline()
        delimiter = _detect_delimiter(first_line)
        reader = csv.reader(itertools.chain([first_line], handle), delimiter=delimiter)
        header = _read_header(reader, path)
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            # Redirected output (a log file, cron mail) gets the summary only, not bar redraws.
            disable=not console.is_terminal,
        ) as progress:
            task = progress.add_task(f"Importing {escape(path.name)}", total=max(physical_lines - 1, 0))
            batch: list[tuple[int, PurchaseReport]] = []
            try:
                for line, outcome in _rows(reader, header, settings):
                    progress.update(task, completed=reader.line_num - 1)
                    if isinstance(outcome, RejectedRow):
                        summary.rejected.append(outcome)
                        continue
                    batch.append((line, outcome))
                    if len(batch) >= BATCH_SIZE:
                        _record_batch(batch, engine=engine, settings=settings, summary=summary)
                        batch = []
            except _UnreadableRow as broken:
                # The rows before the broken one are fine; keep them, so fixing the file and re-running
                # only adds what is missing.
                _record_batch(batch, engine=engine, settings=settings, summary=summary)
                raise CsvFileError(
                    f"{path} line {broken.line} cannot be read as CSV ({broken.problem}); often a double "
                    f"quote that is never closed. The rows before it were imported "
                    f"({summary.imported} new); fix the file and import it again (imported rows are skipped)."
                ) from None
            _record_batch(batch, engine=engine, settings=settings, summary=summary)
            progress.update(task, completed=max(physical_lines - 1, 0))
    summary.rejected.sort(key=lambda rejected: rejected.line)
    return summary


def render_summary(summary: ImportSummary, console: Console) -> None:
    """Print the counts and the first rejected rows, so the person importing knows what to fix."""
    console.print(f"Imported: {summary.imported}")
    console.print(f"Skipped as duplicates (order_id already known): {summary.duplicates}")
    if summary.too_old:
        console.print(
            f"Without a survey (bought more than SURVEY_MAX_AGE ago; they count for rhythm and revenue): "
            f"{summary.too_old}"
        )
    console.print(f"Rejected: {len(summary.rejected)}")
    if not summary.rejected:
        return
    table = Table(title="Rejected rows", show_lines=False)
    table.add_column("Line", justify="right", style="bold")
    table.add_column("Reasons")
    for rejected in summary.rejected[:MAX_LISTED_REJECTIONS]:
        # Text, not str: reasons quote the file's content and must not be read as rich markup.
        table.add_row(Text(str(rejected.line)), Text("\n".join(rejected.reasons)))
    console.print(table)
    hidden = len(summary.rejected) - MAX_LISTED_REJECTIONS
    if hidden > 0:
        console.print(f"... and {hidden} more")
    console.print(
        "Fix the rejected rows and import the file again; rows already imported are skipped as duplicates."
    )


def _check_file(path: Path) -> int:
    """Read the file once as bytes: refuse what is not UTF-8 text, return the number of physical lines.

    Doing this before importing means a Latin-1 export fails with a clear message instead of half-way.
    """
    lines = 0
    has_content = False
    try:
        with path.open("rb") as raw:
            start = raw.read(4)
            if start.startswith(b"PK\x03\x04"):
                raise CsvFileError(f"{path} is an Excel workbook (.xlsx), not a CSV file. {_SAVE_AS_UTF8}")
            if start.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise CsvFileError(
                    f"{path} is UTF-16 text (Excel's 'Unicode Text'), not UTF-8. {_SAVE_AS_UTF8}"
                )
            raw.seek(0)
            # UTF-8 never uses the newline byte inside a multi-byte character, so lines decode on their own.
            for number, line in enumerate(raw, start=1):
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError as error:
                    bad = line[error.start : error.start + 1].hex().upper()
                    raise CsvFileError(
                        f"{path} is not UTF-8 (line {number} contains the byte 0x{bad}; "
                        f"the file was probably saved as Latin-1/Windows-1252). {_SAVE_AS_UTF8}"
                    ) from None
                if "\x00" in text:
                    raise CsvFileError(
                        f"{path} line {number} contains a NUL byte: this is not a CSV text file."
                    )
                lines = number
                has_content = has_content or bool(text.strip().lstrip("\ufeff").strip())
    except OSError as error:
        raise CsvFileError(f"cannot read {path}: {error.strerror or error}") from None
    if not has_content:
        raise CsvFileError(
            f"{path} is empty: expected a header row ({', '.join(COLUMNS)}) and one row per purchase."
        )
    return lines


def _detect_delimiter(header_line: str) -> str:
    """Pick ``,`` or ``;`` by which occurs more often outside quotes in the header line."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return max(DELIMITERS, key=lambda delimiter: counts[delimiter])


def _read_header(reader: _LineReader, path: Path) -> list[str]:
    """Return the normalized column names (lower case, trimmed; "" for an unnamed column)."""
    try:
        cells = next(reader)
    except StopIteration:
        raise CsvFileError(f"{path} is empty.") from None
    except csv.Error as error:
        raise CsvFileError(f"{path} line 1 cannot be read as CSV: {error}") from None
    header = [cell.strip().lower() for cell in cells]
    allowed = ", ".join(COLUMNS)
    if not any(name in COLUMNS for name in header):
        shown = ", ".join(repr(cell[:30]) for cell in cells[:3])
        raise CsvFileError(
            f"{path} has no header row: line 1 must name the columns ({allowed}), separated by , or ; "
            f"(found {shown})."
        )
    problems: list[str] = []
    named = [name for name in header if name]
    duplicated = sorted({name for name in named if named.count(name) > 1})
    if duplicated:
        problems.append(f"column(s) named more than once: {', '.join(duplicated)}")
    unknown = [name for name in named if name not in COLUMNS]
    if unknown:
        listed = ", ".join(repr(name) for name in unknown)
        problems.append(f"unknown column(s) {listed}; allowed columns are: {allowed}")
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
    if problems:
        raise CsvFileError(
            f"{path} has a problem in its header (line 1):\n" + "\n".join(f"- {p}" for p in problems)
        )
    return header


def _rows(
    reader: _LineReader, header: list[str], settings: Settings
) -> Iterator[tuple[int, PurchaseReport | RejectedRow]]:
    """Yield (first physical line, validated report or rejection) for every non-blank row."""
    line_num = reader.line_num  # where the header ended
    context: dict[str, object] = {"timezone": settings.timezone}
    while True:
        start_line = line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise _UnreadableRow(start_line, str(error)) from None
        # The reader knows where the row ended; a quoted field with newlines spans several lines.
        line_num = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue  # blank line, or a row of empty cells that spreadsheets leave at the end
        yield start_line, _validate_row(start_line, cells, header, context)


def _validate_row(
    line: int, cells: list[str], header: list[str], context: dict[str, object]
) -> PurchaseReport | RejectedRow:
    if len(cells) != len(header):
        return RejectedRow(
            line,
            [
                f"has {len(cells)} cells but the header has {len(header)} columns "
                "(a value containing the separator or a line break must be in double quotes)"
            ],
        )
    values: dict[str, str] = {}
    reasons: list[str] = []
    for position, (name, cell) in enumerate(zip(header, cells, strict=True), start=1):
        if not cell.strip():
            continue  # a blank cell means "not given"
        if not name:
            reasons.append(f"column {position} has a value but no name in the header")
            continue
        values[name] = cell
    try:
        report = PurchaseReport.model_validate(values, context=context)
    except ValidationError as error:
        reasons.extend(describe_validation_error(dict(detail)) for detail in error.errors(include_url=False))
    if reasons:
        return RejectedRow(line, reasons)
    return report


def _record_batch(
    batch: list[tuple[int, PurchaseReport]], *, engine: Engine, settings: Settings, summary: ImportSummary
) -> None:
    """Store one batch in one transaction; the counts change only once it is committed."""
    if not batch:
        return
    imported = duplicates = too_old = 0
    conflicts: list[RejectedRow] = []
    with unit_of_work(engine) as session:
        for line, report in batch:
            try:
                result = record_purchase(
                    session=session,
                    report=report,
                    survey_id=POST_PURCHASE_SURVEY_ID,
                    survey_delay=settings.survey_delay,
                    source="csv",
                    policy=settings.contact_policy,
                )
            except IntegrityError:
                # record_purchase rolled its savepoint back, so the rest of the batch is unaffected.
                conflicts.append(
                    RejectedRow(
                        line, ["conflicts with data stored at the same time elsewhere; import the file again"]
                    )
                )
                continue
            if result.created:
                imported += 1
                too_old += result.survey_skipped is not None
            else:
                duplicates += 1
    summary.imported += imported
    summary.duplicates += duplicates
    summary.too_old += too_old
    summary.rejected.extend(conflicts)
