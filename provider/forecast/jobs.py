"""Forecast jobs: the nightly refit of every active client (one job per client, through the job outbox)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from clients.models import Client, ClientStatus
from provider.core import jobs
from provider.core.clock import today_utc
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db


@jobs.job(queue="low", timeout=3600, title="Nightly forecast refit")
def refit_forecasts_job() -> int:
    """Nightly: queue one refit per active client (named per client and day, so a re-run queues nothing new)."""
    with scoped(TenantScope.agency(), db.session):
        client_ids = list(
            db.session.scalars(
                select(Client.id).where(Client.status != ClientStatus.OFFBOARDED.value).order_by(Client.id)
            )
        )
    day = today_utc().isoformat()
    for client_id in client_ids:
        jobs.enqueue(refit_client_forecast_job, client_id, job_id=f"forecast:{client_id}:{day}")
    return len(client_ids)


@jobs.job(queue="low", timeout=3600, title="Forecast refit")
def refit_client_forecast_job(client_id: int) -> dict[str, Any]:
    """Learn the client's payment behaviour again and store segments, grades, limits and the forecast."""
    from provider.forecast.services import refit_client

    with scoped(TenantScope.single(client_id), db.session):
        return refit_client(db.session, client_id)


if not any(p.path.endswith("refit_forecasts_job") for p in jobs.PERIODIC_JOBS):
    jobs.PERIODIC_JOBS.append(jobs.Periodic("provider.forecast.jobs.refit_forecasts_job", "50 2 * * *"))
