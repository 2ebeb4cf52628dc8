"""Background work of late-payment charges.

accrue_charges_job         periodic (nightly): one accrue_client_charges_job per active client with late-payment
                           terms, through the client's today (`charges:{client}:{date}`); a night missed is caught
                           up by the next run, which charges every day since (never a day twice)
accrue_client_charges_job  one client's accrual through a date, in batches committed one by one: killed mid-way it
                           leaves whole batches, and the retry (or the next night) completes the rest exactly once
"""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from clients.interest import accrue
from clients.interest_models import LatePaymentTerms
from clients.models import Client, ClientStatus
from provider.core import jobs
from provider.core.clock import now_utc
from provider.core.db import commit_chunk
from provider.core.jobs import job
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db


def charges_job_id(client_id: int, through: date) -> str:
    return f"charges:{client_id}:{through.isoformat()}"


@job(queue="low", timeout=3600, retries=3, title="Late-payment charges")
def accrue_client_charges_job(client_id: int, through: str) -> str:
    with scoped(TenantScope.single(client_id), db.session):
        client = db.session.get(Client, client_id)
        if client is None:
            return f"client {client_id} is gone"

        def checkpoint() -> None:
            jobs.checkpoint()
            commit_chunk(db.session)

        result = accrue(db.session, client, date.fromisoformat(through), checkpoint=checkpoint)
        db.session.flush()
    return result.summary()


@job(queue="low", timeout=600, title="Late-payment charges schedule")
def accrue_charges_job() -> list[str]:
    """Queue tonight's accrual of every active client that has late-payment terms."""
    now = now_utc()
    queued = []
    with scoped(TenantScope.agency(), db.session):
        clients = db.session.scalars(
            sa.select(Client)
            .where(
                Client.status == ClientStatus.ACTIVE.value,
                Client.id.in_(sa.select(LatePaymentTerms.client_id).distinct()),
            )
            .order_by(Client.id)
        )
        for client in clients:
            through = now.astimezone(ZoneInfo(client.timezone)).date()
            key = charges_job_id(client.id, through)
            jobs.enqueue(accrue_client_charges_job, client.id, through.isoformat(), job_id=key)
            queued.append(key)
        db.session.flush()
    return queued


@job(queue="low", timeout=1800, retries=2, title="Trust reconciliation")
def reconcile_trust_job(day: str | None = None) -> list[str]:
    """The three-way trust reconciliation of every currency for a day (yesterday by default), stored per day."""
    from datetime import timedelta

    from clients.trust import reconcile_all

    on = date.fromisoformat(day) if day else now_utc().date() - timedelta(days=1)
    with scoped(TenantScope.agency(), db.session):
        rows = reconcile_all(db.session, on)
        out = [f"{r.currency} {r.on_day}: {r.status}" for r in rows]
        db.session.flush()
    return out
