"""Placement files: every problem reported by row, column and reason; nothing posted unless asked; no duplicates."""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from sqlalchemy import func, select

from clients.imports import ImportBatch, start_placement_import
from clients.journal import Invoice, JournalEntry
from clients.models import Debtor
from provider.core import jobs
from provider.extensions import db
from tests.factories import make_client

HEADER = "invoice_number,debtor_ref,debtor_name,issue_date,due_date,amount,currency,po_reference\n"
GOOD = (
    HEADER
    + "INV-1,D-1,Acme Ltd,2026-01-05,2026-02-04,1250.00,EUR,PO-9\n"
    + "INV-2,D-1,Acme Ltd,2026-01-10,2026-02-09,99.95,EUR,\n"
    + 'INV-3,D-2,Bolt GmbH,2026-02-01,2026-03-03,"1,000.50",EUR,\n'
)


@pytest.fixture
def client_(db_session: Any) -> Any:
    return make_client(base_currency="EUR")


def _import(client: Any, content: str | bytes, name: str = "placements.csv", **kw: Any) -> ImportBatch:
    data = content.encode() if isinstance(content, str) else content
    batch = start_placement_import(db.session, client, name, data, **kw)
    batch_id = batch.id
    db.session.commit()
    jobs.drain()
    db.session.expire_all()
    return db.session.get_one(ImportBatch, batch_id)


def _invoices(client_id: int) -> dict[str, int]:
    return dict(
        db.session.execute(select(Invoice.number, Invoice.amount_minor).where(Invoice.client_id == client_id)).all()
    )


def test_good_file_posts_every_invoice_and_creates_debtors(client_: Any) -> None:
    batch = _import(client_, GOOD)
    assert (batch.status, batch.total_rows, batch.posted_rows, batch.errors) == ("posted", 3, 3, [])
    assert _invoices(client_.id) == {"INV-1": 125000, "INV-2": 9995, "INV-3": 100050}
    names = dict(
        db.session.execute(select(Debtor.external_ref, Debtor.name).where(Debtor.client_id == client_.id)).all()
    )
    assert names == {"D-1": "Acme Ltd", "D-2": "Bolt GmbH"}


def test_same_file_twice_and_an_overlapping_file_never_duplicate(client_: Any) -> None:
    _import(client_, GOOD)
    entries = db.session.scalar(select(func.count()).select_from(JournalEntry))
    again = _import(client_, GOOD)
    assert (again.status, again.posted_rows, again.skipped_rows) == ("posted", 0, 3)
    overlap = _import(
        client_,
        HEADER
        + "INV-3,D-2,Bolt GmbH,2026-02-01,2026-03-03,1000.50,EUR,\n"
        + "INV-4,D-3,Cargo SA,2026-02-02,2026-03-04,10,EUR,\n",
    )
    assert (overlap.posted_rows, overlap.skipped_rows) == (1, 1)
    assert db.session.scalar(select(func.count()).select_from(JournalEntry)) == entries + 2
    assert len(_invoices(client_.id)) == 4


MIXED = (
    HEADER
    + "OK-1,D-1,Acme,2026-01-05,2026-02-04,10.00,EUR,\n"
    + "BAD-DATE,D-1,Acme,2026-13-45,2026-02-04,10.00,EUR,\n"
    + "BAD-CUR,D-1,Acme,2026-01-05,2026-02-04,10.00,EUX,\n"
    + "BAD-NEG,D-1,Acme,2026-01-05,2026-02-04,-5.00,EUR,\n"
    + "OK-1,D-1,Acme,2026-01-05,2026-02-04,10.00,EUR,\n"
    + "NO-DEBTOR,,Acme,2026-01-05,2026-02-04,10.00,EUR,\n"
    + "BAD-ORDER,D-1,Acme,2026-03-05,2026-02-04,10.00,EUR,\n"
    + "BAD-JPY,D-1,Acme,2026-01-05,2026-02-04,10.5,JPY,\n"
)


def test_mixed_file_reports_each_problem_and_posts_nothing(client_: Any) -> None:
    batch = _import(client_, MIXED)
    assert batch.status == "rejected" and batch.posted_rows == 0
    found = {(e["row"], e["column"]) for e in batch.errors}
    assert found == {
        (3, "issue_date"),
        (4, "currency"),
        (5, "amount"),
        (6, "invoice_number"),
        (7, "debtor_ref"),
        (8, "due_date"),
        (9, "amount"),
    }
    messages = {e["row"]: e["message"] for e in batch.errors}
    assert "ISO 4217" in messages[4] and "positive" in messages[5] and "twice" in messages[6]
    assert "required" in messages[7] and "before the issue date" in messages[8] and "decimal places" in messages[9]
    assert _invoices(client_.id) == {}
    assert db.session.scalar(select(func.count()).select_from(Debtor).where(Debtor.client_id == client_.id)) == 0


def test_post_valid_rows_keeps_the_rest_for_correction(client_: Any) -> None:
    batch = _import(client_, MIXED, post_valid=True)
    assert (batch.status, batch.posted_rows, batch.error_count) == ("partial", 1, 7)
    assert _invoices(client_.id) == {"OK-1": 1000}


def test_saved_column_mapping_reads_an_erp_export(client_: Any) -> None:
    erp = "Belegnr;Kundennr;Kunde;Datum;Faellig;Betrag;Waehrung\nR-77;K-1;Müller KG;2026-01-05;2026-02-04;12.30;EUR\n"
    mapping = {
        "invoice_number": "Belegnr",
        "debtor_ref": "Kundennr",
        "debtor_name": "Kunde",
        "issue_date": "Datum",
        "due_date": "Faellig",
        "amount": "Betrag",
        "currency": "Waehrung",
    }
    batch = _import(client_, erp, mapping=mapping)
    assert batch.status == "posted", batch.errors
    assert _invoices(client_.id) == {"R-77": 1230}
    missing = _import(client_, erp)  # without the mapping the columns are not found
    assert missing.status == "rejected"
    assert {e["column"] for e in missing.errors} >= {"invoice_number", "amount"}


def test_junk_and_binary_files_are_refused_with_a_reason(client_: Any) -> None:
    junk = _import(client_, os.urandom(10 * 1024 * 1024), name="junk.csv")
    assert junk.status == "rejected" and "not a CSV" in junk.errors[0]["message"]
    fake_xlsx = _import(client_, b"PK\x03\x04 not really a zip", name="book.xlsx")
    assert fake_xlsx.status == "rejected" and "cannot be read" in fake_xlsx.errors[0]["message"]
    empty = _import(client_, b"", name="empty.csv")
    assert empty.status == "rejected" and "empty" in empty.errors[0]["message"]
    assert _invoices(client_.id) == {}


def test_xlsx_files_import_like_csv(client_: Any) -> None:
    from datetime import datetime

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["invoice_number", "debtor_ref", "debtor_name", "issue_date", "due_date", "amount", "currency"])
    sheet.append(["X-1", "D-9", "Xylo", datetime(2026, 1, 5), datetime(2026, 2, 4), 10.25, "EUR"])  # noqa: DTZ001 - spreadsheet cells are naive
    buffer = io.BytesIO()
    book.save(buffer)
    batch = _import(client_, buffer.getvalue(), name="placements.xlsx")
    assert batch.status == "posted", batch.errors
    assert _invoices(client_.id) == {"X-1": 1025}
