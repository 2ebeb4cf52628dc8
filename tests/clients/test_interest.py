"""Late-payment charges on a real ledger (PostgreSQL and SQLite): accrual, idempotency, catch-up, waivers, KPIs."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clients import interest
from clients.interest_models import ChargeAccrual, ChargeWaiver
from clients.interest_rules import round_half_up
from clients.journal import Account, Invoice, JournalEntry, JournalTransaction, TxKind
from clients.models import Client
from provider.core.audit import AuditEvent
from provider.core.clock import frozen_time
from provider.core.errors import ServiceError
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.reporting import figures as fig
from tests.clients.ledger_helpers import unbalanced_transactions
from tests.clients.test_interest_rules import day_by_day
from tests.factories import make_client, make_contract_terms, make_debtor
from tests.reports.ledger_world import at, march_world, pay, place

ECB_2026_H1 = 215  # the ECB main refinancing rate in force on 1 January 2026 (seeded by migration 0026)


def late_terms(client: Client, starts: date = date(2025, 1, 1), **data: Any) -> None:
    terms = make_contract_terms(client, starts)
    with frozen_time(at(starts)), scoped(TenantScope.agency(), db.session):
        interest.set_late_payment_terms(db.session, client, terms, data)
        db.session.commit()


def accrue(client: Client, through: date, **kw: Any) -> interest.AccrualResult:
    with frozen_time(at(through, 23)), scoped(TenantScope.agency(), db.session):
        result = interest.accrue(db.session, client, through, **kw)
        db.session.commit()
    return result


def owed(client: Client, invoice: Invoice) -> int:
    with scoped(TenantScope.agency(), db.session):
        return interest.owed_by_invoice(db.session, client.id, [invoice.id]).get(invoice.id, 0)


def charged(client: Client, kind: str) -> int:
    with scoped(TenantScope.agency(), db.session):
        return int(
            db.session.scalar(
                sa.select(sa.func.coalesce(sa.func.sum(ChargeAccrual.amount_minor), 0)).where(
                    ChargeAccrual.client_id == client.id, ChargeAccrual.kind == kind
                )
            )
        )


def test_interest_and_compensation_post_apart_from_principal_and_a_second_run_posts_nothing(db_session: Any) -> None:
    client = make_client()
    debtor = make_debtor(client)
    late_terms(client, basis="statutory_eu", compensation="eu_flat")
    invoice = place(client, debtor, "INV-1", 1_000_000, date(2026, 1, 1), date(2026, 1, 31))

    first = accrue(client, date(2026, 3, 1))
    rate = ECB_2026_H1 + 800  # 10.15% a year, 29 days of February (1 Feb - 1 Mar inclusive)
    expected = round_half_up(Fraction(1_000_000 * rate * 29, 10_000 * 365))
    assert (charged(client, "interest"), charged(client, "compensation")) == (expected, 40_00)
    assert first.postings == 2 and first.charged == {"EUR": expected + 40_00}
    assert owed(client, invoice) == expected + 40_00
    db.session.refresh(invoice)
    assert invoice.open_minor == 1_000_000  # principal untouched
    kinds = set(db.session.scalars(sa.select(JournalTransaction.kind).where(JournalTransaction.client_id == client.id)))
    assert {TxKind.INTEREST.value, TxKind.COMPENSATION.value} <= kinds
    assert unbalanced_transactions(client.id) == []

    again = accrue(client, date(2026, 3, 1))
    assert again.postings == 0 and charged(client, "interest") == expected

    # a week of downtime: the next run charges every day since, once
    accrue(client, date(2026, 3, 9))
    assert charged(client, "interest") == round_half_up(Fraction(1_000_000 * rate * 37, 10_000 * 365))
    assert charged(client, "compensation") == 40_00
    rows = db.session.scalar(sa.select(sa.func.count()).where(ChargeAccrual.client_id == client.id))
    assert rows == 3  # interest on 1 March and 9 March, compensation once


def test_a_backdated_payment_credits_back_the_interest_it_no_longer_owes(db_session: Any) -> None:
    client = make_client()
    debtor = make_debtor(client)
    late_terms(client, basis="contract", contract_rate="36.50", day_count="act_365")
    invoice = place(client, debtor, "INV-1", 100_000, date(2026, 1, 1), date(2026, 1, 31))
    accrue(client, date(2026, 2, 28))
    assert charged(client, "interest") == 100_000 * 3650 * 28 // (10_000 * 365)  # 2,800: 0.1% a day
    pay(client, debtor, "P1", 100_000, date(2026, 2, 10), invoice, posted=at(date(2026, 3, 1)))
    accrue(client, date(2026, 3, 1))
    assert charged(client, "interest") == 1_000  # 1..10 February only
    assert owed(client, invoice) == 1_000
    memos = db.session.scalars(
        sa.select(JournalTransaction.memo).where(
            JournalTransaction.client_id == client.id, JournalTransaction.kind == TxKind.INTEREST.value
        )
    ).all()
    assert any("credited back" in m for m in memos)


def test_waivers_restore_what_is_owed_need_a_reason_and_never_waive_twice(db_session: Any) -> None:
    client = make_client()
    debtor = make_debtor(client)
    late_terms(client, basis="contract", contract_rate="36.50")
    invoice = place(client, debtor, "INV-1", 100_000, date(2026, 1, 1), date(2026, 1, 31))
    accrue(client, date(2026, 2, 10))
    assert owed(client, invoice) == 1_000
    with scoped(TenantScope.agency(), db.session):
        with pytest.raises(ServiceError, match="say why"):
            interest.waive(db.session, client, invoice, "  ")
        with pytest.raises(ServiceError, match="at most what the invoice owes"):
            interest.waive(db.session, client, invoice, "goodwill", 1_001)
        interest.waive(db.session, client, invoice, "goodwill: first late payment", 400)
        db.session.commit()
    assert owed(client, invoice) == 600
    with scoped(TenantScope.agency(), db.session):
        interest.waive(db.session, client, invoice, "settled in full", stops_accrual=True)
        db.session.commit()
        with pytest.raises(ServiceError, match="owes no late-payment charges"):
            interest.waive(db.session, client, invoice, "again")
        db.session.rollback()
    assert owed(client, invoice) == 0
    accrue(client, date(2026, 3, 10))  # the stopping waiver ends interest on this invoice
    assert owed(client, invoice) == 0 and charged(client, "interest") == 1_000
    events = db.session.scalar(
        sa.select(sa.func.count()).where(AuditEvent.client_id == client.id, AuditEvent.action == "charges.waived")
    )
    assert events == 2
    assert db.session.scalar(sa.select(sa.func.count()).where(ChargeWaiver.client_id == client.id)) == 2


def _kpis(client_id: int, posted_by: Any = None) -> tuple[dict[str, Any], ...]:
    with scoped(TenantScope.agency(), db.session):
        end = date(2026, 3, 31)
        return (
            fig.derive(fig.collect_inputs(client_id, end, posted_by)),
            fig.derive(fig.collect_inputs(client_id, end, posted_by, totals=False)),
            fig.derive(fig.collect_inputs_by_queries(client_id, end, posted_by)),
        )


def test_dso_and_cei_are_computed_on_principal_only(db_session: Any) -> None:
    w = march_world()
    before, report_before = _kpis(w.client.id), _kpis(w.client.id, w.cutoff)
    late_terms(
        w.client, basis="contract", contract_rate="12", compensation="fixed", fixed_minor="1000", fixed_currency="EUR"
    )
    result = accrue(w.client, date(2026, 3, 31))
    assert result.postings > 0
    invoice = db.session.scalar(sa.select(Invoice).where(Invoice.client_id == w.client.id, Invoice.number == "A"))
    with scoped(TenantScope.agency(), db.session):
        interest.waive(db.session, w.client, invoice, "goodwill")
        db.session.commit()
    after, report_after = _kpis(w.client.id), _kpis(w.client.id, w.cutoff)
    assert after == before and report_after == report_before
    march = report_after[0]["currencies"]["EUR"]["current"]
    assert (march["dso"], march["cei"]) == ("43.92", "33.33")  # the worked figures of tests/reports/test_kpi.py
    # the monthly totals hold no charge account (the fixture also checks them against the journal)
    from clients.journal import JournalMonthTotal

    accounts = set(
        db.session.scalars(sa.select(JournalMonthTotal.account).where(JournalMonthTotal.client_id == w.client.id))
    )
    assert accounts.isdisjoint({Account.INTEREST_DUE.value, Account.LATE_CHARGES.value})


def test_a_run_interrupted_between_batches_completes_once_when_run_again(db_session: Any) -> None:
    def world() -> tuple[Client, list[Invoice]]:
        client = make_client()
        debtor = make_debtor(client)
        late_terms(client, basis="statutory_eu", compensation="eu_flat")
        return client, [
            place(client, debtor, f"I{n}", 50_000 * n, date(2026, 1, 1), date(2026, 1, 15)) for n in (1, 2, 3)
        ]

    whole, _ = world()
    accrue(whole, date(2026, 4, 30), batch_size=1)
    broken, _ = world()

    class Killed(Exception):
        pass

    calls = []

    def checkpoint() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise Killed  # dies after the first batch committed, before the second commits
        db.session.commit()

    with frozen_time(at(date(2026, 4, 30), 23)), scoped(TenantScope.agency(), db.session):
        with pytest.raises(Killed):
            interest.accrue(db.session, broken, date(2026, 4, 30), batch_size=1, checkpoint=checkpoint)
        db.session.rollback()
    assert db.session.scalar(sa.select(sa.func.count()).where(ChargeAccrual.client_id == broken.id)) == 2  # batch 1
    accrue(broken, date(2026, 4, 30), batch_size=1)
    accrue(broken, date(2026, 4, 30), batch_size=1)  # and once more: nothing
    for kind in ("interest", "compensation"):
        assert charged(broken, kind) == charged(whole, kind)
    assert db.session.scalar(sa.select(sa.func.count()).where(ChargeAccrual.client_id == broken.id)) == 6


def test_the_nightly_job_queues_each_client_once_and_charges_through_its_today(db_session: Any) -> None:
    from clients.interest_jobs import accrue_charges_job

    client = make_client()
    debtor = make_debtor(client)
    late_terms(client, basis="contract", contract_rate="10")
    place(client, debtor, "INV-1", 100_000, date(2026, 1, 1), date(2026, 1, 31))
    make_client()  # no late-payment terms: not queued
    with frozen_time(at(date(2026, 3, 2), 2)):
        queued = accrue_charges_job()
        assert [q for q in queued if q.startswith(f"charges:{client.id}:")] == [f"charges:{client.id}:2026-03-02"]
        assert all(q.split(":")[1] != "" for q in queued)
        db.session.commit()
    assert charged(client, "interest") == round_half_up(Fraction(100_000 * 1000 * 30, 10_000 * 365))
    with frozen_time(at(date(2026, 3, 2), 3)):
        accrue_charges_job()
        db.session.commit()
    assert charged(client, "interest") == round_half_up(Fraction(100_000 * 1000 * 30, 10_000 * 365))


def test_terms_are_validated_field_by_field_and_cannot_change_once_in_force(db_session: Any) -> None:
    client = make_client()
    terms = make_contract_terms(client, date(2025, 1, 1))
    with frozen_time(at(date(2025, 6, 1))), scoped(TenantScope.agency(), db.session):
        for data, field in (
            ({"basis": "weekly"}, "basis"),
            ({"basis": "contract", "contract_rate": "abc"}, "contract_rate"),
            ({"basis": "contract", "contract_rate": "0"}, "contract_rate"),
            (
                {"basis": "none", "compensation": "fixed", "fixed_currency": "XXY", "fixed_minor": "100"},
                "fixed_currency",
            ),
            ({"basis": "none", "compensation": "fixed", "fixed_currency": "USD", "fixed_minor": "-1"}, "fixed_minor"),
        ):
            with pytest.raises(ServiceError) as refused:
                interest.set_late_payment_terms(db.session, client, terms, data)
            assert refused.value.field == field
        row = interest.set_late_payment_terms(db.session, client, terms, {"basis": "statutory_uk"})
        assert row.effective_from == date(2025, 6, 1)  # in force already: from the day they were recorded
        with pytest.raises(ServiceError, match="already in force"):
            interest.set_late_payment_terms(db.session, client, terms, {"basis": "none"})
        db.session.rollback()


# --- property: random payments and accrual dates against the day-by-day reference ----------------------------


@st.composite
def histories(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], list[int]]:
    amount = draw(st.integers(1_000, 5_000_000))
    payments = draw(st.lists(st.tuples(st.integers(0, 200), st.integers(1, amount)), max_size=3))
    runs = sorted(set(draw(st.lists(st.integers(1, 240), min_size=1, max_size=4))))
    return amount, payments, runs


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories())
def test_charged_interest_equals_the_day_by_day_reference_and_waiving_restores(db_session: Any, history: tuple) -> None:
    amount, payments, runs = history
    client = make_client()
    debtor = make_debtor(client)
    late_terms(client, basis="statutory_uk")
    issued, due = date(2026, 1, 1), date(2026, 1, 20)
    invoice = place(client, debtor, "INV", amount, issued, due)
    left = amount
    moves = [(issued, amount)]
    for n, (offset, paid) in enumerate(sorted(payments)):
        paid = min(paid, left)
        if paid <= 0:
            continue
        on = due - timedelta(days=10) + timedelta(days=offset)
        pay(client, debtor, f"P{n}", paid, on, invoice)
        db.session.refresh(invoice)
        moves.append((max(on, issued), -paid))
        left -= paid
    boe = [
        (d, bp)
        for d, bp in db.session.execute(
            sa.text(
                "SELECT effective_from, rate_bp FROM reference_rates WHERE series = 'boe_base' ORDER BY effective_from"
            )
        )
    ]
    boe = [(d if isinstance(d, date) else date.fromisoformat(str(d)), int(bp)) for d, bp in boe]
    from clients.interest_rules import InterestBasis, LateTerms

    versions = [LateTerms(date(2025, 1, 1), InterestBasis.STATUTORY_UK)]
    for offset in runs:
        accrue(client, due + timedelta(days=offset))
    last = due + timedelta(days=runs[-1])
    # the movements as the ledger dated them (an allocation is dated on or after the invoice's issue)
    ledger_moves = [
        (d if isinstance(d, date) else date.fromisoformat(str(d)), int(a))
        for d, a in db.session.execute(
            sa.select(JournalTransaction.occurred_on, JournalEntry.amount_minor)
            .join(
                JournalTransaction,
                sa.and_(
                    JournalTransaction.client_id == JournalEntry.client_id,
                    JournalTransaction.id == JournalEntry.transaction_id,
                ),
            )
            .where(JournalEntry.client_id == client.id, JournalEntry.account == Account.RECEIVABLE.value)
        )
    ]
    assert sorted(ledger_moves) == sorted(moves)
    expected = round_half_up(day_by_day(moves, due, last, versions, [], boe))
    assert charged(client, "interest") == expected
    again = accrue(client, last)
    assert again.postings == 0
    if owed(client, invoice):
        with scoped(TenantScope.agency(), db.session):
            interest.waive(db.session, client, invoice, "property test")
            db.session.commit()
    assert owed(client, invoice) == 0
    assert unbalanced_transactions(client.id) == []
