"""One convention for dates, times and a few words on every page, PDF and e-mail.

- A date reads the same everywhere in the reader's locale (`format_day`: "17 Nov 2026" in British English,
  "Nov 17, 2026" in American, "17.11.2026" in German), the locale the browser's date inputs use as well.
- A time is shown in the reader's time zone, and the zone is named ("17 Nov 2026, 20:16 EST"): a client user
  reads the client's zone, agency staff their own (the "time zone" of their settings page), else the agency's
  (AGENCY_TIMEZONE). Stored times are UTC.
- Outside a request (a report rendered by a job, an e-mail) the locale is British English and the zone is the
  one the caller passes (the client's).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton, format_time
from flask import current_app, g, has_app_context, has_request_context, request

DEFAULT_LOCALE = "en_GB"
SUPPORTED = ("en_GB", "en_US", "en", "de", "de_DE", "fr", "fr_FR", "es", "it", "nl", "ja")


def reader_locale() -> Locale:
    """The locale of the browser asking (its first supported Accept-Language), else British English; a document
    that is stored (a report's PDF) is written in the fixed one `fixed_locale` sets, whoever asked for it."""
    if has_app_context() and g.get("fixed_locale"):
        return Locale.parse(g.fixed_locale)
    if has_request_context():
        best = request.accept_languages.best_match([s.replace("_", "-") for s in SUPPORTED])
        if best:
            try:
                return Locale.parse(best.replace("-", "_"))
            except (UnknownLocaleError, ValueError):
                pass
    return Locale.parse(DEFAULT_LOCALE)


class fixed_locale:
    """Within it, dates are written in `name` (default British English) whatever the browser asks for."""

    def __init__(self, name: str = DEFAULT_LOCALE) -> None:
        self.name, self.before = name, None

    def __enter__(self) -> None:
        self.before = g.get("fixed_locale")
        g.fixed_locale = self.name

    def __exit__(self, *_: object) -> None:
        g.fixed_locale = self.before


def agency_timezone() -> str:
    return str(current_app.config.get("AGENCY_TIMEZONE") or "UTC") if has_app_context() else "UTC"


def reader_timezone() -> str:
    """The signed-in reader's zone: the client's for a client user; for staff their own setting, else the
    agency's."""
    if has_request_context():
        from flask_login import current_user

        if getattr(current_user, "is_authenticated", False):
            if getattr(current_user, "is_client_user", False):
                client = getattr(current_user, "client", None)
                if client is not None and client.timezone:
                    return str(client.timezone)
            elif valid_timezone(getattr(current_user, "timezone", None) or ""):
                return str(current_user.timezone)
        return agency_timezone()
    return "UTC"


def valid_timezone(name: str) -> bool:
    """Whether `name` is an IANA zone this system knows ("Europe/Berlin")."""
    return bool(name) and name in timezone_names()


@cache
def timezone_names() -> frozenset[str]:
    """The IANA zones of the system's zone database (read once per process)."""
    return frozenset(available_timezones())


def _as_date(value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def format_day(value: Any, locale: Locale | str | None = None) -> str:
    """A date (a `date`, or an ISO string from a frozen report) in the reader's locale; "" for none."""
    day = _as_date(value)
    return "" if day is None else format_date(day, "medium", locale=locale or reader_locale())


def format_day_short(value: Any, locale: Locale | str | None = None) -> str:
    """A date without its year, for a chart's axis: "6 Dec" in British English, "Dec 6" in American."""
    day = _as_date(value)
    return "" if day is None else format_skeleton("MMMd", day, locale=locale or reader_locale())


def zone_name(moment: datetime) -> str:
    """The zone's abbreviation at that instant ("CET", "EST", "JST"), or its UTC offset where it has none."""
    name = moment.strftime("%Z")
    return name if name and not name.startswith(("+", "-")) else f"UTC{moment.strftime('%z')[:3]}"


def format_moment(value: datetime | None, tz: str | None = None, locale: Locale | str | None = None) -> str:
    """An instant in `tz` (default: the reader's), with the zone named: "17 Nov 2026, 20:16 EST"."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(ZoneInfo(tz or reader_timezone()))
    loc = locale or reader_locale()
    day, time = format_date(local.date(), "medium", locale=loc), format_time(local, "HH:mm", locale=loc)
    return f"{day}, {time} {zone_name(local)}"


def format_clock(value: datetime | None, tz: str | None = None, locale: Locale | str | None = None) -> str:
    """The time of day of an instant in `tz` (default: the reader's), with the zone named: "20:16 EST"."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    local = value.astimezone(ZoneInfo(tz or reader_timezone()))
    return f"{format_time(local, 'HH:mm', locale=locale or reader_locale())} {zone_name(local)}"


def local_date(value: datetime | None, tz: str | None = None) -> date | None:
    """The calendar date of an instant in `tz` (default: the reader's zone)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(ZoneInfo(tz or reader_timezone())).date()


def _month_day(value: Any) -> date | str:
    """The first day of an ISO month ("2026-11"), or the date given; text that is neither (a month already written
    in words, as reports frozen before stored them) comes back as it is."""
    try:
        day = _as_date(f"{value}-01" if isinstance(value, str) and len(value) == 7 else value)
    except ValueError:
        return str(value)
    return "" if day is None else day


def format_month(value: Any, locale: Locale | str | None = None) -> str:
    """ "2026-11" (or a date) as "November 2026"."""
    if value is None or value == "":
        return ""
    day = _month_day(value)
    return day if isinstance(day, str) else format_date(day, "LLLL yyyy", locale=locale or reader_locale())


def format_month_short(value: Any, locale: Locale | str | None = None) -> str:
    """ "2026-11" (or a date) as "Nov 2026", for column headings."""
    if value is None or value == "":
        return ""
    day = _month_day(value)
    return day if isinstance(day, str) else format_date(day, "LLL yyyy", locale=locale or reader_locale())


def format_month_column(value: Any, locale: Locale | str | None = None) -> str:
    """ "2026-11" as "Nov \u201926": a month in a narrow column or on a chart's axis."""
    if value is None or value == "":
        return ""
    day = _as_date(f"{value}-01" if isinstance(value, str) and len(value) == 7 else value)
    return "" if day is None else format_date(day, "LLL \u2019yy", locale=locale or reader_locale())


def plural(n: int, one: str, many: str | None = None) -> str:
    """ "1 business day", "2 business days"."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
