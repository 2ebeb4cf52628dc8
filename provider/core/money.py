"""Money: integer minor units plus an ISO 4217 currency. Never floats.

`Money(1050, "USD")` is USD 10.50; `Money(1050, "JPY")` is JPY 1,050. Arithmetic across currencies is
refused with `CurrencyMismatch`. Parsing from text goes through `Decimal` and refuses sub-minor-unit
precision instead of rounding it away.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache

from babel.core import Locale, get_global
from babel.numbers import NumberPattern, get_currency_name, parse_pattern
from iso4217 import raw_table as _iso4217_table


class CurrencyMismatch(ValueError):
    """Two amounts in different currencies were combined."""


class MoneyError(ValueError):
    """An amount or currency could not be understood."""


DECIMAL_COMMA_HINT = "; decimals take a point, as in 1250.00"
# how an amount is written: "." = 1,234.56 and "," = 1.234,56 (the value is what a file's format setting stores)
MAX_DIGITS = 15  # significant digits of an amount in minor units, in every file format and the API
MAX_MINOR = 10**MAX_DIGITS - 1  # 999,999,999,999,999 minor units: far inside BIGINT (and exact in a double)
_MAX_TEXT = 40  # characters of an amount worth reading at all (grouping included)
DECIMAL_MARKS = {".": "1,234.56", ",": "1.234,56"}
_GROUPED = {
    ".": re.compile(r"[+-]?(\d{1,3}(,\d{3})+|\d{1,2}(,\d{2})+,\d{3})(\.\d*)?"),  # also 12,34,567.89 (India)
    ",": re.compile(r"[+-]?\d{1,3}(\.\d{3})+(,\d*)?"),
}


@cache
def _minor_units() -> dict[str, int]:
    """ISO 4217's current list (the `iso4217` data package, list one of the maintenance agency): code -> minor
    unit exponent. Codes without minor units ("N.A.": gold, SDR, bond units, XXX) are left out: no amount of
    money is kept in them here. Babel/CLDR is not used for exponents: it gives the digits used in cash
    (HUF 0, ISK 0) where ISO 4217 says 2."""
    out = {}
    for code, entry in _iso4217_table.items():
        units = str(entry.get("CcyMnrUnts") or "").strip()
        if code and units.isdigit():
            out[code] = int(units)
    # XTS, ISO's code "reserved for testing", has no minor unit in the list; it stays readable with 2 decimals
    # because the file readers read an amount whose row names no usable currency as XTS (the number is still
    # checked). It is what babel/CLDR gave it before.
    out.setdefault("XTS", 2)
    return out


def current_currencies() -> frozenset[str]:
    """Every currency code an amount may be given in (ISO 4217's current list, with minor units)."""
    return frozenset(_minor_units())


def _successors(code: str) -> list[str]:
    """The current currencies that replaced a withdrawn one where it was legal tender (CLDR's history)."""
    current = _minor_units()
    found: list[str] = []
    for history in get_global("territory_currencies").values():
        if any(c == code and end is not None for c, _, end, *_ in history):
            found += [c for c, _, end, *_ in history if end is None and c in current and c not in found]
    return sorted(found)


def _refusal(code: str) -> str:
    if not code:
        return "an ISO 4217 currency code is required (three letters, such as EUR)"
    if not re.fullmatch(r"[A-Z]{3}", code):
        return f"{code} is not an ISO 4217 currency code (three letters, such as EUR)"
    if code in _iso4217_table:
        return f"{code} is not a currency amounts can be kept in (ISO 4217 gives it no minor unit)"
    name = get_currency_name(code, locale="en")
    if name != code:  # known to CLDR, but not on ISO 4217's current list: a withdrawn currency
        after = _successors(code)
        instead = f"; give the amount in {' or '.join(after)}" if after else ""
        return f"{code} ({name}) was withdrawn from ISO 4217 and is no longer accepted{instead}"
    return f"{code} is not an ISO 4217 currency code"


def validate_currency(code: str) -> str:
    """The code upper-cased when it is on ISO 4217's current list; otherwise `MoneyError` saying why not (a
    withdrawn currency such as DEM is named, with what replaced it)."""
    code = (code or "").strip().upper()
    if code not in _minor_units():
        raise MoneyError(_refusal(code))
    return code


@cache
def exponent(currency: str) -> int:
    """Minor-unit exponent from ISO 4217 (JPY 0, USD 2, HUF 2, KWD 3)."""
    return _minor_units()[validate_currency(currency)]


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise MoneyError(f"amount must be integer minor units, got {type(self.minor).__name__}")
        object.__setattr__(self, "currency", validate_currency(self.currency))

    @classmethod
    def zero(cls, currency: str) -> Money:
        return cls(0, currency)

    @classmethod
    def parse(cls, text: str | int | Decimal, currency: str, decimal_mark: str = ".") -> Money:
        """Parse '1,234.50' (or '1.234,50' with `decimal_mark=","`) in major units into minor units.

        The other mark may only group thousands ('1,234,567.5'; spaces and apostrophes are allowed too): a
        decimal comma read as a thousands separator would silently make '1250,00' a hundred times larger, so
        anything else is refused. Refuses more decimals than the currency has instead of rounding them away, and
        more than MAX_DIGITS digits in minor units (so no amount the API would refuse, or the database could not
        hold, comes in through a file). No exponents ('1E3'), no NaN or infinity: digits and marks only."""
        if decimal_mark not in DECIMAL_MARKS:
            raise MoneyError(f"unknown decimal mark {decimal_mark!r}")
        exp = exponent(currency)
        raw = str(text).strip()
        for blank in (" ", "\u00a0", "\u202f", "'", "_"):
            raw = raw.replace(blank, "")
        if not re.fullmatch(r"[+-]?[\d.,]+", raw, flags=re.ASCII):
            raise MoneyError(f"{text!r} is not a number")
        if len(raw) > _MAX_TEXT:
            raise MoneyError(f"{str(text)[:_MAX_TEXT]!r}... is too long for an amount ({MAX_DIGITS} digits at most)")
        group = "," if decimal_mark == "." else "."
        if group in raw:
            if not _GROUPED[decimal_mark].fullmatch(raw):
                hint = DECIMAL_COMMA_HINT if decimal_mark == "." and re.fullmatch(r"[+-]?\d+,\d+", raw) else ""
                raise MoneyError(f"{text!r} is not a number: {group!r} may only separate thousands{hint}")
            raw = raw.replace(group, "")
        if decimal_mark == ",":
            raw = raw.replace(",", ".")
        if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", raw, flags=re.ASCII):
            raise MoneyError(f"{text!r} is not a number")
        value = Decimal(raw)
        scaled = value.scaleb(exp)
        if scaled != scaled.to_integral_value():
            raise MoneyError(f"{text!r} has more than {exp} decimal places for {currency}")
        if abs(int(scaled)) > MAX_MINOR:
            raise MoneyError(f"{text!r} is too large: at most {MAX_DIGITS} digits in {currency}")
        return cls(int(scaled), currency)

    def _check(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._check(other)
        return self.minor <= other.minor

    def __gt__(self, other: Money) -> bool:
        self._check(other)
        return self.minor > other.minor

    def __ge__(self, other: Money) -> bool:
        self._check(other)
        return self.minor >= other.minor

    @property
    def amount(self) -> Decimal:
        """The value in major units as an exact Decimal (for display and export only)."""
        return Decimal(self.minor).scaleb(-exponent(self.currency))

    def format(self, locale: str = "en_US") -> str:
        return format_money(self.minor, self.currency, locale)

    def __str__(self) -> str:
        return f"{self.currency} {self.amount:,.{exponent(self.currency)}f}"


def format_money(minor: int | None, currency: str, locale: str = "en_US") -> str:
    """'$1,234.50', '¥1,050', '€12.00' — the locale decides symbol and separators."""
    if minor is None:
        return ""
    exp = exponent(currency)
    value = Decimal(int(minor)).scaleb(-exp)
    return _pattern(locale, exp).apply(value, _locale(locale), currency=currency, currency_digits=False)


@cache
def _locale(name: str) -> Locale:
    return Locale.parse(name)


@cache
def _pattern(locale: str, exp: int) -> NumberPattern:
    """The locale's currency pattern with ISO 4217's decimals (HUF 2), not CLDR's cash digits (HUF 0), which
    would round an amount away."""
    pattern = copy.copy(parse_pattern(_locale(locale).currency_formats["standard"]))
    pattern.frac_prec = (exp, exp)
    return pattern
