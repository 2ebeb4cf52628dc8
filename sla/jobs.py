"""Periodic SLA work: the breach sweep (every 5 minutes, declared in provider.core.jobs.PERIODIC_JOBS), which also
starts the daily SLA snapshots once a day."""

from __future__ import annotations

from sqlalchemy import text

from provider.core.clock import now_utc
from provider.core.jobs import job
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from sla.snapshots import start_daily_snapshots
from sla.sweep import sweep


@job(queue="high", timeout=600, retries=2, title="SLA sweep")
def sweep_sla_clocks_job() -> dict[str, int]:
    """Mark breached clocks of every client and notify each breach once (idempotent: safe to re-run); once a
    day, start the daily SLA snapshots (`sla.snapshots`)."""
    with scoped(TenantScope.agency(), db.session):
        now = now_utc()
        result = sweep(db.session, now)
        start_daily_snapshots(db.session, now)
        commit_asynchronously()
        return result


def commit_asynchronously() -> bool:
    """Let the current transaction's COMMIT return without waiting for its WAL to reach the disk (PostgreSQL
    `synchronous_commit = off`, for this transaction only), unless jobs wait for that commit.

    For the sweep's transaction only: a crash can lose it whole (never part of it: marks, history,
    notifications and audit go together), and the next run marks and notifies the same breaches again, once.
    Refused (returns False) when jobs are queued for after the commit (webhook deliveries): they would
    announce what a crash could still take back; and on SQLite, which has no such setting."""
    session = db.session()
    if session.get_bind().dialect.name != "postgresql" or session.info.get("pending_jobs"):
        return False
    session.execute(text("SET LOCAL synchronous_commit = off"))
    return True
