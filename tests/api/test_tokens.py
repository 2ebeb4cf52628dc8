"""Token scope: read tokens cannot write, revoked tokens are refused, a client's token sees only its client."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from clients.journal import Invoice
from provider.api.models import ApiToken
from provider.api.tokens import revoke_token, secret_hash
from provider.core.audit import AuditEvent
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.api.helpers import auth, get, invoice_body, post
from tests.factories import make_api_token, make_client, make_debtor, make_invoice


def _count(model: Any) -> int:
    with scoped(TenantScope.agency(), db.session):
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_the_secret_is_stored_only_as_a_hash(db_session: Any) -> None:
    client = make_client()
    secret = make_api_token(client)
    row = db_session.scalar(select(ApiToken).where(ApiToken.client_id == client.id))
    assert secret not in (row.prefix, row.secret_hash) and row.secret_hash == secret_hash(secret)
    assert secret.startswith(f"ark_{row.prefix}_")


def test_missing_unknown_and_revoked_tokens_are_401(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    secret = make_api_token(acme)
    assert client.get("/api/v1/debtors").status_code == 401
    assert get(client, "ark_00000000_nope", "/debtors").status_code == 401
    assert get(client, secret, "/debtors").status_code == 200
    with scoped(TenantScope.agency(), db_session):
        revoke_token(db_session, db_session.scalar(select(ApiToken).where(ApiToken.client_id == acme.id)))
        db_session.commit()
    response = get(client, secret, "/debtors")
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_read_token_cannot_write(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    reader = make_api_token(acme, access="read")
    before = _count(Invoice), _count(AuditEvent)
    response = post(client, reader, "/invoices", invoice_body(debtor.id, "R-1"))
    assert response.status_code == 403
    assert response.get_json()["type"].endswith("read-only")
    assert (_count(Invoice), _count(AuditEvent)) == before
    assert get(client, reader, "/invoices").status_code == 200


def test_client_a_token_sees_nothing_of_client_b(client: FlaskClient, db_session: Any) -> None:
    a, b = make_client(name="Alpha"), make_client(name="Bravo")
    b_debtor = make_debtor(b, name="Bravo Hidden Debtor")
    b_invoice = make_invoice(b, b_debtor, "B-SECRET-1", 50_00)
    token_a = make_api_token(a)
    for path in (f"/debtors/{b_debtor.id}", f"/invoices/{b_invoice.id}", f"/debtors/{b_debtor.id}/work-history"):
        foreign, missing = (
            get(client, token_a, path),
            get(client, token_a, path.replace(str(b_debtor.id), "987654321").replace(str(b_invoice.id), "987654321")),
        )
        assert foreign.status_code == missing.status_code == 404
        assert foreign.get_data() == missing.get_data()
    for path in ("/debtors", "/invoices", "/payments", "/credit-notes", "/aging?as_of=2026-06-30"):
        body = get(client, token_a, path).get_data(as_text=True)
        assert "Bravo" not in body and "B-SECRET-1" not in body
    # writing against B's debtor is refused and writes nothing
    response = post(client, token_a, "/invoices", invoice_body(b_debtor.id, "A-ON-B"))
    assert response.status_code == 409 and response.get_json()["type"].endswith("/unknown-reference")
    assert "debtor_id" in response.get_json()["errors"]
    foreign_pay = post(client, token_a, f"/payments/{b_invoice.id}/allocations", {})
    assert foreign_pay.status_code == 404


def test_a_staff_token_names_the_client(client: FlaskClient, db_session: Any) -> None:
    a = make_client(name="Alpha")
    make_debtor(a, name="Alpha Debtor")
    staff = make_api_token(None)
    assert get(client, staff, "/debtors").status_code == 400
    response = client.get("/api/v1/debtors", headers=auth(staff, **{"X-Client-Id": str(a.id)}))
    assert response.status_code == 200
    assert [d["name"] for d in response.get_json()["data"]] == ["Alpha Debtor"]
    assert client.get("/api/v1/debtors", headers=auth(staff, **{"X-Client-Id": "987654321"})).status_code == 404


def test_rate_limit_is_per_token(app: Any, client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    first, second = make_api_token(acme), make_api_token(acme)
    app.config["API_RATE_LIMIT"] = "3/minute"
    try:
        codes = [get(client, first, "/debtors").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = get(client, first, "/debtors")
        assert limited.mimetype == "application/problem+json"
        assert get(client, second, "/debtors").status_code == 200
    finally:
        app.config.pop("API_RATE_LIMIT")
