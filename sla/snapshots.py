"""Daily SLA snapshots: each client's clocks open, at risk and breached at the end of each of its days, kept so
the SLA dashboard can draw the at-risk trend (a count of clocks "at risk now" cannot be asked of the past once
the clocks have moved on).

Written once per day: the SLA sweep (every 5 minutes) starts `snapshot_sla_days_job` through the outbox once per
UTC day (key `sla-snapshots:<yyyymmdd>`); the job writes, for every client, each finished day not written yet,
from the day after its latest snapshot (at most `BACKFILL_DAYS` back), so a missed day is caught up and a second
run writes nothing (UNIQUE (client_id, day), insert-or-skip). `backfill` writes past days the same way.

A day's figures are computed from the clocks' history, the same way for yesterday and for a day long past:
at the day's end (midnight in the client's zone) a clock is *open* when it had started and was not stopped;
*breached* when its deadline had passed (`breached_at`); *at risk* when not breached, running (its last history
entry before that moment is a start, resume) and the contract's at-risk share of its allowance was used up by
then — the instant the clock computes when it runs (`sla.clocks._run_from`), recomputed in the client's
calendar from that history entry's agency time. Paused clocks are not at risk (their time does not run), as
on the dashboard's list.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from clients.models import Client, ClientStatus
from provider.core import jobs
from provider.core.clock import now_utc
from provider.core.outbox_models import BackgroundJob
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from sla.calendars import add_business_micros, calendar_for
from sla.models import ClockState, SlaClock, SlaClockEvent, SlaDailySnapshot

BACKFILL_DAYS = 90


@dataclass(frozen=True)
class DayCounts:
    day: date
    open_clocks: int
    at_risk: int
    breached_open: int


def day_end(client: Any, day: date) -> datetime:
    """The end of `day` in the client's zone (its next midnight), as a UTC instant."""
    local = datetime.combine(day + timedelta(days=1), time.min, tzinfo=ZoneInfo(client.timezone))
    return local.astimezone(UTC)


def client_yesterday(client: Any, now: datetime) -> date:
    return now.astimezone(ZoneInfo(client.timezone)).date() - timedelta(days=1)


def counts_on(session: Session, client: Any, days: list[date]) -> list[DayCounts]:
    """The client's clocks at the end of each of `days` (two queries, whatever the number of days)."""
    if not days:
        return []
    ends = {d: day_end(client, d) for d in days}
    lo, hi = min(ends.values()), max(ends.values())
    live = (  # clocks open at some moment of the range: started before its end, not stopped before its start
        SlaClock.client_id == client.id,
        SlaClock.started_at < hi,
        or_(SlaClock.stopped_at.is_(None), SlaClock.stopped_at >= lo),
    )
    clocks = session.execute(
        select(
            SlaClock.id,
            SlaClock.started_at,
            SlaClock.stopped_at,
            SlaClock.breached_at,
            SlaClock.allowance_us,
            SlaClock.at_risk_pct,
        ).where(*live)
    ).all()
    history: dict[int, list[Any]] = defaultdict(list)
    for e in session.execute(
        select(SlaClockEvent.id, SlaClockEvent.clock_id, SlaClockEvent.at, SlaClockEvent.state, SlaClockEvent.elapsed_s)
        .where(
            SlaClockEvent.client_id == client.id,
            SlaClockEvent.clock_id.in_(select(SlaClock.id).where(*live)),
            SlaClockEvent.at < hi,
        )
        .order_by(SlaClockEvent.clock_id, SlaClockEvent.at, SlaClockEvent.id)
    ):
        history[e.clock_id].append(e)
    cal = calendar_for(session, client)
    risk_at: dict[int, datetime] = {}  # history entry id -> the at-risk instant of the run it starts

    def at_risk_instant(clock: Any, entry: Any) -> datetime:
        if entry.id not in risk_at:
            share = -(-clock.allowance_us * clock.at_risk_pct // 100)
            risk_at[entry.id] = add_business_micros(cal, entry.at, max(share - entry.elapsed_s * 1_000_000, 0))
        return risk_at[entry.id]

    moments: dict[int, list[datetime]] = {}
    out = []
    for day in sorted(days):
        end = ends[day]
        n_open = n_risk = n_breached = 0
        for clock in clocks:
            if clock.started_at >= end or (clock.stopped_at is not None and clock.stopped_at < end):
                continue
            n_open += 1
            if clock.breached_at is not None and clock.breached_at < end:
                n_breached += 1
                continue
            entries = history.get(clock.id, [])
            i = bisect.bisect_left(moments.setdefault(clock.id, [e.at for e in entries]), end)
            last = entries[i - 1] if i else None
            if last is not None and last.state == ClockState.RUNNING.value and at_risk_instant(clock, last) <= end:
                n_risk += 1
        out.append(DayCounts(day, n_open, n_risk, n_breached))
    return out


def write_days(session: Session, client: Any, days: list[date]) -> int:
    """Write the snapshots of `days` (finished days only); a day already written is left as it is. Returns how
    many were new."""
    rows = [
        {
            "client_id": client.id,
            "day": c.day,
            "open_clocks": c.open_clocks,
            "at_risk": c.at_risk,
            "breached_open": c.breached_open,
            "taken_at": now_utc(),
        }
        for c in counts_on(session, client, days)
    ]
    if not rows:
        return 0
    factory = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    table = SlaDailySnapshot.__table__
    stmt = (
        factory(table).values(rows).on_conflict_do_nothing(index_elements=["client_id", "day"]).returning(table.c.day)
    )
    return len(session.execute(stmt).all())


def missing_days(session: Session, client: Any, now: datetime, back: int = BACKFILL_DAYS) -> list[date]:
    """The client's finished days without a snapshot: from the day after its latest one (or `back` days ago,
    not before its first clock) up to its yesterday."""
    last_day = client_yesterday(client, now)
    latest = session.scalar(select(func.max(SlaDailySnapshot.day)).where(SlaDailySnapshot.client_id == client.id))
    first = last_day - timedelta(days=back - 1)
    if latest is not None:
        first = max(first, latest + timedelta(days=1))
    else:
        started = session.scalar(select(func.min(SlaClock.started_at)).where(SlaClock.client_id == client.id))
        if started is None:
            return []
        first = max(first, started.astimezone(ZoneInfo(client.timezone)).date())
    return [first + timedelta(days=k) for k in range((last_day - first).days + 1)]


def backfill(session: Session, clients: list[Any], now: datetime | None = None, back: int = BACKFILL_DAYS) -> int:
    """Write every missing finished day of each client (at most `back` days back). Idempotent."""
    now = now or now_utc()
    return sum(write_days(session, c, missing_days(session, c, now, back)) for c in clients)


def snapshot_key(now: datetime) -> str:
    return f"sla-snapshots:{now.astimezone(UTC):%Y%m%d}"


def start_daily_snapshots(session: Session, now: datetime) -> int | None:
    """Called by the sweep: queue today's snapshot job unless it was queued already today (any status)."""
    key = snapshot_key(now)
    if session.scalar(select(BackgroundJob.id).where(BackgroundJob.key == key).limit(1)) is not None:
        return None
    return jobs.enqueue(snapshot_sla_days_job, job_id=key)


@jobs.job(queue="low", timeout=1800, retries=2, title="Daily SLA snapshots")
def snapshot_sla_days_job() -> int:
    """Each active client's finished days without a snapshot, one transaction per client. Idempotent."""
    with scoped(TenantScope.agency(), db.session):
        ids = list(db.session.scalars(select(Client.id).where(Client.status == ClientStatus.ACTIVE.value)))
    written = 0
    for client_id in ids:
        with scoped(TenantScope.single(client_id), db.session):
            client = db.session.get(Client, client_id)
            if client is None:
                continue
            written += write_days(db.session, client, missing_days(db.session, client, now_utc()))
            db.session.commit()
    return written
