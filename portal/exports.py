"""Downloads of the portal's receivables: the debtors list (CSV and XLSX) and the invoice ledger (XLSX;
its CSV is the ledger's own export). Formula injection is neutralised in both formats:

- CSV: a text cell starting with = + - @ tab or CR gets a leading ' (`ledger_list.safe_cell`);
- XLSX: every text cell is written as a string (never a formula), and one that starts with those
  characters also carries Excel's quote-prefix style, so editing the cell in Excel keeps it text.

Rows are read CHUNK at a time (a server-side cursor on PostgreSQL); XLSX uses openpyxl's write-only mode.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import date
from decimal import Decimal
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from sqlalchemy import Select

from clients import ledger_list
from clients.ledger_list import _FORMULA_START, LedgerFilters, ledger_line, major_units, safe_cell
from provider.core.money import exponent
from provider.extensions import db

CHUNK = 1000
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_XLSX_ROWS = 1_048_575  # Excel's limit, less the header

DEBTOR_HEADER = (
    "debtor_ref",
    "debtor_name",
    "segment",
    "currency",
    "open_amount",
    "overdue_amount",
    "open_invoices",
    "oldest_due_date",
    "do_not_contact",
)


def _major(minor: int, currency: str) -> Decimal:
    return Decimal(int(minor)).scaleb(-exponent(currency)) if currency else Decimal(0)


def _debtor_values(row: Any) -> list[Any]:
    """One debtor as typed values: str (from data), Decimal amounts in major units, int, date or None."""
    mixed = row.currencies > 1
    return [
        row.external_ref,
        row.name,
        row.segment,
        "mixed" if mixed else row.currency,
        None if mixed else _major(row.open_minor, row.currency),
        None if mixed else _major(row.overdue_minor, row.currency),
        int(row.open_invoices),
        row.oldest_due,
        "yes" if row.do_not_contact else "no",
    ]


def _ledger_values(row: Any, as_of: date) -> list[Any]:
    line = ledger_line(row, as_of)
    return [
        row.number,
        row.debtor_ref,
        row.debtor_name,
        row.issue_date,
        row.due_date,
        row.currency,
        Decimal(major_units(row.amount_minor, row.currency)),
        Decimal(major_units(row.amount, row.currency)),
        Decimal(major_units(row.open_minor, row.currency)),
        row.status or "",
        "yes" if row.on_hold else "no",
        line.days_overdue,
        line.bucket or "",
        row.po_reference or "",
    ]


def _rows(stmt: Select[Any]) -> Iterator[Any]:
    for partition in db.session.execute(stmt.execution_options(yield_per=CHUNK)).partitions():
        yield from partition


def csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | int):
        return str(value)
    return safe_cell(str(value))


def csv_chunks(header: Iterable[str], records: Iterable[list[Any]]) -> Iterator[str]:
    """CSV text in chunks: a BOM (Excel reads the accents), the header, then CHUNK rows at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    yield "\ufeff" + buffer.getvalue()
    batch: list[list[str]] = []
    for record in records:
        batch.append([csv_text(v) for v in record])
        if len(batch) >= CHUNK:
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(batch)
            batch.clear()
            yield buffer.getvalue()
    if batch:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(batch)
        yield buffer.getvalue()


def _xlsx_cell(sheet: Any, value: Any) -> Any:
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        cell.data_type = "s"  # never a formula, whatever the text starts with
        if value.startswith(_FORMULA_START):
            cell.quotePrefix = True
    elif isinstance(value, date):
        cell.number_format = "yyyy-mm-dd"
    return cell


def xlsx_bytes(title: str, header: Iterable[str], records: Iterable[list[Any]]) -> bytes:
    """A one-sheet workbook: bold header, typed cells, frozen header row."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    sheet.freeze_panes = "A2"
    bold = Font(bold=True)
    heads = []
    for name in header:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        heads.append(cell)
    sheet.append(heads)
    for n, record in enumerate(records):
        if n >= MAX_XLSX_ROWS:
            break
        sheet.append([_xlsx_cell(sheet, v) for v in record])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def debtor_records(stmt: Select[Any]) -> Iterator[list[Any]]:
    return (_debtor_values(row) for row in _rows(stmt))


def ledger_records(
    client_id: int, filters: LedgerFilters, as_of: date, sort: str, direction: str
) -> Iterator[list[Any]]:
    stmt = ledger_list.ledger_select(client_id, filters, as_of, sort, direction)
    return (_ledger_values(row, as_of) for row in _rows(stmt))


LEDGER_HEADER = ledger_list.CSV_HEADER
