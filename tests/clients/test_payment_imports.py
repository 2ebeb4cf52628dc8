"""Payment files: recorded and auto-allocated; every problem named by row, column and reason; nothing posted
unless asked; a re-uploaded file never records a payment twice."""

from __future__ import annotations

import io
import os
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from clients.imports import ImportBatch
from clients.journal import Invoice, JournalEntry, Payment
from clients.payment_imports import batch_summary, start_payment_import
from provider.core import jobs
from provider.core.clock import today_utc
from provider.extensions import db
from tests.clients.ledger_helpers import cache_mismatches, unbalanced_transactions
from tests.factories import make_client, make_debtor, make_invoice

HEADER = "payment_ref,debtor_ref,received_on,amount,currency,method,received_by,reference\n"
GOOD = (
    HEADER
    + "P-1,D-1,2026-03-10,40.00,EUR,,,paying INV-2\n"  # the reference names INV-2: it goes there first
    + "P-2,D-2,2026-03-11,250.00,EUR,Card,client,\n"  # 50.00 more than D-2 owes: stays unapplied
    + 'P-3,D-1,2026-03-12,"105.00",EUR,cheque,,\n'  # oldest due first: INV-1, then INV-2
)


@pytest.fixture
def acme(db_session: Any) -> Any:
    """D-1 owes INV-1 (100.00, due 2026-02-04) and INV-2 (50.00, due 2026-03-04); D-2 owes INV-3 (200.00)."""
    client = make_client(base_currency="EUR", code="ACME")
    d1 = make_debtor(client, external_ref="D-1")
    d2 = make_debtor(client, external_ref="D-2")
    make_invoice(client, d1, "INV-1", 10000)
    make_invoice(client, d1, "INV-2", 5000, due_date=date(2026, 3, 4))
    make_invoice(client, d2, "INV-3", 20000)
    return client


def _import(client: Any, content: str | bytes, name: str = "payments.csv", **kw: Any) -> ImportBatch:
    data = content.encode() if isinstance(content, str) else content
    batch = start_payment_import(db.session, client, name, data, **kw)
    batch_id = batch.id
    db.session.commit()
    jobs.drain()
    db.session.expire_all()
    return db.session.get_one(ImportBatch, batch_id)


def _payments(client_id: int) -> dict[str, tuple[int, int, str]]:
    rows = db.session.execute(
        select(Payment.external_ref, Payment.amount_minor, Payment.unapplied_minor, Payment.received_by).where(
            Payment.client_id == client_id
        )
    ).all()
    return {ref: (amount, unapplied, by) for ref, amount, unapplied, by in rows}


def _open(client_id: int) -> dict[str, int]:
    return dict(
        db.session.execute(select(Invoice.number, Invoice.open_minor).where(Invoice.client_id == client_id)).all()
    )


def test_good_file_records_every_payment_and_allocates_it(acme: Any) -> None:
    batch = _import(acme, GOOD)
    assert (batch.status, batch.total_rows, batch.posted_rows, batch.skipped_rows, batch.errors) == (
        "posted",
        3,
        3,
        0,
        [],
    )
    assert _payments(acme.id) == {
        "P-1": (4000, 0, "agency"),
        "P-2": (25000, 5000, "client"),
        "P-3": (10500, 0, "agency"),
    }
    assert _open(acme.id) == {"INV-1": 0, "INV-2": 500, "INV-3": 0}
    assert unbalanced_transactions(acme.id) == [] and cache_mismatches(acme.id) == []
    assert batch_summary(db.session, batch) == [
        {"currency": "EUR", "count": 3, "amount": 39500, "unapplied": 5000, "allocated": 34500}
    ]


def test_same_file_again_records_nothing_twice(acme: Any) -> None:
    _import(acme, GOOD)
    entries = db.session.scalar(select(func.count()).select_from(JournalEntry))
    again = _import(acme, GOOD)
    assert (again.status, again.posted_rows, again.skipped_rows) == ("posted", 0, 3)
    assert db.session.scalar(select(func.count()).select_from(JournalEntry)) == entries
    assert len(_payments(acme.id)) == 3


def test_a_known_reference_with_other_details_is_a_row_error(acme: Any) -> None:
    _import(acme, GOOD)
    changed = _import(acme, HEADER + "P-1,D-1,2026-03-10,41.00,EUR,,,paying INV-2\nP-4,D-2,2026-03-20,1,EUR,,,\n")
    assert (changed.status, changed.posted_rows) == ("rejected", 0)
    assert [(e["row"], e["column"]) for e in changed.errors] == [(2, "payment_ref")]
    assert (
        "other details" in changed.errors[0]["message"]
        and "€41.00 here, €40.00 recorded" in (changed.errors[0]["message"])
    )
    assert "P-4" not in _payments(acme.id)


def _mixed() -> str:
    future = (today_utc() + timedelta(days=10)).isoformat()
    return (
        HEADER
        + "OK-1,D-1,2026-03-01,10.00,EUR,,,\n"  # row 2
        + "BAD-DATE,D-1,2026-13-45,10.00,EUR,,,\n"  # 3
        + f"FUTURE,D-1,{future},10.00,EUR,,,\n"  # 4
        + "BAD-CUR,D-1,2026-03-01,10.00,EUX,,,\n"  # 5
        + "BAD-NEG,D-1,2026-03-01,-5.00,EUR,,,\n"  # 6
        + "NO-SUCH,D-404,2026-03-01,10.00,EUR,,,\n"  # 7
        + "DUP,D-1,2026-03-01,10.00,EUR,,,\n"  # 8
        + "DUP,D-2,2026-03-02,20.00,EUR,,,\n"  # 9
        + "NO-DEBTOR,,2026-03-01,10.00,EUR,,,\n"  # 10
        + "BAD-METHOD,D-1,2026-03-01,10.00,EUR,bitcoin,,\n"  # 11
        + "BAD-JPY,D-1,2026-03-01,10.5,JPY,,,\n"  # 12
        + "TWO-PROBLEMS,D-1,2026-02-30,0,EUR,,someone,\n"  # 13
    )


def test_mixed_file_names_every_problem_and_posts_nothing(acme: Any) -> None:
    batch = _import(acme, _mixed())
    assert (batch.status, batch.posted_rows) == ("rejected", 0)
    assert [(e["row"], e["column"]) for e in batch.errors] == [
        (3, "received_on"),
        (4, "received_on"),
        (5, "currency"),
        (6, "amount"),
        (7, "debtor_ref"),
        (8, "payment_ref"),
        (9, "payment_ref"),
        (10, "debtor_ref"),
        (11, "method"),
        (12, "amount"),
        (13, "amount"),
        (13, "received_by"),
        (13, "received_on"),
    ]
    messages = {(e["row"], e["column"]): e["message"] for e in batch.errors}
    assert "YYYY-MM-DD" in messages[(3, "received_on")] and "in the future" in messages[(4, "received_on")]
    assert "ISO 4217" in messages[(5, "currency")] and "positive" in messages[(6, "amount")]
    assert "D-404" in messages[(7, "debtor_ref")] and "required" in messages[(10, "debtor_ref")]
    assert "rows (8, 9)" in messages[(8, "payment_ref")] and "rows (8, 9)" in messages[(9, "payment_ref")]
    assert "bank_transfer" in messages[(11, "method")] and "decimal places" in messages[(12, "amount")]
    assert _payments(acme.id) == {}
    assert _open(acme.id) == {"INV-1": 10000, "INV-2": 5000, "INV-3": 20000}


def test_post_valid_rows_keeps_the_rest_for_correction(acme: Any) -> None:
    batch = _import(acme, _mixed(), post_valid=True)
    assert (batch.status, batch.posted_rows, batch.error_count) == ("partial", 1, 13)
    assert _payments(acme.id) == {"OK-1": (1000, 0, "agency")}
    assert _open(acme.id)["INV-1"] == 9000


def test_missing_required_column_is_reported_for_row_1(acme: Any) -> None:
    batch = _import(acme, "payment_ref,debtor_ref,received_on,currency\nP-1,D-1,2026-03-01,EUR\n")
    assert batch.status == "rejected"
    assert [(e["row"], e["column"]) for e in batch.errors] == [(1, "amount")]


def test_saved_column_mapping_reads_a_bank_export(acme: Any) -> None:
    export = "Ref;Kunde;Datum;Betrag;Whg\nB-1;D-2;2026-03-05;12.30;EUR\n"
    mapping = {"payment_ref": "Ref", "debtor_ref": "Kunde", "received_on": "Datum", "amount": "Betrag"}
    mapping["currency"] = "Whg"
    batch = _import(acme, export, mapping=mapping, received_by="client")
    assert batch.status == "posted", batch.errors
    assert _payments(acme.id) == {"B-1": (1230, 0, "client")}


def test_portal_uploads_report_only_payments_made_to_the_client(acme: Any) -> None:
    content = HEADER + "C-1,D-1,2026-03-01,10.00,EUR,,,\nC-2,D-1,2026-03-01,10.00,EUR,,agency,\n"
    batch = _import(acme, content, received_by="client", channel="portal", post_valid=True)
    assert (batch.status, batch.posted_rows) == ("partial", 1)
    assert [(e["row"], e["column"]) for e in batch.errors] == [(3, "received_by")]
    assert _payments(acme.id) == {"C-1": (1000, 0, "client")}


def test_junk_and_binary_files_are_refused_with_a_reason(acme: Any) -> None:
    junk = _import(acme, os.urandom(256 * 1024), name="junk.csv")
    assert junk.status == "rejected" and "not a CSV" in junk.errors[0]["message"]
    fake = _import(acme, b"PK\x03\x04 not really a zip", name="book.xlsx")
    assert fake.status == "rejected" and "cannot be read" in fake.errors[0]["message"]
    assert _payments(acme.id) == {}
    huge = _import(
        acme, HEADER + "H-1,D-1,2026-03-01,1,EUR,,,\n" + "H-2,D-1,2026-03-01,1,EUR,,," + "x" * 200_000 + "\n"
    )
    assert huge.status == "rejected" and "cannot be read" in huge.errors[0]["message"]
    assert _payments(acme.id) == {}


def test_xlsx_files_import_like_csv(acme: Any) -> None:
    from datetime import datetime

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["payment_ref", "debtor_ref", "received_on", "amount", "currency", "reference"])
    sheet.append(["X-1", "D-2", datetime(2026, 3, 5), 25.5, "EUR", "INV-3"])  # noqa: DTZ001 - spreadsheet cells are naive
    buffer = io.BytesIO()
    book.save(buffer)
    batch = _import(acme, buffer.getvalue(), name="payments.xlsx")
    assert batch.status == "posted", batch.errors
    assert _payments(acme.id) == {"X-1": (2550, 0, "agency")}
    assert _open(acme.id)["INV-3"] == 20000 - 2550


def test_a_finished_batch_is_never_run_again(acme: Any) -> None:
    from clients.payment_imports import import_payments_job

    batch = _import(acme, GOOD)
    entries = db.session.scalar(select(func.count()).select_from(JournalEntry))
    assert import_payments_job(batch.id, acme.id) == "posted"
    assert db.session.scalar(select(func.count()).select_from(JournalEntry)) == entries
