"""Jobs used by the job-system tests (importable by an RQ worker by dotted path)."""

from __future__ import annotations

from clients.models import Client
from provider.core import audit
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
