"""When a client's monthly report is due: its Nth business day, in its own calendar (SLA package)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import holidays

from clients.models import Client
from provider.extensions import db
from provider.reporting import formulas as f
from provider.reporting.hooks import report_business_day


def nth_business_day(client: Client, year: int, month: int, n: int) -> date:
    """The date of the client's Nth business day of the month (its calendar: zone, country, closed days)."""
    try:
        from sla.calendars import calendar_for, nth_business_day_end

        cal = calendar_for(db.session, client)
        return cal.local_date(nth_business_day_end(cal, year, month, n))  # type: ignore[no-any-return]
    except ImportError:  # pragma: no cover - the SLA package is part of the platform
        pass
    public = holidays.country_holidays(client.country, years=[year])
    day, count = date(year, month, 1), 0
    while True:
        if day.weekday() < 5 and day not in public:
            count += 1
            if count == n:
                return day
        day = date.fromordinal(day.toordinal() + 1)


def client_today(client: Client, now: datetime) -> date:
    return now.astimezone(ZoneInfo(client.timezone)).date()


def due_period(client: Client, now: datetime) -> str | None:
    """The month whose report is due for this client at `now` ('2026-10'), or None before its Nth business day."""
    today = client_today(client, now)
    n = report_business_day(client.id, today)
    if today < nth_business_day(client, today.year, today.month, n):
        return None
    return f.month_key(f.add_months(today, -1))
