"""Placement files read by a mapping: rows of the wrong width, fixed values, due dates from payment terms,
dates with month names, line-level files, paid columns, a missing column named once; the preview before
posting, the CSV template and the saved reading options."""

from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from clients.imports import ImportBatch, PlannedChecker
from clients.journal import Invoice
from clients.payment_imports import start_payment_import
from clients.placement_plan import make_plan
from provider.core import jobs
from provider.extensions import db
from tests.clients.test_imports import _import, _invoices
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_user

COLUMNS = "invoice_number,debtor_ref,debtor_name,issue_date,due_date,amount,currency"


@pytest.fixture
def eur(db_session: Any) -> Any:
    return make_client(base_currency="EUR")


def _problems(batch: Any) -> dict[tuple[int, str], str]:
    return {(e["row"], e["column"]): e["message"] for e in batch.errors}


def _dates(client_id: int) -> dict[str, tuple[date, date]]:
    rows = db.session.execute(
        select(Invoice.number, Invoice.issue_date, Invoice.due_date).where(Invoice.client_id == client_id)
    ).all()
    return {n: (i, d) for n, i, d in rows}


# --- rows wider or narrower than the header -------------------------------------------------------------


def test_a_row_wider_or_narrower_than_the_header_is_a_row_error_never_shifted(eur: Any) -> None:
    text = (
        COLUMNS
        + "\nR-1,K-1,Acme,2026-01-05,2026-02-04,10.00,EUR"
        + "\nR-2,K-1,Acme, Inc,2026-01-05,2026-02-04,20.00,EUR,extra"  # an unquoted comma: 9 cells
        + "\nR-3,K-1,Acme,2026-01-05,30.00,EUR"  # a cell left out: 6 cells
        + "\nR-4,K-1,Acme,2026-01-05,2026-02-04,40.00,EUR,,\n"  # empty cells after the last column: fine
    )
    refused = _import(eur, text)
    assert refused.status == "rejected" and _invoices(eur.id) == {}
    problems = _problems(refused)
    assert set(problems) == {(3, "row"), (4, "row")}
    assert "row 3 has 9 cells but the header (row 1) has 7 columns" in problems[(3, "row")]
    assert "row 4 has 6 cells but the header (row 1) has 7 columns" in problems[(4, "row")]
    partial = _import(eur, text, post_valid=True)
    assert (partial.status, partial.posted_rows) == ("partial", 2)
    assert _invoices(eur.id) == {"R-1": 1000, "R-4": 4000}


def test_an_xlsx_row_with_values_beyond_the_header_is_a_row_error(eur: Any) -> None:
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(COLUMNS.split(","))
    book.active.append(["X-1", "D-1", "Xylo", "2026-01-05", "2026-02-04", 10, "EUR"])
    book.active.append(["X-2", "D-1", "Xylo", "2026-01-05", "2026-02-04", 20, "EUR", "", "stray"])
    book.active.append(["X-3", "D-1", "Xylo", "2026-01-05", "2026-02-04", 30, "EUR"])
    buffer = io.BytesIO()
    book.save(buffer)
    batch = _import(eur, buffer.getvalue(), name="p.xlsx", post_valid=True)
    assert batch.status == "partial"
    assert "row 3 has 9 cells but the header (row 1) has 7 columns" in _problems(batch)[(3, "row")]
    assert _invoices(eur.id) == {"X-1": 1000, "X-3": 3000}


def test_a_payment_file_row_of_the_wrong_width_is_a_row_error(eur: Any) -> None:
    _import(eur, COLUMNS + "\nR-1,K-1,Acme,2026-01-05,2026-02-04,10.00,EUR\n")
    text = (
        "payment_ref,debtor_ref,received_on,amount,currency\n"
        "P-1,K-1,2026-01-20,4.00,EUR\n"
        "P-2,K-1,2026-01-21,1,000.00,EUR\n"  # an unquoted thousands separator: 6 cells
    )
    batch = start_payment_import(db.session, eur, "cash.csv", text.encode())
    batch_id = batch.id
    db.session.commit()
    jobs.drain()
    db.session.expire_all()
    batch = db.session.get_one(ImportBatch, batch_id)
    assert batch.status == "rejected"
    assert "row 3 has 6 cells but the header (row 1) has 5 columns" in _problems(batch)[(3, "row")]


def test_quoted_cells_with_doubled_quotes_are_read_whole(eur: Any) -> None:
    text = COLUMNS + '\nQ-1,K-1,"Acme ""East"", Inc",2026-01-05,2026-02-04,10.00,EUR\n'
    batch = _import(eur, text)
    assert batch.status == "posted", batch.errors
    assert _invoices(eur.id) == {"Q-1": 1000}


# --- fixed values, payment terms, a missing column --------------------------------------------------------


def test_fixed_currency_and_debtor_stand_in_for_missing_columns(eur: Any) -> None:
    text = "invoice_number,issue_date,due_date,amount\nF-1,2026-01-05,2026-02-04,10.00\nF-2,2026-01-06,2026-02-05,5\n"
    missing = _import(eur, text)
    assert missing.status == "rejected"
    assert (missing.total_rows, missing.processed_rows) == (2, 0)  # the file's two rows, none checked
    assert {e["column"] for e in missing.errors} == {"debtor_ref", "currency"}
    assert all("fixed" in e["message"] for e in missing.errors)
    batch = _import(eur, text, mapping={"const_currency": "CHF", "const_debtor_ref": "ONE-DEBTOR"})
    assert batch.status == "posted", batch.errors
    rows = db.session.execute(select(Invoice.number, Invoice.currency).where(Invoice.client_id == eur.id)).all()
    assert dict(rows) == {"F-1": "CHF", "F-2": "CHF"}


def test_a_rows_own_value_wins_over_the_fixed_one(eur: Any) -> None:
    text = COLUMNS + "\nF-1,K-1,A,2026-01-05,2026-02-04,10.00,\nF-2,K-1,A,2026-01-05,2026-02-04,10.00,USD\n"
    batch = _import(eur, text, mapping={"const_currency": "EUR"})
    assert batch.status == "posted", batch.errors
    rows = db.session.execute(select(Invoice.number, Invoice.currency).where(Invoice.client_id == eur.id)).all()
    assert dict(rows) == {"F-1": "EUR", "F-2": "USD"}


def test_the_due_date_comes_from_the_payment_terms_where_the_file_has_none(eur: Any) -> None:
    text = "invoice_number,debtor_ref,issue_date,amount,currency\nT-1,K-1,2026-01-05,10.00,EUR\n"
    refused = _import(eur, text)
    assert refused.status == "rejected" and len(refused.errors) == 1
    assert "payment terms" in refused.errors[0]["message"]
    batch = _import(eur, text, mapping={"due_days": "45"})
    assert batch.status == "posted", batch.errors
    assert _dates(eur.id) == {"T-1": (date(2026, 1, 5), date(2026, 1, 5) + timedelta(days=45))}
    with_column = COLUMNS + "\nT-2,K-1,A,2026-01-05,2026-01-20,10.00,EUR\nT-3,K-1,A,2026-01-05,,10.00,EUR\n"
    both = _import(eur, with_column, mapping={"due_days": "30"})
    assert both.status == "posted", both.errors
    dates = _dates(eur.id)
    assert dates["T-2"][1] == date(2026, 1, 20) and dates["T-3"][1] == date(2026, 2, 4)


def test_title_lines_and_one_missing_column_name_that_column_once(eur: Any) -> None:
    text = (
        "Open invoices;;;;\nPrinted 2026-03-10;;;;\n"
        "invoice_number;debtor_ref;issue_date;due_date;amount\nR-1;K-1;2026-01-05;2026-02-04;5\n"
    )
    batch = _import(eur, text)
    assert batch.status == "rejected" and len(batch.errors) == 1
    problem = batch.errors[0]
    assert (problem["row"], problem["column"]) == (3, "currency")
    assert "row 3, has: invoice_number, debtor_ref, issue_date, due_date, amount" in problem["message"]


# --- dates written with the month's name ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("date_format", "issue", "due"),
    [
        ("mon_d_y", "Jan 28 2021", "Feb 27, 2021"),
        ("d_mon_y", "28-Jan-2021", "27 Feb 2021"),
        ("mdy", "01/28/2021", "02/27/2021"),
    ],
)
def test_dates_in_the_chosen_form_are_read(eur: Any, date_format: str, issue: str, due: str) -> None:
    text = COLUMNS + f'\nD-1,K-1,A,"{issue}","{due}",10.00,EUR\n'
    batch = _import(eur, text, mapping={"date_format": date_format})
    assert batch.status == "posted", batch.errors
    assert _dates(eur.id) == {"D-1": (date(2021, 1, 28), date(2021, 2, 27))}


def test_a_date_with_a_month_name_is_never_guessed(eur: Any) -> None:
    text = COLUMNS + '\nD-1,K-1,A,"Jan 28 2021","Feb 27 2021",10.00,EUR\n'
    batch = _import(eur, text)  # no date format chosen: YYYY-MM-DD
    assert batch.status == "rejected" and _invoices(eur.id) == {}
    assert _problems(batch)[(2, "issue_date")] == "not a valid date; use YYYY-MM-DD"
    wrong_order = _import(eur, text, mapping={"date_format": "d_mon_y"})
    assert "not a valid date" in _problems(wrong_order)[(2, "issue_date")]


# --- line-level files and paid columns --------------------------------------------------------------------


def test_the_lines_of_an_invoice_are_summed_and_disagreeing_lines_refused(eur: Any) -> None:
    text = (
        COLUMNS
        + "\nL-1,K-1,A,2026-01-05,2026-02-04,10.00,EUR"
        + "\nL-1,K-1,A,2026-01-05,2026-02-04,2.50,EUR"
        + "\nL-2,K-2,B,2026-01-06,2026-02-05,7.00,EUR"
        + "\nL-1,K-1,A,2026-01-05,2026-02-04,-1.00,EUR"  # a discount line
        + "\nL-2,K-2,B,2026-01-06,2026-03-05,8.00,EUR\n"  # another due date: L-2 is not placed
    )
    refused = _import(eur, text)  # one row per invoice: a number twice is a problem, with a hint
    assert "Rows per invoice" in _problems(refused)[(3, "invoice_number")]
    batch = _import(eur, text, mapping={"lines": "sum"}, post_valid=True)
    assert batch.status == "partial"
    message = _problems(batch)[(6, "due_date")]
    assert "invoice L-2" in message and "2026-03-05" in message and "row 4" in message
    assert _invoices(eur.id) == {"L-1": 1150}


def test_lines_repeating_the_invoice_total_must_agree(eur: Any) -> None:
    text = (
        COLUMNS
        + "\nS-1,K-1,A,2026-01-05,2026-02-04,30.00,EUR"
        + "\nS-1,K-1,A,2026-01-05,2026-02-04,30.00,EUR"
        + "\nS-2,K-1,A,2026-01-05,2026-02-04,5.00,EUR"
        + "\nS-2,K-1,A,2026-01-05,2026-02-04,6.00,EUR\n"
    )
    batch = _import(eur, text, mapping={"lines": "same"}, post_valid=True)
    assert "invoice S-2: total" in _problems(batch)[(5, "amount")]
    assert _invoices(eur.id) == {"S-1": 3000}


def test_an_open_balance_is_the_amount_less_what_was_paid(eur: Any) -> None:
    text = (
        COLUMNS
        + ",paid_so_far"
        + "\nP-1,K-1,A,2026-01-05,2026-02-04,100.00,EUR,40.00"
        + "\nP-2,K-1,A,2026-01-05,2026-02-04,50.00,EUR,50.00"  # paid in full: left out
        + "\nP-3,K-1,A,2026-01-05,2026-02-04,20.00,EUR,"
        + "\nP-4,K-1,A,2026-01-05,2026-02-04,20.00,EUR,25.00\n"  # paid more than the amount
    )
    batch = _import(eur, text, mapping={"paid": "paid_so_far"}, post_valid=True)
    assert batch.status == "partial"
    assert "paid €25.00 is more than its amount €20.00" in _problems(batch)[(5, "paid_so_far")]
    assert _invoices(eur.id) == {"P-1": 6000, "P-3": 2000}
    assert batch.left_out == {"paid in full": 1}


# --- the upload page: preview, template, saved options ----------------------------------------------------


def _upload(client: FlaskClient, url: str, content: str, **fields: str) -> Any:
    data = {"csrf_token": fresh_csrf(client, url), "file": (io.BytesIO(content.encode()), "file.csv"), **fields}
    return client.post(url, data=data, content_type="multipart/form-data")


@pytest.fixture
def manager(client: FlaskClient, db_session: Any) -> FlaskClient:
    make_user("manager", email="mapping@example.test")
    login(client, "mapping@example.test")
    return client


def test_the_preview_shows_the_first_rows_as_read_and_posts_nothing_until_confirmed(manager: FlaskClient) -> None:
    acme = make_client(base_currency="EUR")
    url = f"/clients/{acme.id}/imports"
    text = COLUMNS + "\nV-1,K-1,Acme,2026-01-05,2026-02-04,1234.50,EUR\nV-2,K-1,Acme,2026-01-05,2026-02-04,5,EUX\n"
    preview = _upload(manager, url, text, action="preview")
    page = manager.get(preview.headers["Location"]).get_data(as_text=True)
    assert "the first rows as they will be read" in page
    assert "€1,234.50" in page and "2026-02-04" in page  # the amount as read, not as written
    assert "EUX" in page and "ISO 4217" in page  # the second row's problem beside it
    assert _invoices(acme.id) == {}
    batch_id = preview.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    # read it another way: the whole file as one debtor's, then confirm (with "post the valid rows")
    again = manager.post(
        url,
        data={"csrf_token": fresh_csrf(manager, url), "batch_id": batch_id, "action": "remap", "post_valid": "1"},
    )
    assert again.status_code == 302
    manager.post(url, data={"csrf_token": fresh_csrf(manager, url), "batch_id": batch_id, "action": "confirm"})
    assert _invoices(acme.id) == {"V-1": 123450}
    twice = manager.post(url, data={"csrf_token": fresh_csrf(manager, url), "batch_id": batch_id, "action": "confirm"})
    assert twice.status_code == 302 and _invoices(acme.id) == {"V-1": 123450}


def test_another_clients_preview_is_not_found(manager: FlaskClient) -> None:
    acme, other = make_client(), make_client()
    preview = _upload(manager, f"/clients/{acme.id}/imports", COLUMNS + "\nV-1,K-1,A,2026-01-05,2026-02-04,1,EUR\n")
    batch_id = preview.headers["Location"].rstrip("/").rsplit("/", 1)[1] if preview.status_code == 302 else "0"
    url = f"/clients/{other.id}/imports"
    response = manager.post(
        url, data={"csrf_token": fresh_csrf(manager, url), "batch_id": batch_id, "action": "confirm"}
    )
    assert response.status_code == 404
    assert manager.get(f"/clients/{other.id}/imports/{batch_id}").status_code == 404


def test_the_template_lists_the_expected_columns(manager: FlaskClient) -> None:
    acme = make_client()
    mine = manager.get(f"/clients/{acme.id}/imports?template=mine")
    assert mine.status_code == 200 and mine.mimetype == "text/csv"
    assert "attachment" in mine.headers["Content-Disposition"]
    assert mine.get_data(as_text=True).strip().split(",") == [*COLUMNS.split(","), "po_reference"]
    xero = manager.get(f"/clients/{acme.id}/imports?template=xero").get_data(as_text=True)
    assert {"InvoiceNumber", "ContactName", "InvoiceDate", "DueDate", "Total", "InvoiceAmountDue"} <= set(
        xero.strip().split(",")
    )


def test_the_reading_options_are_saved_for_the_next_upload(manager: FlaskClient) -> None:
    acme = make_client()
    url = f"/clients/{acme.id}/imports"
    text = "invoice_number,debtor_ref,issue_date,amount\nO-1,K-1,2026-01-05,10.00\n"
    done = _upload(manager, url, text, action="post", const_currency="SEK", due_days="20", lines="sum")
    assert "posted" in manager.get(done.headers["Location"]).get_data(as_text=True)
    assert _dates(acme.id) == {"O-1": (date(2026, 1, 5), date(2026, 1, 25))}
    form = manager.get(url).get_data(as_text=True)
    assert 'name="const_currency" value="SEK"' in form and 'name="due_days"' in form and 'value="20"' in form
    assert '<option value="sum" selected>' in form


def test_bad_reading_options_are_refused_on_the_form(manager: FlaskClient) -> None:
    acme = make_client()
    url = f"/clients/{acme.id}/imports"
    response = _upload(manager, url, COLUMNS + "\n", due_days="thirty", preset="no-such-product")
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "payment terms: a whole number of days" in page and "export preset: choose one" in page


# --- money: what a line-level file places is what its lines add up to, less what was paid -----------------

_cents = st.integers(min_value=-50_000, max_value=500_000)


@settings(max_examples=60, deadline=None)
@given(
    invoices=st.lists(
        st.tuples(st.lists(_cents, min_size=1, max_size=5), st.integers(min_value=0, max_value=600_000)),
        min_size=1,
        max_size=8,
    ),
    seed=st.randoms(use_true_random=False),
)
def test_line_level_files_place_the_sum_of_their_lines_less_paid(invoices: list[Any], seed: Any) -> None:
    lines = [(f"N-{i}", cents, paid) for i, (amounts, paid) in enumerate(invoices) for cents in amounts]
    seed.shuffle(lines)  # the lines of an invoice need not be next to each other
    header = ["number", "debtor", "issued", "due", "line_amount", "currency", "paid"]
    rows = [[n, "K-1", "2026-01-05", "2026-02-04", f"{c / 100:.2f}", "EUR", f"{p / 100:.2f}"] for n, c, p in lines]
    mapping = {
        "invoice_number": "number",
        "debtor_ref": "debtor",
        "issue_date": "issued",
        "due_date": "due",
        "amount": "line_amount",
        "currency": "currency",
        "paid": "paid",
        "lines": "sum",
        "preset": "none",
    }
    plan = make_plan(header, mapping, "EUR")
    checker = PlannedChecker(plan)
    for line, cells in enumerate(rows, start=2):
        assert checker.check(line, cells) == (None, [])
    placed, problems = checker.finish()
    expected = {f"N-{i}": sum(amounts) - paid for i, (amounts, paid) in enumerate(invoices)}
    assert {r.number: r.amount_minor for r in placed} == {n: v for n, v in expected.items() if v > 0}
    assert {p.message.split(":")[0] for p in problems} == {f"invoice {n}" for n, v in expected.items() if v < 0}
    assert sum(checker.left_out.values()) == sum(1 for v in expected.values() if v == 0)


def test_a_client_user_previews_and_posts_through_the_portal(client: FlaskClient, db_session: Any) -> None:
    acme = make_client(base_currency="USD")
    admin = make_user("client_admin", client=acme)
    login(client, admin.email)
    content = (
        Path(__file__).resolve().parents[1] / "samples" / "exports" / "built-xero-sales-invoices.csv"
    ).read_text()
    preview = _upload(client, "/portal/placements", content, action="preview", date_format="dmy")
    assert preview.status_code == 302 and preview.headers["Location"].startswith("/portal/placements/")
    page = client.get(preview.headers["Location"]).get_data(as_text=True)
    assert "Read as Xero" in page and "Post this file" in page and _invoices(acme.id) == {}
    batch_id = preview.headers["Location"].rsplit("/", 1)[1]
    url = "/portal/placements"
    client.post(url, data={"csrf_token": fresh_csrf(client, url), "batch_id": batch_id, "action": "confirm"})
    assert set(_invoices(acme.id)) == {"INV-0001", "INV-0002", "INV-0005"}


def test_a_chosen_preset_or_none_overrides_the_recognition(eur: Any) -> None:
    text = "Number,Invoice/Bill Date,Due Date,Partner,Total,Currency\nINV/1,2026-01-05,2026-02-04,Azure,10.00,EUR\n"
    as_odoo = _import(eur, text)
    assert as_odoo.status == "posted" and as_odoo.mapping["read_as"]["preset"] == "odoo"
    mapping = {"preset": "none", "invoice_number": "Number", "debtor_ref": "Partner", "issue_date": "Invoice/Bill Date"}
    plain = _import(make_client(), text, mapping={**mapping, "due_date": "Due Date", "amount": "Total"})
    assert plain.status == "posted" and plain.mapping["read_as"]["preset"] == ""
    wrong = _import(make_client(), text, mapping={"preset": "xero"})
    assert wrong.status == "rejected"
    assert any("no column 'InvoiceNumber'" in e["message"] for e in wrong.errors)
