"""Trends for the SLA dashboard's charts: compliance by client and month, breaches by week, clocks at risk by day
(from the daily snapshots, `sla.snapshots`).

A bounded number of set-based queries: one compliance GROUP BY per month (each client's month in its own zone),
one row of filtered counts for all the weeks together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from sla.models import SlaClock, SlaDailySnapshot
from sla.months import compliance, month_bounds


@dataclass(frozen=True)
class ComplianceTrend:
    months: list[str]  # "2026-06" ... oldest first
    by_client: dict[int, list[float | None]]  # client id -> % met per month (None: nothing decided)
    decided: dict[int, list[int]]
    overall: list[float | None]


def _months_back(today: date, count: int) -> list[tuple[int, int]]:
    out = []
    year, month = today.year, today.month
    for _ in range(count):
        out.append((year, month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


def compliance_by_month(session: Session, clients: list[Any], today: date, count: int = 6) -> ComplianceTrend:
    """Share of SLA outcomes met per client and month (all SLAs together), the last `count` months."""
    months = _months_back(today, count)
    by_client: dict[int, list[float | None]] = {c.id: [] for c in clients}
    decided: dict[int, list[int]] = {c.id: [] for c in clients}
    overall: list[float | None] = []
    for year, month in months:
        rows = compliance(session, {c.id: month_bounds(c.timezone, year, month) for c in clients}) if clients else []
        n: dict[int, int] = {}
        met: dict[int, int] = {}
        for r in rows:
            n[r.client_id] = n.get(r.client_id, 0) + r.decided
            met[r.client_id] = met.get(r.client_id, 0) + r.met
        for c in clients:
            total = n.get(c.id, 0)
            by_client[c.id].append(round(100 * met[c.id] / total, 1) if total else None)
            decided[c.id].append(total)
        all_n, all_met = sum(n.values()), sum(met.values())
        overall.append(round(100 * all_met / all_n, 1) if all_n else None)
    return ComplianceTrend([f"{y}-{m:02d}" for y, m in months], by_client, decided, overall)


@dataclass(frozen=True)
class WeekRow:
    week: date  # the Monday the week starts
    started: int  # SLA clocks started in the week
    breached: int  # clocks that breached in the week
    open_breached: int  # clocks breached and still not done at the week's end (the backlog of risk)


def breaches_by_week(
    session: Session, now: datetime, client_ids: list[int] | None = None, weeks: int = 12
) -> list[WeekRow]:
    """The last `weeks` weeks (UTC, Monday to Monday), oldest first: one query of filtered counts."""
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [monday - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]
    columns = []
    c = SlaClock
    for lo in starts:
        hi = lo + timedelta(weeks=1)
        columns += [
            func.count().filter(and_(c.started_at >= lo, c.started_at < hi)),
            func.count().filter(and_(c.breached_at >= lo, c.breached_at < hi)),
            func.count().filter(and_(c.breached_at < hi, (c.stopped_at.is_(None)) | (c.stopped_at >= hi))),
        ]
    stmt = select(*columns)
    if client_ids is not None:
        stmt = stmt.where(c.client_id.in_(client_ids or [-1]))
    row = session.execute(stmt).one()
    return [
        WeekRow(lo.date(), int(row[3 * i]), int(row[3 * i + 1]), int(row[3 * i + 2])) for i, lo in enumerate(starts)
    ]


@dataclass(frozen=True)
class RiskDay:
    day: date
    open_clocks: int
    at_risk: int
    breached_open: int
    clients: int  # clients with a snapshot that day


def at_risk_by_day(session: Session, today: date, days: int = 30) -> list[RiskDay]:
    """The visible clients' snapshots of the last `days` days before `today`, summed per day, oldest first (one
    GROUP BY). A day no client has a snapshot of is left out (the table says how many clients each day covers), and
    so are the newest days that fewer clients have than the others (not yet over in every client's zone)."""
    first = today - timedelta(days=days)
    s = SlaDailySnapshot
    rows = session.execute(
        select(s.day, func.sum(s.open_clocks), func.sum(s.at_risk), func.sum(s.breached_open), func.count())
        .where(s.day >= first, s.day < today)
        .group_by(s.day)
        .order_by(s.day)
    ).all()
    days = [RiskDay(d, int(o), int(r), int(b), int(n)) for d, o, r, b, n in rows]
    # the newest days may be finished in some clients' zones only (east of the others): they wait for the rest
    most = max((r.clients for r in days), default=0)
    while days and days[-1].clients < most:
        days.pop()
    return days
