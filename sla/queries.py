"""Tenant-scoped reads of SLAs and disputes, for this package's pages and for other packages:

- `monthly_compliance(session, client, year, month)`: SLA compliance per term of one client and month
  (the monthly report, the portal), and `monthly_corrections(...)`: outcomes of earlier reported months
  recorded after their report (which month an outcome belongs to: `sla.months`);
- `dispute_summary(...)` and `monthly_breaches(...)`: the monthly report's disputes and breaches (`sla.report`);
- `debtor_has_open_disputes(...)` / `debtors_with_open_disputes(...)`: the worklist's dispute flag.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, exists, func, or_, select
from sqlalchemy.orm import Session

from clients.models import Client
from sla.models import ACTIVE_DISPUTE, ClockState, Dispute, SlaClock
from sla.months import Compliance, Correction, compliance, corrections, month_bounds
from sla.report import dispute_summary, monthly_breaches

__all__ = [
    "Compliance",
    "Correction",
    "compliance",
    "dispute_summary",
    "month_bounds",
    "monthly_breaches",
    "monthly_compliance",
    "monthly_corrections",
]

ACTIVE = [s.value for s in ACTIVE_DISPUTE]
AGE_BUCKETS = ((0, "0-5 days"), (6, "6-10 days"), (11, "11-30 days"), (31, "31+ days"))


def monthly_compliance(session: Session, client: Client, year: int, month: int) -> list[Compliance]:
    """SLA compliance per term for one client and month (for the monthly report and the portal)."""
    return compliance(session, {client.id: month_bounds(client.timezone, year, month)})


def monthly_corrections(session: Session, client: Client, year: int, month: int) -> list[Correction]:
    """Corrections to earlier reported months counted in this month's report (see `sla.months`)."""
    return corrections(session, client, year, month)


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
