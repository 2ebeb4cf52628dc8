"""The KPI formulas of DESIGN §7 as pure functions of integer sums (minor units).

Money stays integer; ratios (days, percentages) are `Decimal`, rounded only for display. A ratio whose
denominator is zero is `None` ("not defined"), never 0 or infinity.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

CEI_FORMULA = (
    "CEI = (beginning AR + credit sales ÷ N - ending total AR) ÷ (beginning AR + credit sales ÷ N - ending current AR)"
    " x 100, N = number of months in the period (Credit Research Foundation form)"
)
DSO_FORMULA = "DSO = ending AR ÷ credit sales x days in period"
BPDSO_FORMULA = "Best possible DSO = ending current (not yet due) AR ÷ credit sales x days in period; ADD = DSO - BPDSO"
COUNTBACK_FORMULA = (
    "Countback DSO: from ending AR subtract each month's credit sales, newest first, adding that month's days;"
    " for the last month add (remaining AR ÷ that month's sales) x its days"
)


def month_start(day: date) -> date:
    return day.replace(day=1)


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def add_months(day: date, months: int) -> date:
    """The first day of the month `months` after (or before) the month of `day`."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def parse_month(text: str) -> date:
    """'2026-10' -> 2026-10-01; ValueError otherwise."""
    year, _, month = (text or "").partition("-")
    if len(year) != 4 or len(month) != 2 or not (year + month).isdigit() or not 1 <= int(month) <= 12:
        raise ValueError(f"“{text}” is not a month (YYYY-MM)")
    return date(int(year), int(month), 1)


def days_between(start: date, end: date) -> int:
    """Days in the period [start, end], both included."""
    return (end - start).days + 1


def previous_day(day: date) -> date:
    return day - timedelta(days=1)


def _ratio(numerator: int | Decimal, denominator: int | Decimal) -> Decimal | None:
    if not denominator:
        return None
    return Decimal(numerator) / Decimal(denominator)


def dso(ar: int, sales: int, days: int) -> Decimal | None:
    """Standard DSO = AR / S x D."""
    r = _ratio(ar, sales)
    return None if r is None else r * days


def best_possible_dso(current_ar: int, sales: int, days: int) -> Decimal | None:
    """BPDSO = current (not yet due) AR / S x D."""
    return dso(current_ar, sales, days)


def average_days_delinquent(ar: int, current_ar: int, sales: int, days: int) -> Decimal | None:
    """ADD = DSO - BPDSO."""
    standard, best = dso(ar, sales, days), best_possible_dso(current_ar, sales, days)
    return None if standard is None or best is None else standard - best


def countback_dso(ar: int, monthly: Sequence[tuple[int, int]]) -> Decimal | None:
    """Countback DSO. `monthly` is [(credit sales, days in month)], newest month first.

    Subtract each month's sales from AR while AR remains, adding the month's days; the month that exhausts
    AR adds its share. When AR outlasts every month given, the days of all of them are returned (a floor).
    """
    if ar <= 0:
        return Decimal(0)
    remaining, total = Decimal(ar), Decimal(0)
    for sales, days in monthly:
        if sales <= 0:
            total += days
            continue
        if remaining > sales:
            remaining -= sales
            total += days
        else:
            return total + remaining / Decimal(sales) * days
    return total if monthly else None


def countback_runs_out(ar: int, monthly: Sequence[tuple[int, int]]) -> bool:
    """True when AR outlasts every month's sales given: `countback_dso` is then only a lower bound (the days of
    all those months), to be shown as "> 730 days", never as the value."""
    return ar > 0 and bool(monthly) and ar > sum(sales for sales, _ in monthly if sales > 0)


def cei(begin_ar: int, sales: int, end_ar: int, end_current_ar: int, months: int = 1) -> Decimal | None:
    """Collection effectiveness index, CRF form (sales ÷ N), in percent."""
    per_month = Decimal(sales) / Decimal(months)
    denominator = Decimal(begin_ar) + per_month - Decimal(end_current_ar)
    if denominator == 0:
        return None
    return (Decimal(begin_ar) + per_month - Decimal(end_ar)) / denominator * 100


def percent(part: int, whole: int) -> Decimal | None:
    r = _ratio(part, whole)
    return None if r is None else r * 100


def rounded(value: Decimal | None, places: int = 2) -> str | None:
    """A ratio as a fixed-point string for JSON storage and display ('45.00'), or None."""
    if value is None:
        return None
    return str(value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
