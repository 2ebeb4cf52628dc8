"""Reporting pages: the agency dashboard, a client's live KPIs, stored monthly reports (HTML, PDF),
re-issue, run progress; and the portal's list of the client's own reports."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from clients.journal import JournalTransaction
from clients.models import Client
from clients.queries import visible_clients
from provider.background import job_state_for
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_visible_or_404
from provider.extensions import db
from provider.reporting import charts, render, reports
from provider.reporting import figures as fig
from provider.reporting import formulas as f
from provider.reporting.jobs import report_job_id, start_run
from provider.reporting.models import KpiSnapshot, MonthlyReport, ReportRun, ReportStatus
from provider.reporting.notifications import recipients_by_report
from provider.reporting.schedule import client_today
from provider.reporting.summary import summarize

bp = Blueprint("reporting", __name__)
portal_bp = Blueprint("portal_reports", __name__, url_prefix="/portal")

SORTS = ("name", "ar", "overdue", "dso", "cei", "collected")


def _dashboard_rows() -> list[dict[str, Any]]:
    """Latest snapshot per visible client (two queries; no journal scan)."""
    clients = list(db.session.scalars(visible_clients().order_by(Client.name)))
    latest = (
        select(KpiSnapshot.client_id, func.max(KpiSnapshot.as_of).label("as_of"))
        .where(KpiSnapshot.client_id.in_([c.id for c in clients] or [-1]))
        .group_by(KpiSnapshot.client_id)
        .subquery()
    )
    snaps = {
        s.client_id: s
        for s in db.session.scalars(
            select(KpiSnapshot).join(
                latest, (latest.c.client_id == KpiSnapshot.client_id) & (latest.c.as_of == KpiSnapshot.as_of)
            )
        )
    }
    rows = []
    for client in clients:
        snap = snaps.get(client.id)
        row: dict[str, Any] = {"client": client, "snapshot": snap, "currency": None}
        if snap is not None:
            currency = fig.primary_currency(snap.figures, client.base_currency)
            data = snap.figures["currencies"].get(currency) if currency else None
            if data:
                now, last = data["current"], data["previous"] or {}
                # a month's DSO and CEI need its sales and its end: early in a month the one before says more
                row.update(
                    currency=currency,
                    ar=data["aging_total"],
                    overdue=data["overdue_share"],
                    dso=last.get("dso"),
                    dso_month=last.get("month"),
                    cei=last.get("cei"),
                    collected=now["collected"],
                    spark=charts.data_uri(
                        charts.sparkline([float(m["dso"]) if m["dso"] else None for m in data["trend"]])
                    ),
                )
        rows.append(row)
    return rows


def _sorted(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    key = request.args.get("sort", "name")
    key = key if key in SORTS else "name"
    descending = request.args.get("dir", "asc") == "desc"
    if key == "name":
        return sorted(rows, key=lambda r: r["client"].name.lower(), reverse=descending)
    present = [r for r in rows if r.get(key) is not None]
    missing = [r for r in rows if r.get(key) is None]
    return sorted(present, key=lambda r: Decimal(str(r[key])), reverse=descending) + missing


@bp.get("/reports/dashboard")
@require(Permission.REPORTS_READ)
def dashboard() -> Any:
    runs: list[ReportRun] = []
    if current_user.can(Permission.REPORTS_MANAGE):  # the latest runs, each with its per-client state and Retry
        runs = list(db.session.scalars(select(ReportRun).order_by(ReportRun.id.desc()).limit(8)))
    return render_template("reports/dashboard.html", rows=_sorted(_dashboard_rows()), runs=runs, queues=_queues())


def _queues() -> dict[str, Any] | None:
    """The work queues' volume and age (managers): a chart and its table, read through the worklists' queries."""
    if not current_user.can(Permission.WORKLISTS_MANAGE):
        return None
    from worklists.queries import AGE_BUCKETS, work_ageing

    ageing = work_ageing(now_utc())
    states = [s for s in charts.WORK_STATES if s in ageing] + sorted(s for s in ageing if s not in charts.WORK_STATES)
    return {
        "chart": charts.data_uri(charts.queue_chart(ageing, list(AGE_BUCKETS))) if ageing else None,
        "buckets": list(AGE_BUCKETS),
        "rows": [(charts.WORK_STATES.get(s, s.replace("_", " ").capitalize()), ageing[s]) for s in states],
    }


def _as_of(client: Client) -> tuple[date, list[str]]:
    today = client_today(client, now_utc())
    raw = (request.args.get("as_of") or "").strip()
    if not raw:
        return today, []
    try:
        as_of = date.fromisoformat(raw)
    except ValueError:
        return today, [f"“{raw}” is not a date (YYYY-MM-DD); showing today."]
    return (as_of, []) if as_of <= today else (today, [f"{as_of} is in the future; showing today."])


def _kpi_figures(client: Client, as_of: date, today: date, live: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The figures of the KPI page and where they come from.

    Today's figures are read from today's daily snapshot when there is one (computed by the same
    `collect_inputs` + `derive`), with the time it was computed and whether anything was posted to the client's
    journal since (one probe of the (client_id, posted_at) index): then the page offers a live computation.
    A past date, `live`, or no snapshot yet: computed now from the journal.
    """
    snap = None
    if as_of == today and not live:
        snap = db.session.scalar(
            select(KpiSnapshot).where(KpiSnapshot.client_id == client.id, KpiSnapshot.as_of == as_of)
        )
    if snap is not None:
        newer = db.session.scalar(
            select(JournalTransaction.id)
            .where(JournalTransaction.client_id == client.id, JournalTransaction.posted_at > snap.computed_at)
            .limit(1)
        )
        return snap.figures, {"snapshot": True, "computed_at": snap.computed_at, "newer_postings": newer is not None}
    computed_at = now_utc()
    figures = fig.derive(fig.collect_inputs(client.id, as_of))
    return figures, {"snapshot": False, "computed_at": computed_at, "newer_postings": False}


@bp.get("/reports/clients/<int:client_id>")
@require(Permission.REPORTS_READ)
def client_kpis(client_id: int) -> Any:
    """KPIs of one client as of any date (default today): today's daily snapshot when there is one, else live."""
    client = get_visible_or_404(db.session, Client, client_id)
    as_of, errors = _as_of(client)
    today = client_today(client, now_utc())
    figures, source = _kpi_figures(client, as_of, today, live=request.args.get("live") == "1")
    context = render.report_context(client, f.month_key(as_of), figures, [])
    history = db.session.scalars(
        select(MonthlyReport)
        .where(MonthlyReport.client_id == client.id)
        .order_by(MonthlyReport.period.desc(), MonthlyReport.version.desc())
        .limit(36)
    ).all()
    last_month = f.month_key(f.add_months(today, -1))
    from clients.interest import charge_totals  # late-payment charges, apart from the KPIs on principal

    return render_template(
        "reports/client.html",
        # computed from the journal: only when the figures are (the snapshot path reads no journal)
        charges=[] if source["snapshot"] else charge_totals(db.session, client.id, through=as_of),
        ctx=context,
        client=client,
        as_of=as_of,
        source=source,
        errors=errors,
        history=history,
        last_month=last_month,
    )


@bp.post("/reports/clients/<int:client_id>/generate")
@require(Permission.REPORTS_MANAGE)
def generate(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    period = (request.form.get("period") or "").strip()
    existing = reports.current_report(db.session, client.id, period)
    if existing is not None:
        same = reports.reproduces(existing)
        flash(
            f"The {period} report exists (version {existing.version}); regenerating gives "
            + ("the same figures." if same else "different figures now: re-issue it to publish a new version."),
            "info" if same else "warning",
        )
        return redirect(url_for("reporting.report", report_id=existing.id))
    try:
        f.parse_month(period)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("reporting.client_kpis", client_id=client.id))
    run = start_run(period, [client.id], trigger="manual", by=current_user.email)
    db.session.commit()
    flash(f"The {period} report of {client.name} is being made.", "info")
    return redirect(url_for("reporting.run", run_id=run.id))


def _stored(report_id: int) -> tuple[MonthlyReport, Client]:
    report = get_visible_or_404(db.session, MonthlyReport, report_id)
    client = get_visible_or_404(db.session, Client, report.client_id)
    return report, client


def _report_page(report: MonthlyReport, client: Client, pdf_url: str, versions: list[MonthlyReport]) -> Any:
    figures = fig.with_countback_bounds(report.figures, report.inputs)  # reports made before the flag existed
    context = render.report_context(client, report.period, figures, report.summary.splitlines())
    return render_template("reports/report.html", ctx=context, report=report, pdf_url=pdf_url, versions=versions)


def _versions(report: MonthlyReport) -> list[MonthlyReport]:
    return list(
        db.session.scalars(
            select(MonthlyReport)
            .where(MonthlyReport.client_id == report.client_id, MonthlyReport.period == report.period)
            .order_by(MonthlyReport.version.desc())
        )
    )


def _pdf(report: MonthlyReport, client: Client) -> Response:
    name = f"report-{client.code}-{report.period}-v{report.version}.pdf"
    return Response(
        report.pdf, mimetype="application/pdf", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@bp.get("/reports/monthly/<int:report_id>")
@require(Permission.REPORTS_READ)
def report(report_id: int) -> Any:
    stored, client = _stored(report_id)
    return _report_page(stored, client, url_for("reporting.report_pdf", report_id=stored.id), _versions(stored))


@bp.get("/reports/monthly/<int:report_id>.pdf")
@require(Permission.REPORTS_READ)
def report_pdf(report_id: int) -> Any:
    return _pdf(*_stored(report_id))


@bp.post("/reports/monthly/<int:report_id>/reissue")
@require(Permission.REPORTS_MANAGE)
def reissue(report_id: int) -> Any:
    stored, client = _stored(report_id)
    try:
        result = reports.reissue_report(db.session, client, stored.period, request.form.get("reason", ""))
    except ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("reporting.report", report_id=stored.id))
    db.session.commit()
    flash(f"Version {result.report.version} issued; version {stored.version} is kept as superseded.", "info")
    return redirect(url_for("reporting.report", report_id=result.report.id))


@bp.get("/reports/runs/<int:run_id>")
@require(Permission.REPORTS_MANAGE)
def run(run_id: int) -> Any:
    """Progress of a run: per client, the stored report or the state of its job."""
    report_run = db.session.get(ReportRun, run_id)
    if report_run is None:
        abort(404)
    clients = {c.id: c for c in db.session.scalars(select(Client).where(Client.id.in_(report_run.client_ids or [-1])))}
    stored = {
        r.client_id: r
        for r in db.session.scalars(
            select(MonthlyReport).where(
                MonthlyReport.client_id.in_(list(clients) or [-1]),
                MonthlyReport.period == report_run.period,
                MonthlyReport.status == ReportStatus.CURRENT.value,
            )
        )
    }
    rows = [
        (clients[cid], stored.get(cid), _job_state(cid, report_run.period))
        for cid in report_run.client_ids
        if cid in clients
    ]
    done = sum(1 for _, r, _ in rows if r is not None)
    # follow the run while a report is still to come: its job waiting, running, or not yet in the outbox
    working = any(state is None or state["active"] for _, report, state in rows if report is None)
    return render_template("reports/run.html", run=report_run, rows=rows, done=done, working=working)


def _job_state(client_id: int, period: str) -> dict[str, Any] | None:
    """The state of the client's render for the period (from the job outbox: waiting, running, failed...)."""
    return job_state_for(report_job_id(client_id, period))


# --- portal -----------------------------------------------------------------------------------------


def _my_client() -> Client:
    client = db.session.get(Client, current_user.client_id)
    if client is None:
        abort(404)
    return client


@portal_bp.get("/reports")
@require(Permission.PORTAL)
def portal_index() -> Any:
    client = _my_client()
    items = db.session.scalars(
        select(MonthlyReport)
        .where(MonthlyReport.client_id == client.id, MonthlyReport.status == ReportStatus.CURRENT.value)
        .order_by(MonthlyReport.period.desc())
        .limit(60)
    ).all()
    sent_to = recipients_by_report(db.session, [r.id for r in items])
    return render_template("reports/portal_index.html", client=client, items=items, sent_to=sent_to)


def _portal_report(report_id: int) -> tuple[MonthlyReport, Client]:
    client = _my_client()
    stored = get_visible_or_404(db.session, MonthlyReport, report_id)
    if stored.client_id != client.id:
        abort(404)
    return stored, client


@portal_bp.get("/reports/<int:report_id>")
@require(Permission.PORTAL)
def portal_report(report_id: int) -> Any:
    stored, client = _portal_report(report_id)
    return _report_page(stored, client, url_for("portal_reports.portal_report_pdf", report_id=stored.id), [])


@portal_bp.get("/reports/<int:report_id>.pdf")
@require(Permission.PORTAL)
def portal_report_pdf(report_id: int) -> Any:
    return _pdf(*_portal_report(report_id))


def summary_lines(report: MonthlyReport, client: Client) -> list[str]:
    currency = fig.primary_currency(report.figures, client.base_currency)
    return summarize(report.figures, currency, client.name)
