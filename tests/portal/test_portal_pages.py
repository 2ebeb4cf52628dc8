"""The portal as a client sees it: overview figures, receivables with filters and exports, the debtor page
(the agency's work, never its internal notes), and only ever their own company."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from openpyxl import load_workbook
from sqlalchemy import event

from provider.core.clock import today_utc
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.conftest import login
from tests.factories import make_debtor, make_dispute, make_invoice
from tests.portal.conftest import B_MARKERS, CALL_NOTE, INTERNAL_NOTE, Company


def _text(response: Any) -> str:
    assert response.status_code == 200, response.status_code
    return response.get_data(as_text=True)


def _no_b(body: str) -> None:
    leaked = [m for m in B_MARKERS if m in body]
    assert not leaked, leaked


# --- overview ------------------------------------------------------------------------------------------


def test_overview_shows_ar_overdue_collected_split_disputes_sla_and_report(
    client: FlaskClient, company: Company
) -> None:
    from provider.reporting.jobs import take_snapshot
    from provider.reporting.reports import generate_report
    from sla.disputes import acknowledge, ask_client, investigate

    acme = company.client
    inv = make_invoice(
        acme, company.fresh, "ACME-INV-9", 10_00, issue_date=today_utc(), due_date=today_utc() + timedelta(days=3)
    )
    dispute = make_dispute(acme, company.fresh, [inv], summary="Wrong quantity on delivery")
    with scoped(TenantScope.agency(), db.session):
        acknowledge(db.session, dispute)
        investigate(db.session, dispute)
        ask_client(db.session, dispute, "Was the delivery complete?")
        take_snapshot(acme)
        generate_report(db.session, acme, "2026-10")
        db.session.commit()

    login(client, company.viewer.email)
    body = _text(client.get("/portal/"))
    # open: 1,000 + 500 + 300 + 40 + 10 (payments are unapplied, so nothing is paid off yet)
    assert "€1,850.00" in body
    assert "€1,540.00" in body  # overdue: all but the two invoices not yet due
    assert "€200.00" in body and "€120.00" in body and "€80.00" in body  # collected: agency + client
    assert "Paid to us" in body and "Paid to you" in body
    dso_tile = body.split('id="dso-title"')[1].split("</section>")[0]
    assert "days" in dso_tile and "Not computable" not in dso_tile  # invoices were placed this month
    assert f"#{dispute.id}" in body and "Disputes awaiting you" in body
    assert "October 2026" in body  # latest report, its month in words
    assert "<svg" in body and "aging-fill" in body
    _no_b(body)


def test_overview_runs_the_same_number_of_queries_however_big_the_ledger(
    app: Any, client: FlaskClient, company: Company
) -> None:
    login(client, company.admin.email)

    def count() -> int:
        seen: list[str] = []

        def listener(*args: Any) -> None:
            sql = args[2].lstrip()
            # transaction bookkeeping of the test harness (savepoints, the RLS settings of a new transaction)
            if not sql.upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")) and "set_config(" not in sql:
                seen.append(args[2])

        db.session.expire_all()  # both requests start cold (the user is loaded, as in production)
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            assert client.get("/portal/").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(seen)

    before = count()
    for n in range(15):
        debtor = make_debtor(company.client, name=f"Bulk Debtor {n}")
        make_invoice(company.client, debtor, f"BULK-{n}", 10_00 + n)
    assert count() == before
    assert before <= 16  # session, user, client and ten reads of the page


# --- receivables ------------------------------------------------------------------------------------


def test_debtors_list_searches_filters_sorts_and_pages(client: FlaskClient, company: Company) -> None:
    login(client, company.viewer.email)
    body = _text(client.get("/portal/debtors"))
    assert "Late Payer AG" in body and "Fresh Customer KG" in body
    _no_b(body)

    overdue = _text(client.get("/portal/debtors?status=overdue"))
    assert "Late Payer AG" in overdue and "Fresh Customer KG" not in overdue

    found = _text(client.get("/portal/debtors?q=fresh"))
    assert "Fresh Customer KG" in found and "Late Payer AG" not in found

    segment = _text(client.get("/portal/debtors?segment=key_account"))
    assert "Late Payer AG" in segment and "Fresh Customer KG" not in segment

    by_open = _text(client.get("/portal/debtors?sort=open&dir=desc"))
    assert by_open.index("Late Payer AG") < by_open.index("Fresh Customer KG")
    assert "€1,500.00" in by_open  # Late Payer's open balance

    first = _text(client.get("/portal/debtors?per_page=25&sort=name"))
    assert "Rows <strong>1\u20133</strong> of <strong>3</strong>" in first
    assert "No rows on page 2" in _text(client.get("/portal/debtors?per_page=25&page=2"))
    _no_b(_text(client.get("/portal/debtors?q=Bravo")))


def test_debtors_csv_is_escaped_and_only_mine(client: FlaskClient, company: Company) -> None:
    login(client, company.viewer.email)
    response = client.get("/portal/debtors.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    _no_b(text)
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][0] == "debtor_ref"
    by_ref = {r[0]: r for r in rows[1:]}
    assert set(by_ref) == {"LATE-1", "FRESH-1", "'+EVIL-REF"}
    assert by_ref["'+EVIL-REF"][1].startswith("'=HYPERLINK")
    assert by_ref["LATE-1"][3:6] == ["EUR", "1500.00", "1500.00"]
    filtered = client.get("/portal/debtors.csv?status=overdue&q=late").get_data(as_text=True)
    assert "LATE-1" in filtered and "FRESH-1" not in filtered


def _sheet(response: Any) -> Any:
    assert response.status_code == 200
    assert response.mimetype.endswith("spreadsheetml.sheet")
    return load_workbook(io.BytesIO(response.get_data())).active


def test_xlsx_exports_hold_text_never_formulas_and_only_mine(client: FlaskClient, company: Company) -> None:
    login(client, company.viewer.email)
    sheet = _sheet(client.get("/portal/debtors.xlsx"))
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "debtor_ref" and len(rows) == 4
    flat = " ".join(str(v) for row in rows for v in row)
    _no_b(flat)
    evil = next(row for row in sheet.iter_rows(min_row=2) if row[0].value == "+EVIL-REF")
    for cell in (evil[0], evil[1]):
        assert cell.data_type == "s" and cell.quotePrefix, (cell.value, cell.data_type)
    late = next(row for row in rows if row[0] == "LATE-1")
    assert float(late[4]) == 1500.0  # amounts are numbers in major units

    ledger = _sheet(client.get("/portal/ledger.xlsx?status=overdue"))
    numbers = [row[0] for row in ledger.iter_rows(min_row=2, values_only=True)]
    assert sorted(numbers) == ["ACME-INV-1", "ACME-INV-2", "ACME-INV-4"]
    evil_line = next(row for row in ledger.iter_rows(min_row=2) if row[0].value == "ACME-INV-4")
    assert evil_line[2].data_type == "s" and evil_line[2].quotePrefix
    _no_b(" ".join(str(v) for row in ledger.iter_rows(values_only=True) for v in row))


def test_debtor_page_shows_agency_work_but_never_internal_notes(client: FlaskClient, company: Company) -> None:
    login(client, company.viewer.email)
    body = _text(client.get(f"/portal/debtors/{company.late.id}"))
    assert "Our work on this account" in body
    assert "spoke to the debtor" in body and "E-mail" in body and "Promise to pay" in body
    assert "€250.00" in body  # the open promise
    for secret in (INTERNAL_NOTE, CALL_NOTE, "escalation reason", "promised on the phone", "e-mail body summary"):
        assert secret not in body
    assert "Recall account" not in body  # a viewer cannot recall
    _no_b(body)


def test_another_clients_debtor_is_a_404_like_a_missing_one(client: FlaskClient, company: Company) -> None:
    login(client, company.admin.email)
    for path in ("/portal/debtors/{}", "/portal/debtors/{}/recall"):
        foreign = client.get(path.format(company.b_debtor.id))
        missing = client.get(path.format(987_654_321))
        assert foreign.status_code == missing.status_code == 404
