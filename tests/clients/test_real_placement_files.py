"""Placement files as real ERPs and spreadsheets write them: encodings, delimiters, quoting, line endings,
title lines, number and date conventions, currency exponents, several sheets, formulas. Each file is either
read exactly or refused with the row, the column and the reason; nothing is ever guessed or rounded."""

from __future__ import annotations

import io
import re
import zipfile
from datetime import date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from clients.journal import Invoice
from clients.models import Debtor
from provider.extensions import db
from tests.clients.test_imports import _import, _invoices
from tests.factories import make_client

COLUMNS = ["invoice_number", "debtor_ref", "debtor_name", "issue_date", "due_date", "amount", "currency"]
GERMAN = {"date_format": "dmy_dot", "decimal_mark": ","}


@pytest.fixture
def eur(db_session: Any) -> Any:
    return make_client(base_currency="EUR")


def _names(client_id: int) -> dict[str, str]:
    return dict(db.session.execute(select(Debtor.external_ref, Debtor.name).where(Debtor.client_id == client_id)).all())


def _problems(batch: Any) -> dict[tuple[int, str], str]:
    return {(e["row"], e["column"]): e["message"] for e in batch.errors}


# --- CSV: encodings, delimiters, quoting, line endings ---------------------------------------------


def test_utf8_with_bom_and_crlf_line_endings(eur: Any) -> None:
    text = ",".join(COLUMNS) + "\r\nR-1,K-1,Société Générale,2026-01-05,2026-02-04,10.00,EUR\r\n"
    batch = _import(eur, b"\xef\xbb\xbf" + text.encode())
    assert batch.status == "posted", batch.errors
    assert _names(eur.id) == {"K-1": "Société Générale"}


def test_windows_1252_with_umlauts_accents_and_sharp_s(eur: Any) -> None:
    text = ";".join(COLUMNS) + "\r\nR-1;K-1;Müller & Söhne Straße;05.01.2026;04.02.2026;1.234,56;EUR\r\n"
    text += "R-2;K-2;Café Crème SARL;05.01.2026;04.02.2026;99,00;EUR\r\n"
    batch = _import(eur, text.encode("cp1252"), mapping=GERMAN)
    assert batch.status == "posted", batch.errors
    assert _names(eur.id) == {"K-1": "Müller & Söhne Straße", "K-2": "Café Crème SARL"}
    assert _invoices(eur.id) == {"R-1": 123456, "R-2": 9900}


def test_utf16_unicode_text_as_excel_saves_it(eur: Any) -> None:
    text = "\t".join(COLUMNS) + "\r\nR-1\tK-1\tÅström AB\t2026-01-05\t2026-02-04\t10.50\tEUR\r\n"
    batch = _import(eur, text.encode("utf-16"), name="export.txt")
    assert batch.status == "posted", batch.errors
    assert _names(eur.id) == {"K-1": "Åström AB"}


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_any_common_delimiter_with_quoted_delimiters_and_line_breaks_inside_cells(eur: Any, delimiter: str) -> None:
    d = delimiter
    rows = [
        d.join(COLUMNS),
        d.join(["R-1", "K-1", f'"Acme{d} Inc{d} ""East"""', "2026-01-05", "2026-02-04", '"1,250.00"', "EUR"]),
        d.join(["R-2", "K-2", '"Bolt\nLine two"', "2026-01-05", "2026-02-04", "7", "EUR"]),
        d.join(["R-3", "K-3", "Cargo", "2026-01-05", "2026-02-04", "8.10", "EUR"]),
    ]
    batch = _import(eur, "\n".join(rows) + "\n")
    assert batch.status == "posted", batch.errors
    assert _invoices(eur.id) == {"R-1": 125000, "R-2": 700, "R-3": 810}
    assert _names(eur.id)["K-1"] == f'Acme{d} Inc{d} "East"'


def test_excel_sep_line_declares_the_delimiter(eur: Any) -> None:
    text = "sep=;\n" + ";".join(COLUMNS) + "\nR-1;K-1;Acme, Inc;2026-01-05;2026-02-04;10,00;EUR\n"
    batch = _import(eur, text, mapping={"decimal_mark": ","})
    assert batch.status == "posted", batch.errors
    assert _invoices(eur.id) == {"R-1": 1000}


def test_trailing_empty_lines_and_empty_columns_and_header_spelling(eur: Any) -> None:
    header = " Invoice_Number ,DEBTOR_REF,Debtor Name,Issue  Date,due_date,AMOUNT,Currency,,"
    text = header + "\nR-1,K-1,Acme,2026-01-05,2026-02-04,10.00,EUR,,\n,,,,,,,,\n\n\n"
    batch = _import(eur, text)
    assert (batch.status, batch.total_rows) == ("posted", 1), batch.errors
    assert _invoices(eur.id) == {"R-1": 1000}


def test_a_title_line_above_the_header_is_skipped(eur: Any) -> None:
    text = (
        "Open items export;;;\nAs of 10.03.2026;;;\n\n"
        + ";".join(COLUMNS)
        + "\nR-1;K-1;Acme;2026-01-05;2026-02-04;5;EUR\n"
    )
    batch = _import(eur, text)
    assert batch.status == "posted", batch.errors
    assert _invoices(eur.id) == {"R-1": 500}


def test_a_file_without_the_header_names_it_is_refused_with_the_columns_found(eur: Any) -> None:
    text = "Open items export\nR-1,K-1,Acme,2026-01-05,2026-02-04,5,EUR\n"
    batch = _import(eur, text)
    assert batch.status == "rejected" and _invoices(eur.id) == {}
    assert any("column missing" in e["message"] for e in batch.errors)


def test_a_column_named_twice_is_refused(eur: Any) -> None:
    text = ",".join([*COLUMNS, "Amount"]) + "\nR-1,K-1,Acme,2026-01-05,2026-02-04,5,EUR,6\n"
    batch = _import(eur, text)
    assert batch.status == "rejected" and _invoices(eur.id) == {}
    assert "appears twice" in _problems(batch)[(1, "amount")]


def test_an_unclosed_quote_is_refused_instead_of_swallowing_rows(eur: Any) -> None:
    rows = [",".join(COLUMNS), 'R-1,K-1,"Acme,2026-01-05,2026-02-04,5,EUR', "R-2,K-1,Acme,2026-01-05,2026-02-04,6,EUR"]
    batch = _import(eur, "\n".join(rows) + "\n", post_valid=True)
    assert batch.status == "rejected" and _invoices(eur.id) == {}
    assert "row 2: a quoted cell runs over" in batch.errors[0]["message"]
    assert "closing quote" in batch.errors[0]["message"]


# --- numbers --------------------------------------------------------------------------------------


def test_grouped_amounts_in_both_conventions(eur: Any) -> None:
    point = (
        ",".join(COLUMNS)
        + '\nR-1,K-1,A,2026-01-05,2026-02-04,"1,234.56",EUR\nR-2,K-1,A,2026-01-05,2026-02-04,1 234.5,EUR\n'
    )
    comma = (
        ";".join(COLUMNS)
        + "\nR-3;K-1;A;05.01.2026;04.02.2026;1.234,56;EUR\nR-4;K-1;A;05.01.2026;04.02.2026;1234,5;EUR\n"
    )
    assert _import(eur, point).status == "posted"
    assert _import(eur, comma, mapping=GERMAN).status == "posted"
    assert _invoices(eur.id) == {"R-1": 123456, "R-2": 123450, "R-3": 123456, "R-4": 123450}


def test_the_rows_currency_written_in_the_amount_cell_is_read(eur: Any) -> None:
    text = ";".join(COLUMNS) + (
        "\nR-1;K-1;A;05.01.2026;04.02.2026;€ 1.234,56;EUR"
        "\nR-2;K-1;A;05.01.2026;04.02.2026;1234,50 EUR;EUR"
        "\nR-3;K-1;A;05.01.2026;04.02.2026;EUR 7,00;eur\n"
    )
    batch = _import(eur, text, mapping=GERMAN)
    assert batch.status == "posted", batch.errors
    assert _invoices(eur.id) == {"R-1": 123456, "R-2": 123450, "R-3": 700}


def test_another_currency_in_the_amount_cell_is_refused_by_row_and_column(eur: Any) -> None:
    text = (
        ",".join(COLUMNS)
        + "\nR-1,K-1,A,2026-01-05,2026-02-04,$ 10.00,EUR\nR-2,K-1,A,2026-01-05,2026-02-04,10.00 USD,EUR\n"
    )
    batch = _import(eur, text)
    assert batch.status == "rejected" and _invoices(eur.id) == {}
    problems = _problems(batch)
    assert "USD" in problems[(3, "amount")] and "EUR" in problems[(3, "amount")]
    assert "$" in problems[(2, "amount")]


@pytest.mark.parametrize("amount", ["(12.00)", "12.00-", "-12.00", "\u221212.00"])
def test_negative_amounts_in_any_notation_are_refused_as_credits(eur: Any, amount: str) -> None:
    text = ",".join(COLUMNS) + f'\nR-1,K-1,A,2026-01-05,2026-02-04,"{amount}",EUR\n'
    batch = _import(eur, text, post_valid=True)
    assert batch.posted_rows == 0 and _invoices(eur.id) == {}
    message = _problems(batch)[(2, "amount")]
    assert "negative" in message or "positive" in message, message


def test_currency_exponents_are_respected_and_never_rounded(db_session: Any) -> None:
    client = make_client(base_currency="KWD")
    good = ",".join(COLUMNS) + (
        '\nJ-1,K-1,A,2026-01-05,2026-02-04,"1,234",JPY'
        "\nJ-2,K-1,A,2026-01-05,2026-02-04,500.00,JPY"  # an exact whole number written with zero decimals
        "\nK-1,K-1,A,2026-01-05,2026-02-04,12.345,KWD"
        "\nB-1,K-1,A,2026-01-05,2026-02-04,0.5,BHD\n"
    )
    batch = _import(client, good)
    assert batch.status == "posted", batch.errors
    assert _invoices(client.id) == {"J-1": 1234, "J-2": 500, "K-1": 12345, "B-1": 500}
    bad = ",".join(COLUMNS) + (
        "\nJ-3,K-1,A,2026-01-05,2026-02-04,10.5,JPY"
        "\nK-2,K-1,A,2026-01-05,2026-02-04,1.2345,KWD"
        "\nE-1,K-1,A,2026-01-05,2026-02-04,10.005,EUR\n"
    )
    refused = _import(client, bad)
    problems = _problems(refused)
    assert refused.status == "rejected"
    assert "more than 0 decimal places for JPY" in problems[(2, "amount")]
    assert "more than 3 decimal places for KWD" in problems[(3, "amount")]
    assert "more than 2 decimal places for EUR" in problems[(4, "amount")]


# --- dates ----------------------------------------------------------------------------------------


def test_ambiguous_dates_follow_the_configured_format_on_every_row(db_session: Any) -> None:
    text = ",".join(COLUMNS) + "\nA-1,K-1,A,03/04/2026,05/04/2026,1,EUR\nA-2,K-1,A,13/04/2026,14/04/2026,1,EUR\n"
    dmy = make_client()
    assert _import(dmy, text, mapping={"date_format": "dmy"}).status == "posted"
    issued = dict(
        db.session.execute(select(Invoice.number, Invoice.issue_date).where(Invoice.client_id == dmy.id)).all()
    )
    assert issued == {"A-1": date(2026, 4, 3), "A-2": date(2026, 4, 13)}
    mdy = make_client()
    batch = _import(mdy, text, mapping={"date_format": "mdy"})  # row 3 has no 13th month: refused, not flipped
    assert batch.status == "rejected" and _invoices(mdy.id) == {}
    assert _problems(batch)[(3, "issue_date")] == "not a valid date; use MM/DD/YYYY"


def test_dates_with_a_time_of_day_are_read_as_their_date(eur: Any) -> None:
    text = ",".join(COLUMNS) + "\nT-1,K-1,A,2026-01-05 00:00:00,2026-02-04T13:30:00,1,EUR\n"
    text2 = ";".join(COLUMNS) + "\nT-2;K-1;A;05.01.2026 00:00;04.02.2026 23:59:59;1;EUR\n"
    assert _import(eur, text).status == "posted"
    assert _import(eur, text2, mapping=GERMAN).status == "posted"
    due = dict(db.session.execute(select(Invoice.number, Invoice.due_date).where(Invoice.client_id == eur.id)).all())
    assert due == {"T-1": date(2026, 2, 4), "T-2": date(2026, 2, 4)}


# --- XLSX -----------------------------------------------------------------------------------------


def _book() -> Any:
    from openpyxl import Workbook

    return Workbook()


def _bytes(book: Any) -> bytes:
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def test_xlsx_serial_and_datetime_cells_merged_title_and_empty_rows(eur: Any) -> None:
    book = _book()
    sheet = book.active
    sheet.append(["Open items as of 10 March 2026"])
    sheet.merge_cells("A1:G1")
    sheet.append([])
    sheet.append(COLUMNS)
    sheet.append(["X-1", "D-1", "Xylo", datetime(2026, 1, 5, 14, 30), date(2026, 2, 4), 1250.5, "EUR"])  # noqa: DTZ001
    sheet.append([])
    sheet.append(["X-2", 4711, "Yak", 46027, 46058, "99.90", "EUR"])  # serial dates formatted as dates below
    sheet["D6"].number_format = sheet["E6"].number_format = "dd.mm.yyyy"
    sheet.append(["X-3", "D-1", "Xylo", "2026-01-05", "2026-02-04", 0.1 + 0.2, "EUR"])  # 0.30000000000000004
    batch = _import(eur, _bytes(book), name="open items.xlsx")
    assert batch.status == "posted", batch.errors
    assert _invoices(eur.id) == {"X-1": 125050, "X-2": 9990, "X-3": 30}
    issued = dict(
        db.session.execute(select(Invoice.number, Invoice.issue_date).where(Invoice.client_id == eur.id)).all()
    )
    assert issued == {"X-1": date(2026, 1, 5), "X-2": date(2026, 1, 5), "X-3": date(2026, 1, 5)}
    assert _names(eur.id) == {"D-1": "Xylo", "4711": "Yak"}


def test_xlsx_an_unformatted_serial_date_is_refused_with_the_reason(eur: Any) -> None:
    book = _book()
    book.active.append(COLUMNS)
    book.active.append(["X-1", "D-1", "Xylo", 46027, "2026-02-04", 10, "EUR"])
    batch = _import(eur, _bytes(book), name="p.xlsx")
    assert batch.status == "rejected"
    assert "not a valid date" in _problems(batch)[(2, "issue_date")]


def test_xlsx_reads_the_sheet_that_has_the_columns(eur: Any) -> None:
    book = _book()
    book.active.title = "Summary"
    book.active.append(["Total", 10])
    data = book.create_sheet("Invoices")
    data.append(COLUMNS)
    data.append(["S-1", "D-1", "Xylo", "2026-01-05", "2026-02-04", 10, "EUR"])
    batch = _import(eur, _bytes(book), name="p.xlsx")
    assert batch.status == "posted", batch.errors
    assert _invoices(eur.id) == {"S-1": 1000}


def test_xlsx_two_sheets_with_the_columns_are_refused_not_half_read(eur: Any) -> None:
    book = _book()
    for title in ("January", "February"):
        sheet = book.create_sheet(title)
        sheet.append(COLUMNS)
        sheet.append([f"{title}-1", "D-1", "Xylo", "2026-01-05", "2026-02-04", 10, "EUR"])
    del book["Sheet"]
    batch = _import(eur, _bytes(book), name="p.xlsx")
    assert batch.status == "rejected" and _invoices(eur.id) == {}
    assert "January" in batch.errors[0]["message"] and "February" in batch.errors[0]["message"]


def _with_cached_values(content: bytes, values: dict[str, str]) -> bytes:
    """The workbook with a cached result after each formula (as Excel saves it; openpyxl writes none)."""
    source, out = zipfile.ZipFile(io.BytesIO(content)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                xml = data.decode()
                for ref, value in values.items():
                    xml = re.sub(rf'(<c r="{ref}"[^>]*>)(<f>[^<]*</f>)(<v\s*/>|<v></v>)?', rf"\1\2<v>{value}</v>", xml)
                data = xml.encode()
            target.writestr(item, data)
    return out.getvalue()


def test_xlsx_formulas_are_read_by_their_cached_values(eur: Any) -> None:
    book = _book()
    sheet = book.active
    sheet.append([*COLUMNS, "net"])
    sheet.append(["F-1", "D-1", "Xylo", "2026-01-05", "2026-02-04", "=H2*1.19", "EUR", 100])
    content = _with_cached_values(_bytes(book), {"F2": "119.00000000000001"})
    batch = _import(eur, content, name="p.xlsx")
    assert batch.status == "posted", batch.errors
    assert _invoices(eur.id) == {"F-1": 11900}


def test_an_old_excel_workbook_is_refused_with_what_to_do(eur: Any) -> None:
    batch = _import(eur, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600), name="p.xlsx")
    assert batch.status == "rejected" and ".xls" in batch.errors[0]["message"]
