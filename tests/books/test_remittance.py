"""Remittance runs and fee invoices: the net of a run, statements equal to the books, the clawback of a payment
reversed after it was remitted, the status machine, fee invoice numbers without gaps, the run job."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from clients.corrections import reverse_document
from provider.books.invoices import issue_fee_invoice, post_period_fees
from provider.books.jobs import remittance_run_job
from provider.books.models import AgencyTransaction, FeeInvoice, RemittanceRun, RunStatus
from provider.books.posting import balances, held_in_trust
from provider.books.remittance import (
    TRANSITIONS,
    RunRefused,
    approve_run,
    cancel_run,
    draft_runs,
    mark_run_paid,
    recalculate_run,
    run_totals,
    statement_csv,
    statement_lines,
)
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.books.helpers import give_schedule
from tests.factories import make_client, make_debtor, make_invoice, make_payment

MARCH = (date(2026, 3, 1), date(2026, 3, 31))


def _debtor(client: Any) -> Any:
    debtor = make_debtor(client)
    with frozen_time(datetime(2026, 2, 1, 9, tzinfo=UTC)):
        make_invoice(
            client, debtor, f"INV-{debtor.id}", 100_000, issue_date=date(2025, 12, 1), due_date=date(2026, 1, 2)
        )
    return debtor


def _draft(client: Any, period: tuple[date, date] = MARCH) -> list[RemittanceRun]:
    with scoped(TenantScope.single(client.id), db.session):
        runs = draft_runs(db.session, client.id, "monthly", *period)
        db.session.commit()
    return runs


def _as(client: Any, action: Any, *args: Any) -> Any:
    with scoped(TenantScope.single(client.id), db.session):
        result = action(db.session, *args)
        db.session.commit()
    return result


def test_a_run_remits_what_trust_holds_less_fees_and_its_statement_lists_each_payment(db_session: Any) -> None:
    client = make_client()
    give_schedule(client)  # 15 %, tax 20 %
    debtor = _debtor(client)
    make_payment(client, debtor, "P1", 10_000)
    make_payment(client, debtor, "P2", 3_333)
    (run,) = _draft(client)
    assert (run.status, run.collected_minor, run.fees_minor, run.tax_minor) == ("draft", 13_333, 2_000, 400)
    assert run.net_minor == run.remit_minor == 13_333 - 2_400 and run.lines == 2
    rows = list(csv.reader(io.StringIO(statement_csv(db.session, run).decode())))
    assert rows[0] == [
        "Date",
        "Line",
        "Payment reference",
        "Debtor",
        "Invoices",
        "Currency",
        "Amount",
        "Fee",
        "Tax on fee",
        "Net to you",
    ]
    assert rows[2][2:] == ["P1", debtor.name, "", "EUR", "100.00", "15.00", "3.00", "82.00"]
    assert rows[-1][-1] == "109.33"
    _as(client, approve_run, run, "approver@example.test")
    assert held_in_trust(db.session, client.id) == {"EUR": 0}
    _as(client, mark_run_paid, run, date(2026, 4, 3), "BANK-1")
    books = balances(db.session, client.id)
    assert books[("trust_bank", "EUR")] == 0 and books[("agency_bank", "EUR")] == 2_400
    assert books[("remit_clearing", "EUR")] == 0


def test_a_payment_reversed_after_remittance_is_clawed_back_on_the_next_run(db_session: Any) -> None:
    client = make_client()
    give_schedule(client)
    debtor = _debtor(client)
    bounced = make_payment(client, debtor, "P1", 10_000)
    (march,) = _draft(client)
    _as(client, approve_run, march)
    make_payment(client, debtor, "P2", 20_000, received_on=date(2026, 4, 2))
    with scoped(TenantScope.single(client.id), db.session):
        reverse_document(db.session, client, bounced, "bounced")
        db.session.commit()
    (april,) = _draft(client, (date(2026, 4, 1), date(2026, 4, 30)))
    lines = statement_lines(db.session, client.id, "EUR", april.from_tx_id, april.upto_tx_id)
    assert [(x.label, x.net_minor) for x in lines] == [("Payment", 16_400), ("Reversed payment (clawed back)", -8_200)]
    assert april.remit_minor == 8_200 and april.carried_forward_minor == 0


def test_a_drafts_totals_from_the_database_equal_its_statement_lines(db_session: Any) -> None:
    """The draft totals the range in one aggregate query; the statement reads its lines once: both must agree
    line for line, with a clawback, a payment made to the client (not a trust line) and invoice numbers."""
    from clients.allocations import allocate
    from clients.journal import Invoice

    client = make_client()
    give_schedule(client)
    debtor = _debtor(client)
    bounced = make_payment(client, debtor, "P1", 10_000)
    (march,) = _draft(client)
    _as(client, approve_run, march)
    kept = make_payment(client, debtor, "P2", 20_000, received_on=date(2026, 4, 2))
    make_payment(client, debtor, "D1", 5_000, received_on=date(2026, 4, 3), received_by="client")
    with scoped(TenantScope.single(client.id), db.session):
        invoice = db.session.scalars(select(Invoice).where(Invoice.client_id == client.id)).one()
        allocate(db.session, client, kept, invoice, 20_000)
        reverse_document(db.session, client, bounced, "bounced")
        db.session.commit()
    (april,) = _draft(client, (date(2026, 4, 1), date(2026, 4, 30)))
    lines = statement_lines(db.session, client.id, "EUR", april.from_tx_id, april.upto_tx_id)
    totals = run_totals(db.session, client.id, "EUR", april.from_tx_id, april.upto_tx_id)
    assert totals.lines == april.lines == len(lines) == 2
    assert totals.collected_minor == april.collected_minor == sum(x.amount_minor for x in lines if x.amount_minor > 0)
    assert totals.reversed_minor == april.reversed_minor == 10_000
    assert (totals.fees_minor, totals.tax_minor) == (sum(x.fee_minor for x in lines), sum(x.tax_minor for x in lines))
    assert april.brought_forward_minor + totals.net_minor == april.net_minor == sum(x.net_minor for x in lines)
    assert [x.invoices for x in lines] == [invoice.number, ""]
    rows = list(csv.reader(io.StringIO(statement_csv(db.session, april, lines).decode())))
    assert rows[2][4] == invoice.number and rows[-1][-1] == "82.00"


def test_the_status_machine_refuses_what_it_does_not_allow(db_session: Any) -> None:
    assert TRANSITIONS[RunStatus.PAID] == frozenset() and RunStatus.PAID in TRANSITIONS[RunStatus.APPROVED]
    client = make_client()
    give_schedule(client)
    make_payment(client, _debtor(client), "P1", 10_000)
    (run,) = _draft(client)
    with (
        scoped(TenantScope.single(client.id), db.session),
        pytest.raises(RunRefused, match="draft remittance cannot be paid"),
    ):
        mark_run_paid(db.session, run, date(2026, 4, 1))
    db.session.rollback()
    _as(client, approve_run, run)
    with (
        scoped(TenantScope.single(client.id), db.session),
        pytest.raises(RunRefused, match="approved remittance cannot be approved"),
    ):
        approve_run(db.session, run)
    db.session.rollback()
    assert _draft(client)[0].id == run.id  # drafting the same period again is a no-op


def test_a_reversal_after_drafting_blocks_approval_until_recalculated(db_session: Any) -> None:
    client = make_client()
    give_schedule(client)
    debtor = _debtor(client)
    payment = make_payment(client, debtor, "P1", 10_000)
    (run,) = _draft(client)
    with scoped(TenantScope.single(client.id), db.session):
        reverse_document(db.session, client, payment, "bounced")
        db.session.commit()
    with scoped(TenantScope.single(client.id), db.session):
        from provider.books.posting import bring_up_to_date

        bring_up_to_date(db.session, client.id)
        db.session.commit()
        with pytest.raises(RunRefused, match="recalculate"):
            approve_run(db.session, run)
        db.session.rollback()
    fresh = _as(client, recalculate_run, run)
    assert fresh is None or fresh.remit_minor == 0
    db.session.refresh(run)
    assert run.status == "cancelled"


def test_cancelling_needs_a_reason(db_session: Any) -> None:
    client = make_client()
    give_schedule(client)
    make_payment(client, _debtor(client), "P1", 10_000)
    (run,) = _draft(client)
    with scoped(TenantScope.single(client.id), db.session), pytest.raises(RunRefused, match="say why"):
        cancel_run(db.session, run, " ")


def test_fee_invoices_bill_direct_payments_with_numbers_without_gaps(db_session: Any) -> None:
    one, two = make_client(), make_client()
    for client in (one, two):
        give_schedule(client)
        make_payment(client, _debtor(client), "D1", 10_000, received_by="client")
    inv_one = _as(
        one, lambda s: (remittance_run_job.__wrapped_job__(one.id, "monthly", "2026-03-01", "2026-03-31"), None)
    )
    assert inv_one is not None
    first = db.session.scalars(select(FeeInvoice).where(FeeInvoice.client_id == one.id)).one()
    with scoped(TenantScope.single(two.id), db.session):
        try:
            with db.session.begin_nested():
                issue_fee_invoice(db.session, two.id, "EUR", *MARCH)
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        second = issue_fee_invoice(db.session, two.id, "EUR", *MARCH)
        db.session.commit()
    assert second is not None and second.number == first.number + 1  # the rolled-back number was given back
    assert (first.fees_minor, first.tax_minor, first.total_minor) == (1_000, 200, 1_200)
    assert _as(one, issue_fee_invoice, one.id, "EUR", *MARCH).id == first.id  # issued once per period


def test_the_monthly_minimum_is_topped_up_on_the_invoice(db_session: Any) -> None:
    client = make_client()
    give_schedule(client, monthly_minimum_minor=5_000, per_placement_minor=100)
    _debtor(client)
    fee = _as(client, post_period_fees, client.id, date(2026, 2, 1), date(2026, 2, 28))
    assert fee == 5_000  # 1 placement x 1.00 + top-up 49.00
    assert _as(client, post_period_fees, client.id, date(2026, 2, 1), date(2026, 2, 28)) == 0  # once a month
    invoice = _as(client, issue_fee_invoice, client.id, "EUR", date(2026, 2, 1), date(2026, 2, 28))
    assert invoice.total_minor == 6_000


def _letters_posted(client: Any, debtor: Any, count: int, on: datetime, tag: str) -> None:
    from provider.comms.services import mark_letters_dispatched, queue_letter

    with scoped(TenantScope.single(client.id), db.session), frozen_time(on):
        ids = [
            queue_letter(
                db.session, client_id=client.id, debtor_id=debtor.id, address_lines=["Hauptstr. 1", "Berlin"],
                subject="Reminder", pdf_bytes=b"%PDF-1.4 letter", dedupe_key=f"test:{tag}:{n}", purpose="test",
            ).id
            for n in range(count)
        ]  # fmt: skip
        db.session.flush()
        assert len(mark_letters_dispatched(db.session, client.id, ids, "batch")) == count
        db.session.commit()


def test_letters_posted_in_the_month_are_charged_at_the_schedules_flat_rate(db_session: Any) -> None:
    client = make_client()
    give_schedule(client, per_letter_minor=150, tax_rate_bp=2000)
    debtor = _debtor(client)
    _letters_posted(client, debtor, 3, datetime(2026, 2, 27, 16, tzinfo=UTC), "feb")
    _letters_posted(client, debtor, 2, datetime(2026, 3, 1, 8, tzinfo=UTC), "mar")  # next month's
    queued_only = make_debtor(client)  # a letter printed but not yet handed over is not charged
    from provider.comms.services import queue_letter

    with scoped(TenantScope.single(client.id), db.session):
        queue_letter(
            db.session, client_id=client.id, debtor_id=queued_only.id, address_lines=["Somewhere"],
            subject="Reminder", pdf_bytes=b"%PDF-1.4", dedupe_key="test:waiting", purpose="test",
        )  # fmt: skip
        db.session.commit()
    assert _as(client, post_period_fees, client.id, date(2026, 2, 1), date(2026, 2, 28)) == 3 * 150
    with scoped(TenantScope.single(client.id), db.session):
        memo = db.session.scalars(select(AgencyTransaction.memo).where(AgencyTransaction.client_id == client.id)).one()
        db.session.commit()
    assert "3 letters posted" in memo
    assert _as(client, post_period_fees, client.id, date(2026, 3, 1), date(2026, 3, 31)) == 2 * 150
    invoice = _as(client, issue_fee_invoice, client.id, "EUR", date(2026, 2, 1), date(2026, 3, 31))
    assert (invoice.fees_minor, invoice.tax_minor) == (5 * 150, 5 * 30)


def _direct_fee_invoice(client: Any) -> FeeInvoice:
    """A fee invoice for the fee of a payment the debtor made directly to the client (EUR 100.00 paid: 10 % fee
    + 20 % tax = EUR 12.00)."""
    debtor = _debtor(client)
    make_payment(client, debtor, f"P-DIRECT-{client.id}", 10_000, received_on=date(2026, 3, 10), received_by="client")
    with frozen_time(datetime(2026, 4, 1, 6, tzinfo=UTC)):
        invoice = _as(client, issue_fee_invoice, client.id, "EUR", *MARCH)
    assert invoice is not None and invoice.total_minor == 1_200
    return invoice


def test_a_fee_invoice_is_settled_by_what_the_client_pays_once_per_reference(db_session: Any) -> None:
    from provider.books.invoices import paid_on_invoices, record_fee_payment
    from provider.core.errors import ServiceError

    client = make_client(base_currency="EUR")
    give_schedule(client)
    invoice = _direct_fee_invoice(client)
    receivable_before = _as(client, lambda s: balances(s, client.id)).get(("fees_receivable", "EUR"), 0)

    def pay(amount: str, reference: str, day: str = "2026-04-10") -> Any:
        with frozen_time(datetime(2026, 4, 20, tzinfo=UTC)):
            return _as(client, record_fee_payment, invoice, amount, day, reference)

    with pytest.raises(ServiceError, match="more than the invoice still owes"):
        pay("12.01", "BANK-1")
    with pytest.raises(ServiceError, match="in the future"):
        pay("5.00", "BANK-1", "2026-05-01")
    with pytest.raises(ServiceError, match="bank reference"):
        pay("5.00", " ")
    first = pay("5.00", "BANK-1")
    assert pay("5.00", "BANK-1").id == first.id  # recorded once
    with pytest.raises(ServiceError, match="another amount"):
        pay("6.00", "BANK-1")
    pay("7.00", "BANK-2")
    with pytest.raises(ServiceError, match="more than the invoice still owes"):
        pay("0.01", "BANK-3")
    with scoped(TenantScope.single(client.id), db.session):
        assert paid_on_invoices(db.session, client.id, [invoice.id]) == {invoice.id: 1_200}
        after = balances(db.session, client.id)
        db.session.commit()
    assert after.get(("fees_receivable", "EUR"), 0) == receivable_before - 1_200
    assert after.get(("agency_bank", "EUR"), 0) == 1_200
    # what was paid is not billed again on the next invoice
    assert _as(client, issue_fee_invoice, client.id, "EUR", date(2026, 4, 1), date(2026, 4, 30)) is None
