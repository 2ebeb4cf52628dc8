"""Schemathesis, stateful: link-following scenarios over the API (create a debtor, read it, place an invoice for it,
pay it, ...) with every check schemathesis has, as one client's token, with a fixed seed and a bounded number of
scenarios. The links are those of the OpenAPI document (provider.api.openapi adds one from each create to the
operations on what it created) and what schemathesis infers."""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, settings

from provider.extensions import limiter
from tests.factories import make_api_token, make_client, make_debtor, make_invoice

POSITIVE_OK = ["2xx", "3xx", "401", "403", "404", "409", "429"]
SCENARIOS = 30
STEPS = 6


@pytest.mark.skipif(
    not os.environ.get("AR_SCHEMATHESIS_STATEFUL"),
    reason="not finished (issue 22): schemathesis' stateful run stops with hypothesis' FlakyStrategyDefinition "
    "while replaying a failing scenario (its rule preconditions depend on state kept across scenarios), so the "
    "underlying check failure is not reported yet; run with AR_SCHEMATHESIS_STATEFUL=1; see NOTES-security.md",
)
def test_stateful_scenarios_pass_every_check(app: Flask, client: Any, db_session: Any) -> None:
    acme = make_client(name="Stateful Ltd", base_currency="EUR")
    debtor = make_debtor(acme, external_ref="ST-1")
    make_invoice(acme, debtor, "ST-INV-1", 100_00)
    token = make_api_token(acme)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    # Rules across fields (a due date before the issue date) and of the ledger (another currency than the
    # debtor's) cannot be said in JSON Schema: those schema-valid bodies are a 422 with the reason, as documented.
    schema.config.checks.positive_data_acceptance.expected_statuses = [*POSITIVE_OK, "422"]

    @schema.auth()
    class TokenAuth:  # the token as schemathesis' own auth: its auth checks then probe without it
        def get(self, case: Any, ctx: Any) -> str:
            return token

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    base = schema.as_state_machine()

    class Workflow(base):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            limiter.reset()

    Workflow.run(
        settings=settings(
            max_examples=SCENARIOS,
            stateful_step_count=STEPS,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the database remembers earlier scenarios
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )
