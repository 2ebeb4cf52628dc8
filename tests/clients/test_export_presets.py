"""Accounting-system exports uploaded as placement files, through the real upload page: each preset's sample
(tests/samples/exports, sources in SOURCES.md) is read as exported, and the invoices placed are counted and
summed again here, straight from the sample file with the csv module, by the rules of the export itself."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from clients.imports import ImportBatch
from clients.journal import Invoice
from provider.extensions import db
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_user

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "exports"
Totals = dict[str, tuple[str, Decimal]]  # invoice number -> (currency, open amount)


def _dec(text: str) -> Decimal:
    return Decimal(text.replace("$", "").replace(",", "").strip() or "0")


def _table(name: str, header_starts: str = "") -> list[dict[str, str]]:
    lines = (SAMPLES / name).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_starts)) if header_starts else 0
    return list(csv.DictReader(lines[start:]))


def _by_number(
    rows: list[dict[str, str]], number: str, amount: Callable[[dict[str, str]], Decimal]
) -> dict[str, Decimal]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        sums[r[number]] += amount(r)
    return sums


# --- each sample, summed independently ------------------------------------------------------------------


def expect_quickbooks() -> Totals:
    sums = _by_number(_table("built-quickbooks-online-invoices.csv"), "InvoiceNo", lambda r: _dec(r["ItemAmount"]))
    return {n: ("USD", v) for n, v in sums.items()}


def expect_xero() -> Totals:
    out = {}
    for r in _table("built-xero-sales-invoices.csv"):
        if r["Status"] not in ("DRAFT", "SUBMITTED", "VOIDED", "DELETED") and _dec(r["InvoiceAmountDue"]) > 0:
            out[r["InvoiceNumber"]] = (r["Currency"], _dec(r["InvoiceAmountDue"]))
    return out


def expect_sage_50() -> Totals:
    rows = [r for r in _table("built-sage-50-audit-trail.csv") if r["Type"] == "SI"]
    sums = _by_number(rows, "Reference", lambda r: _dec(r["Net Amount"]) + _dec(r["Tax Amount"]))
    return {n: ("GBP", v) for n, v in sums.items()}


def expect_sage_accounting() -> Totals:
    rows = _table("built-sage-accounting-sales-invoices.csv")
    return {
        r["Invoice No."]: ("GBP", _dec(r["Outstanding"]))
        for r in rows
        if r["Status"] not in ("Draft", "Void") and _dec(r["Outstanding"]) > 0
    }


def _zoho(name: str) -> Totals:
    return {
        r["Invoice Number"]: (r["Currency Code"], _dec(r["Balance"]))
        for r in _table(name)
        if r["Invoice Status"] not in ("Draft", "Void") and _dec(r["Balance"]) > 0
    }


def expect_zoho() -> Totals:
    return _zoho("built-zoho-invoice-invoices.csv")


def expect_zoho_real() -> Totals:
    return _zoho("invoiceninja-tests-zoho_invoices.csv")


def expect_freshbooks() -> Totals:
    rows = [
        r
        for r in _table("invoiceninja-tests-freshbooks_invoices.csv")
        if r["Invoice Status"] not in ("draft", "paid", "auto-paid")
    ]
    currency = {r["Invoice #"]: r["Currency"] for r in rows}
    return {n: (currency[n], v) for n, v in _by_number(rows, "Invoice #", lambda r: _dec(r["Line Total"])).items()}


def expect_wave() -> Totals:
    rows = [
        r for r in _table("invoiceninja-tests-wave_invoices.csv") if r["Account Type"] == "System Receivable Invoice"
    ]
    sums = _by_number(rows, "Invoice Number", lambda r: _dec(r["Amount (One column)"]))
    return {n: ("USD", v) for n, v in sums.items() if v != 0}


def expect_wave_invoices() -> Totals:
    rows = _table("built-wave-invoices.csv")
    open_amounts = {
        r["Invoice Number"]: (r["Currency"], _dec(r["Invoice Total"]) - _dec(r["Invoice Paid"])) for r in rows
    }
    return {n: v for n, v in open_amounts.items() if v[1] > 0}


def expect_odoo() -> Totals:
    rows = _table("built-odoo-customer-invoices.csv")
    return {
        r["Number"]: (r["Currency"], _dec(r["Amount Due"]))
        for r in rows
        if r["Status"] not in ("Draft", "Cancelled") and _dec(r["Amount Due"]) > 0
    }


def expect_odoo_import_compatible() -> Totals:
    rows = _table("built-odoo-import-compatible.csv")
    return {
        r["name"]: (r["currency_id"], _dec(r["amount_residual"]))
        for r in rows
        if r["move_type"] == "out_invoice" and r["state"] not in ("draft", "cancel") and _dec(r["amount_residual"]) > 0
    }


def expect_erpnext_receivable() -> Totals:
    rows = _table("built-erpnext-accounts-receivable.csv")
    return {
        r["Voucher No"]: (r["Currency"], _dec(r["Outstanding Amount"]))
        for r in rows
        if r["Voucher Type"] == "Sales Invoice" and _dec(r["Outstanding Amount"]) > 0
    }


def expect_erpnext_sales_invoice() -> Totals:
    rows = _table("built-erpnext-sales-invoice-list.csv")
    return {
        r["ID"]: (r["Currency"], _dec(r["Outstanding Amount"]))
        for r in rows
        if r["Status"] not in ("Draft", "Cancelled", "Return") and _dec(r["Outstanding Amount"]) > 0
    }


def expect_invoice_ninja_v5() -> Totals:
    rows = _table("built-invoice-ninja-v5-invoices-report.csv")
    return {
        r["Invoice Number"]: (r["Currency"], _dec(r["Balance"]))
        for r in rows
        if r["Status"] not in ("Draft", "Cancelled") and _dec(r["Balance"]) > 0
    }


def expect_invoice_ninja_v4() -> Totals:
    """Invoice Ninja's own test export: faker data whose due dates often come before the issue dates; those
    invoices are refused (with "post the valid rows" the others are placed), as are drafts and paid ones."""
    out = {}
    for r in _table("invoiceninja-tests-invoice-v4-export.csv", header_starts="Client,Email"):
        open_amount = _dec(r["Amount"]) - _dec(r["Paid"])
        if r["Status"] == "Draft" or open_amount <= 0:
            continue
        if date.fromisoformat(r["Due Date"]) < date.fromisoformat(r["Invoice Date"]):
            continue
        out[r["Invoice Number"]] = ("USD", open_amount)
    return out


def expect_invoice2go() -> Totals:
    """Invoice2go packs items and taxes into quoted cells with doubled quotes inside (a reader that misses
    them sees 58 to 91 cells under the 40 columns)."""
    rows = _table("invoiceninja-tests-i2g_invoices.csv")
    return {
        r["DocumentNumber"]: (r["CurrencyCode"], _dec(r["BalanceDueAmount"]))
        for r in rows
        if _dec(r["BalanceDueAmount"])
    }


def expect_invoicely() -> Totals:
    rows = _table("invoiceninja-tests-invoicely_invoices.csv")
    return {r["Details"]: ("USD", _dec(r["Total"])) for r in rows if r["Status"] not in ("Draft", "Paid")}


# sample, preset it must be recognised as, base currency, extra form fields, expected invoices
CASES = [
    ("built-quickbooks-online-invoices.csv", "QuickBooks Online", "USD", {}, expect_quickbooks),
    ("built-xero-sales-invoices.csv", "Xero", "GBP", {}, expect_xero),
    ("built-sage-50-audit-trail.csv", "Sage 50 Accounts", "GBP", {"due_days": "30"}, expect_sage_50),
    ("built-sage-accounting-sales-invoices.csv", "Sage Business Cloud Accounting", "GBP", {}, expect_sage_accounting),
    ("built-zoho-invoice-invoices.csv", "Zoho Invoice", "USD", {}, expect_zoho),
    ("invoiceninja-tests-zoho_invoices.csv", "Zoho Invoice", "USD", {}, expect_zoho_real),
    ("invoiceninja-tests-freshbooks_invoices.csv", "FreshBooks", "USD", {"due_days": "14"}, expect_freshbooks),
    ("invoiceninja-tests-wave_invoices.csv", "Wave", "USD", {}, expect_wave),
    ("built-wave-invoices.csv", "Wave: invoices export", "USD", {}, expect_wave_invoices),
    ("built-odoo-customer-invoices.csv", "Odoo", "EUR", {}, expect_odoo),
    (
        "built-odoo-import-compatible.csv",
        "Odoo: customer invoices, import-compatible",
        "EUR",
        {},
        expect_odoo_import_compatible,
    ),
    ("built-erpnext-accounts-receivable.csv", "ERPNext: Accounts Receivable", "INR", {}, expect_erpnext_receivable),
    ("built-erpnext-sales-invoice-list.csv", "ERPNext: Sales Invoice", "INR", {}, expect_erpnext_sales_invoice),
    ("built-invoice-ninja-v5-invoices-report.csv", "Invoice Ninja", "USD", {}, expect_invoice_ninja_v5),
    ("invoiceninja-tests-invoice-v4-export.csv", "Invoice Ninja", "USD", {"post_valid": "1"}, expect_invoice_ninja_v4),
    ("invoiceninja-tests-i2g_invoices.csv", "Invoice2go", "USD", {}, expect_invoice2go),
    ("invoiceninja-tests-invoicely_invoices.csv", "Invoicely", "USD", {}, expect_invoicely),
]


def _upload(client: FlaskClient, url: str, content: bytes, name: str, **fields: str) -> Any:
    data = {"csrf_token": fresh_csrf(client, url), "file": (io.BytesIO(content), name), **fields}
    return client.post(url, data=data, content_type="multipart/form-data")


def _placed(client_id: int) -> Totals:
    rows = db.session.execute(
        select(Invoice.number, Invoice.currency, Invoice.amount_minor).where(Invoice.client_id == client_id)
    ).all()
    return {n: (c, Decimal(a) / 100) for n, c, a in rows}


@pytest.fixture
def manager(client: FlaskClient, db_session: Any) -> FlaskClient:
    make_user("manager", email="exports@example.test")
    login(client, "exports@example.test")
    return client


@pytest.mark.parametrize(("sample", "product", "currency", "form", "expected"), CASES, ids=[c[0][:-4] for c in CASES])
def test_each_preset_imports_its_sample_as_exported(
    manager: FlaskClient,
    sample: str,
    product: str,
    currency: str,
    form: dict[str, str],
    expected: Callable[[], Totals],
) -> None:
    acme = make_client(base_currency=currency)
    url = f"/clients/{acme.id}/imports"
    content = (SAMPLES / sample).read_bytes()
    preview = _upload(manager, url, content, sample, action="preview", **form)
    assert preview.status_code == 302
    page = manager.get(preview.headers["Location"]).get_data(as_text=True)
    assert f"Read as {product}" in page and "recognised from the header" in page, page[:3000]
    assert _placed(acme.id) == {}  # the preview posts nothing
    batch_id = int(preview.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    done = manager.post(url, data={"csrf_token": fresh_csrf(manager, url), "batch_id": batch_id, "action": "confirm"})
    assert done.status_code == 302
    batch = db.session.get_one(ImportBatch, batch_id)
    want = expected()
    assert batch.status in ("posted", "partial"), batch.errors
    assert _placed(acme.id) == want
    by_currency: dict[str, Decimal] = defaultdict(Decimal)
    for cur, amount in want.values():
        by_currency[cur] += amount
    placed_by_currency: dict[str, Decimal] = defaultdict(Decimal)
    for cur, amount in _placed(acme.id).values():
        placed_by_currency[cur] += amount
    assert placed_by_currency == by_currency
    assert batch.posted_rows == len(want)


def test_an_export_without_due_dates_is_due_on_receipt_unless_terms_are_given(manager: FlaskClient) -> None:
    content = (SAMPLES / "invoiceninja-tests-freshbooks_invoices.csv").read_bytes()
    for terms, due in (("", date(2021, 1, 28)), ("21", date(2021, 2, 18))):
        acme = make_client(base_currency="USD")
        url = f"/clients/{acme.id}/imports"
        done = _upload(manager, url, content, "fb.csv", action="post", due_days=terms)
        page = manager.get(done.headers["Location"]).get_data(as_text=True)
        assert ("due on its issue date" in page) == (not terms)
        dates = db.session.execute(select(Invoice.issue_date, Invoice.due_date).where(Invoice.client_id == acme.id))
        assert dates.all() == [(date(2021, 1, 28), due)]


def test_a_preset_reads_its_dates_even_where_iso_dates_were_saved_before(manager: FlaskClient) -> None:
    acme = make_client(base_currency="USD")
    url = f"/clients/{acme.id}/imports"
    content = (SAMPLES / "built-quickbooks-online-invoices.csv").read_bytes()
    done = _upload(manager, url, content, "qbo.csv", action="post", date_format="iso")  # as saved before presets
    assert "posted" in manager.get(done.headers["Location"]).get_data(as_text=True)
    assert db.session.scalar(select(Invoice.issue_date).where(Invoice.number == "1001")) == date(2021, 1, 28)
