"""Business time checked against an independent computation (hypothesis).

The oracle shares no code with `sla.calendars`: it asks the `holidays` library directly for each year, builds
each day's working window with `datetime.combine` in the zone, and sums exact `timedelta`s. Zones with DST
changes in Europe, the US and Australia, six working-week patterns, round-the-clock and evening hours, closed
days, and instants with microseconds."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
from hypothesis import given, settings
from hypothesis import strategies as st

from sla.calendars import Calendar, add_business_micros, business_micros

PLACES = [
    ("Europe/Berlin", "DE", ""),
    ("Europe/Berlin", "DE", "BY"),
    ("Europe/London", "GB", ""),
    ("America/New_York", "US", "NY"),
    ("America/Los_Angeles", "US", "CA"),
    ("Australia/Sydney", "AU", "NSW"),
    ("Asia/Tokyo", "JP", ""),
    ("Europe/Paris", "FR", ""),
]
WEEKS = [
    frozenset({0, 1, 2, 3, 4}),
    frozenset({0, 1, 2, 3, 4, 5}),
    frozenset({6, 0, 1, 2, 3}),
    frozenset({0, 1, 2, 3}),
    frozenset({1, 3, 5}),
    frozenset(range(7)),
]
HOURS = [(9 * 60, 17 * 60), (8 * 60 + 30, 18 * 60), (0, 24 * 60), (60, 5 * 60), (14 * 60, 23 * 60 + 30)]
BASE = datetime(2026, 1, 1, tzinfo=UTC)


def oracle_windows(cal: Calendar, first: date, last: date) -> list[tuple[datetime, datetime]]:
    zone = ZoneInfo(cal.timezone)
    years = range(first.year, last.year + 1)
    public = holidays.country_holidays(cal.country, subdiv=cal.subdivision or None, years=years)
    out = []
    day = first
    while day <= last:
        if day.weekday() in cal.workdays and day not in public and day not in cal.closed:
            midnight = datetime.combine(day, time(0), tzinfo=zone)
            start = midnight + timedelta(minutes=cal.work_start_min)  # wall-clock minutes after midnight
            end = midnight + timedelta(minutes=cal.work_end_min)
            out.append((start.astimezone(UTC), end.astimezone(UTC)))
        day += timedelta(days=1)
    return out


def oracle_between(cal: Calendar, start: datetime, end: datetime) -> timedelta:
    total = timedelta(0)
    first = start.astimezone(ZoneInfo(cal.timezone)).date() - timedelta(days=1)
    last = end.astimezone(ZoneInfo(cal.timezone)).date() + timedelta(days=1)
    for ws, we in oracle_windows(cal, first, last):
        lo, hi = max(ws, start), min(we, end)
        if hi > lo:
            total += hi - lo
    return total


calendars = st.builds(
    lambda place, week, hours, closed: Calendar(
        place[0],
        place[1],
        place[2],
        work_start_min=hours[0],
        work_end_min=hours[1],
        workdays=week,
        closed=frozenset(BASE.date() + timedelta(days=d) for d in closed),
    ),
    st.sampled_from(PLACES),
    st.sampled_from(WEEKS),
    st.sampled_from(HOURS),
    st.sets(st.integers(min_value=0, max_value=400), max_size=8),
)
instants = st.integers(min_value=0, max_value=400 * 24 * 3600 * 1_000_000).map(
    lambda us: BASE + timedelta(microseconds=us)
)
spans = st.integers(min_value=0, max_value=90 * 24 * 3600 * 1_000_000)


@settings(max_examples=300, deadline=None)
@given(cal=calendars, start=instants, span=spans)
def test_business_time_between_two_instants_agrees_with_the_oracle(cal: Calendar, start: datetime, span: int) -> None:
    end = start + timedelta(microseconds=span)
    assert business_micros(cal, start, end) == oracle_between(cal, start, end) // timedelta(microseconds=1)


@settings(max_examples=300, deadline=None)
@given(cal=calendars, start=instants, amount=st.integers(min_value=1, max_value=40 * 8 * 3600 * 1_000_000))
def test_a_deadline_is_the_first_instant_with_that_much_business_time(
    cal: Calendar, start: datetime, amount: int
) -> None:
    due = add_business_micros(cal, start, amount)
    us = timedelta(microseconds=1)
    assert oracle_between(cal, start, due) == amount * us  # exactly the amount ...
    assert oracle_between(cal, start, due - us) == (amount - 1) * us  # ... and not a microsecond earlier
