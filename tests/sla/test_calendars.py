"""Business-time arithmetic as tables: time zones, DST changes, public holidays, weekends, closed days."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from sla.calendars import (
    Calendar,
    CalendarError,
    add_business_seconds,
    business_seconds,
    nth_business_day_end,
)

H = 3600
DAY = 8 * H  # 9:00-17:00


def local(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)


BERLIN = Calendar("Europe/Berlin", "DE")
NEW_YORK = Calendar("America/New_York", "US")
TOKYO = Calendar("Asia/Tokyo", "JP")
SYDNEY = Calendar("Australia/Sydney", "AU")
LONDON = Calendar("Europe/London", "GB")
BERLIN_CLOSED = Calendar("Europe/Berlin", "DE", closed=frozenset({date(2026, 6, 1)}))
BERLIN_BAVARIA = Calendar("Europe/Berlin", "DE", subdivision="BY")
NIGHT_SHIFT = Calendar("Europe/Berlin", "DE", work_start_min=0, work_end_min=24 * 60, workdays=frozenset(range(7)))


@pytest.mark.parametrize(
    ("case", "cal", "start", "seconds", "due"),
    [
        (
            "Fri 16:00 Berlin before Pentecost Monday: 1 business day is Tuesday 16:00",
            BERLIN,
            local("Europe/Berlin", 2026, 5, 22, 16),
            DAY,
            local("Europe/Berlin", 2026, 5, 26, 16),
        ),
        (
            "opened on a Saturday: counting starts Monday 9:00, due at Monday's close",
            BERLIN,
            local("Europe/Berlin", 2026, 5, 16, 10),
            DAY,
            local("Europe/Berlin", 2026, 5, 18, 17),
        ),
        (
            "across the spring-forward weekend (CET -> CEST) the due time stays 16:00 local",
            BERLIN,
            local("Europe/Berlin", 2026, 3, 27, 16),
            DAY,
            local("Europe/Berlin", 2026, 3, 30, 16),
        ),
        (
            "across the fall-back weekend (CEST -> CET)",
            BERLIN,
            local("Europe/Berlin", 2026, 10, 23, 16),
            DAY,
            local("Europe/Berlin", 2026, 10, 26, 16),
        ),
        (
            "New York, 4 business hours from Friday 15:00 across the US DST change",
            NEW_YORK,
            local("America/New_York", 2026, 3, 6, 15),
            4 * H,
            local("America/New_York", 2026, 3, 9, 11),
        ),
        (
            "New York, 10 business days from before Thanksgiving",
            NEW_YORK,
            local("America/New_York", 2026, 11, 20, 12),
            10 * DAY,
            local("America/New_York", 2026, 12, 7, 12),
        ),
        (
            "Tokyo, opened on Showa Day (a Wednesday holiday): 2 hours is Thursday 11:00",
            TOKYO,
            local("Asia/Tokyo", 2026, 4, 29, 10),
            2 * H,
            local("Asia/Tokyo", 2026, 4, 30, 11),
        ),
        (
            "Sydney over Easter and the end of daylight saving (AEDT -> AEST)",
            SYDNEY,
            local("Australia/Sydney", 2026, 4, 2, 16),
            DAY,
            local("Australia/Sydney", 2026, 4, 7, 16),
        ),
        (
            "London: Christmas, Boxing Day on Saturday and its observed Monday",
            LONDON,
            local("Europe/London", 2026, 12, 24, 16),
            DAY,
            local("Europe/London", 2026, 12, 29, 16),
        ),
        (
            "a client's extra closed day counts like a holiday",
            BERLIN_CLOSED,
            local("Europe/Berlin", 2026, 5, 29, 16),
            DAY,
            local("Europe/Berlin", 2026, 6, 2, 16),
        ),
        (
            "exactly the rest of the window ends at the close, not the next morning",
            BERLIN,
            local("Europe/Berlin", 2026, 5, 18, 9),
            DAY,
            local("Europe/Berlin", 2026, 5, 18, 17),
        ),
        (
            "round-the-clock calendar: 24 business hours over the 23-hour spring-forward day",
            NIGHT_SHIFT,
            local("Europe/Berlin", 2026, 3, 29, 0),
            24 * H,
            local("Europe/Berlin", 2026, 3, 30, 1),
        ),
        ("zero seconds is the start itself", BERLIN, local("Europe/Berlin", 2026, 5, 16, 10), 0, None),
    ],
)
def test_add_business_seconds(case: str, cal: Calendar, start: datetime, seconds: int, due: datetime | None) -> None:
    assert add_business_seconds(cal, start, seconds) == (due or start), case
    if seconds:
        assert business_seconds(cal, start, add_business_seconds(cal, start, seconds)) == seconds, case


@pytest.mark.parametrize(
    ("case", "cal", "start", "end", "seconds"),
    [
        (
            "Friday 16:00 to Tuesday 16:00 over Pentecost: one business day",
            BERLIN,
            local("Europe/Berlin", 2026, 5, 22, 16),
            local("Europe/Berlin", 2026, 5, 26, 16),
            DAY,
        ),
        (
            "a weekend with the DST change counts nothing, Monday 9-10 counts an hour",
            BERLIN,
            local("Europe/Berlin", 2026, 3, 28, 0),
            local("Europe/Berlin", 2026, 3, 30, 10),
            H,
        ),
        (
            "the 23-hour day of a round-the-clock calendar has 23 business hours",
            NIGHT_SHIFT,
            local("Europe/Berlin", 2026, 3, 29, 0),
            local("Europe/Berlin", 2026, 3, 30, 0),
            23 * H,
        ),
        (
            "the 25-hour day has 25",
            NIGHT_SHIFT,
            local("Europe/Berlin", 2026, 10, 25, 0),
            local("Europe/Berlin", 2026, 10, 26, 0),
            25 * H,
        ),
        (
            "evening to next morning: nothing",
            BERLIN,
            local("Europe/Berlin", 2026, 5, 18, 18),
            local("Europe/Berlin", 2026, 5, 19, 8, 59),
            0,
        ),
        (
            "end before start: nothing",
            BERLIN,
            local("Europe/Berlin", 2026, 5, 19, 12),
            local("Europe/Berlin", 2026, 5, 18, 12),
            0,
        ),
        (
            "Tokyo's Golden Week: Apr 28 to May 7 has 3 business days",
            TOKYO,
            local("Asia/Tokyo", 2026, 4, 28, 17),
            local("Asia/Tokyo", 2026, 5, 7, 17),
            3 * DAY,
        ),
    ],
)
def test_business_seconds_between(case: str, cal: Calendar, start: datetime, end: datetime, seconds: int) -> None:
    assert business_seconds(cal, start, end) == seconds, case


@pytest.mark.parametrize(
    ("cal", "year", "month", "n", "due"),
    [
        (BERLIN, 2026, 6, 5, local("Europe/Berlin", 2026, 6, 5, 17)),
        (BERLIN_BAVARIA, 2026, 6, 5, local("Europe/Berlin", 2026, 6, 8, 17)),  # Corpus Christi in Bavaria
        (BERLIN, 2026, 1, 1, local("Europe/Berlin", 2026, 1, 2, 17)),  # New Year's Day is a holiday
        (TOKYO, 2026, 5, 5, local("Asia/Tokyo", 2026, 5, 12, 17)),  # Golden Week
    ],
)
def test_nth_business_day_end(cal: Calendar, year: int, month: int, n: int, due: datetime) -> None:
    assert nth_business_day_end(cal, year, month, n) == due


def test_a_calendar_without_working_days_is_refused() -> None:
    never = Calendar("Europe/Berlin", "DE", workdays=frozenset())
    with pytest.raises(CalendarError):
        add_business_seconds(never, local("Europe/Berlin", 2026, 5, 18, 9), H)
    with pytest.raises(CalendarError):
        nth_business_day_end(BERLIN, 2026, 6, 25)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        business_seconds(BERLIN, datetime(2026, 5, 18, 9), datetime(2026, 5, 18, 10))  # noqa: DTZ001
