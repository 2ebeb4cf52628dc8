"""Writes for contract terms and business calendars. Services flush and audit; the caller commits."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import holidays
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


class CalendarInvalid(ServiceError):
    """A calendar change with one or more invalid fields; `errors` maps each field to its messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for ms in errors.values() for m in ms), field=next(iter(errors)))
        self.errors = errors


CALENDAR_FIELDS = ("work_start_min", "work_end_min", "workdays", "subdivision")


def subdivisions_of(country: str) -> list[str]:
    """The subdivisions (states, regions) the `holidays` library knows for a country."""
    return list(holidays.list_supported_countries().get(country, []))


def set_business_calendar(session: Session, client: Client, data: dict[str, Any]) -> BusinessCalendarRow:
    """Set a client's working hours (minutes after local midnight), workdays (Monday = 0) and the subdivision
    whose public holidays apply. Checks every field and raises `CalendarInvalid` with all the problems;
    nothing is written then. Clocks already running keep their deadline; clocks started later use the new
    calendar."""
    errors: dict[str, list[str]] = {}
    start, end = _minutes(data.get("work_start_min", 540)), _minutes(data.get("work_end_min", 1020))
    if start is None or not 0 <= start < 1440:
        errors["work_start_min"] = ["give the opening time as HH:MM"]
    if end is None or not 0 < end <= 1440:
        errors["work_end_min"] = ["give the closing time as HH:MM (24:00 at the latest)"]
    elif start is not None and end <= start:
        errors["work_end_min"] = ["the working day must end after it starts"]
    try:
        days = sorted({int(d) for d in data.get("workdays", (0, 1, 2, 3, 4))})
    except (TypeError, ValueError):
        days = [-1]
    if not days or any(d not in range(7) for d in days):
        errors["workdays"] = ["choose at least one working day"]
    subdivision = str(data.get("subdivision") or "").strip().upper()
    if subdivision and subdivision not in subdivisions_of(client.country):
        errors["subdivision"] = [
            f"{subdivision} is not a subdivision of {client.country} known to the holiday calendar"
        ]
    if errors:
        raise CalendarInvalid(errors)
    row = session.scalar(select(BusinessCalendarRow).where(BusinessCalendarRow.client_id == client.id))
    before = audit.snapshot(row, CALENDAR_FIELDS) if row else None
    if row is None:
        row = BusinessCalendarRow(client_id=client.id)
        session.add(row)
    row.work_start_min, row.work_end_min = start, end
    row.workdays = ",".join(map(str, days))
    row.subdivision = subdivision
    session.flush()
    audit.record(session, "calendar.update", row, before=before, after=audit.snapshot(row, CALENDAR_FIELDS))
    return row


def _minutes(value: Any) -> int | None:
    """Minutes after midnight from an int or "HH:MM" ("24:00" is the end of the day)."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", str(value or ""))
    if match is None:
        return int(value) if str(value or "").strip().isdigit() else None
    hours, minutes = int(match[1]), int(match[2])
    return hours * 60 + minutes if minutes < 60 and hours * 60 + minutes <= 1440 else None


def add_closed_day(session: Session, client: Client, day: date | None, reason: str = "") -> ClosedDay:
    """An extra day the client does not work (a company holiday). Clocks started afterwards skip it;
    running clocks keep their deadline. Refuses a missing date and a day that is already closed."""
    if day is None:
        raise ServiceError("give the date of the closed day", field="day")
    if len(reason or "") > 120:
        raise ServiceError("the reason is longer than 120 characters", field="reason")
    if session.scalar(select(ClosedDay.id).where(ClosedDay.client_id == client.id, ClosedDay.day == day)):
        raise ServiceError(f"{day} is already a closed day", field="day")
    closed = ClosedDay(client_id=client.id, day=day, reason=(reason or "").strip())
    session.add(closed)
    session.flush()
    audit.record(session, "calendar.closed_day", closed, after={"day": day, "reason": closed.reason})
    return closed


def remove_closed_day(session: Session, closed: ClosedDay) -> None:
    """Open a closed day again (audited). Deadlines already computed are not moved."""
    audit.record(session, "calendar.reopen_day", closed, before={"day": closed.day, "reason": closed.reason})
    session.delete(closed)
    session.flush()
