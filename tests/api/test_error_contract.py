"""Every /api/ answer is problem+json, errors raised by routing and the framework included; HSTS in production."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from provider.app import create_app
from tests.factories import make_api_token, make_client, make_debtor

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/debtors/-1", 404),
        ("GET", "/api/v1/debtors/abc", 404),
        ("GET", "/api/v1/debtors/1.5", 404),
        ("GET", "/api/v1/no-such-thing", 404),
        ("GET", "/api/v2/debtors", 404),
        ("TRACE", "/api/v1/debtors", 405),
        ("DELETE", "/api/v1/debtors", 405),
        ("GET", "/api/v1/debtors?q=" + "x" * 5000, 414),
    ],
)
def test_api_errors_are_problem_json(client: FlaskClient, db_session: Any, method: str, path: str, status: int) -> None:
    token = make_api_token(make_client())
    response = client.open(path, method=method, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == status
    assert response.mimetype == PROBLEM
    assert response.get_json()["status"] == status
    if status == 405:
        assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_a_body_over_the_limit_is_413_problem_json(app: Flask, client: FlaskClient, db_session: Any) -> None:
    token = make_api_token(make_client())
    before = app.config["MAX_CONTENT_LENGTH"]
    app.config["MAX_CONTENT_LENGTH"] = 1000
    try:
        response = client.post(
            "/api/v1/payments",
            data=b"{" + b" " * 5000 + b"}",
            headers={"Authorization": f"Bearer {token}"},
            content_type="application/json",
        )
    finally:
        app.config["MAX_CONTENT_LENGTH"] = before
    assert (response.status_code, response.mimetype) == (413, PROBLEM)


def test_too_many_requests_is_429_problem_json(app: Flask, client: FlaskClient, db_session: Any) -> None:
    from provider.extensions import limiter

    token = make_api_token(make_client())
    app.config["API_RATE_LIMIT"] = "2/minute"
    limiter.reset()
    try:
        codes = [client.get("/api/v1/debtors", headers={"Authorization": f"Bearer {token}"}) for _ in range(3)]
    finally:
        app.config.pop("API_RATE_LIMIT")
        limiter.reset()
    assert (codes[-1].status_code, codes[-1].mimetype) == (429, PROBLEM)
    assert [c.headers["RateLimit-Remaining"] for c in codes] == ["1", "0", "0"]
    assert {c.headers["RateLimit-Limit"] for c in codes} == {"2"}
    assert codes[0].headers["RateLimit-Policy"] == "2;w=60"
    assert 1 <= int(codes[-1].headers["Retry-After"]) <= 60
    assert 0 <= int(codes[-1].headers["RateLimit-Reset"]) <= 60


def test_pages_outside_the_api_stay_html(client: FlaskClient, db_session: Any) -> None:
    response = client.get("/no-such-page")
    assert (response.status_code, response.mimetype) == (404, "text/html")


def test_hsts_in_production_only(app: Flask, client: FlaskClient, db_session: Any) -> None:
    assert "Strict-Transport-Security" not in client.get("/login").headers
    prod = create_app(
        {
            "AR_ENV": "production",
            "SECRET_KEY": "x" * 40,
            "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
            "HSTS_MAX_AGE": "600",
        },
        JOBS_MODE="eager",  # no in-process dispatcher thread of this second app working the test database
    )
    header = prod.test_client().get("/login").headers.get("Strict-Transport-Security")
    assert header == "max-age=600; includeSubDomains"


@pytest.mark.parametrize("path", ["/api/v1/debtors", "/api/v1/debtors/1", "/api/v1/openapi.json"])
def test_options_is_a_405_problem_not_a_page(client: FlaskClient, db_session: Any, path: str) -> None:
    token = make_api_token(make_client())
    response = client.open(path, method="OPTIONS", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.mimetype) == (405, PROBLEM)
    assert "OPTIONS" not in response.headers["Allow"] and "GET" in response.headers["Allow"]


@pytest.mark.parametrize(
    ("content_type", "body", "status", "kind"),
    [
        ("application/x-www-form-urlencoded", "external_ref=D-1&name=Acme", 415, "unsupported-media-type"),
        ("text/plain", '{"external_ref": "D-1", "name": "Acme"}', 415, "unsupported-media-type"),
        ("application/json", '{"external_ref": "D-1", "name": ', 400, "malformed-json"),
    ],
)
def test_a_body_that_is_not_json_is_refused_as_documented(
    client: FlaskClient, db_session: Any, content_type: str, body: str, status: int, kind: str
) -> None:
    from provider.api.openapi import build_spec

    token = make_api_token(make_client())
    response = client.post(
        "/api/v1/debtors", data=body, content_type=content_type, headers={"Authorization": f"Bearer {token}"}
    )
    assert (response.status_code, response.mimetype) == (status, PROBLEM)
    assert response.get_json()["type"].endswith("/" + kind)
    assert str(status) in build_spec()["paths"]["/debtors"]["post"]["responses"]
    listed = client.get("/api/v1/debtors", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert listed["data"] == []  # nothing written


def test_an_unknown_debtor_is_the_same_problem_everywhere(client: FlaskClient, db_session: Any) -> None:
    acme, other = make_client(), make_client()
    theirs = make_debtor(other)
    token = make_api_token(acme)
    day = "2026-01-10"
    bodies = {
        "/api/v1/payments": {"external_ref": "P-1", "received_on": day, "currency": "EUR", "amount_minor": 5},
        "/api/v1/invoices": {"number": "I-1", "issue_date": day, "due_date": day, "currency": "EUR", "amount_minor": 5},
        "/api/v1/credit-notes": {"number": "C-1", "issued_on": day, "currency": "EUR", "amount_minor": 5},
    }
    answers = []
    for path, body in bodies.items():
        for debtor_id in (theirs.id, 2**40):
            response = client.post(
                path, json={**body, "debtor_id": debtor_id}, headers={"Authorization": f"Bearer {token}"}
            )
            assert (response.status_code, response.mimetype) == (409, PROBLEM), path  # schema-valid: a conflict
            problem = response.get_json()
            answers.append((problem["type"], sorted(problem["errors"]), problem["errors"]["debtor_id"]))
    assert len(set(map(str, answers))) == 1, answers
    assert answers[0][0].endswith("/unknown-reference")


# --- 422 is exactly "does not match the document"; a schema-valid body refused by a rule is a 409 -------------


def _matches(document: dict[str, Any], schema: dict[str, Any], value: Any) -> bool:
    """Whether `value` matches `schema` (which may $ref the document's components), as a JSON Schema validator
    reads the published document (2020-12, what OpenAPI 3.1 uses)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator({**schema, "components": document["components"]}).is_valid(value)


def test_422_means_exactly_that_the_input_does_not_match_the_document(client: FlaskClient, db_session: Any) -> None:
    """For bodies and query values on both sides of each stated limit: the document accepts the value exactly when
    the server does not answer 422; a value it accepts that breaks a rule is a 409 naming the field."""
    from provider.api.openapi import build_spec

    document = build_spec()
    acme = make_client()
    debtor = make_debtor(acme, external_ref="TAKEN-1")
    token = make_api_token(acme)
    auth = {"Authorization": f"Bearer {token}"}
    invoice = {"number": "C-1", "issue_date": "2026-01-10", "due_date": "2026-02-10", "currency": "EUR"}
    bodies: list[tuple[str, str, dict[str, Any], int]] = [
        ("/debtors", "DebtorIn", {"external_ref": "D-1", "name": "\x1c"}, 422),  # blank once trimmed
        ("/debtors", "DebtorIn", {"external_ref": "D-2", "name": "  Acme  "}, 201),
        ("/debtors", "DebtorIn", {"external_ref": "D-3", "name": "A\x00B"}, 422),
        ("/debtors", "DebtorIn", {"external_ref": "D-4", "name": "Acme", "timezone": "Mars/Olympus"}, 422),
        ("/debtors", "DebtorIn", {"external_ref": "D-5", "name": "Acme", "timezone": "Etc/GMT+5"}, 422),
        ("/debtors", "DebtorIn", {"external_ref": "D-6", "name": "Acme", "timezone": "UTC"}, 201),
        ("/debtors", "DebtorIn", {"external_ref": "D-7", "name": "x" * 199 + "  "}, 422),  # too long as sent
        ("/debtors", "DebtorIn", {"external_ref": "TAKEN-1", "name": "Again"}, 409),
        ("/invoices", "InvoiceIn", {**invoice, "debtor_id": float(debtor.id), "amount_minor": 5.0}, 201),
        ("/invoices", "InvoiceIn", {**invoice, "number": "C-2", "debtor_id": debtor.id, "amount_minor": 5.5}, 422),
        ("/invoices", "InvoiceIn", {**invoice, "number": "C-3", "debtor_id": 2**40, "amount_minor": 5}, 409),
        (
            "/invoices",
            "InvoiceIn",
            {**invoice, "number": "C-4", "debtor_id": debtor.id, "amount_minor": 5, "due_date": "2026-01-09"},
            409,
        ),
    ]
    for path, name, body, status in bodies:
        response = client.post(f"/api/v1{path}", json=body, headers=auth)
        assert response.status_code == status, (body, response.get_json())
        assert _matches(document, {"$ref": f"#/components/schemas/{name}"}, body) is (status != 422), body
        if status == 409:
            problem = response.get_json()
            assert not problem["type"].endswith("/validation") and len(problem["errors"]) == 1, problem
    parameters = {p["name"]: p["schema"] for p in document["paths"]["/invoices"]["get"]["parameters"]}
    queries = [
        ("updated_since", "0048-08-10T16:21:16Z", 422),
        ("updated_since", "2999-12-31T23:00:00-05:00", 200),  # written in 2999: taken, though 3000 in UTC
        ("cursor", "abc%21", 422),
        ("cursor", "eyJzIjoiaWQifQ", 409),  # the alphabet of cursors, but not one this list issued
    ]
    for param, value, status in queries:
        response = client.get(f"/api/v1/invoices?{param}={value}", headers=auth)
        assert response.status_code == status, (param, value, response.get_json())
        assert _matches(document, parameters[param], value.replace("%21", "!")) is (status != 422), (param, value)
    key_schema = next(
        p["schema"] for p in document["paths"]["/debtors"]["post"]["parameters"] if p["name"] == "Idempotency-Key"
    )
    for key, status in ((" padded", 422), ("k\x7f", 422), ("k 1", 201)):
        body = {"external_ref": f"K-{status}-{len(key)}", "name": "Keyed"}
        response = client.post("/api/v1/debtors", json=body, headers={**auth, "Idempotency-Key": key})
        assert response.status_code == status, (key, response.get_json())
        assert _matches(document, key_schema, key) is (status != 422), key
