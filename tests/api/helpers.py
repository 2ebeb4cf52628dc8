"""Small helpers for API tests: authorised requests with a token."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def get(client: FlaskClient, token: str, path: str, **kw: Any) -> Any:
    return client.get(f"/api/v1{path}", headers=auth(token, **kw.pop("headers", {})), **kw)


def post(client: FlaskClient, token: str, path: str, body: Any, **headers: str) -> Any:
    return client.post(f"/api/v1{path}", json=body, headers=auth(token, **headers))


def invoice_body(debtor_id: int, number: str, amount: int = 100_00, **kw: Any) -> dict[str, Any]:
    return {
        "debtor_id": debtor_id,
        "number": number,
        "issue_date": kw.get("issue_date", "2026-01-10"),
        "due_date": kw.get("due_date", "2026-02-10"),
        "currency": kw.get("currency", "EUR"),
        "amount_minor": amount,
    }


def payment_body(debtor_id: int, ref: str, amount: int = 25_00, **kw: Any) -> dict[str, Any]:
    return {
        "debtor_id": debtor_id,
        "external_ref": ref,
        "received_on": kw.get("received_on", "2026-03-01"),
        "currency": kw.get("currency", "EUR"),
        "amount_minor": amount,
    }
