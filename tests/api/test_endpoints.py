"""Endpoints through real requests: place, pay, allocate, credit, read back; lists, cursors, errors, audit."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from clients.journal import Invoice
from provider.core.audit import AuditEvent
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.api.helpers import get, invoice_body, payment_body, post
from tests.factories import make_api_token, make_client, make_debtor


def _count(model: Any) -> int:
    with scoped(TenantScope.agency(), db.session):
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_place_pay_allocate_credit_and_read_back(client: FlaskClient, db_session: Any) -> None:
    acme = make_client(base_currency="EUR")
    debtor = make_debtor(acme)
    token = make_api_token(acme)
    placed = post(client, token, "/invoices", invoice_body(debtor.id, "INV-1", 120_50))
    assert placed.status_code == 201, placed.get_json()
    invoice = placed.get_json()
    assert (invoice["amount_minor"], invoice["amount"], invoice["currency"]) == (120_50, "120.50", "EUR")
    assert placed.headers["Location"].endswith(f"/api/v1/invoices/{invoice['id']}")
    again = post(client, token, "/invoices", invoice_body(debtor.id, "INV-1", 120_50))
    assert again.status_code == 200 and again.get_json()["id"] == invoice["id"]
    paid = post(client, token, "/payments", payment_body(debtor.id, "PAY-1", 100_00))
    assert paid.status_code == 201
    payment = paid.get_json()
    alloc = post(
        client, token, f"/payments/{payment['id']}/allocations", {"invoice_id": invoice["id"], "amount_minor": 60_00}
    )
    assert alloc.status_code == 201, alloc.get_json()
    assert alloc.get_json()["payment"]["unapplied_minor"] == 40_00
    auto = post(client, token, f"/payments/{payment['id']}/allocations", {})
    assert auto.status_code == 201 and auto.get_json()["payment"]["unapplied_minor"] == 0
    credit = post(
        client,
        token,
        "/credit-notes",
        {
            "debtor_id": debtor.id,
            "number": "CN-1",
            "issued_on": "2026-03-02",
            "currency": "EUR",
            "amount_minor": 20_50,
            "invoice_id": invoice["id"],
        },
    )
    assert credit.status_code == 201, credit.get_json()
    assert get(client, token, f"/invoices/{invoice['id']}").get_json()["open_minor"] == 0
    aging = get(client, token, "/aging?as_of=2026-02-01").get_json()
    assert aging["currencies"][0]["buckets"]["Current"] == 120_50  # nothing paid yet on that date
    kpis = get(client, token, "/kpis?as_of=2026-01-31&days=30").get_json()
    assert kpis["currencies"][0]["sales_minor"] == 120_50
    with scoped(TenantScope.agency(), db_session):
        actors = set(db_session.scalars(select(AuditEvent.actor_label).where(AuditEvent.client_id == acme.id)))
    assert any(a.startswith("api-token:") for a in actors)


def test_yen_and_dinar_amounts_use_their_exponent(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    token = make_api_token(acme)
    yen = post(client, token, "/invoices", invoice_body(debtor.id, "JPY-1", 1234, currency="JPY")).get_json()
    kwd = post(client, token, "/invoices", invoice_body(debtor.id, "KWD-1", 1234, currency="KWD")).get_json()
    assert (yen["amount"], kwd["amount"]) == ("1234", "1.234")


def test_bad_input_is_a_422_problem_with_every_field_and_writes_nothing(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    token = make_api_token(acme)
    before = _count(Invoice), _count(AuditEvent)
    rows = [
        invoice_body(debtor.id, "OK-1"),
        {**invoice_body(debtor.id, "BAD-1"), "amount_minor": 1.5, "currency": "XXQ"},
    ]
    response = post(client, token, "/invoices/batch", {"invoices": rows})
    assert response.status_code == 422
    body = response.get_json()
    assert response.mimetype == "application/problem+json"
    assert {"type", "title", "status", "detail"} <= set(body)
    assert {"invoices.1.amount_minor", "invoices.1.currency"} <= set(body["errors"])
    ledger_refusal = post(
        client, token, "/invoices/batch", {"invoices": [invoice_body(debtor.id, "OK-1"), invoice_body(987654, "X-2")]}
    )
    assert ledger_refusal.status_code == 409  # schema-valid, but no such debtor: a conflict naming row and field
    assert ledger_refusal.get_json()["type"].endswith("/unknown-reference")
    assert "invoices.1.debtor_id" in ledger_refusal.get_json()["errors"]
    assert (_count(Invoice), _count(AuditEvent)) == before
    assert post(client, token, "/invoices", None).status_code == 415  # no JSON body at all


def test_batch_places_all_and_lists_page_with_cursors(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    token = make_api_token(acme)
    rows = [invoice_body(debtor.id, f"B-{n:03d}", 10_00 + n, due_date=f"2026-02-{1 + n % 28:02d}") for n in range(25)]
    response = post(client, token, "/invoices/batch", {"invoices": rows})
    assert response.status_code == 201 and response.get_json()["placed"] == 25
    assert post(client, token, "/invoices/batch", {"invoices": rows}).get_json() == {
        "placed": 0,
        "unchanged": 25,
        "invoices": [],
    }
    seen: list[int] = []
    cursor = None
    while True:
        url = "/invoices?limit=7&sort=-due_date" + (f"&cursor={cursor}" if cursor else "")
        page = get(client, token, url).get_json()
        seen += [i["id"] for i in page["data"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 25
    dues = [get(client, token, f"/invoices/{i}").get_json()["due_date"] for i in seen]
    assert dues == sorted(dues, reverse=True)
    other_sort = get(client, token, "/invoices?limit=7&sort=-due_date").get_json()["next_cursor"]
    assert get(client, token, f"/invoices?sort=number&cursor={other_sort}").status_code == 409  # another sort's
    assert get(client, token, "/invoices?cursor=not%20a%20cursor").status_code == 422  # not even the pattern
    filtered = get(client, token, "/invoices?due_before=2026-02-03").get_json()["data"]
    assert filtered and all(i["due_date"] < "2026-02-03" for i in filtered)


def test_debtor_create_uses_the_back_office_rules(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    token = make_api_token(acme)
    created = post(
        client, token, "/debtors", {"external_ref": "ERP-1", "name": "Erp Debtor", "timezone": "Europe/Paris"}
    )
    assert created.status_code == 201
    bad = post(client, token, "/debtors", {"external_ref": "ERP-2", "name": "x", "timezone": "Mars/Olympus"})
    assert bad.status_code == 422 and "timezone" in bad.get_json()["errors"]
    dup = post(client, token, "/debtors", {"external_ref": "ERP-1", "name": "Again"})
    assert dup.status_code == 409 and dup.get_json()["type"].endswith("/duplicate")
    assert dup.get_json()["errors"] == {"external_ref": ["exists"]}
    assert get(client, token, "/debtors?external_ref=ERP-1").get_json()["data"][0]["name"] == "Erp Debtor"
    assert get(client, token, f"/debtors/{created.get_json()['id']}/work-history").get_json() == {
        "data": [],
        "next_cursor": None,
    }
