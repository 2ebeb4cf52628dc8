"""How a client's files write dates and numbers, chosen once per client beside its column mapping.

ERP exports differ: QuickBooks writes 01/31/2026, a German DATEV export 31.01.2026 and 1.234,56. An ambiguous
date (03/04/2026) or number (1,250) cannot be guessed safely, so the client says which convention its files
use, and the import reads every row in it; ISO dates (2026-01-31) are always accepted, and spreadsheet cells
that hold real dates or numbers need no convention at all. The choice is stored in the batch's mapping JSON
(`date_format`, `decimal_mark`) and saved for the next upload with the column names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from marshmallow import ValidationError, fields

from provider.core.errors import ServiceError
from provider.core.money import DECIMAL_COMMA_HINT, DECIMAL_MARKS, MoneyError

# key -> (what the user sees, strptime pattern)
DATE_FORMATS = {
    "iso": ("YYYY-MM-DD", "%Y-%m-%d"),
    "dmy": ("DD/MM/YYYY", "%d/%m/%Y"),
    "mdy": ("MM/DD/YYYY", "%m/%d/%Y"),
    "dmy_dot": ("DD.MM.YYYY", "%d.%m.%Y"),
}
FORMAT_KEYS = ("date_format", "decimal_mark")
DEFAULT_FORMATS = {"date_format": "iso", "decimal_mark": "."}
_ISO = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")


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
        pattern = DATE_FORMATS["iso"][1] if _ISO.fullmatch(text) else DATE_FORMATS[self.date_format][1]
        return datetime.strptime(text, pattern).date()  # noqa: DTZ007 - a calendar date, no time of day

    def as_mapping(self) -> dict[str, str]:
        return {"date_format": self.date_format, "decimal_mark": self.decimal_mark}


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
