"""The words a person reads for the SLA package's codes: SLA terms, units, dispute reasons, states and outcomes.

One table per code, used by every page, the monthly report and its PDF, so a dispute state has one name
everywhere ("Waiting for your answer" in the portal, "Waiting for the client" in the back office, for the same
`awaiting_client`). A code missing from a table (added later) is shown capitalised with spaces, never raw.
"""

from __future__ import annotations

TERMS = {
    "placement_ack": "Placement acknowledged",
    "first_contact": "First contact with the debtor",
    "dispute_ack": "Dispute acknowledged",
    "dispute_resolve": "Dispute resolved",
    "query_answer": "Question answered",
    "monthly_report": "Monthly report delivered",
    "recovery_rate": "Recovery rate",
    "dso": "DSO",
}

UNITS = {
    "business_days": ("business day", "business days"),
    "business_hours": ("business hour", "business hours"),
    "business_day_of_month": ("business day of the month", "business day of the month"),
    "percent": ("%", "%"),
    "days": ("day", "days"),
}

REASONS = {
    "pricing": "Price differs from the agreed price",
    "quantity": "Quantity differs from what was delivered",
    "not_received": "Goods or service not received",
    "damaged": "Delivered damaged",
    "duplicate_billing": "Billed twice",
    "already_paid": "Already paid",
    "service_quality": "Service quality",
    "other": "Other",
}

# the same state for staff and for the client's own users: only the owner of the next step differs
STATUSES = {
    "open": "Open",
    "acknowledged": "Acknowledged",
    "investigating": "Being investigated",
    "awaiting_client": "Waiting for the client",
    "resolved": "Resolved",
    "withdrawn": "Withdrawn",
}
PORTAL_STATUSES = {**STATUSES, "awaiting_client": "Waiting for your answer"}

RESOLUTIONS = {
    "credit_note": "Credit note",
    "upheld": "Invoice upheld",
    "partially_upheld": "Partly credited",
    "written_off": "Written off",
}

SUBJECTS = {
    "dispute": "Dispute",
    "debtor": "Debtor",
    "placement": "Placement file",
    "report": "Monthly report",
    "query": "Question",
}


def _fallback(code: str | None) -> str:
    return (code or "").replace("_", " ").capitalize()


def term(code: str | None) -> str:
    return TERMS.get(code or "", _fallback(code))


def reason(code: str | None) -> str:
    return REASONS.get(code or "", _fallback(code))


def status(code: str | None, *, portal: bool = False) -> str:
    return (PORTAL_STATUSES if portal else STATUSES).get(code or "", _fallback(code))


def resolution(code: str | None) -> str:
    return RESOLUTIONS.get(code or "", _fallback(code))


def target(value: object, unit: str) -> str:
    """ "2 business days", "1 business day", "by the 5th business day of the month", "85 %"."""
    one, many = UNITS.get(unit, (unit.replace("_", " "),) * 2)
    if unit == "business_day_of_month":
        n = int(str(value))
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"by the {n}{suffix} {one}"
    if unit == "percent":
        return f"{value} %"
    return f"{value} {one if str(value) in ('1', '1.0') else many}"


def subject(kind: str | None) -> str:
    """ "dispute", "placement file": what a clock runs for, inside a sentence."""
    return SUBJECTS.get(kind or "", _fallback(kind)).lower()
