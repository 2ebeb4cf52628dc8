"""Money: integer minor units, ISO 4217 exponents, no mixed-currency arithmetic."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provider.core.money import MAX_MINOR, CurrencyMismatch, Money, MoneyError, exponent, format_money

CURRENCIES = ["USD", "EUR", "GBP", "JPY", "KWD", "CAD", "AUD", "CHF"]
amounts = st.integers(min_value=-MAX_MINOR, max_value=MAX_MINOR)  # every amount a file or the API may carry


@pytest.mark.parametrize(("code", "exp"), [("JPY", 0), ("USD", 2), ("EUR", 2), ("KWD", 3), ("BHD", 3), ("CLP", 0)])
def test_iso4217_exponents(code: str, exp: int) -> None:
    assert exponent(code) == exp


@pytest.mark.parametrize("bad", ["", "US", "usdx", "XYZ", "12A"])
def test_unknown_currency_refused(bad: str) -> None:
    with pytest.raises(MoneyError):
        Money(1, bad)


def test_float_amounts_refused() -> None:
    with pytest.raises(MoneyError):
        Money(10.5, "USD")  # type: ignore[arg-type]


def test_parse_refuses_precision_the_currency_does_not_have() -> None:
    assert Money.parse("1,234.50", "USD") == Money(123450, "USD")
    assert Money.parse("1050", "JPY") == Money(1050, "JPY")
    with pytest.raises(MoneyError, match="decimal places"):
        Money.parse("10.5", "JPY")
    with pytest.raises(MoneyError, match="decimal places"):
        Money.parse("0.001", "USD")
    with pytest.raises(MoneyError, match="not a number"):
        Money.parse("12,3a", "USD")
    with pytest.raises(MoneyError):
        Money.parse("NaN", "USD")


@pytest.mark.parametrize(
    ("text", "mark", "minor"),
    [
        ("1,234.50", ".", 123450),
        ("1 234.50", ".", 123450),
        ("1'234.50", ".", 123450),
        ("12,34,567.00", ".", 123456700),
        ("1.234,50", ",", 123450),
        ("1250,5", ",", 125050),
        ("-1.000.000", ",", -100000000),
    ],
)
def test_parse_reads_either_decimal_mark(text: str, mark: str, minor: int) -> None:
    assert Money.parse(text, "EUR", mark).minor == minor


@pytest.mark.parametrize(
    ("text", "mark", "says"),
    [
        ("1250,00", ".", "decimals take a point"),  # a decimal comma is never read as thousands
        ("1,2345.00", ".", "may only separate thousands"),
        ("1250.50", ",", "may only separate thousands"),
        ("1.2.3", ".", "not a number"),
        ("1e3", ".", "not a number"),
        ("(12.00)", ".", "not a number"),
    ],
)
def test_parse_refuses_ambiguous_or_malformed_numbers(text: str, mark: str, says: str) -> None:
    with pytest.raises(MoneyError, match=re.escape(says)):
        Money.parse(text, "EUR", mark)


def _written(minor: int, exp: int, mark: str, grouped: bool) -> str:
    """An amount as a spreadsheet writes it in that convention: 1.234.567,89 or 1234567.89."""
    whole, frac = divmod(minor, 10**exp)
    group = "," if mark == "." else "."
    text = f"{whole:,}".replace(",", group) if grouped else str(whole)
    return text + (mark + str(frac).zfill(exp) if exp else "")


@given(
    minor=st.integers(min_value=0, max_value=MAX_MINOR),
    code=st.sampled_from(CURRENCIES),
    mark=st.sampled_from([".", ","]),
    grouped=st.booleans(),
)
def test_written_amounts_parse_back_exactly(minor: int, code: str, mark: str, grouped: bool) -> None:
    assert Money.parse(_written(minor, exponent(code), mark, grouped), code, mark).minor == minor


@given(minor=st.integers(min_value=0, max_value=10**12), code=st.sampled_from(["EUR", "USD", "GBP", "CHF"]))
def test_a_decimal_comma_is_refused_not_misread_under_the_point_format(minor: int, code: str) -> None:
    with pytest.raises(MoneyError):
        Money.parse(_written(minor, 2, ",", grouped=False), code, ".")


def test_formatting_uses_the_currency_exponent() -> None:
    assert format_money(123450, "USD") == "$1,234.50"
    assert format_money(1050, "JPY") == "¥1,050"
    assert format_money(1234567, "KWD").endswith("1,234.567")


@given(a=amounts, b=amounts, code=st.sampled_from(CURRENCIES))
def test_addition_is_exact_and_subtraction_inverts_it(a: int, b: int, code: str) -> None:
    total = Money(a, code) + Money(b, code)
    assert total.minor == a + b
    assert total - Money(b, code) == Money(a, code)


@given(a=amounts, codes=st.lists(st.sampled_from(CURRENCIES), min_size=2, max_size=2, unique=True))
def test_mixed_currencies_never_combine(a: int, codes: list[str]) -> None:
    with pytest.raises(CurrencyMismatch):
        Money(a, codes[0]) + Money(a, codes[1])
    with pytest.raises(CurrencyMismatch):
        _ = Money(a, codes[0]) < Money(a, codes[1])


@given(a=amounts, code=st.sampled_from(CURRENCIES))
def test_parse_of_the_major_unit_text_round_trips(a: int, code: str) -> None:
    money = Money(a, code)
    assert Money.parse(str(money.amount), code) == money
    assert money.amount == Decimal(a).scaleb(-exponent(code))
