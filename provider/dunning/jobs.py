"""Background work of dunning.

schedule_dunning_job   periodic (hourly): every active client whose local time has reached DUNNING_LOCAL_HOUR
                       (default 9) and that has no finished run for its local date gets `dunning_run_job`
                       (`dunning:{client}:{date}`); an hour missed is caught up the next hour, a day missed is
                       caught up by the next day's run, which sends each debtor the stage it is now due, once
dunning_run_job        one client's run for one date, in chunks, reporting progress (provider.dunning.run)
"""

from __future__ import annotations

from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from clients.models import Client, ClientStatus
from provider.core import jobs
from provider.core.clock import now_utc
from provider.core.jobs import Periodic, job
from provider.core.tenancy import TenantScope, scoped
from provider.dunning.models import DunningPolicy, DunningRun, PolicyStatus, RunStatus
from provider.extensions import db


def run_job_id(client_id: int, run_date: date | str) -> str:
    return f"dunning:{client_id}:{run_date}"


def _link(row: Any) -> tuple[str, dict[str, Any]] | None:
    return ("dunning.runs", {"client_id": row.client_id}) if row.client_id else None


def _settled(session: Any, row: Any, outcome: str) -> None:
    run_date = row.args[1] if len(row.args) > 1 else row.kwargs.get("run_date")
    if outcome in ("failed", "cancelled") and run_date:
        run = session.scalar(
            select(DunningRun).where(
                DunningRun.client_id == row.client_id, DunningRun.run_date == date.fromisoformat(run_date)
            )
        )
        if run is not None and run.status == RunStatus.RUNNING.value:
            run.status = RunStatus.FAILED.value
            run.note = "Stopped before the end; run it again to finish (nothing is sent twice)."


@job(queue="default", timeout=3600, retries=3, title="Dunning run", link=_link, on_settled=_settled)
def dunning_run_job(client_id: int, run_date: str) -> str:
    from provider.dunning.run import run_client

    with scoped(TenantScope.single(client_id), db.session):
        run = run_client(db.session, client_id, date.fromisoformat(run_date))
        return f"{run.sent} sent, {run.skipped} skipped"


@job(queue="low", timeout=600, title="Dunning schedule")
def schedule_dunning_job() -> list[str]:
    now = now_utc()
    hour = int(current_app.config.get("DUNNING_LOCAL_HOUR", 9))
    queued = []
    with scoped(TenantScope.agency(), db.session):
        with_policy = set(
            db.session.scalars(
                select(DunningPolicy.client_id).where(DunningPolicy.status == PolicyStatus.APPROVED.value).distinct()
            )
        )
        for client in db.session.scalars(select(Client).where(Client.status == ClientStatus.ACTIVE.value)):
            if client.id not in with_policy:
                continue
            local = now.astimezone(ZoneInfo(client.timezone))
            if local.hour < hour:
                continue
            done = db.session.scalar(
                select(DunningRun.id).where(
                    DunningRun.client_id == client.id,
                    DunningRun.run_date == local.date(),
                    DunningRun.status == RunStatus.DONE.value,
                )
            )
            if done is None:
                key = run_job_id(client.id, local.date())
                if jobs.enqueue(dunning_run_job, client.id, local.date().isoformat(), job_id=key) is not None:
                    queued.append(key)
    return queued


jobs.PERIODIC_JOBS.append(Periodic("provider.dunning.jobs.schedule_dunning_job", "7 * * * *"))
