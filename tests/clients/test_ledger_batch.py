"""Batch ledger verbs: `record_payments` (all or nothing, idempotent per row) and `auto_allocate_many`."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from clients import services
from clients.journal import Invoice, JournalEntry, JournalTransaction, Payment
from clients.models import Client
from provider.core.audit import AuditEvent
from provider.core.clock import today_utc
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.clients.ledger_helpers import cache_mismatches, invoice_row, payment_data, unbalanced_transactions
from tests.clients.test_ledger_concurrency import _in_threads, _setup, live_app  # noqa: F401 - a fixture
from tests.factories import make_client, make_debtor


@pytest.fixture
def book(db_session: Any) -> dict[str, Any]:
    client = make_client(base_currency="EUR")
    return {"client": client, "debtors": [make_debtor(client).id, make_debtor(client).id]}


def _count(model: Any, client_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(model.client_id == client_id)) or 0


def _journal(client_id: int) -> tuple[int, int, int]:
    return (_count(Payment, client_id), _count(JournalTransaction, client_id), _count(JournalEntry, client_id))


def _rows(debtors: list[int], n: int, prefix: str = "B", **kw: Any) -> list[dict[str, Any]]:
    return [
        payment_data(
            debtors[i % len(debtors)],
            f"{prefix}-{i}",
            1_00 + 37 * i,
            received_by="client" if i % 3 == 0 else "agency",
            **kw,
        )
        for i in range(n)
    ]


def _account_sums(client_id: int) -> dict[str, int]:
    rows = db.session.execute(
        select(JournalEntry.account, func.sum(JournalEntry.amount_minor))
        .where(JournalEntry.client_id == client_id)
        .group_by(JournalEntry.account)
    )
    return {account: int(total) for account, total in rows}


def test_a_batch_posts_one_balanced_transaction_per_payment(book: dict[str, Any]) -> None:
    client, debtors = book["client"], book["debtors"]
    rows = _rows(debtors, 30)
    results = services.record_payments(db.session, client, rows)

    assert [r.payment.external_ref for r in results] == [r["external_ref"] for r in rows]
    assert not any(r.replayed for r in results)
    assert [r.payment.amount_minor for r in results] == [r["amount_minor"] for r in rows]
    assert _journal(client.id) == (30, 30, 60)
    assert unbalanced_transactions(client.id) == []
    assert cache_mismatches(client.id) == []
    to_client = sum(r["amount_minor"] for r in rows if r["received_by"] == "client")
    to_agency = sum(r["amount_minor"] for r in rows if r["received_by"] == "agency")
    assert _account_sums(client.id) == {
        "cash_client": to_client,
        "cash_agency": to_agency,
        "unapplied": -(to_client + to_agency),
    }
    events = db.session.scalars(
        select(AuditEvent).where(AuditEvent.client_id == client.id, AuditEvent.action == "payment.record_batch")
    ).all()
    assert len(events) == 1 and events[0].changes["after"]["count"] == 30


def test_replaying_a_batch_posts_nothing_and_returns_the_first_payments(book: dict[str, Any]) -> None:
    client, debtors = book["client"], book["debtors"]
    rows = _rows(debtors, 12)
    first = services.record_payments(db.session, client, rows)
    before = _journal(client.id)

    again = services.record_payments(db.session, client, [dict(r) for r in rows])
    assert all(r.replayed for r in again)
    assert [r.payment.id for r in again] == [r.payment.id for r in first]
    assert _journal(client.id) == before


def test_a_batch_mixing_replays_and_new_payments_posts_only_the_new(book: dict[str, Any]) -> None:
    client, debtors = book["client"], book["debtors"]
    single = services.record_payment(db.session, client, payment_data(debtors[0], "ONE", 5_00))
    first = services.record_payments(db.session, client, _rows(debtors, 4))
    before = _journal(client.id)

    mixed = [payment_data(debtors[1], "NEW-1", 7_00), _rows(debtors, 4)[2], payment_data(debtors[0], "ONE", 5_00)]
    results = services.record_payments(db.session, client, mixed)
    assert [r.replayed for r in results] == [False, True, True]
    assert results[1].payment.id == first[2].payment.id and results[2].payment.id == single.payment.id
    assert _journal(client.id) == (before[0] + 1, before[1] + 1, before[2] + 2)
    assert cache_mismatches(client.id) == []


def test_a_reference_recorded_with_other_details_refuses_the_whole_batch(book: dict[str, Any]) -> None:
    client, debtors = book["client"], book["debtors"]
    services.record_payments(db.session, client, _rows(debtors, 3))
    before = _journal(client.id)
    changed = {**_rows(debtors, 3)[1], "amount_minor": 999_99}
    with pytest.raises(services.BatchRejected) as caught:
        services.record_payments(db.session, client, [payment_data(debtors[0], "FRESH", 1_00), changed])
    assert [(e.row, e.field) for e in caught.value.errors] == [(2, "external_ref")]
    assert "B-1 was already recorded with different details" in caught.value.errors[0].message
    assert _journal(client.id) == before
    assert db.session.scalar(select(Payment.id).where(Payment.external_ref == "FRESH")) is None


def test_every_bad_row_is_reported_at_once_and_nothing_is_posted(book: dict[str, Any]) -> None:
    client, debtors = book["client"], book["debtors"]
    foreign = make_debtor(make_client()).id
    good = payment_data(debtors[0], "OK-1", 10_00)
    bad = [
        {**payment_data(debtors[0], "BAD-2", 10_00), "amount_minor": -5},
        {**payment_data(debtors[0], "BAD-3", 10_00), "currency": "XYZ"},
        payment_data(987_654, "BAD-4", 10_00),
        payment_data(foreign, "BAD-5", 10_00),
        payment_data(debtors[1], "BAD-6", 10_00, received_on=today_utc() + timedelta(days=9)),
        {**payment_data(debtors[1], "", 10_00)},
        payment_data(debtors[1], "OK-1", 10_00),  # the same reference as row 1
        {**payment_data(debtors[1], "BAD-9", 10_00), "method": "barter", "received_by": "neighbour"},
    ]
    before = _journal(client.id)
    with pytest.raises(services.BatchRejected) as caught:
        services.record_payments(db.session, client, [good, *bad])

    found = {(e.row, e.field): e.message for e in caught.value.errors}
    assert set(found) == {
        (2, "amount"),
        (3, "currency"),
        (4, "debtor_id"),
        (5, "debtor_id"),
        (6, "received_on"),
        (7, "external_ref"),
        (8, "external_ref"),
        (9, "method"),
        (9, "received_by"),
    }
    assert "positive" in found[2, "amount"]
    assert "ISO 4217" in found[3, "currency"]
    assert "#987654 is not a debtor" in found[4, "debtor_id"]
    assert "in the future" in found[6, "received_on"]
    assert "external reference" in found[7, "external_ref"]
    assert "OK-1 appears twice in this batch (rows 1 and 8)" in found[8, "external_ref"]
    assert len(caught.value.errors) == len(found) and f"{len(found)} problem(s)" in str(caught.value)
    assert _journal(client.id) == before
    assert (
        db.session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "payment.record_batch")
        )
        == 0
    )


def test_single_and_batch_paths_share_idempotency(book: dict[str, Any]) -> None:
    client, debtors = book["client"], book["debtors"]
    (batch,) = services.record_payments(db.session, client, [payment_data(debtors[0], "X-1", 3_00, currency="usd")])
    again = services.record_payment(db.session, client, payment_data(debtors[0], " X-1 ", 3_00, currency="USD"))
    assert again.replayed and again.payment.id == batch.payment.id
    with pytest.raises(services.IdempotencyConflict):
        services.record_payment(db.session, client, payment_data(debtors[0], "X-1", 3_01, currency="USD"))


def test_an_empty_batch_posts_nothing(book: dict[str, Any]) -> None:
    assert services.record_payments(db.session, book["client"], []) == []
    assert _journal(book["client"].id) == (0, 0, 0)


def _place(client: Any, debtor_id: int, specs: list[tuple[str, int, date]]) -> list[Invoice]:
    rows = [invoice_row(debtor_id, n, a, issue_date=due - timedelta(days=30), due_date=due) for n, a, due in specs]
    return services.place_invoices(db.session, client, rows)


def test_batch_auto_allocation_matches_the_single_verb_and_the_journal(book: dict[str, Any]) -> None:
    client, (d1, d2) = book["client"], book["debtors"]
    a_old, a_named, a_new = _place(
        client,
        d1,
        [("A-1", 40_00, date(2025, 11, 1)), ("A-2", 25_00, date(2026, 1, 15)), ("A-3", 30_00, date(2026, 2, 1))],
    )
    (b_1,) = _place(client, d2, [("B-1", 10_00, date(2025, 12, 1))])
    paid = services.record_payments(
        db.session,
        client,
        [
            payment_data(d1, "P-1", 30_00, reference="for A-2 thanks"),  # A-2 first, then the oldest
            payment_data(d1, "P-2", 70_00),  # what is left of A-1, then A-3, 5.00 unapplied
            payment_data(d2, "P-3", 4_00),
        ],
    )
    txs = services.auto_allocate_many(db.session, client, [r.payment for r in paid])

    for obj in (a_old, a_named, a_new, b_1):
        db.session.refresh(obj)
    assert (a_old.open_minor, a_named.open_minor, a_new.open_minor, b_1.open_minor) == (0, 0, 0, 6_00)
    assert [r.payment.unapplied_minor for r in paid] == [0, 5_00, 0]
    assert len(txs) == 5
    memos = db.session.scalars(
        select(JournalTransaction.memo).where(JournalTransaction.id.in_(txs)).order_by(JournalTransaction.id)
    ).all()
    assert memos == [f"payment → invoice {n}" for n in ("A-2", "A-1", "A-1", "A-3", "B-1")]
    assert unbalanced_transactions(client.id) == []
    assert cache_mismatches(client.id) == []
    assert services.auto_allocate_many(db.session, client, [r.payment.id for r in paid]) == []


def test_batch_auto_allocation_skips_held_invoices_and_other_currencies(book: dict[str, Any]) -> None:
    client, (d1, _) = book["client"], book["debtors"]
    held, usd, free = services.place_invoices(
        db.session,
        client,
        [invoice_row(d1, "H-1", 10_00), invoice_row(d1, "U-1", 10_00, currency="USD"), invoice_row(d1, "F-1", 10_00)],
    )
    held.on_hold = True
    db.session.flush()
    (paid,) = services.record_payments(db.session, client, [payment_data(d1, "Q-1", 15_00, reference="H-1 U-1")])
    services.auto_allocate_many(db.session, client, [paid.payment])
    for obj in (held, usd, free, paid.payment):
        db.session.refresh(obj)
    assert (held.open_minor, usd.open_minor, free.open_minor, paid.payment.unapplied_minor) == (10_00, 10_00, 0, 5_00)
    assert cache_mismatches(client.id) == []


def test_many_payments_allocated_at_once_keep_every_cache_equal_to_the_journal(book: dict[str, Any]) -> None:
    client, debtors = book["client"], book["debtors"]
    rows = [
        invoice_row(
            debtors[i % 2],
            f"M-{i}",
            5_00 + 113 * i,
            issue_date=date(2025, 12, 1),
            due_date=date(2026, 1, 1) + timedelta(days=i),
        )
        for i in range(40)
    ]
    invoices = services.place_invoices(db.session, client, rows)
    payments = services.record_payments(db.session, client, _rows(debtors, 25, prefix="MP"))
    services.auto_allocate_many(db.session, client, [r.payment for r in payments])

    assert cache_mismatches(client.id) == []
    assert unbalanced_transactions(client.id) == []
    placed = sum(r["amount_minor"] for r in rows)
    cash = sum(r.payment.amount_minor for r in payments)
    open_now = db.session.scalar(select(func.sum(Invoice.open_minor)).where(Invoice.client_id == client.id))
    unapplied = db.session.scalar(select(func.sum(Payment.unapplied_minor)).where(Payment.client_id == client.id))
    assert placed - open_now == cash - unapplied > 0  # every cent allocated left exactly one side
    assert all(0 <= inv.open_minor <= inv.amount_minor for inv in invoices)
    # a debtor with money left over has no open invoice left in that currency
    for debtor_id in debtors:
        left = db.session.scalar(
            select(func.sum(Payment.unapplied_minor)).where(
                Payment.client_id == client.id, Payment.debtor_id == debtor_id
            )
        )
        still_open = db.session.scalar(
            select(func.sum(Invoice.open_minor)).where(Invoice.client_id == client.id, Invoice.debtor_id == debtor_id)
        )
        assert left == 0 or still_open == 0


def test_the_bulk_guard_refuses_money_spent_twice(book: dict[str, Any]) -> None:
    from clients.journal import Account
    from clients.posting import Line, apply_to_documents_bulk
    from provider.core.errors import ServiceError

    client, (d1, _) = book["client"], book["debtors"]
    (inv,) = services.place_invoices(db.session, client, [invoice_row(d1, "G-1", 20_00)])
    (paid,) = services.record_payments(db.session, client, [payment_data(d1, "G-P", 8_00)])
    lines = [
        Line(Account.UNAPPLIED, d1, "EUR", 6_00, invoice_id=inv.id, payment_id=paid.payment.id),
        Line(Account.RECEIVABLE, d1, "EUR", -6_00, invoice_id=inv.id, payment_id=paid.payment.id),
    ]
    with pytest.raises(ServiceError, match="over-allocated"), db.session.begin_nested():
        apply_to_documents_bulk(db.session, client.id, lines + lines)  # 12.00 from a payment of 8.00
    db.session.refresh(inv)
    db.session.refresh(paid.payment)
    assert (inv.open_minor, paid.payment.unapplied_minor) == (20_00, 8_00)


def test_the_same_batch_sent_concurrently_posts_each_payment_once(live_app: Flask) -> None:  # noqa: F811
    """PostgreSQL, committed data, racing sessions: the losers of the race get replays, nothing twice."""
    client_id, debtor_id, _ = _setup(live_app)
    rows = [payment_data(debtor_id, f"RACE-B-{i}", 1_00 + i) for i in range(40)]

    def send(_: int) -> list[int]:
        client = db.session.get_one(Client, client_id)
        return [r.payment.id for r in services.record_payments(db.session, client, rows)]

    outcomes = _in_threads(live_app, client_id, 6, send)
    assert not [r for r in outcomes if isinstance(r, BaseException)], outcomes
    assert all(ids == outcomes[0] for ids in outcomes) and len(set(outcomes[0])) == 40
    with live_app.app_context(), scoped(TenantScope.single(client_id)):
        assert _journal(client_id) == (40, 40, 80)
        assert cache_mismatches(client_id) == [] and unbalanced_transactions(client_id) == []
        db.session.remove()
