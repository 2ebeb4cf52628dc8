"""Business time in a client's calendar: its IANA time zone, its country's public holidays (the `holidays`
library), its working hours and weekdays, and extra closed days.

All inputs and outputs are aware UTC instants. A working window is built in local wall-clock time and
converted to UTC, so a DST change moves the window, not its length in local hours (DST-safe through
zoneinfo). A *business day* is one full working window (9:00-17:00 → 8 business hours), so "within 1
business day" of Friday 16:00 is Monday 16:00 (or Tuesday 16:00 when Monday is a public holiday); an event
outside working hours starts counting at the next window's opening.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cached_property, lru_cache
from zoneinfo import ZoneInfo

import holidays
from sqlalchemy import select
from sqlalchemy.orm import Session

MAX_DAYS = 3 * 366  # a calendar with no working day in three years is a configuration error


class CalendarError(ValueError):
    """The calendar cannot answer (no working day in reach)."""


@lru_cache(maxsize=512)
def public_holidays(country: str, subdivision: str, year: int) -> frozenset[date]:
    """Public holidays (with observed substitutes) of a country (and subdivision) in one year."""
    try:
        days = holidays.country_holidays(country, subdiv=subdivision or None, years=year)
    except NotImplementedError:
        return frozenset()
    return frozenset(days.keys())


@dataclass(frozen=True)
class Calendar:
    timezone: str
    country: str
    subdivision: str = ""
    work_start_min: int = 9 * 60
    work_end_min: int = 17 * 60
    workdays: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    closed: frozenset[date] = field(default_factory=frozenset)

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def day_seconds(self) -> int:
        """The length of one business day (the nominal working window)."""
        return (self.work_end_min - self.work_start_min) * 60

    def is_business_day(self, day: date) -> bool:
        return (
            day.weekday() in self.workdays
            and day not in self.closed
            and day not in public_holidays(self.country, self.subdivision, day.year)
        )

    def window(self, day: date) -> tuple[datetime, datetime]:
        """The working window of a local date as UTC instants (wall-clock arithmetic, then UTC)."""
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        start = (midnight + timedelta(minutes=self.work_start_min)).astimezone(UTC)
        end = (midnight + timedelta(minutes=self.work_end_min)).astimezone(UTC)
        return start, end

    def local_date(self, instant: datetime) -> date:
        return _aware(instant).astimezone(self.tz).date()

    def windows_from(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """Working windows of business days from `day` on (bounded: raises after MAX_DAYS without one)."""
        idle = 0
        while True:
            if self.is_business_day(day):
                idle = 0
                yield self.window(day)
            else:
                idle += 1
                if idle > MAX_DAYS:
                    raise CalendarError("this calendar has no working day within three years")
            day += timedelta(days=1)


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError("business time needs aware datetimes")
    return instant.astimezone(UTC)


US = timedelta(microseconds=1)


def business_micros(cal: Calendar, start: datetime, end: datetime) -> int:
    """Business time in [start, end) in microseconds, exact (what the clocks bank) — 0 when end is not after start.

    Summed as exact intervals: nothing is rounded per working day, so a span over any number of days is exact
    to the microsecond (the resolution of the stored timestamps)."""
    start, end = _aware(start), _aware(end)
    if end <= start:
        return 0
    total = 0
    last_day = cal.local_date(end)
    day = cal.local_date(start)
    while day <= last_day:
        if cal.is_business_day(day):
            ws, we = cal.window(day)
            lo, hi = max(ws, start), min(we, end)
            if hi > lo:
                total += (hi - lo) // US
        day += timedelta(days=1)
    return total


def add_business_micros(cal: Calendar, start: datetime, micros: int) -> datetime:
    """The instant at which `micros` microseconds of business time after `start` have passed (`start` for 0).

    Exact: `business_micros(cal, start, add_business_micros(cal, start, n)) == n`."""
    start = _aware(start)
    if micros <= 0:
        return start
    remaining = micros
    for ws, we in cal.windows_from(cal.local_date(start) - timedelta(days=1)):
        lo = max(ws, start)
        if lo >= we:
            continue
        available = (we - lo) // US
        if remaining <= available:
            return lo + remaining * US
        remaining -= available
    raise AssertionError("unreachable")  # pragma: no cover - windows_from raises instead


def business_seconds(cal: Calendar, start: datetime, end: datetime) -> int:
    """Whole business seconds in [start, end) (the exact time, rounded down once, for display)."""
    return business_micros(cal, start, end) // 1_000_000


def add_business_seconds(cal: Calendar, start: datetime, seconds: int) -> datetime:
    """The instant at which `seconds` of business time after `start` have passed (`start` itself for 0)."""
    return add_business_micros(cal, start, seconds * 1_000_000)


def nth_business_day_end(cal: Calendar, year: int, month: int, n: int) -> datetime:
    """The close of the n-th business day of a month (e.g. the monthly report is due by the 5th)."""
    for count, (ws, we) in enumerate(cal.windows_from(date(year, month, 1)), start=1):
        if count == n:
            if cal.local_date(ws).month != month:
                raise CalendarError(f"{year}-{month:02d} has fewer than {n} business days")
            return we
    raise AssertionError("unreachable")  # pragma: no cover


def calendar_for(session: Session, client: object) -> Calendar:
    """The calendar of a client: its zone and country, plus its working week and closed days if recorded."""
    from sla.models import BusinessCalendarRow, ClosedDay

    client_id = client.id  # type: ignore[attr-defined]
    row = session.scalar(select(BusinessCalendarRow).where(BusinessCalendarRow.client_id == client_id))
    closed = frozenset(session.scalars(select(ClosedDay.day).where(ClosedDay.client_id == client_id)))
    base = Calendar(timezone=client.timezone, country=client.country, closed=closed)  # type: ignore[attr-defined]
    if row is None:
        return base
    return Calendar(
        timezone=base.timezone,
        country=base.country,
        subdivision=row.subdivision,
        work_start_min=row.work_start_min,
        work_end_min=row.work_end_min,
        workdays=frozenset(int(d) for d in row.workdays.split(",") if d.strip()),
        closed=closed,
    )
