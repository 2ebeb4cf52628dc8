"""Schemathesis against the generated OpenAPI document, with two clients' tokens (fixed seed, few examples).

Every operation is fuzzed with schema-valid input as client A and as client B: no 5xx, every response
matches the documented status codes, content types and schemas, and (custom check) no response carries
the other client's data. A second pass sends the other client's real ids in the path: always a 404.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from provider.extensions import limiter
from tests.factories import make_api_token, make_client, make_debtor, make_invoice, make_payment

MARKERS = {
    "A": ["Alpha Secret Ltd", "ALPHA-DEBTOR-77", "ALPHA-INV-1", "ALPHA-PAY-1"],
    "B": ["Bravo Secret Ltd", "BRAVO-DEBTOR-77", "BRAVO-INV-1", "BRAVO-PAY-1"],
}
TOKENS: dict[str, str] = {}
MAX_EXAMPLES = 25


def _owner(response: Any) -> str:
    header = response.request.headers.get("Authorization", "")
    return next(name for name, token in TOKENS.items() if header == f"Bearer {token}")


@schemathesis.check
def no_foreign_data(ctx: Any, response: Any, case: Any) -> None:
    """A response to client A's token never contains client B's data (and vice versa)."""
    owner = _owner(response)
    other = "B" if owner == "A" else "A"
    body = response.content.decode("utf-8", "replace")
    leaked = [m for m in MARKERS[other] if m in body]
    if leaked:
        raise AssertionError(f"client {owner}'s token saw client {other}'s data: {leaked}")


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    no_foreign_data,
]


def _world() -> dict[str, dict[str, int]]:
    ids: dict[str, dict[str, int]] = {}
    for name, cur in (("A", "EUR"), ("B", "GBP")):
        c = make_client(name=MARKERS[name][0], base_currency=cur)
        d = make_debtor(c, name=f"{name} debtor", external_ref=MARKERS[name][1])
        inv = make_invoice(c, d, MARKERS[name][2], 500_00, currency=cur)
        pay = make_payment(c, d, MARKERS[name][3], 100_00, currency=cur)
        TOKENS[name] = make_api_token(c)
        ids[name] = {"debtor_id": d.id, "invoice_id": inv.id, "payment_id": pay.id, "credit_note_id": 987_654}
    return ids


def test_the_api_honours_its_openapi_document(app: Flask, client: Any, db_session: Any) -> None:
    ids = _world()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    tested = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        params = {p.name for p in operation.path_parameters}

        @settings(
            max_examples=MAX_EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def fuzz(case: Any) -> None:
            limiter.reset()
            for name in ("A", "B"):
                case.call_and_validate(headers={"Authorization": f"Bearer {TOKENS[name]}"}, checks=CHECKS)

        fuzz()
        if params:  # the other client's real ids: a 404 like a missing one, never its data
            for me, other in (("A", "B"), ("B", "A")):
                case = operation.Case(path_parameters={p: ids[other][p] for p in params})
                response = case.call(headers={"Authorization": f"Bearer {TOKENS[me]}"})
                assert response.status_code in (404, 422), (operation.label, response.status_code)
                no_foreign_data(None, response, case)
        tested += 1
    assert tested >= 15
