"""Schemathesis against the generated OpenAPI document, with two clients' tokens (fixed seed, few examples).

Every operation is fuzzed with schema-valid input as client A and as client B: no 5xx, every response
matches the documented status codes, content types and schemas, schema-valid input is never refused as
invalid (schemathesis' positive_data_acceptance with its default statuses: 2xx, 3xx, 401, 403, 404, 409, 429;
a rule the schema cannot state is a 409, never a 422), and (custom check) no response carries the other
client's data. GET operations with ids are then called with each client's own real ids (a 200
matching the document), and a last pass sends the other client's real ids in the path: always a 404.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from provider.extensions import limiter
from tests.factories import make_api_token, make_client, make_debtor, make_dispute, make_invoice, make_payment

MARKERS = {
    "A": ["Alpha Secret Ltd", "ALPHA-DEBTOR-77", "ALPHA-INV-1", "ALPHA-PAY-1", "ALPHA-DISPUTE-1"],
    "B": ["Bravo Secret Ltd", "BRAVO-DEBTOR-77", "BRAVO-INV-1", "BRAVO-PAY-1", "BRAVO-DISPUTE-1"],
}
TOKENS: dict[str, str] = {}
MAX_EXAMPLES = 25


def _owner(response: Any) -> str | None:
    """A or B, whose token made the request; None for a request without one of them (schemathesis' probes
    without a token, and other tests' runs: a check registered with schemathesis applies to every run)."""
    header = response.request.headers.get("Authorization", "")
    return next((name for name, token in TOKENS.items() if header == f"Bearer {token}"), None)


@schemathesis.check
def no_foreign_data(ctx: Any, response: Any, case: Any) -> None:
    """A response to client A's token never contains client B's data (and vice versa)."""
    owner = _owner(response)
    if owner is None:
        return
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
    positive_data_acceptance,
    no_foreign_data,
]


def idempotency_key(case: Any) -> dict[str, str]:
    """A generated Idempotency-Key stands for its request: the same key is sent only with the same request (a key
    reused with another body is the client's mistake, answered 422 as documented, not schema-valid input)."""
    if "Idempotency-Key" not in (case.headers or {}):
        return {}
    request = json.dumps([case.method, case.formatted_path, case.body], sort_keys=True, default=str)
    return {"Idempotency-Key": hashlib.sha256(request.encode()).hexdigest()}


def _world() -> dict[str, dict[str, int]]:
    ids: dict[str, dict[str, int]] = {}
    for name, cur in (("A", "EUR"), ("B", "GBP")):
        c = make_client(name=MARKERS[name][0], base_currency=cur)
        d = make_debtor(c, name=f"{name} debtor", external_ref=MARKERS[name][1])
        inv = make_invoice(c, d, MARKERS[name][2], 500_00, currency=cur)
        pay = make_payment(c, d, MARKERS[name][3], 100_00, currency=cur)
        disputed = make_invoice(c, d, f"{MARKERS[name][2]}-D", 80_00, currency=cur)
        dispute = make_dispute(c, d, [disputed], summary=MARKERS[name][4])
        TOKENS[name] = make_api_token(c)
        ids[name] = {
            "debtor_id": d.id,
            "invoice_id": inv.id,
            "payment_id": pay.id,
            "transaction_id": _transaction_of(pay.id),
            "credit_note_id": _credit_note(c, d, f"{MARKERS[name][2]}-CN"),
            "dispute_id": dispute.id,
            "report_id": _report(c),
            **_webhooks(c, name),
        }
    return ids


def _webhooks(client: Any, name: str) -> dict[str, int]:
    """A webhook endpoint of the client (to a closed loopback port) and one event sent to it."""
    from provider.api.webhooks import emit_event
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from tests.factories import make_webhook_endpoint

    endpoint = make_webhook_endpoint(client, "http://127.0.0.1:9/hooks", ["report.ready"])
    with scoped(TenantScope.agency(), db.session):
        event = emit_event(db.session, client.id, "report.ready", {"period": "2026-01"}, dedupe_key=f"sch:{name}")
        assert event is not None
        db.session.info.pop("pending_jobs", None)
        db.session.commit()
        return {"endpoint_id": endpoint.id, "event_id": event.id}


def _transaction_of(payment_id: int) -> int:
    from sqlalchemy import select

    from clients.journal import JournalEntry
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db

    with scoped(TenantScope.agency(), db.session):
        return db.session.scalars(
            select(JournalEntry.transaction_id).where(JournalEntry.payment_id == payment_id).limit(1)
        ).one()


def _credit_note(client: Any, debtor: Any, number: str) -> int:
    from datetime import date

    from clients.ledger import issue_credit_note
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db

    data = {"debtor_id": debtor.id, "number": number, "issued_on": date(2026, 1, 6), "amount_minor": 1_00}
    with scoped(TenantScope.agency(), db.session):
        note = issue_credit_note(db.session, client, data | {"currency": client.base_currency})
        db.session.commit()
        return note.id


def _report(client: Any) -> int:
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from provider.reporting.reports import generate_report

    with scoped(TenantScope.agency(), db.session):
        report = generate_report(db.session, client, "2026-01").report
        db.session.info.pop("pending_jobs", None)
        db.session.commit()
        return report.id


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
                headers = {"Authorization": f"Bearer {TOKENS[name]}", **idempotency_key(case)}
                case.call_and_validate(headers=headers, checks=CHECKS)

        fuzz()
        if params and operation.method.upper() == "GET":  # each client's own real objects match the document
            for me in ("A", "B"):
                case = operation.Case(path_parameters={p: ids[me][p] for p in params})
                response = case.call_and_validate(headers={"Authorization": f"Bearer {TOKENS[me]}"}, checks=CHECKS)
                assert response.status_code == 200, (operation.label, response.status_code)
        if params:  # the other client's real ids: a 404 like a missing one, never its data
            for me, other in (("A", "B"), ("B", "A")):
                case = operation.Case(path_parameters={p: ids[other][p] for p in params})
                response = case.call(headers={"Authorization": f"Bearer {TOKENS[me]}"})
                assert response.status_code in (404, 409), (operation.label, response.status_code)
                no_foreign_data(None, response, case)
        tested += 1
    assert tested >= 30
