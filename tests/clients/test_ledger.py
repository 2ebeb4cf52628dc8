"""Ledger services: what each verb posts, and what it refuses (with a specific message, posting nothing)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select

from clients import services
from clients.journal import Invoice, JournalEntry, JournalTransaction, Payment
from provider.core.audit import AppendOnlyViolation
from provider.core.clock import today_utc
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

TODAY = today_utc()


@pytest.fixture
def book(db_session: Any) -> dict[str, Any]:
    client = make_client(base_currency="EUR")
    debtor = make_debtor(client)
    other = make_debtor(client)
    return {"client": client, "debtor": debtor, "other": other}


def _journal_count() -> int:
    return db.session.scalar(select(func.count()).select_from(JournalEntry)) or 0


def _assert_books_sound(client_id: int) -> None:
    assert unbalanced_transactions(client_id) == []
    assert cache_mismatches(client_id) == []


def test_place_pay_allocate_credit_write_off_keeps_the_books_balanced(book: dict[str, Any]) -> None:
    client, debtor = book["client"], book["debtor"]
    inv1, inv2 = services.place_invoices(
        db.session,
        client,
        [
            invoice_row(debtor.id, "INV-1", 100_00, due_date=date(2026, 1, 31)),
            invoice_row(debtor.id, "INV-2", 50_00, due_date=date(2026, 2, 28)),
        ],
    )
    assert (inv1.open_minor, inv2.open_minor) == (100_00, 50_00)

    paid = services.record_payment(db.session, client, payment_data(debtor.id, "BANK-1", 120_00))
    assert not paid.replayed and paid.payment.unapplied_minor == 120_00
    services.auto_allocate(db.session, client, paid.payment)  # oldest due first
    db.session.refresh(inv1)
    db.session.refresh(inv2)
    assert (inv1.open_minor, inv2.open_minor, paid.payment.unapplied_minor) == (0, 30_00, 0)

    note = services.issue_credit_note(
        db.session,
        client,
        {
            "debtor_id": debtor.id,
            "number": "CN-1",
            "issued_on": date(2026, 3, 2),
            "currency": "EUR",
            "amount_minor": 10_00,
            "invoice_id": inv2.id,
        },
    )
    assert note.unapplied_minor == 0
    services.write_off(db.session, client, inv2, reason="uncollectable")
    db.session.refresh(inv2)
    assert inv2.open_minor == 0
    assert allocated_from_payment(client.id, paid.payment.id) == 120_00
    _assert_books_sound(client.id)


def test_auto_allocate_prefers_the_invoice_named_in_the_reference(book: dict[str, Any]) -> None:
    client, debtor = book["client"], book["debtor"]
    old, named = services.place_invoices(
        db.session,
        client,
        [
            invoice_row(debtor.id, "A-100", 40_00, issue_date=date(2025, 12, 1), due_date=date(2026, 1, 1)),
            invoice_row(debtor.id, "A-200", 40_00, due_date=date(2026, 3, 1)),
        ],
    )
    paid = services.record_payment(db.session, client, payment_data(debtor.id, "P-1", 40_00, reference="pay A-200"))
    services.auto_allocate(db.session, client, paid.payment)
    db.session.refresh(old)
    db.session.refresh(named)
    assert (old.open_minor, named.open_minor) == (40_00, 0)


def test_jpy_and_three_decimal_currencies_are_integer_minor_units(db_session: Any) -> None:
    client = make_client(base_currency="JPY", country="JP", timezone="Asia/Tokyo")
    debtor = make_debtor(client)
    (inv,) = services.place_invoices(db.session, client, [invoice_row(debtor.id, "J-1", 1050, currency="JPY")])
    paid = services.record_payment(db.session, client, payment_data(debtor.id, "J-P", 1050, currency="JPY"))
    services.allocate(db.session, client, paid.payment, inv, 1050)
    assert inv.open_minor == 0
    (kwd,) = services.place_invoices(db.session, client, [invoice_row(debtor.id, "K-1", 12_345, currency="KWD")])
    assert kwd.amount_minor == 12_345  # KWD 12.345
    _assert_books_sound(client.id)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"amount_minor": -5}, "amount", "positive"),
        ({"amount_minor": 0}, "amount", "positive"),
        ({"currency": "ZZZ"}, "currency", "ISO 4217"),
        ({"due_date": date(2025, 12, 1)}, "due_date", "before the issue date"),
        (
            {"issue_date": TODAY + timedelta(days=30), "due_date": TODAY + timedelta(days=60)},
            "issue_date",
            "in the future",
        ),
        ({"number": " "}, "number", "required"),
        ({"debtor_id": 987654}, "debtor", "not a debtor"),
    ],
)
def test_bad_invoice_rows_are_all_reported_and_nothing_is_posted(
    book: dict[str, Any], change: dict[str, Any], field: str, message: str
) -> None:
    client, debtor = book["client"], book["debtor"]
    before = _journal_count()
    rows = [invoice_row(debtor.id, "GOOD-1", 10_00), {**invoice_row(debtor.id, "BAD-2", 10_00), **change}]
    with pytest.raises(services.BatchRejected) as caught:
        services.place_invoices(db.session, client, rows)
    assert any(e.row == 2 and e.field == field and message in e.message for e in caught.value.errors), (
        caught.value.errors
    )
    assert _journal_count() == before
    assert db.session.scalar(select(Invoice).where(Invoice.number == "GOOD-1")) is None


def test_placing_the_same_invoices_twice_posts_once_and_changed_details_are_refused(book: dict[str, Any]) -> None:
    client, debtor = book["client"], book["debtor"]
    rows = [invoice_row(debtor.id, "R-1", 10_00), invoice_row(debtor.id, "R-2", 20_00)]
    assert len(services.place_invoices(db.session, client, rows)) == 2
    entries = _journal_count()
    assert services.place_invoices(db.session, client, rows) == []
    overlapping = [rows[1], invoice_row(debtor.id, "R-3", 30_00)]
    assert [i.number for i in services.place_invoices(db.session, client, overlapping)] == ["R-3"]
    assert _journal_count() == entries + 2
    with pytest.raises(services.BatchRejected, match="problem"):
        services.place_invoices(db.session, client, [invoice_row(debtor.id, "R-1", 99_00)])
    duplicate_in_file = [invoice_row(debtor.id, "R-9", 1_00), invoice_row(debtor.id, "R-9", 1_00)]
    with pytest.raises(services.BatchRejected) as caught:
        services.place_invoices(db.session, client, duplicate_in_file)
    assert "appears twice" in caught.value.errors[0].message


def test_payment_is_idempotent_on_reference_and_key(book: dict[str, Any]) -> None:
    client, debtor = book["client"], book["debtor"]
    first = services.record_payment(db.session, client, payment_data(debtor.id, "W-1", 10_00), idempotency_key="k1")
    entries = _journal_count()
    again = services.record_payment(db.session, client, payment_data(debtor.id, "W-1", 10_00), idempotency_key="k1")
    assert again.replayed and again.payment.id == first.payment.id
    same_ref = services.record_payment(db.session, client, payment_data(debtor.id, "W-1", 10_00))
    assert same_ref.replayed and same_ref.payment.id == first.payment.id
    assert _journal_count() == entries
    with pytest.raises(services.IdempotencyConflict, match="Idempotency-Key"):
        services.record_payment(db.session, client, payment_data(debtor.id, "W-2", 99_00), idempotency_key="k1")
    with pytest.raises(services.IdempotencyConflict, match="different details"):
        services.record_payment(db.session, client, payment_data(debtor.id, "W-1", 11_00))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount_minor": -1}, "positive"),
        ({"currency": "EURO"}, "ISO 4217"),
        ({"received_on": TODAY + timedelta(days=10)}, "in the future"),
        ({"method": "barter"}, "unknown payment method"),
        ({"received_by": "neighbour"}, "agency' or 'client"),
        ({"external_ref": ""}, "external reference"),
        ({"debtor_id": 987654}, "not a debtor"),
    ],
)
def test_bad_payments_are_refused(book: dict[str, Any], change: dict[str, Any], message: str) -> None:
    before = _journal_count()
    with pytest.raises(ServiceError, match=message):
        services.record_payment(db.session, book["client"], {**payment_data(book["debtor"].id, "X-1", 5_00), **change})
    assert _journal_count() == before


def test_allocation_refusals_are_specific(book: dict[str, Any]) -> None:
    client, debtor, other = book["client"], book["debtor"], book["other"]
    (inv,) = services.place_invoices(db.session, client, [invoice_row(debtor.id, "I-1", 50_00)])
    (foreign_inv,) = services.place_invoices(db.session, client, [invoice_row(other.id, "I-2", 50_00)])
    (usd_inv,) = services.place_invoices(db.session, client, [invoice_row(debtor.id, "I-3", 50_00, currency="USD")])
    pay = services.record_payment(db.session, client, payment_data(debtor.id, "P-9", 60_00)).payment
    cases = [
        (lambda: services.allocate(db.session, client, pay, inv, 70_00), r"only €60\.00 left"),
        (lambda: services.allocate(db.session, client, pay, inv, 55_00), r"only €50\.00 open"),
        (lambda: services.allocate(db.session, client, pay, foreign_inv, 10_00), "another debtor"),
        (lambda: services.allocate(db.session, client, pay, usd_inv, 10_00), "cannot allocate EUR"),
        (lambda: services.allocate(db.session, client, pay, inv, 0), "must be positive"),
    ]
    for attempt, message in cases:
        with pytest.raises(ServiceError, match=message):
            attempt()
    other_client = make_client()
    with pytest.raises(ServiceError, match="cross clients"):
        services.allocate(db.session, other_client, pay, inv, 10_00)
    inv.on_hold = True
    db.session.flush()
    with pytest.raises(ServiceError, match="on hold"):
        services.allocate(db.session, client, pay, inv, 10_00)
    open_before = inv.open_minor
    services.allocate(db.session, client, pay, inv, 10_00, allow_held=True)  # the rule settling the dispute
    assert inv.open_minor == open_before - 10_00
    _assert_books_sound(client.id)


def test_reversal_undoes_exactly_once_and_takes_back_the_allocations_of_a_payment(book: dict[str, Any]) -> None:
    client, debtor = book["client"], book["debtor"]
    (inv,) = services.place_invoices(db.session, client, [invoice_row(debtor.id, "V-1", 30_00)])
    pay = services.record_payment(db.session, client, payment_data(debtor.id, "V-P", 30_00)).payment
    alloc = services.allocate(db.session, client, pay, inv, 20_00)
    pay_tx = db.session.scalar(
        select(JournalTransaction)
        .join(JournalEntry, JournalEntry.transaction_id == JournalTransaction.id)
        .where(JournalEntry.payment_id == pay.id, JournalTransaction.kind == "payment_received")
    )
    services.reverse(db.session, client, alloc, "wrong invoice")
    db.session.refresh(inv)
    db.session.refresh(pay)
    assert (inv.open_minor, pay.unapplied_minor) == (30_00, 30_00)
    with pytest.raises(ServiceError, match="already reversed"):
        services.reverse(db.session, client, alloc, "again")
    services.allocate(db.session, client, pay, inv, 25_00)
    bounced = services.reverse(db.session, client, pay_tx, "bounced")  # its allocation goes back with it
    db.session.refresh(inv)
    db.session.refresh(pay)
    assert (inv.open_minor, pay.unapplied_minor) == (30_00, 0)
    with pytest.raises(ServiceError, match="cannot be reversed"):
        services.reverse(db.session, client, bounced, "undo the undo")
    with pytest.raises(ServiceError, match="already reversed"):
        services.reverse(db.session, client, pay_tx, "twice")
    _assert_books_sound(client.id)


def test_adjustment_changes_the_invoice_total_within_limits(book: dict[str, Any]) -> None:
    client, debtor = book["client"], book["debtor"]
    (inv,) = services.place_invoices(db.session, client, [invoice_row(debtor.id, "ADJ-1", 10_00)])
    services.adjust(db.session, client, inv, 2_50, "late fee per contract")
    assert (inv.open_minor, inv.adjusted_minor) == (12_50, 2_50)
    with pytest.raises(ServiceError, match=r"only €12\.50 open"):
        services.adjust(db.session, client, inv, -13_00, "too much")
    with pytest.raises(ServiceError, match="say why"):
        services.adjust(db.session, client, inv, -1_00, " ")
    _assert_books_sound(client.id)


def test_journal_rows_cannot_be_changed_or_deleted(book: dict[str, Any]) -> None:
    services.place_invoices(db.session, book["client"], [invoice_row(book["debtor"].id, "J-1", 10_00)])
    db.session.commit()
    entry = db.session.scalar(select(JournalEntry).limit(1))
    entry.amount_minor = 1
    with pytest.raises(AppendOnlyViolation):
        db.session.flush()
    db.session.rollback()
    conn = db.session.connection()
    for statement in ("UPDATE journal_entries SET amount_minor = 1", "DELETE FROM journal_transactions"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), conn.begin_nested():
            conn.execute(sa.text(statement))


def test_unbalanced_postings_are_refused() -> None:
    from clients.journal import Account
    from clients.posting import Line, UnbalancedTransaction, check_balanced

    with pytest.raises(UnbalancedTransaction, match="does not balance"):
        check_balanced([Line(Account.RECEIVABLE, 1, "EUR", 100), Line(Account.SALES, 1, "EUR", -99)])
    with pytest.raises(UnbalancedTransaction, match="does not balance"):
        check_balanced([Line(Account.RECEIVABLE, 1, "EUR", 100), Line(Account.SALES, 1, "USD", -100)])
    with pytest.raises(UnbalancedTransaction, match="two entries"):
        check_balanced([Line(Account.RECEIVABLE, 1, "EUR", 0)][:0])


def test_payment_model_is_visible_only_in_its_client(book: dict[str, Any]) -> None:
    from provider.core.tenancy import TenantScope, scoped

    pay = services.record_payment(db.session, book["client"], payment_data(book["debtor"].id, "T-1", 1_00)).payment
    other_id, pay_id = make_client().id, pay.id
    db.session.expunge_all()
    with scoped(TenantScope.single(other_id), db.session):
        assert db.session.get(Payment, pay_id) is None
        assert db.session.scalar(select(func.count()).select_from(JournalEntry)) == 0
