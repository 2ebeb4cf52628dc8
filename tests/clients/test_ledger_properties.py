"""Property test: any sequence of ledger operations keeps the books sound.

A hypothesis state machine places invoices, records and replays payments (one by one and in batches),
allocates (one payment, or many at once), credits, writes off and reverses, in any order and with any
amounts (many of them refused, which must change nothing). After every step: every journal transaction
balances; every invoice's open balance lies in 0..amount; no payment has more allocated than it brought;
cached balances equal the sums of the journal; the monthly totals the database keeps (and compacts, at any
step) equal the journal summed again; replays post nothing.
"""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from clients import month_totals, services
from clients.journal import CreditNote, Invoice, JournalEntry, JournalTransaction, Payment
from provider.core.errors import ServiceError
from provider.extensions import db
from tests.clients.ledger_helpers import (
    allocated_from_payment,
    cache_mismatches,
    invoice_row,
    payment_data,
    unbalanced_transactions,
)
from tests.factories import make_client, make_debtor

amounts = st.integers(min_value=1, max_value=50_000)
_numbers = itertools.count(1)


class LedgerMachine(RuleBasedStateMachine):
    invoices = Bundle("invoices")
    payments = Bundle("payments")
    notes = Bundle("notes")
    transactions = Bundle("transactions")
    requests = Bundle("requests")

    @initialize()
    def books(self) -> None:
        self.client = make_client(base_currency="EUR")
        self.debtors = [make_debtor(self.client).id, make_debtor(self.client).id]
        self.refused = 0

    def _try(self, action: Any) -> Any:
        try:
            return action()
        except ServiceError:
            self.refused += 1
            return None

    def _entries(self) -> int:
        return db.session.scalar(
            select(func.count()).select_from(JournalEntry).where(JournalEntry.client_id == self.client.id)
        )

    @rule(target=invoices, debtor=st.integers(0, 1), amount=amounts, currency=st.sampled_from(["EUR", "EUR", "USD"]))
    def place(self, debtor: int, amount: int, currency: str) -> Any:
        row = invoice_row(self.debtors[debtor], f"INV-{next(_numbers)}", amount, currency=currency)
        placed = services.place_invoices(db.session, self.client, [row])
        return placed[0].id

    @rule(target=requests, debtor=st.integers(0, 1), amount=amounts, keyed=st.booleans())
    def pay(self, debtor: int, amount: int, keyed: bool) -> Any:
        n = next(_numbers)
        request = (payment_data(self.debtors[debtor], f"PAY-{n}", amount), f"key-{n}" if keyed else None)
        result = services.record_payment(db.session, self.client, *request)
        assert not result.replayed
        return (request, result.payment.id)

    @rule(target=requests, debtor=st.integers(0, 1), batch=st.lists(amounts, min_size=1, max_size=4))
    def pay_batch(self, debtor: int, batch: list[int]) -> Any:
        rows = [payment_data(self.debtors[debtor], f"PAY-{next(_numbers)}", amount) for amount in batch]
        results = services.record_payments(db.session, self.client, rows)
        assert [r.replayed for r in results] == [False] * len(rows)
        return multiple(*[((row, None), r.payment.id) for row, r in zip(rows, results, strict=True)])

    @rule(reqs=st.lists(requests, min_size=1, max_size=3, unique_by=lambda req: req[1]))
    def replay_batch(self, reqs: list[Any]) -> None:
        before = self._entries()
        results = services.record_payments(db.session, self.client, [req[0][0] for req in reqs])
        assert all(r.replayed for r in results) and [r.payment.id for r in results] == [req[1] for req in reqs]
        assert self._entries() == before

    @rule(target=payments, req=requests)
    def payment_of(self, req: Any) -> Any:
        return req[1]

    @rule(req=requests)
    def replay(self, req: Any) -> None:
        before = self._entries()
        result = services.record_payment(db.session, self.client, *req[0])
        assert result.replayed and result.payment.id == req[1]
        assert self._entries() == before

    @rule(target=transactions, payment=payments, invoice=invoices, amount=amounts)
    def allocate(self, payment: int, invoice: int, amount: int) -> Any:
        pay, inv = db.session.get(Payment, payment), db.session.get(Invoice, invoice)
        tx = self._try(lambda: services.allocate(db.session, self.client, pay, inv, amount))
        return tx.id if tx else None

    @rule(target=transactions, payment=payments)
    def auto(self, payment: int) -> Any:
        txs = services.auto_allocate(db.session, self.client, db.session.get(Payment, payment))
        return txs[0].id if txs else None

    @rule(target=transactions, pays=st.lists(payments, min_size=1, max_size=3))
    def auto_many(self, pays: list[int]) -> Any:
        txs = services.auto_allocate_many(db.session, self.client, pays)
        return txs[0] if txs else None

    @rule(target=notes, debtor=st.integers(0, 1), amount=amounts)
    def credit(self, debtor: int, amount: int) -> Any:
        data = {
            "debtor_id": self.debtors[debtor],
            "number": f"CN-{next(_numbers)}",
            "issued_on": date(2026, 4, 1),
            "currency": "EUR",
            "amount_minor": amount,
        }
        return services.issue_credit_note(db.session, self.client, data).id

    @rule(target=transactions, note=notes, invoice=invoices, amount=amounts)
    def apply_credit(self, note: int, invoice: int, amount: int) -> Any:
        source, inv = db.session.get(CreditNote, note), db.session.get(Invoice, invoice)
        tx = self._try(lambda: services.allocate(db.session, self.client, source, inv, amount))
        return tx.id if tx else None

    @rule(target=transactions, invoice=invoices, part=st.one_of(st.none(), amounts))
    def write_off(self, invoice: int, part: int | None) -> Any:
        inv = db.session.get(Invoice, invoice)
        tx = self._try(lambda: services.write_off(db.session, self.client, inv, part, "test"))
        return tx.id if tx else None

    @rule(target=transactions, invoice=invoices, delta=st.integers(-5_000, 5_000))
    def adjust(self, invoice: int, delta: int) -> Any:
        inv = db.session.get(Invoice, invoice)
        tx = self._try(lambda: services.adjust(db.session, self.client, inv, delta, "test"))
        return tx.id if tx else None

    @rule(tx=transactions)
    def reverse(self, tx: int | None) -> None:
        if tx is None:
            return
        before = self._entries()
        done = self._try(lambda: services.reverse(db.session, self.client, db.session.get(JournalTransaction, tx), "t"))
        if done is None:
            assert self._entries() == before  # a refusal posts nothing

    @rule()
    def compact_totals(self) -> None:
        month_totals.compact(db.session, self.client.id)

    @invariant()
    def month_totals_equal_the_journal(self) -> None:
        if hasattr(self, "client"):
            assert month_totals.mismatches(db.session, [self.client.id]) == []

    @invariant()
    def books_balance(self) -> None:
        if hasattr(self, "client"):
            assert unbalanced_transactions(self.client.id) == []

    @invariant()
    def caches_equal_the_journal(self) -> None:
        if hasattr(self, "client"):
            assert cache_mismatches(self.client.id) == []

    @invariant()
    def balances_in_range(self) -> None:
        if not hasattr(self, "client"):
            return
        for inv in db.session.scalars(select(Invoice).where(Invoice.client_id == self.client.id)):
            assert 0 <= inv.open_minor <= inv.amount_minor + inv.adjusted_minor
        for pay in db.session.scalars(select(Payment).where(Payment.client_id == self.client.id)):
            assert 0 <= allocated_from_payment(self.client.id, pay.id) <= pay.amount_minor
            assert 0 <= pay.unapplied_minor <= pay.amount_minor


def test_ledger_state_machine(db_session: Any) -> None:
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
