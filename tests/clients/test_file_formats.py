"""Files in other conventions: DD.MM.YYYY / MM/DD/YYYY dates and decimal commas, chosen per client with the
column mapping. An amount or date in another convention is refused with the reason, never guessed: a decimal
comma read as a thousands separator would post 1250,00 as 125,000.00."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from clients.file_formats import DATE_FORMATS, FileFormat
from clients.imports import ImportBatch
from clients.journal import Invoice, Payment
from provider.core.errors import ServiceError
from provider.extensions import db
from tests.clients.test_imports import _import, _invoices
from tests.clients.test_payment_imports import _import as _import_payments
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_debtor, make_invoice, make_user

# a German ERP export: semicolons, DD.MM.YYYY, a decimal comma and dots between thousands
DATEV = (
    "invoice_number;debtor_ref;debtor_name;issue_date;due_date;amount;currency\n"
    "R-1;K-1;Müller GmbH;05.01.2026;04.02.2026;1.250,00;EUR\n"
    "R-2;K-1;Müller GmbH;10.01.2026;09.02.2026;99,95;EUR\n"
    "R-3;K-2;Bolt AG;2026-02-01;2026-03-03;12.345.678,5;EUR\n"  # an ISO date is read in any format
)
GERMAN = {"date_format": "dmy_dot", "decimal_mark": ","}
# a QuickBooks export: MM/DD/YYYY and a decimal point
QUICKBOOKS = (
    "invoice_number,debtor_ref,debtor_name,issue_date,due_date,amount,currency\n"
    'Q-1,C-1,Acme Inc,01/31/2026,03/02/2026,"1,250.00",USD\n'
    "Q-2,C-1,Acme Inc,2/5/2026,3/7/2026,80.5,USD\n"
)


@pytest.fixture
def eur(db_session: Any) -> Any:
    return make_client(base_currency="EUR")


def test_a_german_export_posts_exact_amounts_once_its_format_is_chosen(eur: Any) -> None:
    batch = _import(eur, DATEV.encode("cp1252"), mapping=GERMAN)
    assert batch.status == "posted", batch.errors
    assert _invoices(eur.id) == {"R-1": 125000, "R-2": 9995, "R-3": 1234567850}
    issued = dict(
        db.session.execute(select(Invoice.number, Invoice.issue_date).where(Invoice.client_id == eur.id)).all()
    )
    assert issued == {"R-1": date(2026, 1, 5), "R-2": date(2026, 1, 10), "R-3": date(2026, 2, 1)}


def test_the_same_export_in_the_default_format_is_refused_row_by_row_and_nothing_is_posted(eur: Any) -> None:
    batch = _import(eur, DATEV)
    assert batch.status == "rejected" and _invoices(eur.id) == {}
    problems = {(e["row"], e["column"]): e["message"] for e in batch.errors}
    assert "use YYYY-MM-DD" in problems[(2, "issue_date")]
    assert "choose the 1.234,56 amount format" in problems[(3, "amount")]  # 99,95 is not read as 9,995.00
    assert "may only separate thousands" in problems[(4, "amount")]
    assert (4, "issue_date") not in problems  # the ISO dates of row 4 are fine


def test_month_first_dates_and_an_impossible_date(db_session: Any) -> None:
    usd = make_client(base_currency="USD")
    batch = _import(usd, QUICKBOOKS, mapping={"date_format": "mdy"})
    assert batch.status == "posted", batch.errors
    assert _invoices(usd.id) == {"Q-1": 125000, "Q-2": 8050}
    due = dict(db.session.execute(select(Invoice.number, Invoice.due_date).where(Invoice.client_id == usd.id)).all())
    assert due == {"Q-1": date(2026, 3, 2), "Q-2": date(2026, 3, 7)}

    wrong_way = _import(make_client(base_currency="USD"), QUICKBOOKS, mapping={"date_format": "dmy"})
    messages = {(e["row"], e["column"]): e["message"] for e in wrong_way.errors}
    assert messages[(2, "issue_date")] == "not a valid date; use DD/MM/YYYY"  # there is no 31st month
    assert wrong_way.status == "rejected"


def test_spreadsheet_numbers_and_dates_need_no_convention(eur: Any) -> None:
    from datetime import datetime

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["invoice_number", "debtor_ref", "debtor_name", "issue_date", "due_date", "amount", "currency"])
    sheet.append(["X-1", "D-9", "Xylo", datetime(2026, 1, 5), datetime(2026, 2, 4), 1250.5, "EUR"])  # noqa: DTZ001
    sheet.append(["X-2", "D-9", "Xylo", "05.01.2026", "04.02.2026", "7,10", "EUR"])  # typed as text
    buffer = io.BytesIO()
    book.save(buffer)
    batch = _import(eur, buffer.getvalue(), name="placements.xlsx", mapping=GERMAN)
    assert batch.status == "posted", batch.errors
    assert _invoices(eur.id) == {"X-1": 125050, "X-2": 710}


def test_an_unknown_format_is_refused_before_anything_is_stored(eur: Any) -> None:
    with pytest.raises(ServiceError, match="date format"):
        _import(eur, DATEV, mapping={"date_format": "yyyymmdd"})
    assert db.session.scalars(select(ImportBatch).where(ImportBatch.client_id == eur.id)).all() == []


def test_a_payments_file_with_day_first_dates_and_decimal_commas(db_session: Any) -> None:
    client = make_client(base_currency="EUR", code="KOMMA")
    debtor = make_debtor(client, external_ref="D-1")
    make_invoice(client, debtor, "INV-1", 150000)
    content = "payment_ref;debtor_ref;received_on;amount;currency\nP-1;D-1;03/02/2026;1.000,50;EUR\n"
    batch = _import_payments(client, content, mapping={"date_format": "dmy", "decimal_mark": ","})
    assert batch.status == "posted", batch.errors
    paid = db.session.execute(
        select(Payment.amount_minor, Payment.received_on).where(Payment.client_id == client.id)
    ).one()
    assert tuple(paid) == (100050, date(2026, 2, 3))


def _upload(client: FlaskClient, url: str, content: str, **fields: str) -> Any:
    data = {"csrf_token": fresh_csrf(client, url), "file": (io.BytesIO(content.encode()), "export.csv"), **fields}
    return client.post(url, data=data, content_type="multipart/form-data")


def test_the_format_is_chosen_on_the_upload_form_and_remembered(client: FlaskClient, db_session: Any) -> None:
    acme = make_client(base_currency="EUR")
    admin = make_user("client_admin", client=acme)
    login(client, admin.email)
    form = client.get("/portal/placements").get_data(as_text=True)
    assert 'name="date_format"' in form and 'name="decimal_mark"' in form

    refused = _upload(client, "/portal/placements", DATEV, date_format="julian", decimal_mark=",")
    assert refused.status_code == 422 and "date format: choose one of" in refused.get_data(as_text=True)
    assert db.session.scalars(select(ImportBatch).where(ImportBatch.client_id == acme.id)).all() == []

    done = _upload(client, "/portal/placements", DATEV, **GERMAN)
    assert done.status_code == 302
    result = client.get(done.headers["Location"]).get_data(as_text=True)
    assert "posted" in result and "dates DD.MM.YYYY, amounts 1.234,56" in result
    assert _invoices(acme.id)["R-1"] == 125000
    again = client.get("/portal/placements").get_data(as_text=True)
    assert '<option value="dmy_dot" selected>' in again and '<option value="," selected>' in again


@given(day=st.dates(min_value=date(1990, 1, 1), max_value=date(2099, 12, 31)), key=st.sampled_from(list(DATE_FORMATS)))
def test_a_date_written_in_a_format_reads_back_as_itself(day: date, key: str) -> None:
    pattern = DATE_FORMATS[key][1]
    fmt = FileFormat(date_format=key)
    assert fmt.parse_date(day.strftime(pattern)) == day
    assert fmt.parse_date(day.isoformat()) == day  # ISO is always read
