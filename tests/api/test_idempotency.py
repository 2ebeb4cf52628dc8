"""Idempotency-Key: replay with a header, mismatch 422, in flight 409; 20 concurrent POSTs make one payment."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from clients.journal import JournalEntry, Payment
from provider.api.models import ApiToken, IdempotencyRecord
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.api.helpers import auth, invoice_body, payment_body, post
from tests.conftest import Database
from tests.factories import make_api_token, make_client, make_debtor


def _payments(ref: str) -> int:
    with scoped(TenantScope.agency(), db.session):
        return db.session.scalar(select(func.count()).select_from(Payment).where(Payment.external_ref == ref)) or 0


def test_replay_returns_the_stored_response_with_a_header(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    token = make_api_token(acme)
    first = post(client, token, "/invoices", invoice_body(debtor.id, "IK-1"), **{"Idempotency-Key": "k-1"})
    again = post(client, token, "/invoices", invoice_body(debtor.id, "IK-1"), **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]


def test_same_key_with_another_body_is_a_422(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    token = make_api_token(acme)
    assert (
        post(client, token, "/payments", payment_body(debtor.id, "P-1"), **{"Idempotency-Key": "k"}).status_code == 201
    )
    other = post(client, token, "/payments", payment_body(debtor.id, "P-2"), **{"Idempotency-Key": "k"})
    assert other.status_code == 422
    assert other.get_json()["type"].endswith("idempotency-mismatch")
    assert _payments("P-2") == 0


def test_a_refused_request_releases_its_key(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    token = make_api_token(acme)
    bad = post(
        client, token, "/payments", {**payment_body(debtor.id, "P-9"), "currency": "???"}, **{"Idempotency-Key": "k9"}
    )
    assert bad.status_code == 422
    fixed = post(client, token, "/payments", payment_body(debtor.id, "P-9"), **{"Idempotency-Key": "k9"})
    assert fixed.status_code == 201


def test_a_key_in_flight_is_a_409(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    token = make_api_token(acme)
    body = payment_body(debtor.id, "P-F")
    from provider.api.idempotency import request_hash

    with client.application.test_request_context("/api/v1/payments", method="POST", json=body):
        digest = request_hash()
    with scoped(TenantScope.agency(), db_session):
        token_id = db_session.scalar(select(ApiToken.id).where(ApiToken.client_id == acme.id))
        db_session.add(
            IdempotencyRecord(
                client_id=acme.id,
                token_id=token_id,
                key="busy",
                method="POST",
                path="/api/v1/payments",
                request_hash=digest,
            )
        )
        db_session.commit()
    response = post(client, token, "/payments", body, **{"Idempotency-Key": "busy"})
    assert response.status_code == 409
    assert response.get_json()["type"].endswith("in-flight")
    assert _payments("P-F") == 0


# --- 20 concurrent identical POSTs on PostgreSQL (committed data, many connections) ----------------------


@pytest.fixture(scope="module")
def live_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    from flask_migrate import upgrade

    from provider.app import create_app

    if request.config.getoption("--db") == "sqlite":
        pytest.skip("concurrency tests run on PostgreSQL")
    database = Database("postgresql", request.config.getoption("--pg-admin-url"), tmp_path_factory.mktemp("apiconc"))
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


def test_twenty_concurrent_identical_posts_create_one_payment(live_app: Flask) -> None:
    with live_app.app_context(), scoped(TenantScope.agency()):
        acme = make_client()
        debtor_id, client_id = make_debtor(acme).id, acme.id
        token = make_api_token(acme)
        db.session.remove()
    body = payment_body(debtor_id, "RACE-API", 25_00)
    barrier = threading.Barrier(20)

    def send(_: int) -> Any:
        http = live_app.test_client()
        barrier.wait(timeout=30)
        response = http.post("/api/v1/payments", json=body, headers=auth(token, **{"Idempotency-Key": "race"}))
        return response.status_code, response.headers.get("Idempotent-Replayed"), response.get_json()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(send, range(20)))
    codes = sorted(code for code, _, _ in results)
    assert set(codes) <= {201, 409}, results
    fresh = [r for r in results if r[0] == 201 and r[1] is None]
    replays = [r for r in results if r[0] == 201 and r[1] == "true"]
    assert len(fresh) == 1, results
    assert all(r[2] == fresh[0][2] for r in replays)
    with live_app.app_context(), scoped(TenantScope.single(client_id)):
        assert (
            db.session.scalar(select(func.count()).select_from(Payment).where(Payment.external_ref == "RACE-API")) == 1
        )
        payment_id = fresh[0][2]["id"]
        entries = db.session.scalar(
            select(func.count()).select_from(JournalEntry).where(JournalEntry.payment_id == payment_id)
        )
        assert entries == 2
        db.session.remove()
    # once the first has finished, a retry is a replay
    http = live_app.test_client()
    retry = http.post("/api/v1/payments", json=body, headers=auth(token, **{"Idempotency-Key": "race"}))
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
