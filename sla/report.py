"""The SLA package's sections of a client's monthly report, as JSON (they are frozen into the report).

- `dispute_summary`: disputes opened and resolved in the month, the open ones at month end by age, resolution
  time against the contract's target, and the root causes by reason with the invoices and amounts behind them;
- `monthly_breaches`: the SLA breaches the month's report counts, one line each (what, for whom, when).

Both read the client's month in its own time zone, a bounded number of set-based queries, and return words
a client reads (labels from `sla.labels`), never codes.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from clients.journal import Invoice
from clients.models import Client, Debtor
from sla import labels
from sla.clocks import terms_in_force
from sla.models import Dispute, DisputeInvoice, DisputeStatus, SlaClock
from sla.months import _closes, decided_at, month_bounds

INVOICE_LINES = 60  # invoices listed under the root causes; the rest are counted
AGES = ((5, "0-5 days"), (10, "6-10 days"), (30, "11-30 days"), (None, "31+ days"))
CLOSED = (DisputeStatus.RESOLVED.value, DisputeStatus.WITHDRAWN.value)


def _bounds(session: Session, client_id: int, start: date) -> tuple[Client, datetime, datetime]:
    client = session.get(Client, client_id)
    if client is None:
        raise LookupError(client_id)
    lo, hi = month_bounds(client.timezone, start.year, start.month)
    return client, lo, hi


def _days(seconds: float) -> float:
    return seconds / 86_400


def _age_label(days: float) -> str:
    return next(label for limit, label in AGES if limit is None or days <= limit)


def _resolve_target(session: Session, client_id: int, on: date) -> str | None:
    terms = terms_in_force(session, client_id, on)
    for t in getattr(terms, "targets", None) or []:
        if t.code == "dispute_resolve":
            return labels.target(t.target, t.unit)
    return None


def dispute_summary(
    session: Session, client_id: int, start: date, end: date, posted_by: datetime | None = None
) -> dict[str, Any]:
    """{"opened", "resolved", "withdrawn", "avg_resolution_days", "resolution_target", "resolved_in_time",
    "resolved_clocked", "open_at_end": [{"age", "count"}], "open_total", "reasons": [{"reason", "count",
    "amounts": {currency: minor}, "invoices": [...]}], "invoices_not_listed"}; amounts in minor units."""
    client, lo, hi = _bounds(session, client_id, start)
    cut = [Dispute.opened_at <= posted_by] if posted_by is not None else []
    opened = session.scalars(
        select(Dispute)
        .where(Dispute.client_id == client_id, Dispute.opened_at >= lo, Dispute.opened_at < hi, *cut)
        .order_by(Dispute.reason, Dispute.opened_at, Dispute.id)
    ).all()
    closed = session.execute(
        select(Dispute.status, Dispute.opened_at, Dispute.closed_at).where(
            Dispute.client_id == client_id,
            Dispute.status.in_(CLOSED),
            Dispute.closed_at >= lo,
            Dispute.closed_at < hi,
        )
    ).all()
    resolved = [(o, c) for s, o, c in closed if s == DisputeStatus.RESOLVED.value]
    still_open = session.scalars(
        select(Dispute.opened_at).where(
            Dispute.client_id == client_id,
            Dispute.opened_at < hi,
            or_(Dispute.closed_at.is_(None), Dispute.closed_at >= hi),
            *cut,
        )
    ).all()
    ages: dict[str, int] = {label: 0 for _, label in AGES}
    for at in still_open:
        ages[_age_label(_days((hi - at).total_seconds()))] += 1
    clocks = _resolve_clocks(session, client, lo, hi)
    spans = [_days((c - o).total_seconds()) for o, c in resolved if c is not None]
    avg = sum(spans) / len(spans) if spans else None
    return {
        "opened": len(opened),
        "resolved": len(resolved),
        "withdrawn": len(closed) - len(resolved),
        "avg_resolution_days": None if avg is None else f"{avg:.1f}",
        "resolution_target": _resolve_target(session, client_id, end),
        "resolved_clocked": clocks[0],
        "resolved_in_time": clocks[1],
        "open_at_end": [{"age": label, "count": n} for label, n in ages.items()],
        "open_total": len(still_open),
        **_root_causes(session, client_id, opened),
    }


def _resolve_clocks(session: Session, client: Client, lo: datetime, hi: datetime) -> tuple[int, int]:
    """(resolution clocks decided in the month, of which on time): the month's report figures when it is closed."""
    period = _closes(session, {client.id: (lo, hi)}).get(client.id)
    decided = decided_at()
    which = (
        and_(SlaClock.reported_period == period, decided >= lo)
        if period
        else and_(SlaClock.reported_period.is_(None), decided >= lo, decided < hi)
    )
    row = session.execute(
        select(func.count(), func.count(SlaClock.id).filter(SlaClock.breached_at.is_(None))).where(
            SlaClock.client_id == client.id, SlaClock.code == "dispute_resolve", which
        )
    ).one()
    return int(row[0]), int(row[1] or 0)


def _root_causes(session: Session, client_id: int, opened: Any) -> dict[str, Any]:
    """The month's new disputes by reason: how many, how much, and the invoices behind them (first lines)."""
    ids = [d.id for d in opened]
    invoices: dict[int, list[tuple[Invoice, str]]] = defaultdict(list)
    if ids:
        rows = session.execute(
            select(DisputeInvoice.dispute_id, Invoice, Debtor.name)
            .join(Invoice, and_(Invoice.client_id == DisputeInvoice.client_id, Invoice.id == DisputeInvoice.invoice_id))
            .join(Debtor, and_(Debtor.client_id == Invoice.client_id, Debtor.id == Invoice.debtor_id))
            .where(DisputeInvoice.client_id == client_id, DisputeInvoice.dispute_id.in_(ids))
            .order_by(DisputeInvoice.dispute_id, Invoice.number)
        ).all()
        for dispute_id, invoice, debtor in rows:
            invoices[dispute_id].append((invoice, debtor))
    reasons: dict[str, dict[str, Any]] = {}
    listed = not_listed = 0
    for d in opened:
        entry = reasons.setdefault(
            d.reason, {"reason": labels.reason(d.reason), "count": 0, "amounts": {}, "invoices": []}
        )
        entry["count"] += 1
        entry["amounts"][d.currency] = entry["amounts"].get(d.currency, 0) + d.amount_minor
        for invoice, debtor in invoices.get(d.id) or []:
            if listed >= INVOICE_LINES:
                not_listed += 1
                continue
            listed += 1
            entry["invoices"].append(
                {
                    "number": invoice.number,
                    "debtor": debtor,
                    "issued": invoice.issue_date.isoformat(),
                    "currency": invoice.currency,
                    "amount": invoice.amount_minor,
                    "disputed": d.amount_minor if len(invoices[d.id]) == 1 else None,
                    "status": labels.status(d.status, portal=True),
                    "summary": d.summary,
                }
            )
    ordered = sorted(reasons.values(), key=lambda r: (-r["count"], r["reason"]))
    return {"reasons": ordered, "invoices_not_listed": not_listed}


def _subject(kind: str, subject_id: int, disputes: dict[int, str], debtors: dict[int, str]) -> str:
    if kind == "dispute":
        return f"Dispute no. {subject_id}" + (f" ({disputes[subject_id]})" if subject_id in disputes else "")
    if kind == "debtor":
        return debtors.get(subject_id, f"Debtor no. {subject_id}")
    if kind == "report":
        text = str(subject_id)
        return (
            f"Monthly report for {date(int(text[:4]), int(text[4:]), 1):%B %Y}" if len(text) == 6 else "Monthly report"
        )
    return f"{labels.SUBJECTS.get(kind, kind.capitalize())} no. {subject_id}"


def monthly_breaches(session: Session, client_id: int, start: date, limit: int = 100) -> list[dict[str, Any]]:
    """The breaches among the month's SLA outcomes (those its report counts), oldest first, in words."""
    client, lo, hi = _bounds(session, client_id, start)
    period = _closes(session, {client.id: (lo, hi)}).get(client.id)
    which = (
        SlaClock.reported_period == period
        if period
        else and_(SlaClock.reported_period.is_(None), SlaClock.breached_at < hi)
    )
    clocks = session.scalars(
        select(SlaClock)
        .where(SlaClock.client_id == client_id, SlaClock.breached_at >= lo, SlaClock.breached_at.is_not(None), which)
        .order_by(SlaClock.breached_at, SlaClock.id)
        .limit(limit)
    ).all()
    dispute_ids = [c.subject_id for c in clocks if c.subject_type == "dispute"]
    debtor_ids = [c.subject_id for c in clocks if c.subject_type == "debtor"]
    disputes = dict(
        session.execute(
            select(Dispute.id, Debtor.name)
            .join(Debtor, and_(Debtor.client_id == Dispute.client_id, Debtor.id == Dispute.debtor_id))
            .where(Dispute.client_id == client_id, Dispute.id.in_(dispute_ids or [-1]))
        ).all()
    )
    debtors = dict(
        session.execute(
            select(Debtor.id, Debtor.name).where(Debtor.client_id == client_id, Debtor.id.in_(debtor_ids or [-1]))
        ).all()
    )
    tz = ZoneInfo(client.timezone)
    return [
        {
            "term": labels.term(c.code),
            "subject": _subject(c.subject_type, c.subject_id, disputes, debtors),
            "started": c.started_at.astimezone(tz).date().isoformat(),
            "breached": c.breached_at.astimezone(tz).date().isoformat() if c.breached_at else "",
            "resolved": c.stopped_at.astimezone(tz).date().isoformat() if c.stopped_at else "",
        }
        for c in clocks
    ]
