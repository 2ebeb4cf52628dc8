"""Periodic SLA work: the breach sweep (every 5 minutes, declared in provider.core.jobs.PERIODIC_JOBS)."""

from __future__ import annotations

from provider.core.clock import now_utc
from provider.core.jobs import job
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from sla.sweep import sweep


@job(queue="high", timeout=600, retries=2)
def sweep_sla_clocks_job() -> dict[str, int]:
    """Mark breached clocks of every client and notify each breach once (idempotent: safe to re-run)."""
    with scoped(TenantScope.agency(), db.session):
        return sweep(db.session, now_utc())
