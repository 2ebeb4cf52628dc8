"""Field validators shared by marshmallow schemas: currency, IANA zone, country, trimmed strings."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import pycountry
from marshmallow import ValidationError, fields, missing

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

    def deserialize(self, value, attr=None, data=None, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(value, str) and not value.strip():  # blank counts as missing; no validator sees it
            if self.required:
                raise self.make_error("required")
            default = self.load_default
            if default is missing:
                return None
            return default() if callable(default) else default
        return super().deserialize(value, attr, data, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        return super()._deserialize(value, attr, data, **kwargs).strip()


class Upper(Trimmed):
    def _deserialize(self, value, attr, data, **kwargs):  # type: ignore[no-untyped-def]
        text = super()._deserialize(value, attr, data, **kwargs)
        return text.upper() if text else text
