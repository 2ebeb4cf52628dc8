"""Late-payment rules against hand-worked figures and an independent day-by-day computation (no database)."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.interest_rules import (
    Compensation,
    DayCount,
    InterestBasis,
    LateTerms,
    MissingRate,
    Rates,
    accrued_interest,
    compensation_due,
    round_half_up,
)

RATES = Rates(
    {
        "ecb_mro": [
            (date(2016, 3, 16), 0),
            (date(2023, 9, 20), 450),
            (date(2024, 6, 12), 425),
            (date(2025, 6, 11), 215),
        ],
        "boe_base": [(date(2023, 8, 3), 525), (date(2024, 8, 1), 500), (date(2025, 5, 8), 425)],
    }
)


def test_eu_statutory_interest_worked_example() -> None:
    """EUR 10,000.00 due 31 Jan 2024, unpaid for 30 days: ECB rate on 1 Jan 2024 4.50% + 8 = 12.50% a year;
    1,000,000 x 0.125 x 30 / 365 = 10,273.97... cents -> 10,274."""
    terms = [LateTerms(date(2020, 1, 1), InterestBasis.STATUTORY_EU)]
    owed = accrued_interest([(date(2024, 1, 1), 1_000_000)], date(2024, 1, 31), date(2024, 3, 1), terms, RATES)
    assert round_half_up(owed) == 10_274


def test_eu_rate_follows_the_half_year_uk_rate_is_fixed_when_interest_starts() -> None:
    """Across 1 July 2024 the EU rate changes to the ECB rate of 1 July (4.25%); the UK rate stays the base rate of
    31 December 2023 (5.25%) for the life of the debt although the base rate fell on 1 August 2024."""
    debt = [(date(2024, 5, 1), 365_000)]
    due, through = date(2024, 5, 31), date(2024, 8, 31)
    eu = accrued_interest(debt, due, through, [LateTerms(date(2020, 1, 1), InterestBasis.STATUTORY_EU)], RATES)
    # June: 30 days at 12.50%; July-August: 62 days at 12.25%
    assert eu == Fraction(365_000 * 1250 * 30 + 365_000 * 1225 * 62, 10_000 * 365)
    uk = accrued_interest(debt, due, through, [LateTerms(date(2020, 1, 1), InterestBasis.STATUTORY_UK)], RATES)
    assert uk == Fraction(365_000 * 1325 * 92, 10_000 * 365)


def test_contract_rate_on_actual_360_and_a_payment_stops_interest_after_its_day() -> None:
    terms = [LateTerms(date(2020, 1, 1), InterestBasis.CONTRACT, 1200, DayCount.ACT_360)]
    moves = [(date(2026, 1, 1), 360_000), (date(2026, 2, 10), -360_000)]
    # due 31 Jan: interest for 1..10 February inclusive (paid on the 10th), 10 days at 12% on 360 days
    assert accrued_interest(moves, date(2026, 1, 31), date(2026, 3, 31), terms, RATES) == Fraction(1200)


def test_no_interest_before_the_terms_or_under_none() -> None:
    moves = [(date(2026, 1, 1), 100_000)]
    terms = [LateTerms(date(2026, 3, 1), InterestBasis.CONTRACT, 3650)]
    # due 31 Jan; terms from 1 March: only 1..10 March bear interest: 100,000 x 0.365 x 10 / 365
    assert accrued_interest(moves, date(2026, 1, 31), date(2026, 3, 10), terms, RATES) == Fraction(1000)
    none = [LateTerms(date(2020, 1, 1), InterestBasis.NONE)]
    assert accrued_interest(moves, date(2026, 1, 31), date(2026, 3, 10), none, RATES) == 0


def test_a_missing_reference_rate_is_refused_by_name() -> None:
    with pytest.raises(MissingRate, match="ECB main refinancing rate"):
        accrued_interest(
            [(date(2010, 1, 1), 100)],
            date(2010, 1, 31),
            date(2010, 2, 5),
            [LateTerms(date(2009, 1, 1), InterestBasis.STATUTORY_EU)],
            RATES,
        )


@pytest.mark.parametrize(
    ("compensation", "currency", "principal", "expected"),
    [
        (Compensation.EU_FLAT, "EUR", 5_00, 40_00),
        (Compensation.EU_FLAT, "USD", 5_00, 0),
        (Compensation.UK_BANDED, "GBP", 999_99, 40_00),
        (Compensation.UK_BANDED, "GBP", 1_000_00, 70_00),
        (Compensation.UK_BANDED, "GBP", 9_999_99, 70_00),
        (Compensation.UK_BANDED, "GBP", 10_000_00, 100_00),
        (Compensation.UK_BANDED, "EUR", 10_000_00, 0),
        (Compensation.FIXED, "USD", 5_00, 25_00),
        (Compensation.FIXED, "EUR", 5_00, 0),
    ],
)
def test_compensation_by_scheme_currency_and_band(
    compensation: Compensation, currency: str, principal: int, expected: int
) -> None:
    terms = [
        LateTerms(
            date(2020, 1, 1), InterestBasis.NONE, compensation=compensation, fixed_minor=25_00, fixed_currency="USD"
        )
    ]
    assert compensation_due([(date(2026, 1, 1), principal)], date(2026, 1, 31), currency, terms) == expected
    # paid on the due date: no compensation
    paid = [(date(2026, 1, 1), principal), (date(2026, 1, 31), -principal)]
    assert compensation_due(paid, date(2026, 1, 31), currency, terms) == 0


# --- the property: segments equal a literal day-by-day walk -------------------------------------------------


def _rate_on(table: list[tuple[date, int]], day: date) -> int:
    found = None
    for start, bp in table:  # deliberately a linear scan
        if start <= day:
            found = bp
    assert found is not None
    return found


def day_by_day(
    moves: list[tuple[date, int]],
    due: date,
    through: date,
    versions: list[LateTerms],
    ecb: list[tuple[date, int]],
    boe: list[tuple[date, int]],
) -> Fraction:
    total = Fraction(0)
    starts = due + timedelta(days=1)
    day = starts
    while day <= through:
        in_force = [v for v in versions if v.effective_from <= day]
        if in_force:
            terms = in_force[-1]
            balance = sum(a for on, a in moves if on <= day - timedelta(days=1))
            if terms.basis == InterestBasis.CONTRACT:
                rate = terms.contract_rate_bp
                year = 360 if terms.day_count == DayCount.ACT_360 else 365
            elif terms.basis == InterestBasis.STATUTORY_EU:
                rate = _rate_on(ecb, date(day.year, 1 if day.month < 7 else 7, 1)) + 800
                year = 365
            elif terms.basis == InterestBasis.STATUTORY_UK:
                ref = date(starts.year - 1, 12, 31) if starts.month < 7 else date(starts.year, 6, 30)
                rate = _rate_on(boe, ref) + 800
                year = 365
            else:
                rate, year = 0, 365
            if balance > 0:
                total += Fraction(balance * rate, 10_000 * year)
        day += timedelta(days=1)
    return total


days = st.integers(min_value=0, max_value=700)
BASE = date(2024, 1, 1)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple:
    amount = draw(st.integers(min_value=1, max_value=10_000_000))
    due = BASE + timedelta(days=draw(st.integers(0, 120)))
    moves = [(BASE, amount)]
    for _ in range(draw(st.integers(0, 5))):
        moves.append((BASE + timedelta(days=draw(days)), -draw(st.integers(1, amount))))
    versions = []
    for start in sorted(set(draw(st.lists(days, min_size=1, max_size=3)))):
        basis = draw(st.sampled_from(list(InterestBasis)))
        versions.append(
            LateTerms(
                BASE - timedelta(days=30) + timedelta(days=start),
                basis,
                draw(st.integers(1, 5000)),
                draw(st.sampled_from(list(DayCount))),
            )
        )
    ecb = [(date(2015, 1, 1), draw(st.integers(0, 600)))]
    boe = [(date(2015, 1, 1), draw(st.integers(0, 600)))]
    for _ in range(draw(st.integers(0, 6))):
        ecb.append((BASE + timedelta(days=draw(days) - 200), draw(st.integers(-50, 600))))
        boe.append((BASE + timedelta(days=draw(days) - 200), draw(st.integers(0, 600))))
    through = due + timedelta(days=draw(st.integers(0, 600)))
    return moves, due, through, versions, sorted(ecb), sorted(boe)


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_interest_equals_a_day_by_day_computation(scenario: tuple) -> None:
    moves, due, through, versions, ecb, boe = scenario
    rates = Rates({"ecb_mro": ecb, "boe_base": boe})
    assert accrued_interest(moves, due, through, versions, rates) == day_by_day(moves, due, through, versions, ecb, boe)
