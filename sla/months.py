"""Which month an SLA outcome belongs to, and months whose compliance has been reported.

- A clock's outcome is *decided* at its breach (the instant the deadline passed, `breached_at`) or, when it
  never breached, at its stop (`stopped_at`): `decided_at = coalesce(breached_at, stopped_at)`. It belongs to
  the month (in the client's zone) of that instant. A clock that breached in May and stopped in June is May's
  breach, and only May's.
- `close_month` is called when a month's report is produced: it runs the breach sweep (so a breach already
  due is never missed because the periodic sweep had not run yet), records the close and stamps every clock
  decided in that month (and not yet reported) with the period. From then on the month's figures are exactly
  the clocks stamped with it, so they never change, however late the sweep, a back-dated stop or a re-issue.
- An outcome that belongs to a month already closed (recorded after its report: a stop back-dated into it, a
  breach the sweep marked after the report) is a *correction*: it is stamped by the next close, counted in
  that next report's list of corrections to earlier months (named by the month it belongs to), and in no
  month's own figures. So each outcome appears in exactly one monthly report.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, exists, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from provider.core.clock import now_utc
from sla.models import SlaClock, SlaMonthClose


@dataclass(frozen=True)
class Compliance:
    client_id: int
    code: str
    decided: int  # clocks whose outcome (breach, or stop on time) falls in the month
    met: int  # of those, not breached

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.met / self.decided, 1) if self.decided else None


@dataclass(frozen=True)
class Correction:
    """Outcomes of an earlier, already reported month, recorded after its report."""

    code: str
    belongs_to: str  # "2026-05": the month the outcomes happened in
    decided: int
    met: int


def period_of(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def month_bounds(timezone: str, year: int, month: int) -> tuple[datetime, datetime]:
    """The month in the client's own time zone, as UTC instants [start, end)."""
    tz = ZoneInfo(timezone)
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return (
        datetime(year, month, 1, tzinfo=tz).astimezone(UTC),
        datetime(nxt.year, nxt.month, 1, tzinfo=tz).astimezone(UTC),
    )


def decided_at() -> Any:
    """The instant a clock's outcome was decided: its breach, else its stop (NULL while undecided)."""
    return func.coalesce(SlaClock.breached_at, SlaClock.stopped_at)


def _in_closed_month(client_id: Any, exclude: str | None = None) -> Any:
    decided = decided_at()
    cond = [
        SlaMonthClose.client_id == client_id,
        decided >= SlaMonthClose.starts_at,
        decided < SlaMonthClose.ends_at,
    ]
    if exclude is not None:
        cond.append(SlaMonthClose.period != exclude)
    return exists().where(*cond)


def close_month(session: Session, client: Any, year: int, month: int, at: datetime | None = None) -> bool:
    """Record that the month's SLA compliance is reported (idempotent). Stamps the month's outcomes, and the
    corrections to earlier reported months recorded since their close, with the period. True if it closed now."""
    from sla.sweep import sweep

    at = at or now_utc()
    period = period_of(year, month)
    lo, hi = month_bounds(client.timezone, year, month)
    if session.scalar(
        select(SlaMonthClose.period).where(SlaMonthClose.client_id == client.id, SlaMonthClose.period == period)
    ):
        return False
    sweep(session, at)  # breaches already due are marked first: a report never misses one for the sweep's lag
    factory = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    row = {"client_id": client.id, "period": period, "starts_at": lo, "ends_at": hi, "closed_at": at}
    added = session.execute(
        factory(SlaMonthClose).values(row).on_conflict_do_nothing().returning(SlaMonthClose.period)
    ).first()
    if added is None:
        return False
    decided = decided_at()
    session.execute(
        update(SlaClock)
        .where(
            SlaClock.client_id == client.id,
            SlaClock.reported_period.is_(None),
            decided < hi,
            or_(decided >= lo, _in_closed_month(SlaClock.client_id, exclude=period)),
        )
        .values(reported_period=period)
        .execution_options(synchronize_session=False)
    )
    return True


def _closes(session: Session, bounds: dict[int, tuple[datetime, datetime]]) -> dict[int, str]:
    """client id -> period, for the clients whose month (given by its bounds) is closed."""
    rows = session.execute(
        select(SlaMonthClose.client_id, SlaMonthClose.period, SlaMonthClose.starts_at).where(
            SlaMonthClose.client_id.in_(list(bounds))
        )
    ).all()
    return {cid: period for cid, period, starts in rows if bounds[cid][0] == starts}


def compliance(session: Session, bounds: dict[int, tuple[datetime, datetime]]) -> list[Compliance]:
    """Per client and SLA: outcomes of the client's month (breaches when they happened, on-time stops), and how
    many met it. A closed month gives exactly what its report counted; an open one what is decided so far.

    One GROUP BY over the clocks; `bounds` maps client id -> its month (so each client's month is local)."""
    if not bounds:
        return []
    closed = _closes(session, bounds)
    decided = decided_at()
    per_client = []
    for cid, (lo, hi) in bounds.items():
        if cid in closed:
            per_client.append(and_(SlaClock.client_id == cid, SlaClock.reported_period == closed[cid], decided >= lo))
        else:
            per_client.append(
                and_(SlaClock.client_id == cid, SlaClock.reported_period.is_(None), decided >= lo, decided < hi)
            )
    rows = session.execute(
        select(
            SlaClock.client_id,
            SlaClock.code,
            func.count(),
            func.sum(case((SlaClock.breached_at.is_(None), 1), else_=0)),
        )
        .where(SlaClock.client_id.in_(list(bounds)), or_(*per_client))
        .group_by(SlaClock.client_id, SlaClock.code)
        .order_by(SlaClock.client_id, SlaClock.code)
    ).all()
    return [Compliance(cid, code, int(n), int(met or 0)) for cid, code, n, met in rows]


def corrections(session: Session, client: Any, year: int, month: int) -> list[Correction]:
    """Outcomes of earlier reported months recorded after their report: those this month's report counted
    (closed month), or those the next report will count (open month), by SLA and the month they belong to."""
    lo, _hi = month_bounds(client.timezone, year, month)
    period = period_of(year, month)
    closed = _closes(session, {client.id: (lo, _hi)})
    decided = decided_at()
    stamped = SlaClock.reported_period == period if client.id in closed else SlaClock.reported_period.is_(None)
    rows = session.execute(
        select(
            SlaClock.code,
            SlaMonthClose.period,
            func.count(),
            func.sum(case((SlaClock.breached_at.is_(None), 1), else_=0)),
        )
        .join(
            SlaMonthClose,
            and_(
                SlaMonthClose.client_id == SlaClock.client_id,
                decided >= SlaMonthClose.starts_at,
                decided < SlaMonthClose.ends_at,
            ),
        )
        .where(SlaClock.client_id == client.id, stamped, decided < lo, SlaMonthClose.period != period)
        .group_by(SlaClock.code, SlaMonthClose.period)
        .order_by(SlaMonthClose.period, SlaClock.code)
    ).all()
    return [Correction(code, p, int(n), int(met or 0)) for code, p, n, met in rows]
