"""Jobs used by the job-system tests (importable by an RQ worker by dotted path)."""

from __future__ import annotations

from typing import Any

from clients.models import Client
from provider.core import audit, jobs
from provider.core.errors import ServiceError
from provider.core.jobs import job
from provider.core.tenancy import TenantScope, current_scope, scoped
from provider.extensions import db


@job(queue="default", timeout=60, retries=0)
def touch_client_job(client_id: int, note: str) -> str:
    """Writes an audit row for one client; proves app context, tenant scope and commit inside a job."""
    assert current_scope() == TenantScope.nothing()  # a job starts with no tenant: it must choose one
    with scoped(TenantScope.single(client_id), db.session):
        client = db.session.get(Client, client_id)
        audit.record(db.session, "job.touch", client, client_id=client.id, after={"note": note})
    return f"touched {client_id}"


def _settled(session: Any, row: Any, outcome: str) -> None:
    """Records what the outbox told the job's owner (as the import and report jobs do with their batches)."""
    client = session.get(Client, row.args[0])
    audit.record(session, f"job.sample.{outcome}", client, client_id=client.id, after={"reason": row.error})


@job(queue="default", timeout=60, retries=1, title="Sample that fails", on_settled=_settled)
def failing_job(client_id: int, message: str) -> str:
    """Fails every time: with a message meant for people (ServiceError), or an unexpected error."""
    with scoped(TenantScope.single(client_id), db.session):
        audit.record(
            db.session, "job.touch", db.session.get(Client, client_id), client_id=client_id, after={"note": "x"}
        )
        db.session.flush()
    if message:
        raise ServiceError(message)
    raise KeyError("internal detail nobody should read")


@job(queue="default", timeout=60, retries=0, title="Sample that can be cancelled", on_settled=_settled)
def cancellable_job(client_id: int, cancel_itself: bool) -> str:
    """Stops at its checkpoint when a cancel was asked for meanwhile (here, by itself, as a person would)."""
    from provider.core import outbox
    from provider.core.outbox_models import BackgroundJob

    with scoped(TenantScope.single(client_id), db.session):
        audit.record(
            db.session, "job.touch", db.session.get(Client, client_id), client_id=client_id, after={"note": "c"}
        )
        db.session.flush()
    if cancel_itself:
        row = db.session.get_one(BackgroundJob, jobs.current_job_id())
        assert outbox.cancel(db.session, row) == "stopping"
    jobs.checkpoint()
    return "finished"
