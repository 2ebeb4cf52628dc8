"""SLA pages of the back office: the manager dashboard and each client's calendar and contract terms.

The dispute pages live in `sla.dispute_views` (back office) and `sla.portal_views` (portal); importing this
module registers them on the blueprints."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import holidays
from flask import render_template, request
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

import sla.calendar_views
import sla.dispute_views
import sla.jobs
import sla.portal_views
import sla.query_views
import sla.terms_views  # noqa: F401 - registers the contract terms pages
from clients.models import Client
from provider.core.clock import now_utc, today_utc
from provider.core.permissions import Permission, require
from provider.extensions import db
from provider.ui import apply_sort, paginate
from sla.blueprints import bp, portal_bp
from sla.models import ContractTerms, DisputeReason, SlaClock, SlaCode, SlaNotification
from sla.queries import AGE_BUCKETS, attention_clocks, compliance, disputes_by_age_and_reason, month_bounds
from sla.trends import at_risk_by_day, breaches_by_week, compliance_by_month

__all__ = ["bp", "portal_bp"]

CLOCK_SORTS = {
    "time_left": func.coalesce(SlaClock.deadline_at, SlaClock.breached_at),
    "client": Client.name,
    "sla": SlaClock.code,
    "started": SlaClock.started_at,
}


def upcoming_holidays(country: str, days: int = 60) -> list[tuple[Any, str]]:
    start = today_utc()
    end = start + timedelta(days=days)
    try:
        calendar = holidays.country_holidays(country, years=sorted({start.year, end.year}))
    except NotImplementedError:
        return []
    return sorted((d, name) for d, name in calendar.items() if start <= d <= end)


def _month() -> tuple[int, int]:
    raw = request.args.get("month", "")
    try:
        year, month = (int(p) for p in raw.split("-", 1))
        date(year, month, 1)
        return year, month
    except ValueError:
        today = today_utc()
        return today.year, today.month


@bp.get("/slas")
@require(Permission.SLAS_READ)
def index() -> Any:
    """Across all visible clients: clocks at risk or breached, compliance for the month, disputes by age."""
    now = now_utc()
    year, month = _month()
    clients = db.session.scalars(select(Client).order_by(Client.name)).all()
    by_id = {c.id: c for c in clients}
    rows = compliance(db.session, {c.id: month_bounds(c.timezone, year, month) for c in clients})
    matrix = disputes_by_age_and_reason(db.session, now)
    notices = db.session.execute(
        select(SlaNotification, SlaClock.dispute_id, SlaClock.code, SlaClock.subject_type, SlaClock.subject_id)
        .join(SlaClock, (SlaClock.client_id == SlaNotification.client_id) & (SlaClock.id == SlaNotification.clock_id))
        .order_by(SlaNotification.created_at.desc(), SlaNotification.id.desc())
        .limit(20)
    ).all()
    page = paginate(apply_sort(attention_clocks(now), CLOCK_SORTS, "time_left", tiebreak=SlaClock.id))
    trend = compliance_by_month(db.session, list(clients), date(year, month, 1))
    weeks = breaches_by_week(db.session, now)
    risk_days = at_risk_by_day(db.session, now.date())
    return render_template(
        "sla/index.html",
        page=page,
        now=now,
        month=f"{year}-{month:02d}",
        clients=by_id,
        compliance=rows,
        per_sla=_per_sla(rows),
        matrix={(r, b): n for r, b, n in matrix},
        reasons=list(DisputeReason),
        buckets=[label for _, label in AGE_BUCKETS],
        notices=notices,
        trend=trend,
        weeks=weeks,
        risk_days=risk_days,
        charts=_charts(clients, trend, weeks, matrix, risk_days),
    )


def _charts(clients: Any, trend: Any, weeks: Any, matrix: list[tuple[str, str, int]], risk_days: Any) -> dict[str, str]:
    """The dashboard's charts as images (each with its table on the page)."""
    from provider.formatting import format_day, format_day_short, format_month
    from provider.reporting import charts
    from sla import labels

    compliance_chart = charts.percent_lines(
        "SLAs met, % of outcomes, by client and month",
        [format_month(m) for m in trend.months],
        [(c.name, trend.by_client[c.id]) for c in clients],
    )
    weeks_chart = charts.count_bars(
        "SLA breaches by week, and breached clocks still open at its end",
        [format_day(w.week) for w in weeks],
        [
            ("Breached in the week", [w.breached for w in weeks]),
            ("Breached, still open", [w.open_breached for w in weeks]),
        ],
    )
    counts = {(r, b): n for r, b, n in matrix}
    ages = [label for _, label in AGE_BUCKETS]
    disputes_chart = charts.count_bars(
        "Open disputes by age and reason",
        ages,
        [(labels.reason(r.value), [counts.get((r.value, b), 0) for b in ages]) for r in DisputeReason],
        stacked=True,
    )
    risk_chart = charts.count_lines(
        "SLA clocks at risk and breached at the end of each day",
        [format_day_short(r.day) for r in risk_days],
        [
            ("At risk", [r.at_risk for r in risk_days]),
            ("Breached, still open", [r.breached_open for r in risk_days]),
        ],
    )
    return {
        "risk": charts.data_uri(risk_chart),
        "compliance": charts.data_uri(compliance_chart),
        "weeks": charts.data_uri(weeks_chart),
        "disputes": charts.data_uri(disputes_chart),
    }


def _per_sla(rows: list[Any]) -> list[tuple[str, int, int]]:
    totals: dict[str, list[int]] = {}
    for r in rows:
        t = totals.setdefault(r.code, [0, 0])
        t[0] += r.decided
        t[1] += r.met
    return [(code, n, met) for code, (n, met) in sorted(totals.items())]


@bp.get("/slas/calendars")
@require(Permission.SLAS_READ)
def calendars() -> Any:
    clients = db.session.scalars(select(Client).order_by(Client.name)).all()
    terms = {}
    stmt = select(ContractTerms).options(selectinload(ContractTerms.targets))
    for t in db.session.scalars(stmt.order_by(ContractTerms.client_id, ContractTerms.effective_from)):
        if t.effective_from <= today_utc():
            terms[t.client_id] = t  # the version in force today
    return render_template(
        "sla/calendars.html",
        clients=clients,
        calendars={c.id: upcoming_holidays(c.country) for c in clients},
        terms=terms,
        codes=list(SlaCode),
    )
