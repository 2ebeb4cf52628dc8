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
            assert (response.status_code, response.mimetype) == (422, PROBLEM), path
            problem = response.get_json()
            answers.append((problem["type"], sorted(problem["errors"]), problem["errors"]["debtor_id"]))
    assert len(set(map(str, answers))) == 1, answers
    assert answers[0][0].endswith("/validation")
