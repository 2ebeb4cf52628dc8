"""Background work of the agency's books (all through the job outbox, all idempotent)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from clients.models import Client
from provider.books.posting import bring_up_to_date
from provider.core.jobs import PERIODIC_JOBS, Periodic, job
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db


@job(queue="default", timeout=1800, retries=3, title="Fees and trust for new payments")
def post_books_job(client_id: int) -> dict[str, Any]:
    """Post the client's new payments, reversals and newly priced fees to the agency's books."""
    with scoped(TenantScope.single(client_id), db.session):
        done = bring_up_to_date(db.session, client_id)
    return {
        "payments": done.payments,
        "unpriced": done.unpriced,
        "repriced": done.repriced,
        "reversals": done.reversals,
    }


@job(queue="low", timeout=3600, retries=1, title="Agency books catch-up")
def books_catch_up_job() -> int:
    """Safety net: bring every client's books up to date (one commit per client)."""
    with scoped(TenantScope.agency(), db.session):
        client_ids = list(db.session.scalars(select(Client.id).order_by(Client.id)))
    posted = 0
    for client_id in client_ids:
        with scoped(TenantScope.single(client_id), db.session):
            posted += bring_up_to_date(db.session, client_id).transactions
        db.session.commit()
    return posted


PERIODIC_JOBS.append(Periodic("provider.books.jobs.books_catch_up_job", "*/15 * * * *"))
