"""Properties of the KPI engine: aging always sums to open AR; CEI stays within 0-100 when consistent."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provider.reporting import figures as fig
from provider.reporting import formulas as f
from provider.reporting import kpi
from tests.factories import make_client, make_debtor
from tests.reports.ledger_world import credit, pay, place, write_off

START = date(2025, 6, 1)

invoice_st = st.tuples(
    st.integers(min_value=0, max_value=300),  # issued, days after START
    st.integers(min_value=0, max_value=90),  # payment terms in days
    st.integers(min_value=1, max_value=500_000),  # amount (minor units)
    st.sampled_from(["none", "part", "full", "credit", "write_off"]),
    st.integers(min_value=0, max_value=120),  # days after issue the settlement happens
    st.integers(min_value=1, max_value=99),  # percent paid for "part"
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(invoices=st.lists(invoice_st, min_size=1, max_size=8), as_of_offset=st.integers(min_value=0, max_value=500))
def test_aging_buckets_sum_to_open_receivables(db_session: Any, invoices: list[Any], as_of_offset: int) -> None:
    client = make_client(base_currency="EUR")
    debtor = make_debtor(client)
    for n, (issued_after, terms, amount, fate, settle_after, pct) in enumerate(invoices):
        issued = START + timedelta(days=issued_after)
        inv = place(client, debtor, f"I{n}", amount, issued, issued + timedelta(days=terms))
        on = issued + timedelta(days=settle_after)
        if fate == "part" and amount > 1:
            pay(client, debtor, f"P{n}", max(amount * pct // 100, 1), on, inv)
        elif fate == "full":
            pay(client, debtor, f"P{n}", amount, on, inv, by="client")
        elif fate == "credit":
            credit(client, debtor, f"CN{n}", amount, on, inv)
        elif fate == "write_off":
            write_off(client, inv, on)
    as_of = START + timedelta(days=as_of_offset)
    aging = kpi.aging_at(client.id, as_of).get("EUR", kpi.AgingFigures("EUR"))
    assert sum(aging.amounts.values()) == kpi.receivable_total(client.id, as_of).get("EUR", 0)
    assert all(v >= 0 for v in aging.amounts.values())
    # every monthly CEI of such a ledger (no adjustments or reversals) lies within 0 and 100
    derived = fig.derive(fig.collect_inputs(client.id, as_of, months=6))
    for month in derived["currencies"].get("EUR", {"trend": []})["trend"]:
        if month["cei"] is not None:
            assert 0 <= float(month["cei"]) <= 100, month


@given(
    begin=st.integers(min_value=0, max_value=10**12),
    sales=st.integers(min_value=0, max_value=10**12),
    collected_share=st.fractions(min_value=0, max_value=1),
    current_share=st.fractions(min_value=0, max_value=1),
)
def test_cei_is_between_0_and_100_when_its_inputs_are_consistent(
    begin: int, sales: int, collected_share: Any, current_share: Any
) -> None:
    """Consistent: what was collected (or credited) is at most what was there; current AR ≤ ending AR."""
    collected = int((begin + sales) * collected_share)
    end = begin + sales - collected
    current = int(end * current_share)
    value = f.cei(begin, sales, end, current)
    if value is not None:
        assert 0 <= value <= 100
