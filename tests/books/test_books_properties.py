"""Property test: any sequence of payments (to the agency or to the client), reversals, a fee schedule arriving
late, books catch-ups and remittance runs (drafted, approved, paid) keeps the agency's books sound.

After every step, recomputed independently of the posting code (fees from the tier table with half-even
rounding, collections from the clients' ledger): every agency transaction balances; trust held is never
negative; collected to the agency = remitted + fees netted + still held (held net of what the client owes
back); fees earned equal the independent fees of the payments that stand; reversing everything restores zero.
"""

from __future__ import annotations

import contextlib
import itertools
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from clients.corrections import reverse_document
from clients.journal import Payment
from provider.books.models import AgencyEntry, AgencyTransaction, RemittanceRun, RunStatus
from provider.books.posting import bring_up_to_date
from provider.books.remittance import RunRefused, approve_run, draft_runs, mark_run_paid
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.books.helpers import give_schedule, unbalanced
from tests.factories import make_client, make_debtor, make_invoice, make_payment

_refs = itertools.count(1)
RATES = {30: (1500, 1000), 123: (2500, 2000)}  # age at placement -> (rate, direct rate) of STANDARD_TIERS
TAX = 2000
# fees netted from trust: fees and tax of the trust events, less those of payments to the client (which sit in
# fees_receivable, with the same kinds' reversals)
TRUST_AND_DIRECT = ("collection", "fee", "reversal", "direct_fee")


def half_even(amount: int, bp: int) -> int:
    return int((Decimal(amount) * bp / 10_000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


class BooksMachine(RuleBasedStateMachine):
    payments = Bundle("payments")

    @initialize()
    def world(self) -> None:
        self.client = make_client(base_currency="EUR")
        self.debtors: dict[int, Any] = {}
        for age in RATES:
            debtor = make_debtor(self.client)
            with frozen_time(datetime(2026, 2, 1, 9, tzinfo=UTC)):
                make_invoice(
                    self.client,
                    debtor,
                    f"I{debtor.id}",
                    500_000,
                    issue_date=date(2025, 9, 1),
                    due_date=date.fromordinal(date(2026, 2, 1).toordinal() - age),
                )
            self.debtors[age] = debtor
        self.priced = False
        self.reversed: set[int] = set()
        self.info: dict[int, tuple[int, int, bool]] = {}  # payment id -> (amount, age, direct)
        self.period = 0

    @rule(target=payments, amount=st.integers(1, 99_999), age=st.sampled_from(sorted(RATES)), direct=st.booleans())
    def pay(self, amount: int, age: int, direct: bool) -> int:
        ref = f"P{next(_refs)}"
        payment = make_payment(
            self.client, self.debtors[age], ref, amount, received_by="client" if direct else "agency"
        )
        self.info[payment.id] = (amount, age, direct)
        return payment.id

    @rule(payment_id=payments)
    def reverse(self, payment_id: int) -> None:
        if payment_id in self.reversed:
            return
        with scoped(TenantScope.single(self.client.id), db.session):
            reverse_document(db.session, self.client, db.session.get_one(Payment, payment_id), "bounced")
            db.session.commit()
        self.reversed.add(payment_id)

    @rule()
    def schedule_arrives(self) -> None:
        if not self.priced:
            give_schedule(self.client)
            self.priced = True

    @rule()
    def catch_up(self) -> None:
        with scoped(TenantScope.single(self.client.id), db.session):
            bring_up_to_date(db.session, self.client.id)
            db.session.commit()

    @rule(approve=st.booleans(), pay=st.booleans())
    def remit(self, approve: bool, pay: bool) -> None:
        self.period += 1
        day = date.fromordinal(date(2026, 3, 1).toordinal() + self.period)
        with scoped(TenantScope.single(self.client.id), db.session):
            for run in draft_runs(db.session, self.client.id, "weekly", day, day):
                if approve and run.status == RunStatus.DRAFT.value:
                    with contextlib.suppress(RunRefused):
                        approve_run(db.session, run, "tester")
                if pay and run.status == RunStatus.APPROVED.value:
                    mark_run_paid(db.session, run, day, "BANK")
            db.session.commit()

    # --- what must always hold --------------------------------------------------------------------

    def _sum(self, kinds: tuple[str, ...] | None, *accounts: str) -> int:
        e, t = AgencyEntry, AgencyTransaction
        stmt = (
            select(func.coalesce(func.sum(e.amount_minor), 0))
            .join(t, (t.client_id == e.client_id) & (t.id == e.transaction_id))
            .where(e.client_id == self.client.id, e.account.in_(accounts))
        )
        if kinds:
            stmt = stmt.where(t.kind.in_(kinds))
        return int(db.session.scalar(stmt))

    @invariant()
    def books_are_sound(self) -> None:
        if not hasattr(self, "client"):
            return
        assert unbalanced(self.client.id) == []
        held = -self._sum(None, "trust_liability")
        due = self._sum(None, "due_from_client")
        assert held >= 0, f"trust held went negative: {held}"
        collected = self._sum(None, "trust_bank") + self._sum(("remittance_paid",), "remit_clearing", "agency_bank")
        remitted = sum(
            r.remit_minor
            for r in db.session.scalars(
                select(RemittanceRun).where(
                    RemittanceRun.client_id == self.client.id, RemittanceRun.status.in_(["approved", "paid"])
                )
            )
        )
        netted = -self._sum(TRUST_AND_DIRECT, "fees_earned", "tax_payable", "fees_receivable")
        assert collected == remitted + netted + held - due

    def _expected(self, posted: set[int]) -> tuple[int, int, int]:
        """(collected to the agency, fees netted, fees earned) of the standing payments, from first principles."""
        collected = netted = earned = 0
        for pid in posted - self.reversed:
            amount, age, direct = self.info[pid]
            rate = RATES[age][1 if direct else 0]
            fee = half_even(amount, rate) if self.priced else 0
            tax = half_even(fee, TAX)
            earned += fee
            if not direct:
                collected += amount
                netted += fee + tax
        return collected, netted, earned

    @invariant()
    def figures_match_an_independent_computation(self) -> None:
        if not hasattr(self, "client"):
            return
        posted = set(
            db.session.scalars(
                select(AgencyTransaction.payment_id).where(
                    AgencyTransaction.client_id == self.client.id,
                    AgencyTransaction.kind.in_(["collection", "direct_fee"]),
                )
            )
        ) | {pid for pid in self.info if self._fee_row_exists(pid)}
        collected, netted, earned = self._expected(posted)
        if self._sum(None, "trust_bank") is not None and self._pending() == 0:
            assert self._sum(("collection", "reversal"), "trust_bank") == collected
            assert -self._sum(TRUST_AND_DIRECT, "fees_earned", "tax_payable", "fees_receivable") == netted
            assert -self._sum(None, "fees_earned") >= 0
            assert -self._sum(("collection", "fee", "reversal", "direct_fee"), "fees_earned") == earned

    def _fee_row_exists(self, pid: int) -> bool:
        from provider.books.models import PaymentFee

        return (
            db.session.scalar(
                select(PaymentFee.id).where(PaymentFee.client_id == self.client.id, PaymentFee.payment_id == pid)
            )
            is not None
        )

    def _pending(self) -> int:
        """Payments or reversals the books have not caught up with yet (the figures are compared only when 0)."""
        from provider.books.models import PaymentFee
        from provider.books.posting import _new_payments, _new_reversals

        unpriced = db.session.scalar(
            select(func.count())
            .select_from(PaymentFee)
            .where(PaymentFee.client_id == self.client.id, PaymentFee.status == "unpriced")
        )
        waiting = unpriced if self.priced else 0
        return (
            len(_new_payments(db.session, self.client.id)) + len(_new_reversals(db.session, self.client.id)) + waiting
        )


def test_books_stay_sound(db_session: Any) -> None:
    run_state_machine_as_test(
        BooksMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=14,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


def test_reversing_everything_restores_the_books(db_session: Any) -> None:
    machine = BooksMachine()
    machine.world()
    machine.schedule_arrives()
    ids = [
        machine.pay(amount, age, direct)
        for amount, age, direct in [(10_001, 30, False), (5_555, 123, True), (777, 123, False)]
    ]
    machine.catch_up()
    machine.remit(approve=True, pay=True)
    for pid in ids:
        machine.reverse(pid)
    machine.catch_up()
    machine.books_are_sound()
    assert machine._sum(None, "fees_earned") == 0 and machine._sum(None, "tax_payable") == 0
    assert machine._sum(None, "fees_receivable") == 0
    held, due = -machine._sum(None, "trust_liability"), machine._sum(None, "due_from_client")
    assert held == 0 and due == 10_001 - 1_500 - 300 + 777 - 194 - 39  # remitted, then clawed back: owed by the client
    machine.remit(approve=True, pay=False)  # the next run shows the clawback and carries it forward
    run = db.session.scalars(
        select(RemittanceRun).where(RemittanceRun.client_id == machine.client.id).order_by(RemittanceRun.id.desc())
    ).first()
    assert run is not None and run.remit_minor == 0 and run.carried_forward_minor == -due
