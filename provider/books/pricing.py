"""Pricing a payment's fee from the fee schedule in force: pure functions, no database.

Rules (the contract a re-computation must follow, to the minor unit):

- The schedule in force is the client's version with the greatest `effective_from` on or before the payment's
  date received. None: the payment is *unpriced* ("no fee schedule in force on <date>").
- The account is the debtor's placement: the invoices placed on the day the debtor was first placed (UTC date
  of `placed_at`). Its age is the largest (placement day - due date) in days among them, never below 0; its
  amount is the sum of their amounts in the payment's currency.
- The tier is the first (by lowest age, then lowest amount) whose age and amount ranges (inclusive, NULL =
  open) hold the account. Amount bounds are in the schedule's currency: a payment in another currency only
  matches tiers without amount bounds. No tier: *unpriced*, with the age and amount in the reason.
- fee = amount x rate / 10,000 (rate `rate_bp` for a payment to the agency, `direct_rate_bp` for a payment made
  directly to the client); tax = fee x `tax_rate_bp` / 10,000. Both rounded half to even, per payment, in the
  payment's currency (`bp_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol

from provider.core.money import format_money


def bp_of(amount_minor: int, rate_bp: int) -> int:
    """`amount_minor` x `rate_bp` / 10,000, rounded half to even (exact integer arithmetic)."""
    if amount_minor < 0:
        return -bp_of(-amount_minor, rate_bp)
    quotient, remainder = divmod(amount_minor * rate_bp, 10_000)
    if remainder * 2 > 10_000 or (remainder * 2 == 10_000 and quotient % 2 == 1):
        quotient += 1
    return quotient


class TierLike(Protocol):
    id: int
    min_age_days: int
    max_age_days: int | None
    min_amount_minor: int
    max_amount_minor: int | None
    rate_bp: int
    direct_rate_bp: int


@dataclass(frozen=True)
class Tier:
    id: int
    min_age_days: int
    max_age_days: int | None
    min_amount_minor: int
    max_amount_minor: int | None
    rate_bp: int
    direct_rate_bp: int

    @classmethod
    def of(cls, t: TierLike) -> Tier:
        return cls(
            t.id, t.min_age_days, t.max_age_days, t.min_amount_minor, t.max_amount_minor, t.rate_bp, t.direct_rate_bp
        )

    @property
    def has_amount_bounds(self) -> bool:
        return self.min_amount_minor > 0 or self.max_amount_minor is not None


@dataclass(frozen=True)
class Schedule:
    id: int
    version: int
    effective_from: date
    currency: str
    tax_rate_bp: int
    tiers: tuple[Tier, ...]


@dataclass(frozen=True)
class Account:
    """The debtor's placement as the tiers see it."""

    age_days: int
    amount_minor: int  # in the payment's currency


@dataclass(frozen=True)
class Price:
    priced: bool
    reason: str = ""
    schedule_id: int | None = None
    tier_id: int | None = None
    rate_bp: int | None = None
    tax_rate_bp: int | None = None
    fee_minor: int = 0
    tax_minor: int = 0


def schedule_in_force(schedules: list[Schedule], on: date) -> Schedule | None:
    """The version with the greatest `effective_from` on or before `on`."""
    best = None
    for s in schedules:
        if s.effective_from <= on and (best is None or s.effective_from > best.effective_from):
            best = s
    return best


def tier_for(schedule: Schedule, account: Account, currency: str) -> Tier | None:
    for tier in sorted(schedule.tiers, key=lambda t: (t.min_age_days, t.min_amount_minor)):
        if account.age_days < tier.min_age_days:
            continue
        if tier.max_age_days is not None and account.age_days > tier.max_age_days:
            continue
        if tier.has_amount_bounds:
            if currency != schedule.currency:
                continue
            if account.amount_minor < tier.min_amount_minor:
                continue
            if tier.max_amount_minor is not None and account.amount_minor > tier.max_amount_minor:
                continue
        return tier
    return None


def price(
    schedules: list[Schedule],
    account: Account | None,
    received_on: date,
    currency: str,
    amount_minor: int,
    direct: bool,
) -> Price:
    """The fee and tax of one payment, or why it cannot be priced (a sentence for the agency's page)."""
    schedule = schedule_in_force(schedules, received_on)
    if schedule is None:
        return Price(False, f"no fee schedule in force on {received_on.isoformat()}")
    if account is None:
        return Price(False, "the debtor has no placed invoice to take the account's age from", schedule.id)
    tier = tier_for(schedule, account, currency)
    if tier is None:
        placed = format_money(account.amount_minor, currency)
        return Price(
            False,
            f"fee schedule version {schedule.version} has no rate for an account {account.age_days} days past due"
            f" at placement with {placed} placed",
            schedule.id,
        )
    rate = tier.direct_rate_bp if direct else tier.rate_bp
    fee = bp_of(amount_minor, rate)
    return Price(True, "", schedule.id, tier.id, rate, schedule.tax_rate_bp, fee, bp_of(fee, schedule.tax_rate_bp))
