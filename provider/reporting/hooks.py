"""Figures owned by other packages, read only through the functions those packages expose.

    sla.queries.dispute_summary(session, client_id, start, end, posted_by) -> dict   disputes and root causes
    sla.queries.monthly_compliance(session, client, year, month)                     SLA compliance per term
    sla.queries.monthly_breaches(session, client_id, start)                          the month's breaches
    sla.queries.monthly_corrections(...)                                             earlier months' corrections
    provider.reporting.activity.promise_stats / collector_activity                   promises, the agency's work
    provider.dunning.queries.report_section(session, client_id, start, end)          reminders and their effect
    provider.books.report.collections_and_fees(session, client_id, start, end, posted_by)  money and remittances

A function a package does not provide gives None, and the report says in a sentence that the section is not
part of this report (never the function's name). Every result must be JSON (it is frozen into the report's
inputs).
"""

from __future__ import annotations

import importlib
from datetime import date, datetime
from typing import Any

from provider.extensions import db

DEFAULT_REPORT_BUSINESS_DAY = 5

_HOOKS = {
    "disputes": ("sla.queries", "dispute_summary"),
    "sla": ("sla.queries", "monthly_compliance"),
    "sla_corrections": ("sla.queries", "monthly_corrections"),
    "breaches": ("sla.queries", "monthly_breaches"),
    "promises": ("provider.reporting.activity", "promise_stats"),
    "activity": ("provider.reporting.activity", "collector_activity"),
    "dunning": ("provider.dunning.queries", "report_section"),
    "fees": ("provider.books.report", "collections_and_fees"),
}


def _function(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


def external_figures(client_id: int, start: date, end: date, posted_by: datetime | None) -> dict[str, Any]:
    """{"disputes": ..., "sla": ..., "promises": ..., "activity": ..., "fees": ...}; None where not available."""
    out: dict[str, Any] = {}
    for key, (module, name) in _HOOKS.items():
        func = _function(module, name)
        if func is None:
            out[key] = None
        elif key in ("disputes", "fees"):
            out[key] = func(db.session, client_id, start, end, posted_by)
        elif key == "sla":
            out[key] = _sla_rows(func, client_id, start)
        elif key == "sla_corrections":
            out[key] = _sla_corrections(func, client_id, start)
        elif key == "breaches":
            out[key] = func(db.session, client_id, start)
        else:
            out[key] = func(db.session, client_id, start, end)
    return out


def _sla_rows(monthly_compliance: Any, client_id: int, start: date) -> list[dict[str, Any]]:
    from clients.models import Client
    from sla import labels

    client = db.session.get(Client, client_id)
    rows = monthly_compliance(db.session, client, start.year, start.month) if client else []
    targets = _targets(client_id, start)
    return [
        {
            "term": labels.term(row.code),
            "target": targets.get(row.code, ""),
            "decided": row.decided,
            "met": row.met,
            "missed": row.decided - row.met,
            "rate": None if row.percent is None else f"{row.percent:.1f}",
        }
        for row in rows
    ]


def _sla_corrections(monthly_corrections: Any, client_id: int, start: date) -> list[dict[str, Any]]:
    from clients.models import Client
    from sla import labels

    client = db.session.get(Client, client_id)
    rows = monthly_corrections(db.session, client, start.year, start.month) if client else []
    return [
        {
            "term": labels.term(row.code),
            "month": date.fromisoformat(f"{row.belongs_to}-01").strftime("%B %Y"),
            "decided": row.decided,
            "met": row.met,
            "missed": row.decided - row.met,
        }
        for row in rows
    ]


def _targets(client_id: int, start: date) -> dict[str, str]:
    """SLA code -> its target in words ("2 business days") in the contract version in force at the month's start."""
    from sla import labels

    terms_in_force = _function("sla.clocks", "terms_in_force")
    terms = terms_in_force(db.session, client_id, start) if terms_in_force else None
    return {t.code: labels.target(t.target, t.unit) for t in getattr(terms, "targets", None) or []}


def report_business_day(client_id: int, on: date) -> int:
    """N of "the monthly report is due by the Nth business day" from the client's contract terms (SLA)."""
    terms_in_force = _function("sla.clocks", "terms_in_force")
    terms = terms_in_force(db.session, client_id, on) if terms_in_force else None
    for target in getattr(terms, "targets", None) or []:
        if target.code == "monthly_report" and target.unit == "business_day_of_month":
            return int(target.target)
    return DEFAULT_REPORT_BUSINESS_DAY
