"""Tenant-scoped reads of SLAs and disputes, for this package's pages and for other packages:

- `monthly_compliance(session, client, year, month)`: SLA compliance per term of one client and month
  (the monthly report, the portal);
- `debtor_has_open_disputes(...)` / `debtors_with_open_disputes(...)`: the worklist's dispute flag.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from clients.models import Client
from sla.models import ACTIVE_DISPUTE, ClockState, Dispute, SlaClock

ACTIVE = [s.value for s in ACTIVE_DISPUTE]
AGE_BUCKETS = ((0, "0-5 days"), (6, "6-10 days"), (11, "11-30 days"), (31, "31+ days"))


@dataclass(frozen=True)
class Compliance:
    client_id: int
    code: str
    decided: int  # clocks stopped, or breached, in the month
    met: int  # of those, not breached

    @property
    def percent(self) -> float | None:
        return round(100.0 * self.met / self.decided, 1) if self.decided else None


def month_bounds(timezone: str, year: int, month: int) -> tuple[datetime, datetime]:
    """The month in the client's own time zone, as UTC instants [start, end)."""
    tz = ZoneInfo(timezone)
    nxt = date(year + month // 12, month % 12 + 1, 1)
    return (
        datetime(year, month, 1, tzinfo=tz).astimezone(UTC),
        datetime(nxt.year, nxt.month, 1, tzinfo=tz).astimezone(UTC),
    )


def _decided() -> Any:
    return func.coalesce(SlaClock.stopped_at, SlaClock.breached_at)


def compliance(session: Session, bounds: dict[int, tuple[datetime, datetime]]) -> list[Compliance]:
    """Per client and SLA: clocks decided (stopped or breached) inside the client's month, and how many met it.

    One GROUP BY over the clocks; `bounds` maps client id -> its month (so each client's month is local)."""
    if not bounds:
        return []
    decided = _decided()
    in_month = or_(*(and_(SlaClock.client_id == cid, decided >= lo, decided < hi) for cid, (lo, hi) in bounds.items()))
    rows = session.execute(
        select(
            SlaClock.client_id,
            SlaClock.code,
            func.count(),
            func.sum(case((SlaClock.breached_at.is_(None), 1), else_=0)),
        )
        .where(SlaClock.client_id.in_(list(bounds)), in_month)
        .group_by(SlaClock.client_id, SlaClock.code)
        .order_by(SlaClock.client_id, SlaClock.code)
    ).all()
    return [Compliance(cid, code, int(n), int(met or 0)) for cid, code, n, met in rows]


def monthly_compliance(session: Session, client: Client, year: int, month: int) -> list[Compliance]:
    """SLA compliance per term for one client and month (for the monthly report and the portal)."""
    return compliance(session, {client.id: month_bounds(client.timezone, year, month)})


def debtor_has_open_disputes(session: Session, client_id: int, debtor_id: int) -> bool:
    """Whether a debtor has a dispute that is not resolved or withdrawn."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    Dispute.client_id == client_id, Dispute.debtor_id == debtor_id, Dispute.status.in_(ACTIVE)
                )
            )
        )
    )


def debtors_with_open_disputes(client_ids: list[int] | None = None) -> Select[Any]:
    """SELECT DISTINCT (client_id, debtor_id) with an active dispute — to join or anti-join in set-based SQL."""
    stmt = select(Dispute.client_id, Dispute.debtor_id).where(Dispute.status.in_(ACTIVE)).distinct()
    return stmt.where(Dispute.client_id.in_(client_ids)) if client_ids is not None else stmt


def attention_clocks(now: datetime) -> Select[Any]:
    """Clocks at risk or breached, still open (not stopped), with their client — for the dashboard."""
    return (
        select(SlaClock, Client.name.label("client_name"))
        .join(Client, Client.id == SlaClock.client_id)
        .where(
            SlaClock.state != ClockState.STOPPED.value,
            or_(SlaClock.breached_at.is_not(None), SlaClock.at_risk_at <= now),
        )
    )


def disputes_by_age_and_reason(session: Session, now: datetime) -> list[tuple[str, str, int]]:
    """Active disputes counted by reason and age bucket (days since opening): one GROUP BY."""
    bucket = case(
        *[
            (Dispute.opened_at > now - timedelta(days=lo), label)
            for lo, label in ((6, "0-5 days"), (11, "6-10 days"), (31, "11-30 days"))
        ],
        else_="31+ days",
    )
    rows = session.execute(
        select(Dispute.reason, bucket.label("bucket"), func.count())
        .where(Dispute.status.in_(ACTIVE))
        .group_by(Dispute.reason, bucket)
    ).all()
    return [(r, b, int(n)) for r, b, n in rows]
