"""Incremental sync: `updated_at` on every resource, `updated_since` on every list, debtor PATCH with If-Match."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from flask.testing import FlaskClient

from provider.core.clock import frozen_time
from tests.api.helpers import auth, get, invoice_body, payment_body, post
from tests.factories import make_api_token, make_client, make_debtor

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LISTS = ["/debtors", "/invoices", "/payments", "/credit-notes", "/disputes", "/reports"]


def patch(client: FlaskClient, token: str, path: str, body: Any, **headers: str) -> Any:
    return client.patch(f"/api/v1{path}", json=body, headers=auth(token, **headers))


def _all(client: FlaskClient, token: str, path: str, **params: str) -> list[dict[str, Any]]:
    """Every page of a list, following next_cursor."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = urlencode({**params, **({"cursor": cursor} if cursor else {})})
        page = get(client, token, f"{path}?{query}")
        assert page.status_code == 200, page.get_json()
        body = page.get_json()
        items += body["data"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize("path", LISTS)
def test_every_list_takes_updated_since_and_sorts_by_updated_at(
    client: FlaskClient, db_session: Any, path: str
) -> None:
    token = make_api_token(make_client())
    assert get(client, token, f"{path}?updated_since=2026-01-01T00:00:00Z&sort=-updated_at").status_code == 200
    assert get(client, token, f"{path}?updated_since=2026-01-01T00:00:00").status_code == 200  # naive = UTC
    bad = get(client, token, f"{path}?updated_since=yesterday")
    assert bad.status_code == 422 and "updated_since" in bad.get_json()["errors"]


def test_incremental_sync_returns_exactly_the_changed_rows(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    token = make_api_token(acme)
    with frozen_time(T0):
        debtors = [make_debtor(acme) for _ in range(4)]
        for n, d in enumerate(debtors):
            assert post(client, token, "/invoices", invoice_body(d.id, f"S-{n}", 50_00)).status_code == 201
        first = {k: _all(client, token, k, limit="2", sort="updated_at") for k in ("/debtors", "/invoices")}
    assert [len(first["/debtors"]), len(first["/invoices"])] == [4, 4]
    assert all(i["updated_at"] for rows in first.values() for i in rows)
    mark = max(i["updated_at"] for rows in first.values() for i in rows)
    with frozen_time(T0 + timedelta(hours=1)):
        paid = post(client, token, "/payments", payment_body(debtors[1].id, "S-PAY", 20_00, received_on="2026-03-01"))
        assert paid.status_code == 201
        payment_id = paid.get_json()["id"]
        invoice_id = next(i["id"] for i in first["/invoices"] if i["debtor_id"] == debtors[1].id)
        allocated = post(
            client, token, f"/payments/{payment_id}/allocations", {"invoice_id": invoice_id, "amount_minor": 20_00}
        )
        assert allocated.status_code == 201, allocated.get_json()
        assert patch(client, token, f"/debtors/{debtors[2].id}", {"name": "Renamed Ltd"}).status_code == 200
    since = (datetime.fromisoformat(mark) + timedelta(seconds=1)).isoformat()
    changed = {k: _all(client, token, k, updated_since=since, sort="updated_at") for k in LISTS}
    assert [d["id"] for d in changed["/debtors"]] == [debtors[2].id]
    assert [(i["id"], i["open_minor"]) for i in changed["/invoices"]] == [(invoice_id, 30_00)]
    assert [p["id"] for p in changed["/payments"]] == [payment_id]
    assert changed["/credit-notes"] == changed["/disputes"] == changed["/reports"] == []


def test_patch_a_debtor_with_if_match(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    token = make_api_token(acme)
    created = post(
        client,
        token,
        "/debtors",
        {"external_ref": "ERP-1", "name": "Acme GmbH", "email": "ap@acme.example", "phone": "+49 30 1234567"},
    )
    assert created.status_code == 201
    debtor = created.get_json()
    assert (debtor["email"], debtor["phone"]) == ("ap@acme.example", "+49 30 1234567")  # readable, not write-only
    read = get(client, token, f"/debtors/{debtor['id']}")
    etag = read.headers["ETag"]
    changed = patch(
        client,
        token,
        f"/debtors/{debtor['id']}",
        {"name": "Acme AG", "external_ref": "ERP-1A", "email": "billing@acme.example", "phone": None},
        **{"If-Match": etag},
    )
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert (body["name"], body["external_ref"], body["email"], body["phone"]) == (
        "Acme AG",
        "ERP-1A",
        "billing@acme.example",
        None,
    )
    assert changed.headers["ETag"] != etag
    stale = patch(client, token, f"/debtors/{debtor['id']}", {"name": "Lost update"}, **{"If-Match": etag})
    assert (stale.status_code, stale.mimetype) == (412, "application/problem+json")
    assert get(client, token, f"/debtors/{debtor['id']}").get_json()["name"] == "Acme AG"
    fresh = patch(
        client, token, f"/debtors/{debtor['id']}", {"segment": "key"}, **{"If-Match": changed.headers["ETag"]}
    )
    assert fresh.status_code == 200 and fresh.get_json()["segment"] == "key"


def test_patch_refuses_bad_fields_and_a_taken_reference(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    token = make_api_token(acme)
    one, two = make_debtor(acme), make_debtor(acme)
    taken = patch(client, token, f"/debtors/{one.id}", {"external_ref": two.external_ref})
    assert taken.status_code == 409 and "external_ref" in taken.get_json()["errors"]
    assert taken.get_json()["type"].endswith("/duplicate")
    bad = patch(client, token, f"/debtors/{one.id}", {"email": "not-an-address", "name": "", "colour": "red"})
    assert bad.status_code == 422 and {"email", "name", "colour"} <= set(bad.get_json()["errors"])
    assert get(client, token, f"/debtors/{one.id}").get_json()["external_ref"] == one.external_ref


def test_another_clients_debtor_cannot_be_patched(client: FlaskClient, db_session: Any) -> None:
    acme, other = make_client(), make_client()
    theirs = make_debtor(other)
    token = make_api_token(acme)
    response = patch(client, token, f"/debtors/{theirs.id}", {"name": "Mine now"})
    assert (response.status_code, response.mimetype) == (404, "application/problem+json")
    read_only = make_api_token(acme, access="read")
    assert patch(client, read_only, f"/debtors/{make_debtor(acme).id}", {"name": "x"}).status_code == 403
