"""Field validators shared by marshmallow schemas: currency, IANA zone, country, trimmed strings."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import pycountry
from marshmallow import ValidationError, fields

from provider.core.money import MoneyError, validate_currency


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    return frozenset(country.alpha_2 for country in pycountry.countries)


@lru_cache(maxsize=1)
def timezone_choices() -> list[str]:
    return sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "posix/", "right/")))


def check_currency(value: str) -> None:
    try:
        validate_currency(value)
    except MoneyError as exc:
        raise ValidationError(str(exc)) from None


def check_timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not an IANA time zone (e.g. Europe/Berlin)") from None


def check_country(value: str) -> None:
    if value not in _countries():
        raise ValidationError(f"{value!r} is not an ISO 3166 country code (e.g. DE, US, JP)")


class Trimmed(fields.String):
    """A string with surrounding whitespace removed; empty after trimming counts as missing."""

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        text = super()._deserialize(value, attr, data, **kwargs)
        text = text.strip() if text else text
        if not text and self.required:
            raise self.make_error("required")
        return text or None


class Upper(Trimmed):
    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        text = super()._deserialize(value, attr, data, **kwargs)
        return text.upper() if text else text
