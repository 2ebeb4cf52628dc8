"""Background work of reporting: daily KPI snapshots, the monthly report schedule, one render per client.

snapshot_kpis_job       periodic (daily): one snapshot_client_job per client
snapshot_client_job     a client's KPIs as of its today, upserted into kpi_snapshots
schedule_reports_job    periodic (daily): clients on or past their Nth business day whose report for
                        last month is missing get a render job (`report:{client}:{yyyy-mm}`); a day
                        missed is caught up the next day, never doubled (the report is unique)
render_report_job       renders and stores one report; the row with its PDF is one INSERT, so a
                        worker killed mid-render leaves nothing and the retry makes exactly one
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from clients import month_totals
from clients.models import Client, ClientStatus
from provider.core import audit, jobs
from provider.core.clock import now_utc
from provider.core.jobs import job
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.reporting import figures as fig
from provider.reporting.models import KpiSnapshot, ReportRun
from provider.reporting.reports import current_report, generate_report, report_subject
from provider.reporting.schedule import client_today, due_period
from sla.hooks import sla_started
from sla.models import SlaCode


def report_job_id(client_id: int, period: str) -> str:
    return f"report:{client_id}:{period}"


def _run_link(row: Any) -> tuple[str, dict[str, Any]] | None:
    run_id = row.args[2] if len(row.args) > 2 else row.kwargs.get("run_id")
    return ("reporting.run", {"run_id": run_id}) if run_id else ("reporting.client_kpis", {"client_id": row.client_id})


@job(queue="reports", timeout=1800, retries=3, title="Monthly report", link=_run_link)
def render_report_job(client_id: int, period: str, run_id: int | None = None) -> str:
    with scoped(TenantScope.single(client_id), db.session):
        client = db.session.get(Client, client_id)
        if client is None:
            return f"client {client_id} is gone"
        jobs.report_progress(10, "making the PDF")
        result = generate_report(db.session, client, period, run_id=run_id)
        if result.created:
            # generate_report recorded the "report ready" notifications of the client's contacts
            # (provider.reporting.notifications); this event records that the report was published.
            audit.record(db.session, "report.published", result.report, after={"period": period})
        db.session.flush()
    return f"report {result.report.id} {'created' if result.created else 'existed'}"


@job(queue="low", timeout=600, title="Monthly report schedule")
def schedule_reports_job() -> list[str]:
    """Queue the reports that are due and missing; one run per month (managers follow its progress)."""
    now = now_utc()
    with scoped(TenantScope.agency(), db.session):
        due: dict[str, list[int]] = {}
        for client in db.session.scalars(select(Client).where(Client.status == ClientStatus.ACTIVE.value)):
            start_report_clock(db.session, client, now)
            period = due_period(client, now)
            if period and current_report(db.session, client.id, period) is None:
                due.setdefault(period, []).append(client.id)
        queued = []
        for period, client_ids in sorted(due.items()):
            start_run(period, client_ids, trigger="schedule")
            queued += [report_job_id(c, period) for c in client_ids]
        db.session.flush()
    return queued


def start_report_clock(session: Any, client: Client, now: datetime) -> None:
    """The "monthly report delivered by the Nth business day" clock of last month's report, started at the
    first instant of this month in the client's zone (idempotent; a no-op without that contract target)."""
    local = now.astimezone(ZoneInfo(client.timezone))
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    last_month = (first - timedelta(days=1)).strftime("%Y-%m")
    subject = ("report", report_subject(last_month))
    sla_started(session, client, SlaCode.MONTHLY_REPORT.value, subject, at=first.astimezone(UTC))


def start_run(period: str, client_ids: list[int], trigger: str, by: str = "") -> ReportRun:
    """Record a run and queue one render job per client (handed to RQ when the transaction commits)."""
    run = ReportRun(period=period, client_ids=sorted(client_ids), trigger=trigger, created_by=by)
    db.session.add(run)
    db.session.flush()
    for client_id in run.client_ids:
        jobs.enqueue(render_report_job, client_id, period, run.id, job_id=report_job_id(client_id, period))
    return run


@job(queue="low", timeout=600, title="Daily KPI snapshots")
def snapshot_kpis_job() -> int:
    with scoped(TenantScope.agency(), db.session):
        client_ids = list(db.session.scalars(select(Client.id).where(Client.status == ClientStatus.ACTIVE.value)))
    for client_id in client_ids:
        jobs.enqueue(snapshot_client_job, client_id, job_id=f"snapshot:{client_id}:{now_utc():%Y%m%d}")
    return len(client_ids)


@job(queue="low", timeout=900, title="KPI snapshot")
def snapshot_client_job(client_id: int) -> str:
    with scoped(TenantScope.single(client_id), db.session):
        client = db.session.get(Client, client_id)
        if client is None:
            return "gone"
        month_totals.compact(db.session, client_id)  # the day's postings folded in before the totals are read
        snap = take_snapshot(client)
    return f"snapshot {snap.as_of}"


def take_snapshot(client: Client) -> KpiSnapshot:
    """Upsert the client's snapshot for its today (a re-run the same day refreshes it).

    The figures are exactly the live KPI page's (`collect_inputs` + `derive` as of the client's today, no posting
    cut-off). `computed_at` is the time the computation started: whatever was posted after it may be missing
    from the figures, which is what the KPI page checks before it says so.
    """
    started = now_utc()
    today = client_today(client, started)
    figures: dict[str, Any] = fig.derive(fig.collect_inputs(client.id, today))
    snap = db.session.scalar(select(KpiSnapshot).where(KpiSnapshot.client_id == client.id, KpiSnapshot.as_of == today))
    if snap is None:
        snap = KpiSnapshot(client_id=client.id, as_of=today, figures=figures, computed_at=started)
        db.session.add(snap)
    else:
        snap.figures = figures
        snap.computed_at = started
    db.session.flush()
    return snap
