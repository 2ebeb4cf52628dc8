"""Worklist jobs: the nightly rebuild (one job per client) and the per-client rescoring after events."""

from __future__ import annotations

from sqlalchemy import select

from clients.models import Client, ClientStatus
from provider.core import audit, jobs
from provider.core.clock import today_utc
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from worklists import promises, scoring


@jobs.job(queue="low", timeout=3600)
def rebuild_worklists_job() -> list[int]:
    """Nightly: queue one rebuild per active client (deterministic ids: a re-run the same day is a no-op)."""
    with scoped(TenantScope.agency(), db.session):
        client_ids = list(
            db.session.scalars(
                select(Client.id).where(Client.status != ClientStatus.OFFBOARDED.value).order_by(Client.id)
            )
        )
    day = today_utc().isoformat()
    for client_id in client_ids:
        jobs.enqueue(rebuild_client_worklist_job, client_id, job_id=f"worklist:{client_id}:{day}")
    return client_ids


@jobs.job(queue="low", timeout=3600)
def rebuild_client_worklist_job(client_id: int) -> dict[str, int]:
    """Check the client's open promises (kept/broken as of today), then rescore all its accounts."""
    return rebuild_client(client_id)


def rebuild_client(client_id: int) -> dict[str, int]:
    """The work of one client's rebuild, in that client's tenant scope (idempotent; the caller commits)."""
    with scoped(TenantScope.single(client_id), db.session):
        checked = promises.check_promises(db.session, [client_id])
        counts = scoring.rescore(db.session, [client_id])
        result = {**checked, **counts}
        audit.record(db.session, "worklist.rebuild", "Client", client_id=client_id, object_id=client_id, after=result)
        db.session.flush()
    return result


def seed_worklists(client_ids: list[int]) -> None:
    """Build the worklists of these clients now and commit (the demo; same work as the nightly job)."""
    for client_id in client_ids:
        rebuild_client(client_id)
    db.session.commit()
