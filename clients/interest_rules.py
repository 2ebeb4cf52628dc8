"""Late-payment interest and compensation: the rules, as pure functions of dates, balances and rates.

Nothing here reads the database; `clients.interest` feeds these functions from the journal and posts what they
return. What they guarantee:

- **Simple daily interest on the open principal**, from the day after the due date up to and including the
  day being accrued: interest for day *d* is `principal open at the end of day d-1 * annual rate(d) / basis`,
  so a payment received on day *p* still bears that day's interest and none after.
- **Exact arithmetic**: rates are integer basis points (1/100 of a percent point), balances integer minor
  units, the sum over days a `Fraction`; the cumulative total is rounded once (half up) to the minor unit.
  Each accrual posts `rounded total through D - what was charged before`, so running again posts nothing and a
  missed night is caught up by the next run without any day counted twice.
- **Rates** (`annual_rate_bp`):
    contract      the contract's own annual rate, with the contract's day count (actual/365 or actual/360)
    statutory_eu  Directive 2011/7/EU art. 2(6): the ECB main refinancing rate in force on the first calendar
                  day of the half-year (1 January, 1 July) + 8 points, changing with each half-year; actual/365
    statutory_uk  Late Payment of Commercial Debts (Interest) Act 1998 s.6 and the 2002 order: the Bank of England
                  base rate in force on 31 December (for interest starting January-June) or 30 June (July-
                  December) before the day interest starts to run + 8 points, fixed for the life of the debt;
                  actual/365
  Member states add their own details (Germany's base rate + 9 for businesses, for instance); a client whose
  contract says otherwise is set up with a contract rate.
- **Compensation** once per invoice, on the day after the due date when the invoice was still open:
  eu_flat  EUR 40 (Directive art. 6), for EUR invoices only;
  uk_banded  GBP 40 below GBP 1,000, GBP 70 below GBP 10,000, GBP 100 from GBP 10,000 (the 1998 Act s.5A), for GBP
  invoices only, banded by the principal open on the due date;
  fixed  a fixed amount in one currency, for invoices in that currency.
- The terms in force on a day decide that day: a day before any late-payment terms, or under basis `none`, bears
  no interest.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from fractions import Fraction

STATUTORY_MARGIN_BP = 800  # + 8 percentage points, in both the EU directive and the UK Act
EU_COMPENSATION = ("EUR", 4000)
UK_BANDS = ((100_000, 4000), (1_000_000, 7000))  # (below this principal in pence, charge in pence)
UK_TOP_BAND = 10_000  # GBP 100 in pence


class InterestBasis(StrEnum):
    NONE = "none"
    STATUTORY_EU = "statutory_eu"
    STATUTORY_UK = "statutory_uk"
    CONTRACT = "contract"


class Compensation(StrEnum):
    NONE = "none"
    EU_FLAT = "eu_flat"
    UK_BANDED = "uk_banded"
    FIXED = "fixed"


class DayCount(StrEnum):
    ACT_365 = "act_365"
    ACT_360 = "act_360"


class RateSeries(StrEnum):
    ECB_MRO = "ecb_mro"  # ECB main refinancing operations rate
    BOE_BASE = "boe_base"  # Bank of England Bank Rate


BASIS_LABELS = {
    InterestBasis.NONE: "No interest",
    InterestBasis.STATUTORY_EU: "Statutory, EU (ECB rate + 8 points)",
    InterestBasis.STATUTORY_UK: "Statutory, UK (Bank of England base rate + 8 points)",
    InterestBasis.CONTRACT: "Contract rate",
}
COMPENSATION_LABELS = {
    Compensation.NONE: "No fixed compensation",
    Compensation.EU_FLAT: "EUR 40 per invoice (EU)",
    Compensation.UK_BANDED: "GBP 40 / 70 / 100 by amount (UK)",
    Compensation.FIXED: "A fixed amount per invoice",
}
DAY_COUNT_LABELS = {DayCount.ACT_365: "actual/365", DayCount.ACT_360: "actual/360"}
SERIES_LABELS = {
    RateSeries.ECB_MRO: "ECB main refinancing rate",
    RateSeries.BOE_BASE: "Bank of England base rate",
}


class MissingRate(ValueError):
    """No reference rate is known for the day a statutory rate needs one."""


@dataclass(frozen=True)
class LateTerms:
    """One version of a client's late-payment terms, in force from `effective_from`."""

    effective_from: date
    basis: InterestBasis = InterestBasis.NONE
    contract_rate_bp: int = 0
    day_count: DayCount = DayCount.ACT_365
    compensation: Compensation = Compensation.NONE
    fixed_minor: int = 0
    fixed_currency: str = ""

    @property
    def days_in_year(self) -> int:
        if self.basis in (InterestBasis.STATUTORY_EU, InterestBasis.STATUTORY_UK):
            return 365
        return 360 if self.day_count == DayCount.ACT_360 else 365


class Rates:
    """Reference rates by series: `(effective_from, rate_bp)` pairs; the rate on a day is the latest on or before it."""

    def __init__(self, table: dict[str, Iterable[tuple[date, int]]]) -> None:
        self._days: dict[str, list[date]] = {}
        self._bps: dict[str, list[int]] = {}
        for series, rows in table.items():
            ordered = sorted(rows)
            self._days[series] = [d for d, _ in ordered]
            self._bps[series] = [bp for _, bp in ordered]

    def on(self, series: RateSeries, day: date) -> int:
        days = self._days.get(series.value, [])
        i = bisect.bisect_right(days, day)
        if i == 0:
            raise MissingRate(f"no {SERIES_LABELS[series]} is recorded on or before {day.isoformat()}")
        return self._bps[series.value][i - 1]


def half_year_start(day: date) -> date:
    return date(day.year, 1 if day.month <= 6 else 7, 1)


def uk_reference_day(interest_starts: date) -> date:
    """31 December before a first-half start, 30 June before a second-half start (the 2002 order)."""
    if interest_starts.month <= 6:
        return date(interest_starts.year - 1, 12, 31)
    return date(interest_starts.year, 6, 30)


def annual_rate_bp(terms: LateTerms, day: date, interest_starts: date, rates: Rates) -> int:
    """The annual rate (basis points) that applies on `day` to a debt whose interest started on `interest_starts`."""
    if terms.basis == InterestBasis.CONTRACT:
        return terms.contract_rate_bp
    if terms.basis == InterestBasis.STATUTORY_EU:
        return rates.on(RateSeries.ECB_MRO, half_year_start(day)) + STATUTORY_MARGIN_BP
    if terms.basis == InterestBasis.STATUTORY_UK:
        return rates.on(RateSeries.BOE_BASE, uk_reference_day(interest_starts)) + STATUTORY_MARGIN_BP
    return 0


def terms_on(versions: Sequence[LateTerms], day: date) -> LateTerms | None:
    """The version in force on `day` (versions sorted by `effective_from`), or None before the first."""
    starts = [v.effective_from for v in versions]
    i = bisect.bisect_right(starts, day)
    return versions[i - 1] if i else None


def balance_before(movements: Sequence[tuple[date, int]], day: date) -> int:
    """The principal open at the end of the day before `day`: the movements dated before `day`, summed."""
    return sum(amount for on, amount in movements if on < day)


def round_half_up(value: Fraction) -> int:
    return int((value + Fraction(1, 2)).__floor__()) if value >= 0 else -int((-value + Fraction(1, 2)).__floor__())


def accrued_interest(
    movements: Sequence[tuple[date, int]], due: date, through: date, versions: Sequence[LateTerms], rates: Rates
) -> Fraction:
    """Interest (minor units, exact) of one invoice from the day after `due` through `through`, inclusive.

    `movements` are the invoice's principal movements `(date, amount)` (placement +, payments and credits -);
    `versions` the client's late-payment terms sorted by start. Walks segments on which balance, terms and rate
    are constant, so the cost is the number of movements and versions, not of days.
    """
    first = due + timedelta(days=1)
    if through < first:
        return Fraction(0)
    breaks = {first, through + timedelta(days=1)}
    breaks |= {on + timedelta(days=1) for on, _ in movements}
    breaks |= {v.effective_from for v in versions}
    year = first.year
    while date(year, 1, 1) <= through:
        breaks |= {date(year, 1, 1), date(year, 7, 1)}
        year += 1
    points = sorted(b for b in breaks if first <= b <= through + timedelta(days=1))
    ordered = sorted(movements)
    total = Fraction(0)
    for start, end in itertools.pairwise(points):
        terms = terms_on(versions, start)
        if terms is None or terms.basis == InterestBasis.NONE:
            continue
        balance = balance_before(ordered, start)
        if balance <= 0:
            continue
        rate = annual_rate_bp(terms, start, first, rates)
        total += Fraction(balance * rate * (end - start).days, 10_000 * terms.days_in_year)
    return total


def compensation_due(
    movements: Sequence[tuple[date, int]], due: date, currency: str, versions: Sequence[LateTerms]
) -> int:
    """The fixed compensation an invoice earned on the day after its due date (0 when none applies)."""
    first = due + timedelta(days=1)
    terms = terms_on(versions, first)
    principal = balance_before(movements, first)
    if terms is None or principal <= 0:
        return 0
    if terms.compensation == Compensation.EU_FLAT:
        return EU_COMPENSATION[1] if currency == EU_COMPENSATION[0] else 0
    if terms.compensation == Compensation.UK_BANDED:
        if currency != "GBP":
            return 0
        for below, charge in UK_BANDS:
            if principal < below:
                return charge
        return UK_TOP_BAND
    if terms.compensation == Compensation.FIXED and terms.fixed_currency == currency:
        return terms.fixed_minor
    return 0
