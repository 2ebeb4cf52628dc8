"""Writes of the agency's books that people ask for: fee schedule versions (the rest is posted by
`provider.books.posting` and `provider.books.remittance`). Services flush, never commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from clients.models import Client
from provider.books.models import Cycle, FeeSchedule, FeeTier
from provider.core import audit, jobs
from provider.core.errors import ServiceError
from provider.core.money import MoneyError, validate_currency

SCHEDULE_FIELDS = (
    "version",
    "effective_from",
    "currency",
    "tax_rate_bp",
    "per_placement_minor",
    "per_letter_minor",
    "monthly_minimum_minor",
    "remittance_cycle",
    "note",
    "bill_to",
)


class ScheduleInvalid(ServiceError):
    """A fee schedule with one or more problems; `errors` maps each field to its messages (nothing written)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(m for ms in errors.values() for m in ms), field=next(iter(errors)))
        self.errors = errors


@dataclass(frozen=True)
class TierInput:
    min_age_days: int
    max_age_days: int | None
    rate_bp: int
    direct_rate_bp: int
    min_amount_minor: int = 0
    max_amount_minor: int | None = None


def _overlap(a: TierInput, b: TierInput) -> bool:
    def meets(lo1: int, hi1: int | None, lo2: int, hi2: int | None) -> bool:
        return (hi1 is None or lo2 <= hi1) and (hi2 is None or lo1 <= hi2)

    return meets(a.min_age_days, a.max_age_days, b.min_age_days, b.max_age_days) and meets(
        a.min_amount_minor, a.max_amount_minor, b.min_amount_minor, b.max_amount_minor
    )


def tier_problems(tiers: list[TierInput]) -> list[str]:
    """Every problem of a set of tiers (ranges, rates, overlaps), as sentences naming the tier by its row."""
    problems: list[str] = []
    if not tiers:
        problems.append("a fee schedule needs at least one rate")
    for n, t in enumerate(tiers, start=1):
        if t.min_age_days < 0 or (t.max_age_days is not None and t.max_age_days < t.min_age_days):
            problems.append(f"rate {n}: the days past due run backwards")
        if t.min_amount_minor < 0 or (t.max_amount_minor is not None and t.max_amount_minor < t.min_amount_minor):
            problems.append(f"rate {n}: the placed amounts run backwards")
        for name, rate in (("rate", t.rate_bp), ("rate on direct payments", t.direct_rate_bp)):
            if not 0 <= rate <= 10_000:
                problems.append(f"rate {n}: the {name} must be between 0 % and 100 %")
    for i, a in enumerate(tiers, start=1):
        for j, b in enumerate(tiers[i:], start=i + 1):
            if _overlap(a, b):
                problems.append(f"rates {i} and {j} overlap: an account would match both")
    return problems


def add_fee_schedule(
    session: Session,
    client: Client,
    *,
    effective_from: date,
    currency: str,
    tiers: list[TierInput],
    tax_rate_bp: int = 0,
    per_placement_minor: int = 0,
    per_letter_minor: int = 0,
    monthly_minimum_minor: int = 0,
    remittance_cycle: str = Cycle.MONTHLY.value,
    note: str = "",
    bill_to: str = "",
) -> FeeSchedule:
    """Record a new version of a client's fee schedule, in force from `effective_from`. Earlier versions stay
    (payments priced under them keep their fee). Every problem is collected and nothing is written when there
    is one. Queues the client's books job, which prices the payments that were waiting for a schedule."""
    errors: dict[str, list[str]] = {}
    try:
        currency = validate_currency(currency)
    except MoneyError as exc:
        errors.setdefault("currency", []).append(str(exc))
    if not 0 <= tax_rate_bp <= 10_000:
        errors.setdefault("tax_rate", []).append("the tax rate must be between 0 % and 100 %")
    for name, value in (
        ("per_placement", per_placement_minor),
        ("per_letter", per_letter_minor),
        ("monthly_minimum", monthly_minimum_minor),
    ):
        if value < 0:
            errors.setdefault(name, []).append(f"the {name.replace('_', ' ')} fee cannot be negative")
    if remittance_cycle not in {c.value for c in Cycle}:
        errors.setdefault("remittance_cycle", []).append("remittances are weekly or monthly")
    if problems := tier_problems(tiers):
        errors["tiers"] = problems
    clash = select(FeeSchedule.id).where(
        FeeSchedule.client_id == client.id, FeeSchedule.effective_from == effective_from
    )
    if session.scalar(clash):
        errors.setdefault("effective_from", []).append(
            f"a version of the fee schedule already starts on {effective_from.isoformat()}"
        )
    if errors:
        raise ScheduleInvalid(errors)
    latest = session.scalar(select(func.max(FeeSchedule.version)).where(FeeSchedule.client_id == client.id))
    schedule = FeeSchedule(
        client_id=client.id,
        version=(latest or 0) + 1,
        effective_from=effective_from,
        currency=currency,
        tax_rate_bp=tax_rate_bp,
        per_placement_minor=per_placement_minor,
        per_letter_minor=per_letter_minor,
        monthly_minimum_minor=monthly_minimum_minor,
        remittance_cycle=remittance_cycle,
        note=note[:300],
        bill_to="\n".join(line.strip() for line in bill_to.strip().splitlines() if line.strip())[:500],
        created_by=audit.current_actor().label[:254],
    )
    session.add(schedule)
    session.flush()
    for t in tiers:
        session.add(
            FeeTier(
                client_id=client.id,
                schedule_id=schedule.id,
                min_age_days=t.min_age_days,
                max_age_days=t.max_age_days,
                min_amount_minor=t.min_amount_minor,
                max_amount_minor=t.max_amount_minor,
                rate_bp=t.rate_bp,
                direct_rate_bp=t.direct_rate_bp,
            )
        )
    session.flush()
    session.expire(schedule, ["tiers"])
    after: dict[str, Any] = audit.snapshot(schedule, SCHEDULE_FIELDS) | {"tiers": [t.__dict__ for t in tiers]}
    audit.record(session, "fee_schedule.create", schedule, after=after)
    from provider.books.jobs import post_books_job

    jobs.enqueue(post_books_job, client.id, job_id=f"books:{client.id}")
    return schedule
