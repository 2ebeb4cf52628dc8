"""Placement files: CSV or XLSX of invoices with debtor details, mapped, validated, posted all or nothing.

The uploaded bytes are stored with the batch (any worker host can run the job); the job validates every
row with marshmallow and reports each problem by row number, column and reason. By default nothing is
posted when any row is invalid; with `post_valid` the valid rows are posted and the rest are kept in the
report for correction. Invoices are idempotent on (client, number), so a re-uploaded or overlapping file
never duplicates one; debtors are matched (or created) by their external reference.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from blinker import Namespace
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, Session, deferred, mapped_column

from clients import export_presets
from clients.file_formats import DEFAULT_FORMATS, FileDate, FileFormat, amount_problem, not_positive, parse_amount
from clients.ledger import MAX_FUTURE_DAYS, RowError
from clients.models import Client, Debtor
from clients.month_totals import compact_month_totals_job
from clients.placement_plan import (
    FIELDS,
    REQUIRED,
    LeftOut,
    LineGroups,
    Plan,
    make_plan,
    options_problems,
    read_row,
    row_values,
    settle,
)
from clients.placement_stage import STATISTICS_AFTER, Stage, StageRow, refresh_statistics
from provider.core import audit, uploads
from provider.core.clock import now_utc, today_utc
from provider.core.db import UTCDateTime, created_at, intpk
from provider.core.errors import ServiceError
from provider.core.jobs import enqueue, job
from provider.core.money import DECIMAL_MARKS, MAX_MINOR, MoneyError, exponent, validate_currency
from provider.core.tenancy import ClientOwned, TenantScope, scoped
from provider.extensions import db

log = logging.getLogger(__name__)

_signals = Namespace()
placement_received = _signals.signal("placement-received")
"""Sent when a placement file is uploaded: `send(session, client_id=..., batch_id=..., at=...)`."""
placement_processed = _signals.signal("placement-processed")
"""Sent when the import of a placement file has finished (posted, partial or rejected), inside its
transaction: `send(session, client_id=..., batch_id=..., status=..., debtor_ids=<select of the debtors
whose invoices were placed now, or None>)`. The SLAs acknowledge the placement and start first-contact
clocks; nothing in the ledger depends on who listens."""

CHUNK = 10_000  # checked rows per write to the staging table
PROGRESS_EVERY = 50_000
MAX_ERRORS = 5_000  # beyond this the report says how many more there were
PREVIEW_ROWS = 20
# column names, then how the file writes values ("": as the export preset says, else ISO dates), the preset
# ("auto": recognised from the header) and the rows per invoice ("auto": as the preset says, else one)
DEFAULT_MAPPING = {**{f: f for f in FIELDS}, **DEFAULT_FORMATS, "date_format": "", "preset": "auto", "lines": "auto"}


class BatchStatus(StrEnum):
    PREVIEW = "preview"  # uploaded, read for the preview; nothing runs until the user confirms
    QUEUED = "queued"
    RUNNING = "running"
    POSTED = "posted"
    PARTIAL = "partial"
    REJECTED = "rejected"
    FAILED = "failed"  # the run stopped (database away, worker gone, error): nothing was posted; it can be retried
    CANCELLED = "cancelled"


def batch_settled(session: Session, row: Any, outcome: str) -> None:
    """The job outbox's news about an import's run: failed or cancelled (nothing was posted: the import posts in
    one transaction), or retried by hand (the batch waits again). Shared by placement and payment imports."""
    batch = session.get(ImportBatch, row.args[0])
    if batch is None or batch.status in (
        BatchStatus.POSTED.value,
        BatchStatus.PARTIAL.value,
        BatchStatus.REJECTED.value,
    ):
        return
    if outcome == "retried":
        batch.status = BatchStatus.QUEUED.value
        batch.processed_rows = batch.posted_rows = batch.skipped_rows = 0
        batch.finished_at = None
    else:
        batch.status = BatchStatus.FAILED.value if outcome == "failed" else BatchStatus.CANCELLED.value
        batch.finished_at = now_utc()
    audit.record(session, f"import.{outcome}", batch, after={"status": batch.status, "reason": row.error})


def batch_link(row: Any) -> tuple[str, dict[str, Any]] | None:
    """The page of the batch an import job works on (back office)."""
    if "placement" in row.path:
        return "clients.import_batch", {"client_id": row.client_id, "batch_id": row.args[0]}
    return "payments.import_batch", {"client_id": row.client_id, "payment_batch_id": row.args[0]}


class ImportBatch(ClientOwned, db.Model):
    """One uploaded file and what became of it (progress, counts, every rejected row)."""

    __tablename__ = "import_batches"
    __table_args__ = (
        CheckConstraint("kind IN ('placements', 'payments')", name="kind"),
        Index(None, "client_id", "created_at"),
    )

    id: Mapped[intpk]
    kind: Mapped[str] = mapped_column(String(12))
    filename: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary))
    mapping: Mapped[dict[str, Any]] = mapped_column(JSON)
    post_valid: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(10), default=BatchStatus.QUEUED.value)
    total_rows: Mapped[int] = mapped_column(Integer, default=0)
    processed_rows: Mapped[int] = mapped_column(Integer, default=0)
    posted_rows: Mapped[int] = mapped_column(Integer, default=0)
    skipped_rows: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def format_label(self) -> str:
        """How the file's dates and amounts were read, e.g. "dates DD.MM.YYYY, amounts 1.234,56"."""
        read_as = (self.mapping or {}).get("read_as") or {}
        fmt = FileFormat.of({**(self.mapping or {}), "date_format": read_as.get("date_format") or ""})
        label = f"dates {fmt.date_label}, amounts {DECIMAL_MARKS[fmt.decimal_mark]}"
        return f"{read_as['preset_label']} · {label}" if read_as.get("preset_label") else label

    @property
    def left_out(self) -> dict[str, int]:
        """Rows the file holds that are not receivables (drafts, voids, paid invoices), by reason."""
        return dict((self.mapping or {}).get("left_out") or {})

    @property
    def progress_pct(self) -> int:
        """How far the import is: checking the rows is the first third of the work, posting the rest."""
        if self.status in (BatchStatus.FAILED.value, BatchStatus.CANCELLED.value):
            return 0  # nothing was posted
        if self.status == BatchStatus.PREVIEW.value:
            return 0
        if self.status not in (BatchStatus.QUEUED.value, BatchStatus.RUNNING.value):
            return 100
        if not self.total_rows:
            return 0
        checked = min(self.processed_rows / self.total_rows, 1.0)
        posted = min((self.posted_rows + self.skipped_rows) / self.total_rows, 1.0)
        return min(int(100 * (checked / 3 + posted * 2 / 3)), 99)


class FileRejected(ValueError):
    """The upload is not a readable CSV/XLSX file (the message says why)."""


class HeaderRow(list[str]):
    """The header's cells, and the file row they are on (1 unless title lines stand above it)."""

    line: int = 1


class RaggedRow(list[str]):
    """A data row with more or fewer cells than the header: its cells cannot be matched to the columns
    (they would be shifted), so it is a problem of its own row, with `problem` saying why."""

    problem: str = ""


def row_problem(cells: list[str]) -> str | None:
    """Why a row from `read_rows` cannot be read by column (a row wider or narrower than the header)."""
    return cells.problem if isinstance(cells, RaggedRow) else None


# --- reading files ----------------------------------------------------------------------------------

Rows = Iterator[tuple[int, list[str]]]
IsHeader = Callable[[list[str]], bool]
DELIMITERS = ",;\t|"
HEADER_SEARCH = 10  # rows (title lines, a blank line, a report date) looked at for the header row
_SEP_LINE = re.compile(r"sep=(.)\r?\n?", re.IGNORECASE)  # Excel's "sep=;" first line names the delimiter


def read_rows(
    filename: str, content: bytes, decimal_mark: str = ".", is_header: IsHeader | None = None
) -> tuple[list[str], Rows]:
    """Header and an iterator over the data rows (numbered as a spreadsheet shows them), read as a stream.

    The header is the first of the first rows that `is_header` accepts (title lines above it are left out),
    else the first row. A workbook is read from the one sheet that has such a header (the first sheet when
    none has; several are refused rather than one read and the others left out). A spreadsheet's number
    cells are written with `decimal_mark`, like the text around them."""
    if content[:2] == b"PK":
        try:
            uploads.check_zip(content)
        except uploads.UploadRefused as exc:
            raise FileRejected(str(exc)) from None
        return _read_xlsx(content, decimal_mark, is_header)
    if content[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise FileRejected(
            "this is an Excel 97-2003 (.xls) or a password-protected workbook; save it as .xlsx or CSV and upload that"
        )
    if filename.lower().endswith(".xlsx"):
        raise FileRejected("this .xlsx file is not an Excel workbook; upload the workbook itself or a CSV export")
    utf16 = content[:2] in (b"\xff\xfe", b"\xfe\xff")  # Excel's "Unicode Text" export
    if b"\x00" in content[:65536] and not utf16:
        raise FileRejected("this is not a CSV file (it contains binary data); upload a .csv or .xlsx export")
    stream = io.TextIOWrapper(io.BytesIO(content), encoding="utf-16" if utf16 else _encoding(content), newline="")
    sample = stream.read(8192)
    declared = _SEP_LINE.match(sample)
    dialect: Any = csv.excel
    if declared:
        dialect = type("Declared", (csv.excel,), {"delimiter": declared.group(1)})
    else:
        try:
            dialect = csv.Sniffer().sniff(sample, delimiters=DELIMITERS)
            # a quote inside a quoted cell is written twice (RFC 4180); the sniffer often misses it (it found
            # no "" in its sample) and would then split such cells, shifting every column after them
            dialect.doublequote = True
        except csv.Error:  # e.g. a title line above the header: the delimiter that makes the most rows alike
            dialect = type("Counted", (csv.excel,), {"delimiter": _most_regular_delimiter(sample)})
    stream.seek(0)
    numbered = enumerate(csv.reader(stream, dialect), start=1)
    if declared:
        next(numbered, None)
    rows = ((i, row) for i, row in numbered if any(c.strip() for c in row))
    try:
        header, rows = _header(rows, is_header)
    except csv.Error as exc:
        raise FileRejected(f"the file cannot be read: {exc}") from None
    if header is None:
        raise FileRejected("the file is empty")
    return header, _closed_quotes(header, rows)


def _width(cells: list[str]) -> int:
    """The number of cells up to the last one that is not empty."""
    n = len(cells)
    while n and not cells[n - 1].strip():
        n -= 1
    return n


def _most_regular_delimiter(sample: str) -> str:
    """The delimiter under which most rows of the sample have the same number of cells (more than one)."""
    lines = sample.splitlines()[:-1] or sample.splitlines()  # the last line may be cut off

    def score(delimiter: str) -> tuple[int, int]:
        widths = Counter(len(r) for r in csv.reader(lines, delimiter=delimiter) if len(r) > 1)
        return max(((n, w) for w, n in widths.items()), default=(0, 0))

    return max(DELIMITERS, key=score)


def _header(rows: Rows, is_header: IsHeader | None) -> tuple[list[str] | None, Rows]:
    """The header row and the rows after it: the first of the first HEADER_SEARCH rows that `is_header`
    accepts, else the first row (whose missing columns the import then names)."""
    looked = list(itertools.islice(rows, HEADER_SEARCH if is_header else 1))
    if not looked:
        return None, rows
    at = next((k for k, (_, cells) in enumerate(looked) if is_header and is_header(cells)), None)
    score = getattr(is_header, "score", None)
    if at is None and score is not None:  # no row names every column: the one that names most (2 or more)
        best = max(range(len(looked)), key=lambda k: (score(looked[k][1]), -k))
        at = best if score(looked[best][1]) >= 2 else None
    at = at or 0
    header = HeaderRow(h.strip() for h in looked[at][1])
    header.line = looked[at][0]
    return header, itertools.chain(looked[at + 1 :], rows)


def _closed_quotes(header: list[str], rows: Rows, narrow_too: bool = True) -> Rows:
    """The rows, refusing one where a cell runs over several lines and the columns do not add up: a
    missing closing quote, which would otherwise take the following rows into that cell. The rows are read
    as a stream, so a file that turns out unreadable halfway is refused here too (FileRejected, like any
    unreadable file).

    A row with more cells than the header (empty cells after the last column do not count) or, in a CSV
    file, with fewer, is yielded as a RaggedRow: its cells cannot be matched to the columns, so the reader
    of the rows reports it as a problem of that row instead of reading shifted columns. (A spreadsheet
    leaves empty cells out at the end of a row, so there a shorter row is read as it is.)"""
    width = _width(header)
    try:
        for line, cells in rows:
            if len(cells) != len(header) and any("\n" in c or "\r" in c for c in cells):
                spans = max(c.count("\n") for c in cells) + 1
                raise FileRejected(
                    f"row {line}: a quoted cell runs over {spans} lines and the row has {len(cells)} of the "
                    f"header's {len(header)} columns; a closing quote (\") is probably missing"
                )
            uploads.check_csv_row(line, cells)
            used = _width(cells)
            if used > width or (narrow_too and len(cells) < width):
                n = used if used > len(header) else len(cells)
                ragged = RaggedRow(cells)
                ragged.problem = (
                    f"row {line} has {n} cells but the header (row {getattr(header, 'line', 1)}) has {width} "
                    "columns: its values cannot be matched to the columns, so it is not read (is a delimiter "
                    "or a quote inside a cell not quoted?)"
                )
                yield line, ragged
                continue
            yield line, cells
    except (csv.Error, UnicodeDecodeError) as exc:
        raise FileRejected(f"the file cannot be read: {exc}") from None
    except uploads.UploadRefused as exc:
        raise FileRejected(str(exc)) from None


def _encoding(content: bytes) -> str:
    """UTF-8 (with or without BOM) or Windows-1252, checked in 1 MB steps without a second copy of the file."""
    for name, label in (("utf-8", "utf-8-sig"), ("cp1252", "cp1252")):
        decoder = codecs.getincrementaldecoder(name)()
        try:
            for start in range(0, len(content), 1 << 20):
                decoder.decode(content[start : start + (1 << 20)])
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        return label
    raise FileRejected("the file is neither UTF-8 nor Windows-1252 text")


def _read_xlsx(content: bytes, decimal_mark: str = ".", is_header: IsHeader | None = None) -> tuple[list[str], Rows]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
        sheets = list(book.worksheets)
    except Exception as exc:  # openpyxl raises many types for a broken file
        raise FileRejected(f"the spreadsheet cannot be read ({type(exc).__name__})") from None

    def cells(sheet: Any) -> Rows:
        guard = uploads.SheetGuard()
        for i, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            try:
                guard.row(i, values)
            except uploads.UploadRefused as exc:
                raise FileRejected(str(exc)) from None
            row = [_cell(v, decimal_mark) for v in values]
            if any(c.strip() for c in row):
                yield i, row

    found = []
    for sheet in sheets if is_header else sheets[:1]:
        header, rows = _header(cells(sheet), is_header)
        if header is not None and (is_header is None or is_header(header)):
            found.append((sheet.title, header, rows))
    if len(found) > 1:
        book.close()
        names = ", ".join(title for title, _, _ in found)
        raise FileRejected(
            f"{len(found)} sheets have the import's columns ({names}); keep only the sheet to import, "
            "or upload each sheet as its own file"
        )
    if not found:  # no sheet has the columns: the first sheet's first row, whose missing columns are named
        header, rows = _header(cells(sheets[0]), None) if sheets else (None, iter(()))
        if header is None:
            book.close()
            raise FileRejected("the spreadsheet's first sheet is empty")
        found.append(("", header, rows))

    def closing(rows: Rows) -> Rows:
        try:
            yield from rows
        finally:
            book.close()

    header = found[0][1]
    return header, _closed_quotes(header, closing(found[0][2]), narrow_too=False)


def _cell(value: Any, decimal_mark: str) -> str:
    """A spreadsheet cell as text: dates in ISO form, numbers with the file's decimal mark. A float is
    written with the 15 significant digits Excel shows (a formula's 119.00000000000001 is 119)."""
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return (value.date() if isinstance(value, datetime) else value).isoformat()
    if isinstance(value, float):
        value = Decimal(f"{value:.15g}")
    if isinstance(value, Decimal):
        return format(value, "f").replace(".", decimal_mark)
    return str(value)


# --- checking rows ----------------------------------------------------------------------------------


class PlacementRow(Schema):
    """One invoice line of a placement file (after column mapping): the definition of a valid row."""

    class Meta:
        unknown = EXCLUDE

    invoice_number = fields.String(required=True, validate=validate.Length(1, 64))
    debtor_ref = fields.String(required=True, validate=validate.Length(1, 64))
    debtor_name = fields.String(load_default="")
    issue_date = FileDate(required=True)
    due_date = FileDate(required=True)
    amount = fields.String(required=True)
    currency = fields.String(required=True)
    po_reference = fields.String(load_default="", validate=validate.Length(max=64))
    paid = fields.String()
    balance = fields.String()
    tax = fields.String()

    def __init__(
        self, file_format: FileFormat | None = None, *, planned: bool = False, due_optional: bool = False, **kwargs: Any
    ) -> None:
        """`planned`: a row read under a plan (clients.placement_plan), whose amount may be a line's or be
        less a paid column, so its sign and the due date are checked once the invoice is complete; with
        `due_optional` the due date may be missing (the payment terms give it)."""
        super().__init__(**kwargs)
        self.file_format = file_format or FileFormat()
        self.planned = planned
        if due_optional:
            self.fields["due_date"].required = False

    @validates_schema(skip_on_field_errors=False)
    def _amount_and_dates(self, data: dict[str, Any], **_: Any) -> None:
        """Every problem of the row, also next to a missing or malformed field (those keys are absent)."""
        problems: dict[str, list[str]] = {}
        currency = data.get("currency", "").strip()
        if "currency" in data:
            try:
                currency = validate_currency(currency)
            except MoneyError as exc:
                problems["currency"] = [str(exc)]
        if "amount" in data:
            # without a usable currency the amount is still checked as a number (its decimals cannot be)
            unit = currency if "currency" in data and "currency" not in problems else "XTS"
            try:
                money = parse_amount(data["amount"], unit, self.file_format.decimal_mark)
            except MoneyError as exc:
                if unit != "XTS" or "decimal places" not in str(exc):
                    problems["amount"] = [amount_problem(exc)]
            else:
                if money.minor <= 0 and not self.planned:
                    problems["amount"] = [not_positive(data["amount"])]
                elif unit != "XTS":
                    data["amount_minor"], data["currency"] = money.minor, money.currency
        for name in ("paid", "balance", "tax"):
            if name in data and "currency" in data and "currency" not in problems:
                try:
                    data[f"{name}_minor"] = parse_amount(data[name], currency, self.file_format.decimal_mark).minor
                except MoneyError as exc:
                    problems[name] = [amount_problem(exc)]
        issue, due = data.get("issue_date"), data.get("due_date")
        if issue is not None and due is not None and due < issue and not self.planned:
            problems["due_date"] = [f"due date {due} is before the issue date {issue}"]
        if issue is not None and issue > today_utc() + timedelta(days=MAX_FUTURE_DAYS):
            problems["issue_date"] = [f"issue date {issue} is in the future"]
        if problems:
            raise ValidationError(problems)


def column_key(name: str) -> str:
    """A column name as the mapping compares it: case, spaces, underscores and the "*" some templates put
    before a required column do not matter (" Invoice_Number ", "*invoice number": the same column)."""
    return export_presets.column_key(name)


def map_columns(
    header: list[str],
    mapping: dict[str, str],
    fields: tuple[str, ...] = FIELDS,
    required: tuple[str, ...] = REQUIRED,
) -> tuple[dict[str, int], list[RowError]]:
    """Where each field is in the file (placements by default; the payments import passes its own fields);
    a missing required column, or one the file names twice, is an error for row 1."""
    positions: dict[str, list[int]] = {}
    for i, h in enumerate(header):
        positions.setdefault(column_key(h), []).append(i)
    found, errors = {}, []
    row = getattr(header, "line", 1)
    for field in fields:
        name = mapping.get(field) or field
        at = positions.get(column_key(name), [])
        if len(at) > 1:
            where = " and ".join(str(i + 1) for i in at)
            errors.append(RowError(row, name, f"column {name!r} appears twice (columns {where}); rename one of them"))
        elif at:
            found[field] = at[0]
        elif field in required:
            errors.append(RowError(row, name, f"column missing (needed for {field})"))
    return found, errors


class HeaderTest:
    """Whether a row is the header of a file with this mapping: it names every required column, or, for a
    placement file read with export presets, every identifying column of one of them. `score` counts the
    required columns a row names: with title lines above a header that lacks a column, the header is still
    found (the row naming most of them), so that the one missing column is named rather than all of them."""

    def __init__(self, wanted: set[str], signatures: list[set[str]] | None = None) -> None:
        self.wanted = wanted
        self.signatures = signatures or []

    def __call__(self, cells: list[str]) -> bool:
        keys = {column_key(c) for c in cells}
        return self.wanted <= keys or any(sig <= keys for sig in self.signatures)

    def score(self, cells: list[str]) -> int:
        return len(self.wanted & {column_key(c) for c in cells})


def header_test(mapping: dict[str, Any], required: tuple[str, ...] = REQUIRED) -> HeaderTest:
    """The header test of a file with this mapping (see HeaderTest)."""
    return HeaderTest({column_key(mapping.get(f) or f) for f in required})


def placement_header_test(mapping: dict[str, Any]) -> HeaderTest:
    """The header test of a placement file: its mapped columns (less those a fixed value or the payment
    terms stand in for), or the columns that identify an export preset."""
    supplied = {f for f in REQUIRED if str(mapping.get(f"const_{f}") or "").strip()}
    if str(mapping.get("due_days") or "").strip():
        supplied.add("due_date")
    wanted = {column_key(mapping.get(f) or f) for f in REQUIRED if f not in supplied}
    preset = str(mapping.get("preset") or "auto")
    if preset == "auto":
        presets = list(export_presets.PRESETS.values())
    else:
        presets = [export_presets.PRESETS[preset]] if preset in export_presets.PRESETS else []
    return HeaderTest(wanted, [{export_presets.column_key(c) for c in p.signature} for p in presets])


_PLAIN_AMOUNT = re.compile(r"([0-9]{1,15})(?:\.([0-9]{1,4}))?")  # ASCII digits only, as Money.parse
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class RowChecker:
    """Checks one mapped row at a time.

    The marshmallow schema `PlacementRow` is the definition of a valid row and writes every message. A
    fast path accepts only rows that are plainly valid under that schema (ISO dates, a plain decimal
    amount, a known currency, lengths within limits) and builds the same values without it; any other
    row goes through the schema, which either accepts it (e.g. "1,000.50") or says exactly what is wrong.
    A property test holds the fast path to the schema.
    """

    def __init__(self, positions: dict[str, int], mapping: dict[str, str]) -> None:
        self.positions = positions
        self.mapping = mapping
        self.file_format = FileFormat.of(mapping)
        self.schema = PlacementRow(self.file_format)
        self.width = max(positions.values()) + 1
        self.latest_issue = today_utc() + timedelta(days=MAX_FUTURE_DAYS)
        self.exponents: dict[str, int] = {}
        self.left_out: Counter[str] = Counter()
        p = positions
        self.at = (
            p["invoice_number"],
            p["debtor_ref"],
            p.get("debtor_name"),
            p["issue_date"],
            p["due_date"],
            p["amount"],
            p["currency"],
            p.get("po_reference"),
        )

    def _exponent(self, code: str) -> int | None:
        if code not in self.exponents:
            try:
                self.exponents[code] = exponent(code)
            except MoneyError:
                return None
        return self.exponents[code]

    def fast(self, line: int, cells: list[str]) -> StageRow | None:
        if len(cells) < self.width or not self.file_format.plain:
            return None
        i_num, i_ref, i_name, i_issue, i_due, i_amount, i_cur, i_po = self.at
        number, ref = cells[i_num].strip(), cells[i_ref].strip()
        name = cells[i_name].strip() if i_name is not None else ""
        po = cells[i_po].strip() if i_po is not None else ""
        issue_s, due_s = cells[i_issue].strip(), cells[i_due].strip()
        if not (0 < len(number) <= 64 and 0 < len(ref) <= 64 and len(po) <= 64):
            return None
        if not (_ISO_DATE.fullmatch(issue_s) and _ISO_DATE.fullmatch(due_s)):
            return None
        currency = cells[i_cur].strip().upper()
        exp = self._exponent(currency) if len(currency) == 3 else None
        amount = _PLAIN_AMOUNT.fullmatch(cells[i_amount].strip())
        if exp is None or amount is None:
            return None
        whole, frac = amount.group(1), amount.group(2) or ""
        if len(frac) > exp:
            return None
        minor = int(whole) * 10**exp + (int(frac.ljust(exp, "0")) if exp else 0)
        try:
            issue, due = date.fromisoformat(issue_s), date.fromisoformat(due_s)
        except ValueError:
            return None
        if minor <= 0 or minor > MAX_MINOR or due < issue or issue > self.latest_issue:
            return None
        return StageRow(line, number, ref, name[:200], issue, due, currency, minor, po)

    def finish(self) -> tuple[list[StageRow], list[RowError]]:
        """Rows held back until the whole file is read (none: each row is an invoice of its own)."""
        return [], []

    def check(self, line: int, cells: list[str]) -> tuple[StageRow | None, list[RowError]]:
        if isinstance(cells, RaggedRow):
            return None, [RowError(line, "row", cells.problem)]
        row = self.fast(line, cells)
        if row is not None:
            return row, []
        raw = {f: (cells[i].strip() if i < len(cells) else "") for f, i in self.positions.items()}
        try:
            data = self.schema.load({k: v for k, v in raw.items() if v != ""})
        except ValidationError as exc:
            errors = []
            for field, messages in sorted(exc.normalized_messages().items()):
                text = "; ".join(messages if isinstance(messages, list) else [str(messages)])
                errors.append(
                    RowError(
                        line,
                        self.mapping.get(field, field),
                        text.replace("Missing data for required field.", "required"),
                    )
                )
            return None, errors
        return (
            StageRow(
                line,
                data["invoice_number"].strip(),
                data["debtor_ref"].strip(),
                (data.get("debtor_name") or "").strip()[:200],
                data["issue_date"],
                data["due_date"],
                data["currency"],
                data["amount_minor"],
                (data.get("po_reference") or "").strip(),
            ),
            [],
        )


class PlannedChecker:
    """Checks the rows of a file read under a plan with presets, fixed values, payment terms, paid columns
    or several lines per invoice (clients.placement_plan); each row's problems name its row and column."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.schema = PlacementRow(plan.file_format, planned=True, due_optional=plan.due_days is not None)
        self.groups = LineGroups(plan) if plan.lines else None
        self.left_out: Counter[str] = Counter()

    def check(self, line: int, cells: list[str]) -> tuple[StageRow | None, list[RowError]]:
        if isinstance(cells, RaggedRow):
            return None, [RowError(line, "row", cells.problem)]
        outcome = read_row(self.plan, self.schema, line, cells)
        if isinstance(outcome, LeftOut):
            self.left_out[outcome.reason] += 1
            return None, []
        if isinstance(outcome, list):
            if self.groups is not None:  # an invoice with a line that cannot be read is not placed at all
                number = row_values(self.plan, cells).get("invoice_number", "")
                self.groups.invoices.setdefault(number.strip(), self.groups.invoice()).bad = True
            return None, outcome
        if self.groups is not None:
            problem = self.groups.add(outcome)
            return None, [problem] if problem else []
        settled = settle(self.plan, outcome)
        if isinstance(settled, LeftOut):
            self.left_out[settled.reason] += 1
            return None, []
        if isinstance(settled, RowError):
            return None, [settled]
        return settled, []

    def finish(self) -> tuple[list[StageRow], list[RowError]]:
        """The invoices of a line-level file, once all its lines are in."""
        if self.groups is None:
            return [], []
        return self.groups.settled(self.left_out)


Checker = RowChecker | PlannedChecker


def checker_for(plan: Plan) -> Checker:
    if plan.simple:
        mapping = {f: plan.column(f) for f in FIELDS} | plan.file_format.as_mapping()
        return RowChecker(plan.positions, mapping)
    return PlannedChecker(plan)


# --- running an import ------------------------------------------------------------------------------


def start_placement_import(
    session: Session,
    client: Client,
    filename: str,
    content: bytes,
    mapping: dict[str, str] | None = None,
    post_valid: bool = False,
    user_id: int | None = None,
    preview: bool = False,
) -> ImportBatch:
    """Store the upload and queue the import job (after commit); with `preview`, only store it: the user
    sees how its first rows will be read (`preview_rows`) and confirms (`confirm_placement_import`)."""
    mapping = {**DEFAULT_MAPPING, **(mapping or {})}
    FileFormat.requested(mapping)
    problems = options_problems(mapping)
    if problems:
        raise ServiceError("; ".join(problems), field="mapping")
    batch = ImportBatch(
        client_id=client.id,
        kind="placements",
        filename=filename[:200],
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        mapping=mapping,
        post_valid=post_valid,
        created_by=user_id,
        errors=[],
    )
    if preview:
        batch.status = BatchStatus.PREVIEW.value
    session.add(batch)
    session.flush()
    audit.record(session, "import.start", batch, after={"filename": batch.filename, "sha256": batch.sha256})
    if not preview:
        _queue(session, batch)
    return batch


def _queue(session: Session, batch: ImportBatch) -> None:
    placement_received.send(session, client_id=batch.client_id, batch_id=batch.id, at=now_utc())
    enqueue(import_placements_job, batch.id, batch.client_id, job_id=f"import:{batch.client_id}:{batch.id}")


def remap_placement_import(session: Session, batch: ImportBatch, mapping: dict[str, Any], post_valid: bool) -> None:
    """Change how a file waiting in preview is read (its columns, fixed values, terms, format)."""
    if batch.status != BatchStatus.PREVIEW.value:
        raise ServiceError("this file has already been imported; upload it again to read it another way")
    mapping = {**DEFAULT_MAPPING, **mapping}
    FileFormat.requested(mapping)
    problems = options_problems(mapping)
    if problems:
        raise ServiceError("; ".join(problems), field="mapping")
    before = {"mapping": batch.mapping, "post_valid": batch.post_valid}
    batch.mapping, batch.post_valid = mapping, post_valid
    session.flush()
    audit.record(session, "import.remap", batch, before=before, after={"mapping": mapping, "post_valid": post_valid})


def confirm_placement_import(session: Session, batch: ImportBatch) -> None:
    """Queue the import of a file the user has previewed (after commit); a file already queued or imported
    is left as it is (a double click posts nothing twice)."""
    if batch.status != BatchStatus.PREVIEW.value:
        return
    batch.status = BatchStatus.QUEUED.value
    session.flush()
    audit.record(session, "import.confirm", batch, after={"filename": batch.filename})
    _queue(session, batch)


@dataclass
class Tally:
    """The running figures of one import. They stay off the batch row until the end: on PostgreSQL the
    progress connection updates that row meanwhile, and a write to it from the import's own transaction
    would hold a row lock that the progress update then waits for (forever, in the same process)."""

    total: int = 0
    checked: int = 0
    posted: int = 0
    skipped: int = 0
    problems: int = 0


def _finish(
    batch: ImportBatch, tally: Tally, status: BatchStatus, errors: list[RowError], read: dict[str, Any] | None = None
) -> None:
    """Write the import's outcome to its batch (`read`: how the file was read, kept with the mapping)."""
    if read:
        batch.mapping = {**batch.mapping, **read}
    batch.status = status.value
    batch.total_rows, batch.processed_rows = tally.total, tally.checked
    batch.posted_rows, batch.skipped_rows = tally.posted, tally.skipped
    batch.error_count = max(tally.problems, len(errors))
    ordered = sorted(errors, key=lambda e: (e.row, e.field))[:MAX_ERRORS]
    batch.errors = [{"row": e.row, "column": e.field, "message": e.message} for e in ordered]
    batch.finished_at = now_utc()


def publish_progress(session: Session, batch_id: int, client_id: int, tally: Tally) -> bool:
    """Publish progress outside the import's own transaction, so the progress bar moves while it runs.

    Best effort: it never waits more than a moment for a lock and never fails the import. PostgreSQL only:
    SQLite has one writer at a time, so there the figures appear when the import ends.
    """
    from provider.core import jobs

    jobs.checkpoint()  # a cancel asked for meanwhile stops the import here (its transaction is rolled back)
    if tally.total:
        jobs.report_progress(
            min(int(100 * (tally.checked / 3 + (tally.posted + tally.skipped) * 2 / 3) / tally.total), 99)
        )
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    try:
        with bind.engine.connect() as conn:
            conn.execute(text("SET LOCAL lock_timeout = '2s'"))
            conn.execute(text("SELECT set_config('app.client_id', :c, true)"), {"c": str(client_id)})
            updated = conn.execute(
                text(
                    "UPDATE import_batches SET status = 'running', total_rows = :total, processed_rows = :checked, "
                    "posted_rows = :posted, skipped_rows = :skipped WHERE id = :id AND status IN ('queued', 'running')"
                ),
                {
                    "total": max(tally.total, tally.checked),
                    "checked": tally.checked,
                    "posted": tally.posted,
                    "skipped": tally.skipped,
                    "id": batch_id,
                },
            )
            conn.commit()
            return bool(updated.rowcount)
    except DBAPIError as exc:
        log.warning("import %s: progress not published (%s)", batch_id, exc.__class__.__name__)
        return False


def _estimated_rows(content: bytes) -> int:
    return max(content.count(b"\n") - 1, 1) if content[:2] != b"PK" else 0


def _load(
    session: Session, batch: ImportBatch, stage: Stage, checker: Checker, rows: Rows, tally: Tally
) -> list[RowError]:
    """Check every row, streaming the good ones into the stage; returns the first problems (all are counted)."""
    errors: list[RowError] = []
    good: list[StageRow] = []
    for line, cells in rows:
        row, problems = checker.check(line, cells)
        tally.checked += 1
        if row is not None:
            good.append(row)
        else:
            tally.problems += len(problems)
            if len(errors) < MAX_ERRORS:  # rows come in order: these are the first problems of the file
                errors += problems
        if len(good) >= CHUNK:
            stage.write(good)
            good = []
        if tally.checked % PROGRESS_EVERY == 0:
            publish_progress(session, batch.id, batch.client_id, tally)
    stage.write(good)
    invoices, problems = checker.finish()
    stage.write(invoices)
    tally.problems += len(problems)
    errors += problems[: max(MAX_ERRORS - len(errors), 0)]
    tally.total = tally.checked
    return errors


def _count_rows(rows: Any) -> int:
    """The number of data rows a stream still holds (0 when the file turns out unreadable past its header)."""
    try:
        return sum(1 for _ in rows)
    except FileRejected:
        return 0


def run_placement_import(session: Session, batch: ImportBatch) -> ImportBatch:
    """Check the whole file; post it (all, or the valid rows when asked) set-based, with progress."""
    client = session.get_one(Client, batch.client_id)
    tally = Tally(total=_estimated_rows(batch.content))
    if session.get_bind().dialect.name == "sqlite":
        batch.status = BatchStatus.RUNNING.value
        session.flush()  # takes SQLite's write lock before any id is chosen (no progress connection there)
    try:
        header, rows = read_rows(
            batch.filename,
            batch.content,
            FileFormat.of(batch.mapping).decimal_mark,
            placement_header_test(batch.mapping),
        )
    except FileRejected as exc:
        tally.total = 0  # nothing was read: the estimate from the byte count means nothing here
        _finish(batch, tally, BatchStatus.REJECTED, [RowError(1, "file", str(exc))])
        placement_processed.send(session, client_id=client.id, batch_id=batch.id, status=batch.status, debtor_ids=None)
        return batch
    plan = make_plan(header, batch.mapping, client.base_currency, getattr(header, "line", 1))
    read: dict[str, Any] = {"read_as": plan.read_as()}  # kept off the batch row until the end (see Tally)
    errors = plan.errors
    if errors:  # the columns are wrong: no row was checked, but the file's rows are counted (the user sees them)
        tally.total, tally.checked = _count_rows(rows), 0
        _finish(batch, tally, BatchStatus.REJECTED, errors, read)
        placement_processed.send(session, client_id=client.id, batch_id=batch.id, status=batch.status, debtor_ids=None)
        return batch

    savepoint = session.begin_nested()  # all or nothing, unless the user chose "post the valid rows"
    stage = Stage(session, client.id, batch.id)
    try:
        checker = checker_for(plan)
        errors = _load(session, batch, stage, checker, rows, tally)
    except FileRejected as exc:  # the rows are read as a stream: a file can turn out unreadable halfway
        savepoint.rollback()
        tally.total = tally.checked = 0
        _finish(batch, tally, BatchStatus.REJECTED, [RowError(1, "file", str(exc))], read)
        placement_processed.send(session, client_id=client.id, batch_id=batch.id, status=batch.status, debtor_ids=None)
        return batch
    if checker.left_out:
        read["left_out"] = dict(checker.left_out)
    stage.prepare()
    dupes, dupe_count = stage.duplicate_numbers(MAX_ERRORS)
    placed_before, tally.skipped, conflicting = stage.already_placed(MAX_ERRORS)
    column = plan.column("invoice_number")
    errors += [RowError(e.row, column, e.message) for e in dupes + placed_before]
    tally.problems += dupe_count + conflicting
    if tally.problems and not batch.post_valid:
        savepoint.rollback()
        tally.skipped = 0
        _finish(batch, tally, BatchStatus.REJECTED, errors, read)
        placement_processed.send(session, client_id=client.id, batch_id=batch.id, status=batch.status, debtor_ids=None)
        return batch
    new_debtors = stage.create_debtors()
    if new_debtors >= STATISTICS_AFTER:
        refresh_statistics(session, "debtors")
    publish_progress(session, batch.id, client.id, tally)
    for posted in stage.post(memo=f"placement file {batch.filename} (import #{batch.id})"):
        tally.posted += posted
        publish_progress(session, batch.id, client.id, tally)
    status = BatchStatus.PARTIAL if tally.problems else BatchStatus.POSTED
    placed_for = select(Debtor.id).where(
        Debtor.client_id == client.id, Debtor.external_ref.in_(select(stage.table.c.debtor_ref))
    )
    placement_processed.send(
        session, client_id=client.id, batch_id=batch.id, status=status.value, debtor_ids=placed_for
    )
    stage.drop()
    savepoint.commit()
    if tally.posted:
        audit.record(
            session,
            "invoice.place",
            "Invoice",
            client_id=client.id,
            object_id="*",
            after={"count": tally.posted, "import": batch.id, "new_debtors": new_debtors},
        )
    _finish(batch, tally, status, errors, read)
    return batch


@job(queue="imports", timeout=3600, retries=0, title="Placement file import", on_settled=batch_settled, link=batch_link)
def import_placements_job(batch_id: int, client_id: int) -> str:
    with scoped(TenantScope.single(client_id), db.session):
        batch = db.session.get_one(ImportBatch, batch_id)
        if batch.status not in (BatchStatus.QUEUED.value, BatchStatus.RUNNING.value):
            return batch.status  # at-least-once delivery: a finished batch is never run twice
        run_placement_import(db.session, batch)
        enqueue(compact_month_totals_job, client_id, job_id=f"month-totals:{client_id}")
        audit.record(
            db.session,
            "import.finish",
            batch,
            after={"status": batch.status, "posted": batch.posted_rows, "errors": batch.error_count},
        )
        db.session.flush()  # inside the tenant scope (the job's commit runs after the scope has ended)
        return batch.status


__all__ = [
    "FIELDS",
    "FileRejected",
    "ImportBatch",
    "Tally",
    "confirm_placement_import",
    "map_columns",
    "publish_progress",
    "read_rows",
    "remap_placement_import",
    "row_problem",
    "run_placement_import",
    "start_placement_import",
]
