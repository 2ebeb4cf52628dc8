"""Worklist jobs: the nightly rebuild (one set-based pass over every active client) and the per-client
rescoring after events."""

from __future__ import annotations

from sqlalchemy import select

from clients.models import Client, ClientStatus
from provider.core import audit, jobs
from provider.core.clock import today_utc
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from worklists import distribution, promises, scoring, targets


@jobs.job(queue="low", timeout=3600, title="Nightly worklist rebuild")
def rebuild_worklists_job() -> dict[str, int]:
    """Nightly: check every active client's promises and rescore all their accounts, in one pass (a handful
    of statements for all clients, not a job and a statement per client). Idempotent: a re-run the same day
    finds nothing to change and writes nothing."""
    with scoped(TenantScope.agency(), db.session):
        client_ids = list(
            db.session.scalars(
                select(Client.id).where(Client.status != ClientStatus.OFFBOARDED.value).order_by(Client.id)
            )
        )
    return rebuild_clients(client_ids) if client_ids else {}


@jobs.job(queue="low", timeout=3600, title="Worklist rebuild")
def rebuild_client_worklist_job(client_id: int) -> dict[str, int]:
    """Check the client's open promises (kept/broken as of today), then rescore all its accounts."""
    return rebuild_client(client_id)


def rebuild_client(client_id: int) -> dict[str, int]:
    """The work of one client's rebuild (idempotent; the caller commits)."""
    return rebuild_clients([client_id])


def rebuild_clients(client_ids: list[int]) -> dict[str, int]:
    """Check these clients' open promises, then rescore all their accounts with one set of statements, in
    their tenant scope (idempotent; the caller commits). Audited once per run, with the counts."""
    with scoped(TenantScope.granted(client_ids), db.session):
        checked = promises.check_promises(db.session, client_ids)
        counts = scoring.rescore(db.session, client_ids)
        shared = distribution.distribute(db.session, client_ids, today_utc())  # every open item gets an owner
        result = {**checked, **counts, **shared}
        if len(client_ids) == 1:
            audit.record(
                db.session, "worklist.rebuild", "Client", client_id=client_ids[0], object_id=client_ids[0], after=result
            )
        else:
            audit.record(
                db.session, "worklist.rebuild", "Client", object_id="*", after={**result, "clients": client_ids}
            )
        db.session.flush()
    return result


def seed_worklists(client_ids: list[int]) -> None:
    """Build the worklists of these clients now and commit (the demo; same work as the nightly job, which also
    hands every account to a collector), then give the demo's collectors targets."""
    rebuild_clients(client_ids)
    targets.seed_demo_targets(db.session)
    db.session.commit()
