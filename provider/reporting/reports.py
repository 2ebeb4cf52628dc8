"""Monthly reports: generate once, return the same thereafter, re-issue only when a manager says so.

Services flush, never commit. A report row carries its frozen inputs, the figures derived from them, the
summary and the PDF, all inserted in one statement, so a crash at any point leaves either the whole
report or nothing. A unique (client, month, version) makes a concurrent twin a no-op.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from blinker import Namespace
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clients.models import Client
from provider.core import audit
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.reporting import figures as fig
from provider.reporting import formulas as f
from provider.reporting import render
from provider.reporting.hooks import external_figures
from provider.reporting.models import MonthlyReport, ReportStatus
from provider.reporting.notifications import notify_report_ready
from provider.reporting.schedule import client_today
from provider.reporting.summary import summarize
from sla.hooks import sla_completed
from sla.models import SlaCode
from sla.months import close_month

report_ready = Namespace().signal("report-ready")  # send(session, report=...) generated or re-issued


@dataclass(frozen=True)
class ReportResult:
    report: MonthlyReport
    created: bool  # False: the month's report existed and was returned unchanged


def current_report(session: Session, client_id: int, period: str) -> MonthlyReport | None:
    return session.scalar(
        select(MonthlyReport).where(
            MonthlyReport.client_id == client_id,
            MonthlyReport.period == period,
            MonthlyReport.status == ReportStatus.CURRENT.value,
        )
    )


def _check_period(client: Client, period: str, now: datetime) -> None:
    try:
        start = f.parse_month(period)
    except ValueError as exc:
        raise ServiceError(str(exc), field="period") from None
    if f.month_end(start) >= client_today(client, now):
        raise ServiceError(f"{period} is not over yet for {client.name}; its report can be made from next month")


def build_inputs(client: Client, period: str, posted_by: datetime) -> dict:
    start = f.parse_month(period)
    inputs = fig.collect_inputs(client.id, f.month_end(start), posted_by)
    inputs["external"] = external_figures(client.id, start, f.month_end(start), posted_by)
    return inputs


def _make(
    session: Session, client: Client, period: str, version: int, *, run_id: int | None, reason: str
) -> MonthlyReport:
    posted_by = now_utc()
    inputs = build_inputs(client, period, posted_by)
    figures = fig.derive(inputs)
    figures["external"] = inputs["external"]
    currency = fig.primary_currency(figures, client.base_currency)
    summary = summarize(figures, currency, client.name)
    html = render.report_html(render.report_context(client, period, figures, summary))
    pdf, pages = render.render_pdf(html)
    return MonthlyReport(
        client_id=client.id,
        period=period,
        version=version,
        status=ReportStatus.CURRENT.value,
        as_of=f.month_end(f.parse_month(period)),
        posted_by=posted_by,
        inputs=inputs,
        figures=figures,
        summary="\n".join(summary),
        pdf=pdf,
        pdf_pages=pages,
        pdf_sha256=hashlib.sha256(pdf).hexdigest(),
        run_id=run_id,
        reason=reason,
        generated_by=audit.current_actor().label,
    )


def generate_report(session: Session, client: Client, period: str, *, run_id: int | None = None) -> ReportResult:
    """The client's report for the month: the existing one unchanged, or version 1 made now (idempotent)."""
    existing = current_report(session, client.id, period)
    if existing is not None:
        return ReportResult(existing, created=False)
    _check_period(client, period, now_utc())
    start = f.parse_month(period)
    close_month(session, client, start.year, start.month)  # the month's SLA outcomes are now the reported ones
    report = _make(session, client, period, 1, run_id=run_id, reason="")
    try:
        with session.begin_nested():
            session.add(report)
            session.flush()
    except IntegrityError:  # a concurrent worker stored it first: theirs is the report
        twin = current_report(session, client.id, period)
        if twin is None:
            raise
        return ReportResult(twin, created=False)
    audit.record(session, "report.generate", report, after={"period": period, "version": 1, "pages": report.pdf_pages})
    sla_completed(session, client, SlaCode.MONTHLY_REPORT.value, ("report", report_subject(period)))
    notify_report_ready(session, client, report)
    report_ready.send(session, report=report)
    return ReportResult(report, created=True)


def report_subject(period: str) -> int:
    """The SLA clock subject of a month's report: 2026-10 → 202610."""
    return int(period.replace("-", ""))


def reissue_report(session: Session, client: Client, period: str, reason: str) -> ReportResult:
    """A new version from the journal as it is now; the previous version stays, marked superseded."""
    if not reason.strip():
        raise ServiceError("say why the report is re-issued", field="reason")
    previous = current_report(session, client.id, period)
    if previous is None:
        raise ServiceError(f"there is no report for {period} to re-issue; generate it first")
    version = (
        session.scalar(
            select(func.max(MonthlyReport.version)).where(
                MonthlyReport.client_id == client.id, MonthlyReport.period == period
            )
        )
        or 0
    ) + 1
    report = _make(session, client, period, version, run_id=None, reason=reason.strip()[:300])
    previous.status = ReportStatus.SUPERSEDED.value
    session.flush()
    session.add(report)
    session.flush()
    audit.record(
        session,
        "report.reissue",
        report,
        before={"version": previous.version},
        after={"period": period, "version": version, "reason": report.reason},
    )
    notify_report_ready(session, client, report)
    report_ready.send(session, report=report)
    return ReportResult(report, created=True)


def reproduces(report: MonthlyReport) -> bool:
    """Does the journal still give this report's inputs at its as-of date and posting cut-off?"""
    client = report.client_id
    fresh = fig.collect_inputs(client, report.as_of, report.posted_by)
    stored = dict(report.inputs)
    stored.pop("external", None)
    return fresh == stored and fig.derive(fresh)["currencies"] == report.figures["currencies"]
