"""Remittance statements and fee invoices as PDFs: issuer and addressee, lines and totals equal to the books, no
raw enum values; who may download them (agency managers; the client's own users, never a draft)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from typing import Any

from flask.testing import FlaskClient
from pypdf import PdfReader

from provider.books.invoices import issue_fee_invoice
from provider.books.remittance import approve_run, draft_runs
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.books.helpers import give_schedule
from tests.conftest import login
from tests.factories import make_client, make_debtor, make_invoice, make_payment, make_team, make_user

MARCH = (date(2026, 3, 1), date(2026, 3, 31))


def _world(name: str = "Harbour Freight Ltd") -> Any:
    client = make_client(name=name)
    give_schedule(client, bill_to="Accounts payable\n1 Quay Street\nDublin D02 X285")  # 15 %, tax 20 %
    debtor = make_debtor(client, name="Northwind Traders")
    with frozen_time(datetime(2026, 2, 1, 9, tzinfo=UTC)):
        make_invoice(client, debtor, "INV-7001", 100_000, issue_date=date(2025, 12, 1), due_date=date(2026, 1, 2))
    make_payment(client, debtor, "PAY-1", 10_000)
    make_payment(client, debtor, "PAY-2", 3_333)
    make_payment(client, debtor, "DIRECT-1", 20_000, received_by="client")
    with scoped(TenantScope.single(client.id), db.session):
        (run,) = draft_runs(db.session, client.id, "monthly", *MARCH)
        invoice = issue_fee_invoice(db.session, client.id, "EUR", *MARCH, issued_on=date(2026, 4, 1))
        db.session.commit()
    return client, run, invoice


def _approve(client: Any, run: Any) -> None:
    with scoped(TenantScope.single(client.id), db.session):
        approve_run(db.session, run, "approver@example.test")
        db.session.commit()


def _text(data: bytes) -> tuple[str, str]:
    reader = PdfReader(io.BytesIO(data))
    text = "\n".join(page.extract_text() for page in reader.pages)
    return " ".join(text.split()), str(reader.metadata.title if reader.metadata else "")


def test_the_statement_pdf_names_both_parties_and_totals_equal_the_run(client: FlaskClient, db_session: Any) -> None:
    owner, run, _ = _world()
    _approve(owner, run)
    login(client, make_user("manager").email)
    response = client.get(f"/books/remittances/{run.id}/statement.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert "attachment" in response.headers["Content-Disposition"]
    text, title = _text(response.data)
    assert title.startswith("Remittance statement Harbour Freight Ltd")
    assert "AR Ops Collections" in text and "1 Quay Street" in text and "Dublin D02 X285" in text
    assert "PAY-1" in text and "PAY-2" in text and "Northwind Traders" in text
    assert "DIRECT-1" not in text  # paid to the client: billed on the fee invoice, not remitted
    # 133.33 collected, fees 20.00 (15 %), tax 4.00 (20 % of the fee), 109.33 remitted
    assert run.remit_minor == 10_933 and run.fees_minor == 2_000 and run.tax_minor == 400
    for figure in ("133.33", "20.00", "4.00", "109.33"):
        assert figure in text
    assert "Approved" in text and "approved" not in text.replace("Approved", "").split("Status")[0]
    for raw in ("collection", "trust_liability", "direct_fee", "remit_clearing", "draft"):
        assert raw not in text


def test_the_fee_invoice_pdf_is_numbered_with_tax_lines_and_totals_of_the_books(
    client: FlaskClient, db_session: Any
) -> None:
    _, _, invoice = _world()
    assert (invoice.fees_minor, invoice.tax_minor, invoice.total_minor) == (2_000, 400, 2_400)  # 10 % direct rate
    login(client, make_user("manager").email)
    response = client.get(f"/books/fee-invoices/{invoice.id}/invoice.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text, title = _text(response.data)
    assert title == f"Fee invoice {invoice.number} Harbour Freight Ltd"
    assert f"Invoice number {invoice.number}" in text and "1 Apr 2026" in text
    assert "BILL TO Harbour Freight Ltd Accounts payable 1 Quay Street" in text
    assert "Tax on fees at 20 % on €20.00" in text or "Tax on fees at 20 % on EUR 20.00" in text
    assert "DIRECT-1" in text and "Fee on a payment made to you" in text
    assert "24.00" in text and "PAY-1" not in text
    for raw in ("direct_fee", "fees_receivable", "period_fee"):
        assert raw not in text


def test_the_portal_downloads_its_own_approved_statement_and_invoice_only(client: FlaskClient, db_session: Any) -> None:
    owner, run, invoice = _world()
    other, other_run, other_invoice = _world("Other Freight")
    _approve(other, other_run)
    login(client, make_user("client_viewer", client=owner).email)
    assert client.get(f"/portal/remittances/{run.id}/statement.pdf").status_code == 404  # a draft
    assert client.get(f"/portal/fee-invoices/{invoice.id}/invoice.pdf").data.startswith(b"%PDF-")
    _approve(owner, run)
    mine = client.get(f"/portal/remittances/{run.id}/statement.pdf")
    assert mine.status_code == 200 and "Harbour Freight Ltd" in _text(mine.data)[1]
    assert client.get(f"/portal/remittances/{other_run.id}/statement.pdf").status_code == 404
    assert client.get(f"/portal/fee-invoices/{other_invoice.id}/invoice.pdf").status_code == 404
    assert client.get(f"/books/remittances/{run.id}/statement.pdf").status_code == 404  # staff pages
    page = client.get(f"/portal/remittances/{run.id}").get_data(as_text=True)
    assert f"/portal/remittances/{run.id}/statement.pdf" in page


def test_collectors_do_not_see_the_agency_books_managers_do(client: FlaskClient, db_session: Any) -> None:
    owner, run, invoice = _world()
    login(client, make_user("collector", team=make_team(owner)).email)
    for url in (
        f"/books/clients/{owner.id}",
        f"/books/remittances/{run.id}",
        f"/books/remittances/{run.id}/statement.pdf",
        f"/books/fee-invoices/{invoice.id}/invoice.pdf",
    ):
        assert client.get(url).status_code == 404, url
    assert "/books" not in client.get("/").get_data(as_text=True)
    manager = client.application.test_client()
    login(manager, make_user("manager").email)
    assert manager.get(f"/books/clients/{owner.id}").status_code == 200
    assert manager.get(f"/books/remittances/{run.id}/statement.pdf").status_code == 200


def test_a_manager_records_a_fee_invoice_payment_and_the_client_sees_what_is_still_owed(
    client: FlaskClient, db_session: Any
) -> None:
    from tests.conftest import fresh_csrf

    owner, _run, invoice = _world()
    other, _other_run, other_invoice = _world("Other Freight")
    assert invoice.total_minor > 1_000
    login(client, make_user("manager").email)
    url = f"/books/fee-invoices/{invoice.id}"
    page = client.get(url).get_data(as_text=True)
    assert "Nothing paid yet." in page and "Record the payment" in page
    token = fresh_csrf(client, url)
    refused = client.post(f"{url}/payments", data={"csrf_token": token, "amount": "abc", "paid_on": "2026-04-10",
                                                   "reference": "B-1"})  # fmt: skip
    assert refused.status_code == 422 and "amount" in refused.get_data(as_text=True).lower()
    done = client.post(f"{url}/payments", data={"csrf_token": token, "amount": "10.00", "paid_on": "2026-04-10",
                                                "reference": "BANK 778"})  # fmt: skip
    assert done.status_code == 302
    page = client.get(url).get_data(as_text=True)
    owed = invoice.total_minor - 1_000
    assert "BANK 778" in page and f"€{owed / 100:,.2f} still owed" in page
    wrong = client.post(
        f"/books/fee-invoices/{other_invoice.id}/payments".replace(str(other_invoice.id), "999999"),
        data={"csrf_token": token, "amount": "1", "paid_on": "2026-04-10", "reference": "X"},
    )
    assert wrong.status_code == 404
    portal = client.application.test_client()
    login(portal, make_user("client_viewer", client=owner).email)
    mine = portal.get(f"/portal/fee-invoices/{invoice.id}").get_data(as_text=True)
    assert "BANK 778" in mine and "Record the payment" not in mine
    listing = portal.get("/portal/remittances").get_data(as_text=True)
    assert f"€{owed / 100:,.2f}" in listing
    portal_token = fresh_csrf(portal, "/portal/remittances")
    assert portal.post(f"{url}/payments", data={"csrf_token": portal_token, "amount": "1"}).status_code in (403, 404)
    outsider = client.application.test_client()
    login(outsider, make_user("client_admin", client=other).email)
    assert outsider.get(f"/portal/fee-invoices/{invoice.id}").status_code == 404
