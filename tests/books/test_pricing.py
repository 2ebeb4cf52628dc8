"""Fee pricing rules (pure): half-even rounding in basis points, the schedule in force, tier choice."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provider.books import pricing
from provider.books.pricing import Account, Schedule, Tier, bp_of


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10_000))
def test_bp_of_is_half_even_of_the_exact_product(amount: int, rate: int) -> None:
    exact = Decimal(amount) * Decimal(rate) / Decimal(10_000)
    assert bp_of(amount, rate) == int(exact.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


@pytest.mark.parametrize(("amount", "rate", "fee"), [(5, 1000, 0), (15, 1000, 2), (25, 1000, 2), (10_000, 1525, 1525)])
def test_bp_of_worked_examples(amount: int, rate: int, fee: int) -> None:
    assert bp_of(amount, rate) == fee


def _schedule(version: int, start: date, *tiers: Tier, currency: str = "EUR", tax: int = 2000) -> Schedule:
    return Schedule(version, version, start, currency, tax, tiers)


TIERS = (
    Tier(1, 0, 90, 0, 99_999, 2000, 1500),
    Tier(2, 0, 90, 100_000, None, 1200, 1000),
    Tier(3, 91, None, 0, None, 3000, 2500),
)


def test_the_version_in_force_on_the_day_received_prices_the_payment() -> None:
    old = _schedule(1, date(2025, 1, 1), Tier(9, 0, None, 0, None, 1000, 500))
    new = _schedule(2, date(2026, 1, 1), *TIERS)
    quote = pricing.price([old, new], Account(30, 50_000), date(2025, 12, 31), "EUR", 10_000, direct=False)
    assert (quote.priced, quote.tier_id, quote.fee_minor, quote.tax_minor) == (True, 9, 1000, 200)
    quote = pricing.price([old, new], Account(30, 50_000), date(2026, 1, 1), "EUR", 10_000, direct=False)
    assert (quote.tier_id, quote.fee_minor, quote.tax_minor) == (1, 2000, 400)


@pytest.mark.parametrize(
    ("age", "placed", "direct", "tier", "rate"),
    [(0, 0, False, 1, 2000), (90, 99_999, False, 1, 2000), (90, 100_000, False, 2, 1200), (91, 5, True, 3, 2500)],
)
def test_tiers_by_age_and_amount(age: int, placed: int, direct: bool, tier: int, rate: int) -> None:
    quote = pricing.price(
        [_schedule(1, date(2025, 1, 1), *TIERS)], Account(age, placed), date(2026, 3, 1), "EUR", 777, direct
    )
    assert (quote.tier_id, quote.rate_bp, quote.fee_minor) == (tier, rate, bp_of(777, rate))


def test_unpriced_payments_say_why() -> None:
    schedule = _schedule(1, date(2026, 1, 1), Tier(1, 0, 60, 0, None, 2000, 1500))
    before = pricing.price([schedule], Account(10, 1), date(2025, 6, 1), "EUR", 100, False)
    assert not before.priced and before.reason == "no fee schedule in force on 2025-06-01"
    too_old = pricing.price([schedule], Account(61, 1), date(2026, 6, 1), "EUR", 100, False)
    assert not too_old.priced and "61 days past due" in too_old.reason and too_old.fee_minor == 0
    other_currency = pricing.price(
        [_schedule(1, date(2026, 1, 1), Tier(1, 0, None, 1, None, 2000, 1500))],
        Account(5, 10),
        date(2026, 6, 1),
        "USD",
        100,
        False,
    )
    assert not other_currency.priced
