"""The monthly journal totals the database keeps (migration 0015's trigger), compaction and rebuilding."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from clients import ledger, month_totals
from clients.journal import JournalMonthTotal, JournalTransaction
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped, set_scope
from provider.extensions import db
from tests.factories import make_client, make_debtor
from tests.reports.ledger_world import at, credit, pay, place

JAN, FEB, MAR = date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)


def _totals(client_id: int) -> dict[tuple[Any, ...], tuple[int, int]]:
    """{(account, kind, month, due_month, placed_month): (amount, entries)}, summed over the table's rows."""
    rows = db.session.execute(month_totals.grouped_totals(JournalMonthTotal.__table__.c.client_id == client_id))
    out = {}
    for r in rows:
        day = month_totals.as_date
        out[(r.account, r.kind, day(r.month), day(r.due_month), day(r.placed_month))] = (r.amount_minor, r.entries)
    return out


def _rows(client_id: int) -> int:
    return db.session.scalar(sa.select(sa.func.count()).where(JournalMonthTotal.__table__.c.client_id == client_id))


def _world() -> tuple[Any, Any]:
    """One invoice of 100.00 issued 10 Jan, due 31 Jan; 40.00 paid to the agency on 5 Feb and allocated; the
    rest, 60.00, written off on 20 Mar."""
    client = make_client(base_currency="EUR")
    debtor = make_debtor(client)
    invoice = place(client, debtor, "INV-1", 10_000, date(2026, 1, 10), date(2026, 1, 31))
    pay(client, debtor, "PAY-1", 4_000, date(2026, 2, 5), invoice)
    with frozen_time(at(date(2026, 3, 20))), scoped(TenantScope.agency(), db.session):
        ledger.write_off(db.session, client, db.session.get_one(type(invoice), invoice.id), None, "bankrupt")
        db.session.commit()
    return client, invoice


def test_each_posting_adds_its_sums_by_month_due_month_and_placement_month(db_session: Any) -> None:
    client, _ = _world()
    assert _totals(client.id) == {
        # placed in January, due 31 Jan: still current at the end of January, so due_month is February
        ("receivable", "invoice_placed", JAN, FEB, None): (10_000, 1),
        # the payment: cash to the agency (the unapplied side is not kept)
        ("cash_agency", "payment_received", FEB, None, None): (4_000, 1),
        # its allocation takes 40.00 off the receivable, remembered against January's placements
        ("receivable", "allocation", FEB, FEB, JAN): (-4_000, 1),
        # the write-off: not a payment, so no placement month
        ("receivable", "write_off", MAR, FEB, None): (-6_000, 1),
        ("write_off", "write_off", MAR, None, None): (6_000, 1),
    }
    assert month_totals.mismatches(db.session, [client.id]) == []


def test_compaction_keeps_every_sum_and_leaves_one_row_per_key(db_session: Any) -> None:
    client, invoice = _world()
    debtor_id = invoice.debtor_id
    for n in range(3):  # three more payments to the agency in February: three more rows for the same key
        pay(client, db.session.get_one(type(invoice.debtor), debtor_id), f"PAY-X{n}", 100, date(2026, 2, 10 + n))
    before = _totals(client.id)
    assert before[("cash_agency", "payment_received", FEB, None, None)] == (4_300, 4)
    assert _rows(client.id) == 8
    month_totals.compact(db.session, client.id)
    assert _totals(client.id) == before
    assert _rows(client.id) == len(before) == 5
    month_totals.compact(db.session, client.id)  # again: nothing to fold, nothing changes
    assert _totals(client.id) == before and _rows(client.id) == 5


def test_compaction_and_rebuild_touch_only_their_client(db_session: Any) -> None:
    mine, _ = _world()
    other, _ = _world()
    theirs = _totals(other.id)
    db.session.execute(sa.delete(JournalMonthTotal).where(JournalMonthTotal.client_id == mine.id))
    assert month_totals.mismatches(db.session, [mine.id]) != []  # the check sees what is missing
    month_totals.rebuild(db.session, [mine.id])
    month_totals.compact(db.session, mine.id)
    assert month_totals.mismatches(db.session) == []
    assert _totals(other.id) == theirs


def test_the_check_sees_a_total_that_differs_from_the_journal(db_session: Any) -> None:
    client, _ = _world()
    row = db.session.scalars(sa.select(JournalMonthTotal).where(JournalMonthTotal.client_id == client.id)).first()
    assert row is not None
    row.amount_minor += 1
    db.session.flush()
    problems = month_totals.mismatches(db.session, [client.id])
    assert len(problems) == 1 and str(row.amount_minor - 1) in problems[0]
    row.amount_minor -= 1  # leave the books as the journal says, for the suite's own check after the test
    db.session.flush()


def test_a_reversal_takes_its_entries_out_of_the_month_it_occurs_in(db_session: Any) -> None:
    client, _ = _world()
    tx = db.session.scalars(
        sa.select(JournalTransaction).where(
            JournalTransaction.client_id == client.id, JournalTransaction.kind == "write_off"
        )
    ).one()
    with frozen_time(at(date(2026, 4, 2))), scoped(TenantScope.agency(), db.session):
        ledger.reverse(db.session, client, tx, "written off by mistake")
        db.session.commit()
    apr = date(2026, 4, 1)
    totals = _totals(client.id)
    assert totals[("receivable", "reversal", apr, FEB, None)] == (6_000, 1)
    assert totals[("write_off", "reversal", apr, None, None)] == (-6_000, 1)
    assert totals[("receivable", "write_off", MAR, FEB, None)] == (-6_000, 1)  # March keeps what happened then


def test_another_clients_totals_are_invisible(db_session: Any, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("row-level security is a PostgreSQL feature")
    mine, _ = _world()
    other, _ = _world()
    set_scope(TenantScope.single(mine.id), db.session)
    seen = set(db.session.scalars(sa.select(JournalMonthTotal.client_id).distinct()))
    set_scope(TenantScope.agency(), db.session)
    assert seen == {mine.id} and other.id not in seen


def test_the_commands_check_rebuild_and_compact_the_totals(app: Any, db_session: Any) -> None:
    client, _ = _world()
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["month-totals", "check", "--client", str(client.id)])
    assert ok.exit_code == 0 and "equal their journals" in ok.output
    db.session.execute(sa.delete(JournalMonthTotal).where(JournalMonthTotal.client_id == client.id))
    bad = runner.invoke(args=["month-totals", "check"])
    assert bad.exit_code == 1 and "differ from the journal" in bad.output and "invoice_placed" in bad.output
    assert runner.invoke(args=["month-totals", "rebuild", "--client", str(client.id)]).exit_code == 0
    assert runner.invoke(args=["month-totals", "compact"]).exit_code == 0
    assert runner.invoke(args=["month-totals", "check"]).exit_code == 0
    missing = runner.invoke(args=["month-totals", "rebuild", "--client", "999999"])
    assert missing.exit_code == 1 and "there is no client 999999" in missing.output


def test_a_credit_notes_sales_entry_is_kept_and_a_placements_is_not(db_session: Any) -> None:
    client = make_client(base_currency="EUR")
    debtor = make_debtor(client)
    invoice = place(client, debtor, "INV-9", 5_000, date(2026, 1, 10), date(2026, 2, 9))
    credit(client, debtor, "CN-9", 1_200, date(2026, 3, 4), invoice)
    totals = _totals(client.id)
    assert totals[("sales", "credit_note_issued", MAR, None, None)] == (1_200, 1)  # the "credited" flow
    assert not [k for k in totals if k[0] == "sales" and k[1] == "invoice_placed"]  # sales come from receivable
    # the credit note's allocation takes 12.00 off the receivable in March; not a payment: no placement month
    assert totals[("receivable", "allocation", MAR, FEB, None)] == (-1_200, 1)
    assert month_totals.mismatches(db.session, [client.id]) == []
