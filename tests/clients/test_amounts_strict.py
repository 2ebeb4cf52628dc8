"""One strict amount parser for every file format and the API (provider.core.money.Money.parse, reached through
clients.file_formats.parse_amount by CSV, XLSX and the bank statements).

Digits, one decimal mark per the file's convention, at most the currency's decimals, at most 15 digits in minor
units; no exponent, NaN, infinity or non-ASCII digits; nothing cut, nothing rounded. Anything else is a problem
named by row and column (CSV, XLSX) or by line (bank statements, refused whole), and nothing is posted.
"""

from __future__ import annotations

import io
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import Workbook
from sqlalchemy import select

from clients.file_formats import parse_amount
from clients.journal import Payment
from provider.core.money import MAX_MINOR, Money, MoneyError, exponent
from provider.extensions import db
from tests.api.helpers import payment_body, post
from tests.clients.test_bank_statements import MT940, STATEMENT
from tests.clients.test_payment_imports import HEADER, _import
from tests.factories import make_api_token, make_client, make_debtor, make_invoice

CURRENCIES = ["EUR", "USD", "JPY", "KWD", "HUF", "CLF"]


@given(minor=st.integers(-MAX_MINOR, MAX_MINOR), currency=st.sampled_from(CURRENCIES), comma=st.booleans())
def test_every_amount_within_the_cap_round_trips_in_either_convention(minor: int, currency: str, comma: bool) -> None:
    exp = exponent(currency)
    text = f"{Decimal(minor).scaleb(-exp):,.{exp}f}"
    if comma:
        text = text.translate(str.maketrans(",.", ".,"))
    assert parse_amount(text, currency, "," if comma else ".") == Money(minor, currency)


@given(minor=st.integers(MAX_MINOR + 1, 10**40), currency=st.sampled_from(CURRENCIES))
def test_more_than_fifteen_digits_is_refused_not_cut(minor: int, currency: str) -> None:
    text = f"{Decimal(minor).scaleb(-exponent(currency)):.{exponent(currency)}f}"
    with pytest.raises(MoneyError, match=r"too large|too long"):
        parse_amount(text, currency)


@given(
    text=st.text(alphabet="0123456789.,-+eE ()naNIfity\u0661\u00a0", max_size=30), currency=st.sampled_from(CURRENCIES)
)
def test_whatever_is_accepted_is_exactly_what_was_written(text: str, currency: str) -> None:
    """No input is read as anything but its digits: the accepted value is the written number, exactly."""
    try:
        money = parse_amount(text, currency)
    except MoneyError:
        return
    plain = text.replace(" ", "").replace("\u00a0", "").replace(",", "")
    assert re.fullmatch(r"\(?[+-]?[0-9]*\.?[0-9]*\)?-?", plain, re.ASCII), text  # no exponent, no other digits
    negative = plain.startswith(("(", "-")) or plain.endswith("-")
    digits = plain.strip("()+-")
    assert abs(money.minor) <= MAX_MINOR
    assert Decimal(money.minor).scaleb(-exponent(currency)) == Decimal(digits) * (-1 if negative else 1)


@pytest.mark.parametrize(
    "text",
    ["1E308", "1e3", "1.5E+2", "NaN", "Infinity", "-inf", "\u0661\u0662\u0663", "0x10", "1.2.3", "1,2,3.4.5", "12.345"],
)
def test_exponents_and_other_spellings_are_refused(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_amount(text, "USD")


# --- through each format ----------------------------------------------------------------------------------


@pytest.fixture
def acme(db_session: Any) -> Any:
    client = make_client(base_currency="EUR", code="ACME")
    d1 = make_debtor(client, external_ref="D-1")
    make_invoice(client, d1, "INV-1", 10000)
    return client


def _posted(client_id: int) -> list[Payment]:
    return list(db.session.scalars(select(Payment).where(Payment.client_id == client_id)))


@pytest.mark.parametrize("amount", ["1230000000000000000.00", "1E308", "1e2", "12345678901234567,00"])
def test_a_csv_payment_with_an_impossible_amount_is_a_row_error(acme: Any, amount: str) -> None:
    batch = _import(acme, HEADER + f'P-1,D-1,2026-03-10,"{amount}",EUR,,,\nP-2,D-1,2026-03-10,1.00,EUR,,,\n')
    assert batch.status in ("rejected", "failed"), batch.status
    assert _posted(acme.id) == []
    assert [(e["row"], e["column"]) for e in batch.errors] == [(2, "amount")], batch.errors


def test_an_xlsx_payment_with_a_huge_number_is_a_row_error(acme: Any) -> None:
    book = Workbook()
    sheet = book.active
    sheet.append(HEADER.strip().split(","))
    sheet.append(["P-1", "D-1", "2026-03-10", 1.23e18, "EUR", "", "", ""])
    sheet.append(["P-2", "D-1", "2026-03-10", 1e308, "EUR", "", "", ""])
    buffer = io.BytesIO()
    book.save(buffer)
    batch = _import(acme, buffer.getvalue(), name="payments.xlsx")
    assert batch.status in ("rejected", "failed"), batch.status
    assert _posted(acme.id) == []
    assert sorted((e["row"], e["column"]) for e in batch.errors) == [(2, "amount"), (3, "amount")], batch.errors


def test_an_mt940_amount_longer_than_fifteen_characters_is_refused_not_cut(acme: Any) -> None:
    long = MT940.replace(b"C40,00NTRF", b"C1234567890123456,00NTRF")
    assert long != MT940
    batch = _import(acme, long, name="statement.sta")
    assert batch.status == "rejected"
    assert _posted(acme.id) == []
    assert any("too long" in e["message"] and "line 5" in e["message"] for e in batch.errors), batch.errors


@pytest.mark.parametrize("amount", [b"1E308", b"4.0E1", b"1234567890123456789.00", b"NaN"])
def test_a_camt_amount_in_another_notation_is_refused(acme: Any, amount: bytes) -> None:
    odd = STATEMENT.replace(b'<Amt Ccy="EUR">40.00</Amt>', b'<Amt Ccy="EUR">' + amount + b"</Amt>")
    batch = _import(acme, odd, name="statement.xml")
    assert batch.status == "rejected"
    assert _posted(acme.id) == []


def test_the_api_refuses_what_no_file_may_carry(client: Any, acme: Any) -> None:
    token = make_api_token(acme)
    debtor = make_debtor(acme, external_ref="D-9")
    assert post(client, token, "/payments", payment_body(debtor.id, "API-1", MAX_MINOR + 1)).status_code == 422
    assert post(client, token, "/payments", payment_body(debtor.id, "API-2", MAX_MINOR)).status_code == 201
