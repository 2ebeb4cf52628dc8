"""Concurrency on PostgreSQL: racing requests for the same money never double-post or over-allocate.

These tests need committed data seen by many connections, so they run on their own throw-away database
(built from the migrations), not inside the per-test rolled-back transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from clients import services
from clients.journal import Invoice, JournalEntry, Payment
from clients.models import Client
from provider.core.errors import ServiceError
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.clients.ledger_helpers import allocated_from_payment, invoice_row, payment_data
from tests.conftest import Database
from tests.factories import make_client, make_debtor


@pytest.fixture(scope="module")
def live_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    from flask_migrate import upgrade

    from provider.app import create_app

    if request.config.getoption("--db") == "sqlite":
        pytest.skip("concurrency tests run on PostgreSQL")
    database = Database("postgresql", request.config.getoption("--pg-admin-url"), tmp_path_factory.mktemp("conc"))
    app = create_app(database.environ)
    try:
        with app.app_context():
            upgrade()
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()


def _in_threads(app: Flask, client_id: int, n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(i) in n threads released together, each with its own app context, session and commit."""
    barrier = threading.Barrier(n)

    def one(i: int) -> Any:
        with app.app_context(), scoped(TenantScope.single(client_id)):
            barrier.wait(timeout=30)
            try:
                result = work(i)
                db.session.commit()
                return result
            except ServiceError as exc:
                db.session.rollback()
                return exc
            finally:
                db.session.remove()

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def _setup(app: Flask, invoices: int = 0) -> tuple[int, int, list[int]]:
    with app.app_context(), scoped(TenantScope.agency()):
        client = make_client()
        debtor = make_debtor(client)
        rows = [invoice_row(debtor.id, f"C-{i}", 1_00) for i in range(invoices)]
        placed = services.place_invoices(db.session, client, rows) if rows else []
        db.session.commit()
        ids = (client.id, debtor.id, [inv.id for inv in placed])
        db.session.remove()
    return ids


def test_twenty_identical_payment_requests_post_one_payment(live_app: Flask) -> None:
    client_id, debtor_id, _ = _setup(live_app)

    def send(_: int) -> int:
        client = db.session.get(Client, client_id)
        data = payment_data(debtor_id, "RACE-1", 25_00)
        return services.record_payment(db.session, client, data, idempotency_key="same-key").payment.id

    ids = _in_threads(live_app, client_id, 20, send)
    assert not [r for r in ids if isinstance(r, Exception)], ids
    assert len(set(ids)) == 1
    with live_app.app_context(), scoped(TenantScope.single(client_id)):
        assert db.session.scalar(select(func.count()).select_from(Payment).where(Payment.external_ref == "RACE-1")) == 1
        entries = db.session.scalar(
            select(func.count()).select_from(JournalEntry).where(JournalEntry.payment_id == ids[0])
        )
        assert entries == 2
        db.session.remove()


def test_fifty_concurrent_allocations_never_over_allocate(live_app: Flask) -> None:
    client_id, debtor_id, invoice_ids = _setup(live_app, invoices=50)
    with live_app.app_context(), scoped(TenantScope.single(client_id)):
        client = db.session.get(Client, client_id)
        payment_id = services.record_payment(db.session, client, payment_data(debtor_id, "POOL", 10_00)).payment.id
        db.session.commit()
        db.session.remove()

    def grab(i: int) -> int:
        client = db.session.get(Client, client_id)
        payment, invoice = db.session.get(Payment, payment_id), db.session.get(Invoice, invoice_ids[i])
        return services.allocate(db.session, client, payment, invoice, 1_00).id

    results = _in_threads(live_app, client_id, 50, grab)
    won = [r for r in results if not isinstance(r, Exception)]
    assert len(won) == 10, results
    assert all(isinstance(r, ServiceError) for r in results if r not in won)
    with live_app.app_context(), scoped(TenantScope.single(client_id)):
        payment = db.session.get(Payment, payment_id)
        assert payment.unapplied_minor == 0
        assert allocated_from_payment(client_id, payment_id) == 10_00
        open_total = db.session.scalar(select(func.sum(Invoice.open_minor)).where(Invoice.id.in_(invoice_ids)))
        assert open_total == 50_00 - 10_00
        db.session.remove()


def test_compacting_the_month_totals_while_payments_post_loses_and_doubles_nothing(live_app: Flask) -> None:
    from clients import month_totals

    client_id, debtor_id, invoice_ids = _setup(live_app, invoices=30)

    def work(i: int) -> int:
        client = db.session.get(Client, client_id)
        if i % 3 == 2:  # a compactor, folding again and again while the others post
            for _ in range(15):
                month_totals.compact(db.session, client_id)
                db.session.commit()
            return 0
        for n in range(6):
            data = payment_data(debtor_id, f"MT-{i}-{n}", 1_00 + n)
            payment = services.record_payment(db.session, client, data).payment
            services.allocate(db.session, client, payment, db.session.get(Invoice, invoice_ids[i * 3 + n % 3]), 50)
            db.session.commit()
        return 6

    results = _in_threads(live_app, client_id, 9, work)
    assert sum(results) == 36, results
    with live_app.app_context(), scoped(TenantScope.single(client_id)):
        assert month_totals.mismatches(db.session, [client_id]) == []
        month_totals.compact(db.session, client_id)
        assert month_totals.mismatches(db.session, [client_id]) == []
        db.session.remove()
