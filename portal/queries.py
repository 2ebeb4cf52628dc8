"""Tenant-scoped reads of the portal: the overview's figures, the receivables list, an account's agency
history (never internal notes), the client's audit trail and who receives the monthly reports.

Every function takes the client's id and filters on it explicitly (the ORM guard and RLS are backstops,
not the filter). Each is one set-based query (or a fixed few), whatever the size of the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, case, func, literal, or_, select

from clients import ledger_queries
from clients.journal import Invoice
from clients.models import Client, Debtor
from provider.core.audit import AuditEvent
from provider.extensions import db
from provider.models import User
from provider.reporting import formulas, kpi
from provider.reporting.models import KpiSnapshot, MonthlyReport, ReportStatus
from sla.models import ACTIVE_DISPUTE, ClockState, Dispute, DisputeStatus, SlaClock
from sla.queries import Compliance, monthly_compliance
from worklists.models import WorkItem

# --- overview ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Collected:
    currency: str
    agency: int
    client: int

    @property
    def total(self) -> int:
        return self.agency + self.client


@dataclass(frozen=True)
class Kpis:
    """DSO and CEI of the client's primary currency from the latest daily snapshot, with the monthly trend."""

    as_of: date
    currency: str
    dso_month: str
    cei_month: str
    dso: str | None
    dso_previous: str | None
    cei: str | None  # the last complete month (the running month's CEI is not meaningful yet)
    cei_previous: str | None
    trend: list[dict[str, Any]]

    @staticmethod
    def _delta(now: str | None, before: str | None) -> Decimal | None:
        if now is None or before is None:
            return None
        return Decimal(now) - Decimal(before)

    @property
    def dso_change(self) -> Decimal | None:
        return self._delta(self.dso, self.dso_previous)

    @property
    def cei_change(self) -> Decimal | None:
        return self._delta(self.cei, self.cei_previous)


@dataclass(frozen=True)
class SlaStatus:
    compliance: list[Compliance]
    at_risk: int  # open clocks past their at-risk point, not breached
    breached: int  # open clocks already breached
    paused: int  # clocks paused while the agency waits on the client


@dataclass
class Overview:
    agings: list[ledger_queries.Aging]
    collected: list[Collected]
    kpis: Kpis | None
    sla: SlaStatus
    awaiting: list[Any]  # (Dispute, debtor name) awaiting the client's answer, oldest first
    awaiting_total: int
    latest_report: MonthlyReport | None
    month: str
    extras: dict[str, Any] = field(default_factory=dict)


def collected_this_month(client_id: int, today: date) -> list[Collected]:
    """Cash received this month per currency, split by who received it (one grouped journal query)."""
    flows = kpi.flows_by_month(client_id, today, today)
    month = formulas.month_key(today)
    return [
        Collected(currency, months[month]["agency"], months[month]["client"])
        for currency, months in sorted(flows.items())
        if month in months
    ]


def latest_kpis(client: Client) -> Kpis | None:
    """From the newest `KpiSnapshot` (the daily job), so the overview never rescans the journal."""
    snap = db.session.scalar(
        select(KpiSnapshot).where(KpiSnapshot.client_id == client.id).order_by(KpiSnapshot.as_of.desc()).limit(1)
    )
    if snap is None:
        return None
    currencies = snap.figures.get("currencies", {})
    currency = client.base_currency if client.base_currency in currencies else None
    if currency is None and currencies:
        currency = max(currencies, key=lambda c: (currencies[c]["aging_total"], c))
    if currency is None:
        return None
    trend = currencies[currency]["trend"]
    # DSO: the newest month that has one (a month without placements has none); CEI: the last full month
    with_dso = [m for m in trend if m.get("dso") is not None]
    now = with_dso[-1] if with_dso else trend[-1]
    before = with_dso[-2] if len(with_dso) > 1 else {}
    closed = trend[-2] if len(trend) > 1 else {}
    closed_before = trend[-3] if len(trend) > 2 else {}
    return Kpis(
        as_of=snap.as_of,
        currency=currency,
        dso_month=now.get("month", ""),
        cei_month=closed.get("month", ""),
        dso=now.get("dso"),
        dso_previous=before.get("dso"),
        cei=closed.get("cei"),
        cei_previous=closed_before.get("cei"),
        trend=trend,
    )


def sla_status(client: Client, today: date, now: datetime) -> SlaStatus:
    rows = db.session.execute(
        select(
            func.sum(case((and_(SlaClock.breached_at.is_(None), SlaClock.at_risk_at <= now), 1), else_=0)),
            func.sum(case((SlaClock.breached_at.is_not(None), 1), else_=0)),
            func.sum(case((SlaClock.state == ClockState.PAUSED.value, 1), else_=0)),
        ).where(SlaClock.client_id == client.id, SlaClock.state != ClockState.STOPPED.value)
    ).one()
    return SlaStatus(
        compliance=monthly_compliance(db.session, client, today.year, today.month),
        at_risk=int(rows[0] or 0),
        breached=int(rows[1] or 0),
        paused=int(rows[2] or 0),
    )


def awaiting_disputes(client_id: int, limit: int = 5) -> tuple[list[Any], int]:
    """Disputes waiting for the client's answer (oldest first) and how many there are."""
    where = (Dispute.client_id == client_id, Dispute.status == DisputeStatus.AWAITING_CLIENT.value)
    total = db.session.scalar(select(func.count()).select_from(Dispute).where(*where)) or 0
    rows = db.session.execute(
        select(Dispute, Debtor.name.label("debtor_name"))
        .join(Debtor, (Debtor.client_id == Dispute.client_id) & (Debtor.id == Dispute.debtor_id))
        .where(*where)
        .order_by(Dispute.opened_at, Dispute.id)
        .limit(limit)
    ).all()
    return list(rows), int(total)


def latest_report(client_id: int) -> MonthlyReport | None:
    return db.session.scalar(
        select(MonthlyReport)
        .where(MonthlyReport.client_id == client_id, MonthlyReport.status == ReportStatus.CURRENT.value)
        .order_by(MonthlyReport.period.desc())
        .limit(1)
    )


def overview(client: Client, today: date, now: datetime) -> Overview:
    """Everything on the overview page: nine queries, none of them proportional to the ledger's history."""
    awaiting, awaiting_total = awaiting_disputes(client.id)
    return Overview(
        agings=ledger_queries.aging(client.id, today),
        collected=collected_this_month(client.id, today),
        kpis=latest_kpis(client),
        sla=sla_status(client, today, now),
        awaiting=awaiting,
        awaiting_total=awaiting_total,
        latest_report=latest_report(client.id),
        month=f"{today:%B %Y}",
    )


# --- receivables -------------------------------------------------------------------------------------

DEBTOR_STATUSES = {
    "": "All debtors",
    "open": "With an open balance",
    "overdue": "With an overdue balance",
    "settled": "Nothing open",
    "disputed": "With an open dispute",
    "recalled": "Recalled from the agency",
}


@dataclass(frozen=True)
class DebtorFilters:
    search: str = ""
    status: str = ""
    segment: str = ""


def parse_debtor_filters(args: Any) -> DebtorFilters:
    status = (args.get("status") or "").strip()
    return DebtorFilters(
        search=(args.get("q") or "").strip()[:200],
        status=status if status in DEBTOR_STATUSES else "",
        segment=(args.get("segment") or "").strip()[:40],
    )


def _balances(client_id: int, today: date) -> Any:
    """Per debtor: open and overdue amounts, oldest open due date, currency (a subquery over open invoices)."""
    return (
        select(
            Invoice.debtor_id.label("debtor_id"),
            func.sum(Invoice.open_minor).label("open_minor"),
            func.sum(case((Invoice.due_date < today, Invoice.open_minor), else_=0)).label("overdue_minor"),
            func.min(Invoice.due_date).label("oldest_due"),
            func.max(Invoice.currency).label("currency"),
            func.count(func.distinct(Invoice.currency)).label("currencies"),
            func.count().label("open_invoices"),
        )
        .where(Invoice.client_id == client_id, Invoice.open_minor > 0)
        .group_by(Invoice.debtor_id)
        .subquery("balances")
    )


def receivables(client_id: int, filters: DebtorFilters, today: date) -> tuple[Select[Any], dict[str, Any]]:
    """Debtors with their open/overdue balances; returns the statement and the whitelisted sort columns."""
    bal = _balances(client_id, today)
    open_minor = func.coalesce(bal.c.open_minor, 0)
    overdue_minor = func.coalesce(bal.c.overdue_minor, 0)
    stmt = (
        select(
            Debtor.id,
            Debtor.name,
            Debtor.external_ref,
            Debtor.segment,
            Debtor.do_not_contact,
            Debtor.recalled_at,
            func.coalesce(bal.c.currency, literal("")).label("currency"),
            func.coalesce(bal.c.currencies, 0).label("currencies"),
            open_minor.label("open_minor"),
            overdue_minor.label("overdue_minor"),
            func.coalesce(bal.c.open_invoices, 0).label("open_invoices"),
            bal.c.oldest_due,
        )
        .outerjoin(bal, bal.c.debtor_id == Debtor.id)
        .where(Debtor.client_id == client_id)
    )
    if filters.search:
        text = filters.search.lower()
        stmt = stmt.where(
            or_(
                func.lower(Debtor.name).contains(text, autoescape=True),
                func.lower(Debtor.external_ref).contains(text, autoescape=True),
            )
        )
    if filters.segment:
        stmt = stmt.where(Debtor.segment == filters.segment)
    if filters.status == "open":
        stmt = stmt.where(open_minor > 0)
    elif filters.status == "overdue":
        stmt = stmt.where(overdue_minor > 0)
    elif filters.status == "settled":
        stmt = stmt.where(open_minor == 0)
    elif filters.status == "recalled":
        stmt = stmt.where(Debtor.recalled_at.is_not(None))
    elif filters.status == "disputed":
        active = [s.value for s in ACTIVE_DISPUTE]
        stmt = stmt.where(
            select(Dispute.id)
            .where(Dispute.client_id == client_id, Dispute.debtor_id == Debtor.id, Dispute.status.in_(active))
            .exists()
        )
    sorts = {
        "name": Debtor.name,
        "ref": Debtor.external_ref,
        "segment": Debtor.segment,
        "open": open_minor,
        "overdue": overdue_minor,
        "oldest": func.coalesce(bal.c.oldest_due, literal(date(9999, 12, 31))),
    }
    return stmt, sorts


def segments(client_id: int) -> list[str]:
    return list(
        db.session.scalars(
            select(Debtor.segment).where(Debtor.client_id == client_id).distinct().order_by(Debtor.segment)
        )
    )


# --- an account's agency history: the one account view (worklists.account, for_client=True) -------------


def work_item_of(client_id: int, debtor_id: int) -> WorkItem | None:
    return db.session.scalar(select(WorkItem).where(WorkItem.client_id == client_id, WorkItem.debtor_id == debtor_id))


RECALL_ACTION = "portal.recall"


def recalls_of(client_id: int, debtor_id: int, limit: int = 10) -> list[AuditEvent]:
    """The account's recalls (from the audit log: a recall is recorded there, not in a column)."""
    return list(
        db.session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.client_id == client_id,
                AuditEvent.action == RECALL_ACTION,
                AuditEvent.object_type == "Debtor",
                AuditEvent.object_id == str(debtor_id),
            )
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
            .limit(limit)
        )
    )


# --- client admin ------------------------------------------------------------------------------------


# Families of audit actions that concern the client's own data. The agency's internal work (worklist
# actions and notes, promises, plans, assignments, jobs, teams) is not part of the client's trail: those
# events carry collectors' notes.
AUDIT_FAMILIES = {
    "client": "Company",
    "debtor": "Debtors",
    "invoice": "Invoices",
    "payment": "Payments",
    "credit_note": "Credit notes",
    "write_off": "Write-offs",
    "import": "Placements",
    "dispute": "Disputes",
    "report": "Reports",
    "user": "People",
    "portal": "Portal",
}


def audit_trail(client_id: int, family: str = "") -> Select[Any]:
    """The audit events of this client's data, newest first: only this client's events, only the families
    above (events of other clients, of no client, or of the agency's internal work never appear)."""
    families = [family] if family in AUDIT_FAMILIES else list(AUDIT_FAMILIES)
    return (
        select(AuditEvent)
        .where(
            AuditEvent.client_id == client_id,
            or_(*(AuditEvent.action.startswith(f + ".", autoescape=True) for f in families)),
        )
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    )


REPORTS_OPTIN_ACTION = "portal.reports_optin"


def report_recipients(client_id: int) -> dict[int, bool]:
    """{user id: receives the monthly report} from the latest opt-in event per user (no column needed).

    An opt-in is an audit event (`portal.reports_optin`, changes {"receives_reports": [old, new]}); the
    latest one per user is the current choice. Users who never chose do not receive reports.
    """
    latest = (
        select(AuditEvent.object_id, func.max(AuditEvent.id).label("last_id"))
        .where(AuditEvent.client_id == client_id, AuditEvent.action == REPORTS_OPTIN_ACTION)
        .group_by(AuditEvent.object_id)
        .subquery()
    )
    rows = db.session.execute(
        select(AuditEvent.object_id, AuditEvent.changes).join(latest, latest.c.last_id == AuditEvent.id)
    )
    out: dict[int, bool] = {}
    for object_id, changes in rows:
        value = (changes or {}).get("receives_reports")
        if isinstance(value, list) and len(value) == 2:
            out[int(object_id)] = bool(value[1])
    return out


def recipient_emails(client_id: int) -> list[str]:
    """E-mail addresses of the client's active users who opted in to the monthly report (for the report job)."""
    chosen = {uid for uid, on in report_recipients(client_id).items() if on}
    if not chosen:
        return []
    return list(
        db.session.scalars(
            select(User.email)
            .where(User.client_id == client_id, User.active.is_(True), User.id.in_(chosen))
            .order_by(User.email)
        )
    )
