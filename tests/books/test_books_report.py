"""The monthly report's "Collections and fees" section: the month's money with the agency from the books (page,
PDF and the portal's copy), and a sentence when there is nothing."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any

from flask.testing import FlaskClient
from pypdf import PdfReader

from provider.books.invoices import issue_fee_invoice
from provider.books.posting import bring_up_to_date
from provider.books.remittance import approve_run, draft_runs
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.reporting import reports
from tests.books.helpers import give_schedule
from tests.conftest import login
from tests.factories import make_client, make_debtor, make_invoice, make_payment, make_user

MARCH = (date(2026, 3, 1), date(2026, 3, 31))


def _at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _report(client: Any) -> Any:
    with frozen_time(_at(date(2026, 4, 2), 12)), scoped(TenantScope.agency(), db.session):
        result = reports.generate_report(db.session, client, "2026-03")
        db.session.commit()
    return result.report


def _march_with_fees() -> Any:
    client = make_client(name="Harbour Freight Ltd", base_currency="EUR")
    give_schedule(client)  # 15 % to the agency, 10 % direct, tax 20 %
    debtor = make_debtor(client)
    with frozen_time(_at(date(2026, 2, 1))):
        make_invoice(client, debtor, "INV-1", 100_000, issue_date=date(2025, 12, 1), due_date=date(2026, 1, 2))
    with frozen_time(_at(date(2026, 3, 15))):
        make_payment(client, debtor, "PAY-1", 10_000, received_on=date(2026, 3, 10))
        make_payment(client, debtor, "PAY-2", 3_333, received_on=date(2026, 3, 12))
        make_payment(client, debtor, "DIRECT-1", 20_000, received_on=date(2026, 3, 14), received_by="client")
        with scoped(TenantScope.single(client.id), db.session):
            bring_up_to_date(db.session, client.id)
            db.session.commit()
    with frozen_time(_at(date(2026, 4, 1))), scoped(TenantScope.single(client.id), db.session):
        (run,) = draft_runs(db.session, client.id, "monthly", *MARCH)
        approve_run(db.session, run, "approver@example.test")
        make_payment(client, debtor, "APRIL", 7_000, received_on=date(2026, 4, 1))  # not in March
        invoice = issue_fee_invoice(db.session, client.id, "EUR", *MARCH, issued_on=date(2026, 4, 1))
        db.session.commit()
    return client, run, invoice


def test_the_report_shows_the_months_collections_fees_remittance_and_invoice(
    client: FlaskClient, db_session: Any
) -> None:
    owner, run, invoice = _march_with_fees()
    report = _report(owner)
    books = report.figures["external"]["fees"]
    # fees per payment: 15.00 + 5.00 (499.95 rounded) to the agency, 20.00 (10 %) on the direct payment
    assert books["currencies"]["EUR"] == {
        "to_agency": 13_333,
        "direct": 20_000,
        "reversed": 0,
        "fees": 4_000,
        "tax": 800,
        "remitted": run.remit_minor,
        "held": 13_333 - 2_400,  # the run was approved on 1 April: at 31 March the money was still held
    }
    assert run.remit_minor == 10_933 and invoice.total_minor == 2_400
    assert books["invoices"][0]["number"] == invoice.number and books["remittances"][0]["status"] == "Approved"
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(report.pdf)).pages).split())
    assert "Collections and fees" in text
    for figure in ("133.33", "200.00", "40.00", "8.00", "109.33", f"No. {invoice.number}", "24.00"):
        assert figure in text, figure
    login(client, make_user("client_viewer", client=owner).email)
    page = client.get(f"/portal/reports/{report.id}").get_data(as_text=True)
    assert "Collections and fees" in page and "109.33" in page and "trust_liability" not in page


def test_a_month_without_money_with_the_agency_says_so(client: FlaskClient, db_session: Any) -> None:
    quiet = make_client(name="Quiet Co", base_currency="EUR")
    report = _report(quiet)
    assert report.figures["external"]["fees"] == {"currencies": {}, "remittances": [], "invoices": []}
    login(client, make_user("manager").email)
    page = client.get(f"/reports/monthly/{report.id}").get_data(as_text=True)
    assert "Collections and fees" in page
    assert "Nothing was collected for you this month, no fees were charged and nothing is held in trust" in page
