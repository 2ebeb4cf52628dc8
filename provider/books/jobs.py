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


def _run_link(row: Any) -> tuple[str, dict[str, Any]] | None:
    return ("books.client_books", {"client_id": row.client_id}) if row.client_id else None


@job(queue="default", timeout=3600, retries=3, title="Remittance run", link=_run_link)
def remittance_run_job(client_id: int, cycle: str, period_start: str, period_end: str) -> dict[str, Any]:
    """Draft the client's remittances of the period (one per currency) and issue its fee invoices; for a
    monthly period also post the month's flat fees first. Idempotent: a period's runs and invoices exist once."""
    from datetime import date

    from provider.books.invoices import issue_fee_invoice, post_period_fees, receivable_currencies
    from provider.books.remittance import draft_runs

    start, end = date.fromisoformat(period_start), date.fromisoformat(period_end)
    with scoped(TenantScope.single(client_id), db.session):
        runs = draft_runs(db.session, client_id, cycle, start, end)
        jobs_report(50, "remittances drafted")
        if start.day == 1 and (end.month != start.month or cycle == "monthly"):
            post_period_fees(db.session, client_id, start, end)
        invoices = [
            inv
            for currency in receivable_currencies(db.session, client_id)
            if (inv := issue_fee_invoice(db.session, client_id, currency, start, end, end)) is not None
        ]
    return {"runs": [r.id for r in runs], "invoices": [i.number for i in invoices]}


def jobs_report(percent: int, step: str) -> None:
    from provider.core.jobs import report_progress

    report_progress(percent, step)


@job(queue="low", timeout=600, title="Remittance schedule")
def schedule_remittances_job() -> list[str]:
    """Queue the remittance run of every client whose cycle (from its fee schedule in force) completed a period
    that has no run yet. Deterministic job ids (`remit:{client}:{period end}`) make a repeat a no-op."""
    from provider.books.models import RemittanceRun
    from provider.books.posting import load_schedules
    from provider.books.pricing import schedule_in_force
    from provider.books.remittance import last_complete_period
    from provider.core import jobs
    from provider.core.clock import today_utc

    queued = []
    today = today_utc()
    with scoped(TenantScope.agency(), db.session):
        for client_id in list(db.session.scalars(select(Client.id).order_by(Client.id))):
            schedule = schedule_in_force(load_schedules(db.session, client_id), today)
            if schedule is None:
                continue
            from provider.books.models import FeeSchedule

            cycle = db.session.get_one(FeeSchedule, schedule.id).remittance_cycle
            start, end = last_complete_period(cycle, today)
            done = db.session.scalar(
                select(RemittanceRun.id).where(RemittanceRun.client_id == client_id, RemittanceRun.period_end == end)
            )
            if done is None:
                key = f"remit:{client_id}:{end.isoformat()}"
                if jobs.enqueue(remittance_run_job, client_id, cycle, start.isoformat(), end.isoformat(), job_id=key):
                    queued.append(key)
    return queued


PERIODIC_JOBS.append(Periodic("provider.books.jobs.schedule_remittances_job", "30 2 * * *"))
