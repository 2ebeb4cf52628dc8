"""Writes for contract terms and business calendars. Services flush and audit; the caller commits."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clients.models import Client
from provider.core import audit
from provider.core.errors import ServiceError
from sla.models import BusinessCalendarRow, ClosedDay, ContractTerms, SlaCode, SlaTarget, SlaUnit

# The agency's standard contract (issue: "SLAs and disputes"); a client's contract may differ per version.
STANDARD_TARGETS: dict[str, tuple[str, int]] = {
    SlaCode.PLACEMENT_ACK: (SlaUnit.BUSINESS_DAYS, 1),
    SlaCode.FIRST_CONTACT: (SlaUnit.BUSINESS_DAYS, 2),
    SlaCode.DISPUTE_ACK: (SlaUnit.BUSINESS_DAYS, 1),
    SlaCode.DISPUTE_RESOLVE: (SlaUnit.BUSINESS_DAYS, 10),
    SlaCode.QUERY_ANSWER: (SlaUnit.BUSINESS_HOURS, 4),
    SlaCode.MONTHLY_REPORT: (SlaUnit.BUSINESS_DAY_OF_MONTH, 5),
    SlaCode.RECOVERY_RATE: (SlaUnit.PERCENT, 35),
    SlaCode.DSO: (SlaUnit.DAYS, 60),
}

TERMS_FIELDS = ("version", "effective_from", "at_risk_pct", "notes")


def add_contract_terms(
    session: Session,
    client: Client,
    effective_from: date,
    targets: dict[str, tuple[str, int]] | None = None,
    *,
    at_risk_pct: int = 75,
    notes: str = "",
) -> ContractTerms:
    """Record a new version of a client's contract terms, in force from `effective_from`.

    Earlier versions are kept (clocks started under them keep their allowance). Refuses unknown SLA codes
    or units, non-positive targets, an at-risk share outside 1-99 % and a second version on the same day."""
    targets = dict(STANDARD_TARGETS if targets is None else targets)
    problems = [c for c in targets if c not in set(SlaCode)]
    problems += [f"{c}:{u}" for c, (u, t) in targets.items() if u not in set(SlaUnit) or int(t) <= 0]
    if problems:
        raise ServiceError(f"invalid SLA targets: {', '.join(problems)}", field="targets")
    if not 0 < at_risk_pct < 100:
        raise ServiceError("the at-risk share must be between 1 and 99 %", field="at_risk_pct")
    clash = select(ContractTerms.id).where(
        ContractTerms.client_id == client.id, ContractTerms.effective_from == effective_from
    )
    if session.scalar(clash):
        raise ServiceError(f"a version of the terms already starts on {effective_from}", field="effective_from")
    latest = session.scalar(select(func.max(ContractTerms.version)).where(ContractTerms.client_id == client.id))
    terms = ContractTerms(
        client_id=client.id,
        version=(latest or 0) + 1,
        effective_from=effective_from,
        at_risk_pct=at_risk_pct,
        notes=notes[:300],
    )
    session.add(terms)
    session.flush()
    for code, (unit, target) in sorted(targets.items()):
        session.add(
            SlaTarget(client_id=client.id, terms_id=terms.id, code=str(code), unit=str(unit), target=int(target))
        )
    session.flush()
    session.expire(terms, ["targets"])
    after = audit.snapshot(terms, TERMS_FIELDS) | {"targets": {str(c): [str(u), t] for c, (u, t) in targets.items()}}
    audit.record(session, "contract_terms.create", terms, after=after)
    return terms


def set_business_calendar(session: Session, client: Client, data: dict[str, Any]) -> BusinessCalendarRow:
    """Set a client's working hours (minutes after midnight), workdays (Monday = 0) and holiday subdivision."""
    row = session.scalar(select(BusinessCalendarRow).where(BusinessCalendarRow.client_id == client.id))
    fields = ("work_start_min", "work_end_min", "workdays", "subdivision")
    before = audit.snapshot(row, fields) if row else None
    if row is None:
        row = BusinessCalendarRow(client_id=client.id)
        session.add(row)
    start, end = int(data.get("work_start_min", 540)), int(data.get("work_end_min", 1020))
    if not 0 <= start < end <= 1440:
        raise ServiceError("working hours must start before they end, within one day", field="work_start_min")
    days = sorted({int(d) for d in data.get("workdays", (0, 1, 2, 3, 4))})
    if not days or any(d not in range(7) for d in days):
        raise ServiceError("choose at least one working day (Monday = 0 ... Sunday = 6)", field="workdays")
    row.work_start_min, row.work_end_min = start, end
    row.workdays = ",".join(map(str, days))
    row.subdivision = (data.get("subdivision") or "").strip().upper()[:10]
    session.flush()
    audit.record(session, "calendar.update", row, before=before, after=audit.snapshot(row, fields))
    return row


def add_closed_day(session: Session, client: Client, day: date, reason: str = "") -> ClosedDay:
    if session.scalar(select(ClosedDay.id).where(ClosedDay.client_id == client.id, ClosedDay.day == day)):
        raise ServiceError(f"{day} is already a closed day", field="day")
    closed = ClosedDay(client_id=client.id, day=day, reason=reason[:120])
    session.add(closed)
    session.flush()
    audit.record(session, "calendar.closed_day", closed, after={"day": day, "reason": reason})
    return closed
