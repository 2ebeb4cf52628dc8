"""Figures owned by other packages, read only through the functions those packages expose.

Each hook returns None when its package does not (yet) expose the function; the report then prints the
section as "not available" instead of inventing figures. TODO(sla, worklists): expose these and the
report picks them up with no change here:

    sla.queries.dispute_summary(session, client_id, start: date, end: date, posted_by) -> dict
        {"opened": n, "resolved": n, "avg_resolution_days": "x.y" | None, "reasons": [{"reason", "count"}]}
    SLA compliance per term comes from sla.queries.monthly_compliance(session, client, year, month) (exposed),
    corrections to earlier reported months from sla.queries.monthly_corrections(...) (exposed).
    worklists.queries.promise_stats(session, client_id, start: date, end: date) -> dict
        {"made": n, "kept": n, "broken": n, "kept_rate": "x.y" | None}
    worklists.queries.collector_activity(session, client_id, start: date, end: date) -> list[dict]
        [{"collector": name, "calls": n, "emails": n, "promises": n}]

    provider.books.report.collections_and_fees(session, client_id, start, end, posted_by) -> dict (exposed)
        the "Collections and fees" section: money with the agency, fees, remittances and fee invoices of the month

Every result must be JSON (it is frozen into the report's inputs).
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
    "promises": ("worklists.queries", "promise_stats"),
    "activity": ("worklists.queries", "collector_activity"),
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
        else:
            out[key] = func(db.session, client_id, start, end)
    return out


def _sla_rows(monthly_compliance: Any, client_id: int, start: date) -> list[dict[str, Any]]:
    from clients.models import Client

    client = db.session.get(Client, client_id)
    rows = monthly_compliance(db.session, client, start.year, start.month) if client else []
    return [
        {
            "term": row.code.replace("_", " "),
            "decided": row.decided,
            "met": row.met,
            "missed": row.decided - row.met,
            "rate": None if row.percent is None else f"{row.percent:.1f}",
        }
        for row in rows
    ]


def _sla_corrections(monthly_corrections: Any, client_id: int, start: date) -> list[dict[str, Any]]:
    from clients.models import Client

    client = db.session.get(Client, client_id)
    rows = monthly_corrections(db.session, client, start.year, start.month) if client else []
    return [
        {
            "term": row.code.replace("_", " "),
            "month": date.fromisoformat(f"{row.belongs_to}-01").strftime("%B %Y"),
            "decided": row.decided,
            "met": row.met,
            "missed": row.decided - row.met,
        }
        for row in rows
    ]


def report_business_day(client_id: int, on: date) -> int:
    """N of "the monthly report is due by the Nth business day" from the client's contract terms (SLA)."""
    terms_in_force = _function("sla.clocks", "terms_in_force")
    terms = terms_in_force(db.session, client_id, on) if terms_in_force else None
    for target in getattr(terms, "targets", None) or []:
        if target.code == "monthly_report" and target.unit == "business_day_of_month":
            return int(target.target)
    return DEFAULT_REPORT_BUSINESS_DAY
