"""How a client's files write dates and numbers, chosen once per client beside its column mapping.

ERP exports differ: QuickBooks writes 01/31/2026, a German DATEV export 31.01.2026 and 1.234,56. An ambiguous
date (03/04/2026) or number (1,250) cannot be guessed safely, so the client says which convention its files
use, and the import reads every row in it; ISO dates (2026-01-31) are always accepted, and spreadsheet cells
that hold real dates or numbers need no convention at all. The choice is stored in the batch's mapping JSON
(`date_format`, `decimal_mark`) and saved for the next upload with the column names.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from babel.numbers import get_currency_symbol
from marshmallow import ValidationError, fields

from provider.core.errors import ServiceError
from provider.core.money import DECIMAL_COMMA_HINT, DECIMAL_MARKS, Money, MoneyError, validate_currency

# key -> (what the user sees, strptime pattern); a date with the month's name is read by `_named_month`, which
# also takes the month's full name, a comma and spaces or dashes ("January 28, 2021", "28 Jan 2021")
DATE_FORMATS = {
    "iso": ("YYYY-MM-DD", "%Y-%m-%d"),
    "dmy": ("DD/MM/YYYY", "%d/%m/%Y"),
    "mdy": ("MM/DD/YYYY", "%m/%d/%Y"),
    "dmy_dot": ("DD.MM.YYYY", "%d.%m.%Y"),
    "dmy_dash": ("DD-MM-YYYY", "%d-%m-%Y"),
    "mon_d_y": ("Jan 28 2021 (month name first)", "%b %d %Y"),
    "d_mon_y": ("28-Jan-2021 (day first, month name)", "%d-%b-%Y"),
}
NAMED_MONTH_FORMATS = ("mon_d_y", "d_mon_y")
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
# "Jan 28 2021", "Jan 28, 2021", "January 28th, 2021" / "28-Jan-2021", "28 Jan 2021", "28. January 2021"
_MONTH_FIRST = re.compile(r"([A-Za-z]+)\.?[\s-]+(\d{1,2})(?:st|nd|rd|th)?,?[\s-]+(\d{4})")
_DAY_FIRST = re.compile(r"(\d{1,2})(?:st|nd|rd|th)?\.?[\s-]+([A-Za-z]+)\.?,?[\s-]+(\d{4})")
FORMAT_KEYS = ("date_format", "decimal_mark")
DEFAULT_FORMATS = {"date_format": "iso", "decimal_mark": "."}
_ISO = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")
# an ERP's timestamp for a date ("2026-01-05 00:00:00", "05.01.2026 13:30"): the date as written, no zone
_TIME_OF_DAY = re.compile(r"(.+?)(?:[ T]+\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)")
# what may stand around the digits of an amount: a currency code or symbol ("€ 1.234,56", "1234.56 EUR")
_UNIT = re.compile(r"[^\d\s.,'()+\-\u2212\u00a0\u202f]+")
# locales whose currency symbols a file may use ("$" for CAD in en_CA, "kr" for SEK in sv, "zł" in pl)
_SYMBOL_LOCALES = ("en", "en_CA", "en_AU", "en_NZ", "en_SG", "en_HK", "en_IN", "de_CH", "sv", "da", "nb", "pl", "cs")
_SYMBOL_LOCALES += ("hu", "ja", "zh", "ko", "pt_BR", "es_MX", "tr", "ru")


@dataclass(frozen=True)
class FileFormat:
    date_format: str = "iso"
    decimal_mark: str = "."

    @classmethod
    def of(cls, mapping: dict[str, Any] | None) -> FileFormat:
        """The format stored in a mapping (the defaults for a mapping saved before formats existed)."""
        mapping = mapping or {}
        return cls(**{k: str(mapping.get(k) or DEFAULT_FORMATS[k]) for k in FORMAT_KEYS})

    @classmethod
    def requested(cls, mapping: dict[str, Any] | None) -> FileFormat:
        """The format an upload asks for, refused as a ServiceError (field `file_format`) when unknown."""
        try:
            return cls.of(mapping)
        except ValueError as exc:
            raise ServiceError(str(exc), field="file_format") from None

    def __post_init__(self) -> None:
        if self.date_format not in DATE_FORMATS:
            raise ValueError(f"unknown date format {self.date_format!r}")
        if self.decimal_mark not in DECIMAL_MARKS:
            raise ValueError(f"unknown decimal mark {self.decimal_mark!r}")

    @property
    def plain(self) -> bool:
        """ISO dates and a decimal point: what the imports' fast paths read."""
        return self.date_format == "iso" and self.decimal_mark == "."

    @property
    def date_label(self) -> str:
        return DATE_FORMATS[self.date_format][0]

    def parse_date(self, text: str) -> date:
        """A date in this format, or in ISO form; ValueError otherwise (also for 31/02/2026)."""
        text = text.strip()
        timestamp = _TIME_OF_DAY.fullmatch(text)
        text = timestamp.group(1) if timestamp else text
        if self.date_format in NAMED_MONTH_FORMATS and not _ISO.fullmatch(text):
            return _named_month(text, self.date_format == "mon_d_y")
        pattern = DATE_FORMATS["iso"][1] if _ISO.fullmatch(text) else DATE_FORMATS[self.date_format][1]
        return datetime.strptime(text, pattern).date()  # noqa: DTZ007 - a calendar date, no time of day

    def as_mapping(self) -> dict[str, str]:
        return {"date_format": self.date_format, "decimal_mark": self.decimal_mark}


def _named_month(text: str, month_first: bool) -> date:
    """A date written with the English name of its month, in the order the format says (ValueError otherwise:
    "28 Jan 2021" is not read as month first, nor "Jan 28 2021" as day first)."""
    found = (_MONTH_FIRST if month_first else _DAY_FIRST).fullmatch(text)
    if found is None:
        raise ValueError(text)
    month_name, day = (found.group(1), found.group(2)) if month_first else (found.group(2), found.group(1))
    month = _MONTHS.get(month_name.casefold())
    if month is None:
        raise ValueError(text)
    return date(int(found.group(3)), month, int(day))


def format_from_form(form: Any) -> tuple[FileFormat, list[str]]:
    """The file format chosen on an upload form, or the default and what was wrong."""
    chosen = {k: (form.get(k) or DEFAULT_FORMATS[k]).strip() for k in FORMAT_KEYS}
    errors = []
    if chosen["date_format"] not in DATE_FORMATS:
        errors.append(f"date format: choose one of {', '.join(label for label, _ in DATE_FORMATS.values())}")
    if chosen["decimal_mark"] not in DECIMAL_MARKS:
        errors.append("number format: choose 1,234.56 or 1.234,56")
    if errors:
        return FileFormat(), errors
    return FileFormat(**chosen), []


class FileDate(fields.Date):
    """A date written in the file's format (the schema's `file_format`, ISO by default)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> date:
        fmt: FileFormat = getattr(self.parent, "file_format", None) or FileFormat()
        try:
            return fmt.parse_date(str(value))
        except (TypeError, ValueError):
            raise ValidationError(f"not a valid date; use {fmt.date_label}") from None


def amount_problem(exc: MoneyError) -> str:
    """What is wrong with a file's amount; a decimal comma in a decimal-point file says how to read it."""
    text = str(exc)
    if DECIMAL_COMMA_HINT in text:
        return text + ", or choose the 1.234,56 amount format for this file"
    return text


@cache
def currency_marks(currency: str) -> frozenset[str]:
    """How a file may write `currency` beside an amount: its code and its symbols ("EUR", "€")."""
    return frozenset({currency, *(get_currency_symbol(currency, locale) for locale in _SYMBOL_LOCALES)})


def _is_currency(unit: str) -> bool:
    """Whether a word beside an amount names a currency: an ISO 4217 code or a currency symbol ("$", "US$")."""
    if re.fullmatch(r"[A-Za-z]{3}", unit):
        try:
            validate_currency(unit)
        except MoneyError:
            return False
        return True
    return any(unicodedata.category(ch) == "Sc" for ch in unit)


def parse_amount(text: str, currency: str, decimal_mark: str = ".") -> Money:
    """An amount cell of a file in `currency` (XTS: the row's currency is unknown, the number is still read).

    The row's own currency may stand before or after the number ("€ 1.234,56", "1234.56 EUR"); another
    currency is refused, never converted. A negative amount may be written "-12.00", "12.00-" (SAP), with
    the Unicode minus sign U+2212 or "(12.00)" (accounting): it is read as negative, and the import refuses
    it as one. Raises MoneyError with the reason."""
    units = _UNIT.findall(text)
    number = _UNIT.sub("", text).strip()
    if not re.search(r"\d", number):
        raise MoneyError(f"{text!r} is not a number")
    for unit in units:
        if currency == "XTS" or unit.upper() in currency_marks(currency) or unit in currency_marks(currency):
            continue
        if _is_currency(unit):
            raise MoneyError(f"{text!r} is not an amount in {currency} ({unit!r} is another currency)")
        raise MoneyError(f"{text!r} is not a number")
    negative = False
    if number.startswith("(") and number.endswith(")"):
        negative, number = True, number[1:-1].strip()
    elif number.endswith("-") and not number.startswith(("-", "\u2212")):
        negative, number = True, number[:-1].strip()
    elif number.startswith("\u2212"):
        negative, number = True, number[1:].strip()
    try:
        money = Money.parse(number, currency, decimal_mark)
    except MoneyError as exc:
        raise MoneyError(str(exc).replace(repr(number), repr(text), 1)) from None
    return Money(-money.minor, money.currency) if negative else money


def not_positive(text: str) -> str:
    """Why an amount that is zero or negative is refused."""
    return f"must be a positive amount, not {text.strip()} (a credit? credits are not imported here)"
