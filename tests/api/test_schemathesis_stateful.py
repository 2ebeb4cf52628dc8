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

from provider.extensions import db, limiter
from tests.factories import make_api_token, make_client, make_debtor, make_invoice

POSITIVE_OK = ["2xx", "3xx", "401", "403", "404", "409", "412", "429"]  # 412: an If-Match that is not the ETag
SCENARIOS = 100
STEPS = 8


@pytest.mark.skipif(
    not os.environ.get("AR_SCHEMATHESIS_STATEFUL"),
    reason="not finished (issue 22): with the OpenAPI links and a rollback per scenario it passes most runs, but "
    "hypothesis still stops some runs with FlakyStrategyDefinition while replaying a scenario, which hides the check "
    "that failed; run with AR_SCHEMATHESIS_STATEFUL=1",
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
    followed: list[str] = []  # operations on a debtor the same scenario created: the links were followed

    class Workflow(base):  # type: ignore[misc, valid-type]
        """Each scenario starts from the same database: its writes are rolled back when it ends, so a scenario
        replayed by hypothesis meets the state it met the first time (otherwise a create that succeeded once
        answers 409 on the replay, a link has nothing to follow, and hypothesis stops with "flaky")."""

        def setup(self) -> None:
            limiter.reset()
            db.session.remove()
            self.scenario = db.session.get_bind().begin_nested()
            self.created: set[int] = set()

        def after_call(self, response: Any, case: Any) -> None:
            if case.method.upper() == "POST" and case.path == "/debtors" and response.status_code == 201:
                self.created.add(int(response.json()["id"]))
            elif (
                case.path.startswith("/debtors/{")
                and response.status_code == 200
                and int((case.path_parameters or {}).get("debtor_id", -1)) in self.created
            ):
                followed.append(f"{case.method} {case.path}")

        def teardown(self) -> None:
            db.session.remove()
            if self.scenario.is_active:
                self.scenario.rollback()

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
    assert followed, "no scenario followed a link from a created debtor to its operations"
