"""Background work of the mail: the sending run of one client, and the sweep that keeps the queue moving."""

from __future__ import annotations

from flask import current_app

from provider.comms import sender
from provider.core import jobs
from provider.core.jobs import Periodic, job
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db


@job(queue="high", timeout=1800, retries=3, title="Sending e-mail")
def send_mail_job(client_id: int) -> str:
    """Send the client's queued e-mail (see provider.comms.sender for the guarantees). With no outgoing server
    configured (SMTP_HOST unset) the mail waits in the queue, untouched, and the run says so."""
    if not current_app.config.get("SMTP_HOST"):
        return "No outgoing mail server is configured (SMTP_HOST): the mail waits in the queue."
    with scoped(TenantScope.single(client_id), db.session):
        result = sender.send_queued(db.session, client_id)
    return str(result)


@job(queue="high", timeout=300, retries=0, title="Mail queue upkeep")
def sweep_mail_job() -> str:
    """Settle messages a dead sender left half-sent and start a sending run for every client with mail due."""
    with scoped(TenantScope.agency(), db.session):
        due = sender.sweep(db.session)
        if not current_app.config.get("SMTP_HOST"):
            return f"{sum(due.values())} message(s) wait: no outgoing mail server is configured"
        for client_id in sorted(due):
            jobs.enqueue(send_mail_job, client_id, job_id=f"mail:{client_id}")
    return f"{sum(due.values())} message(s) due for {len(due)} client(s)"


jobs.PERIODIC_JOBS.append(Periodic("provider.comms.jobs.sweep_mail_job", "* * * * *", queue="high"))
