"""`collect_inputs` gives exactly what the former per-figure queries gave, both from the monthly totals the
database keeps (`kpi.totals_pass`) and from one pass over the journal (`kpi.journal_pass`, its fallback)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from provider.extensions import db
from provider.reporting import figures as fig
from tests.factories import make_client, make_debtor
from tests.reports.ledger_world import at, credit, march_world, pay, place, write_off

START = date(2025, 6, 1)

invoice_st = st.tuples(
    st.integers(min_value=0, max_value=300),  # issued, days after START
    st.integers(min_value=0, max_value=90),  # payment terms in days
    st.integers(min_value=1, max_value=500_000),  # amount (minor units)
    st.sampled_from(["none", "part", "full", "credit", "write_off", "part_late"]),
    st.integers(min_value=0, max_value=120),  # days after issue the settlement happens
    st.integers(min_value=1, max_value=99),  # percent paid for "part"
    st.sampled_from(["agency", "client"]),
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    invoices=st.lists(invoice_st, min_size=1, max_size=8),
    as_of_offset=st.integers(min_value=-40, max_value=500),
    months=st.integers(min_value=1, max_value=14),
    cutoff_days=st.one_of(st.none(), st.integers(min_value=0, max_value=60)),
)
def test_single_pass_equals_the_per_figure_queries(
    db_session: Any, invoices: list[Any], as_of_offset: int, months: int, cutoff_days: int | None
) -> None:
    client = make_client(base_currency="EUR")
    debtors = [make_debtor(client), make_debtor(client)]
    for n, (issued_after, terms, amount, fate, settle_after, pct, by) in enumerate(invoices):
        debtor = debtors[n % 2]
        issued = START + timedelta(days=issued_after)
        inv = place(client, debtor, f"I{n}", amount, issued, issued + timedelta(days=terms))
        on = issued + timedelta(days=settle_after)
        if fate in ("part", "part_late") and amount > 1:
            # "part_late": received then, keyed in 20 days later (backdated), as P4 of the March world
            posted = at(on + timedelta(days=20)) if fate == "part_late" else None
            pay(client, debtor, f"P{n}", max(amount * pct // 100, 1), on, inv, by=by, posted=posted)
        elif fate == "full":
            pay(client, debtor, f"P{n}", amount, on, inv, by=by)
        elif fate == "credit":
            credit(client, debtor, f"CN{n}", amount, on, inv)
        elif fate == "write_off":
            write_off(client, inv, on)
    as_of = START + timedelta(days=as_of_offset)
    posted_by = None if cutoff_days is None else at(as_of + timedelta(days=cutoff_days), 12)
    old = fig.collect_inputs_by_queries(client.id, as_of, posted_by, months=months)
    assert fig.collect_inputs(client.id, as_of, posted_by, months=months) == old
    assert fig.collect_inputs(client.id, as_of, posted_by, months=months, totals=False) == old


def test_single_pass_on_the_march_world_live_and_frozen(db_session: Any) -> None:
    w = march_world()
    for end, cutoff in (
        (date(2026, 3, 31), w.cutoff),
        (date(2026, 3, 31), None),
        (date(2026, 3, 15), None),
        (date(2026, 11, 1), None),  # nothing after: aging and debtors from the cached balances
        (date(2026, 4, 30), datetime(2026, 4, 20, tzinfo=UTC)),
    ):
        old = fig.collect_inputs_by_queries(w.client.id, end, cutoff)
        assert fig.collect_inputs(w.client.id, end, cutoff) == old
        assert fig.collect_inputs(w.client.id, end, cutoff, totals=False) == old


def test_todays_figures_read_the_monthly_totals_and_not_the_journal(db_session: Any) -> None:
    w = march_world()
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        fig.collect_inputs(w.client.id, date(2026, 11, 1))
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert any("journal_month_totals" in s for s in statements)
    assert not any("journal_entries" in s for s in statements)


def test_a_date_inside_a_month_with_later_postings_reads_only_that_month_from_the_journal(db_session: Any) -> None:
    w = march_world()
    statements: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "journal_entries" in statement:
            statements.append((statement, parameters))

    # 15 March: the world has postings later in March, which the month's totals cannot tell apart
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        new = fig.collect_inputs(w.client.id, date(2026, 3, 15), w.cutoff)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert new == fig.collect_inputs_by_queries(w.client.id, date(2026, 3, 15), w.cutoff)
    flows = [s for s, p in statements if "occurred_on >=" in s and "2026-03-01" in _values(p)]
    assert len(flows) == 1  # March up to the 15th, bounded below by the month's start


def _values(parameters: Any) -> list[str]:
    """The bound values as text (SQLite binds dates as text already)."""
    values = parameters.values() if isinstance(parameters, dict) else (parameters or [])
    return [str(v)[:10] for v in values]
