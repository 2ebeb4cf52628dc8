"""Schemathesis, stateful: link-following scenarios over the API (create a debtor, read it, place an invoice for it,
pay it, ...) with every check schemathesis has, as one client's token, with a fixed seed and a bounded number of
scenarios. The links are those of the OpenAPI document (provider.api.openapi adds one from each create to the
operations on what it created) and what schemathesis infers.

Hypothesis replays a scenario (to confirm a failure, and whenever a new scenario starts with the same choices as an
earlier one) and requires the same choices to give the same run: otherwise it stops with FlakyStrategyDefinition,
which hides the check that failed. So every scenario starts from the same state, whatever ran before it:

- the database: a scenario's writes (idempotency claims included) are rolled back when it ends, and on PostgreSQL
  the sequences are set back too (`nextval` is not undone by a rollback: a replay got other ids, and a generated
  id in a body then named a real row in one run and nothing in the other);
- the rate limiter's counters are reset;
- an Idempotency-Key is sent only with the request it was generated for (the key is derived from the request):
  a generated key reused with another body is a client's mistake (422, documented), not schema-valid input.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import schemathesis
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FlakyStrategyDefinition

from provider.extensions import db, limiter
from tests.factories import make_api_token, make_client, make_debtor, make_invoice

# schemathesis' defaults (2xx, 3xx, 401, 403, 404, 409, 429) and 412: an If-Match that is not the current ETag
POSITIVE_OK = ["2xx", "3xx", "401", "403", "404", "409", "412", "429"]
SCENARIOS = 40
STEPS = 8


def request_key(case: Any) -> str:
    """The Idempotency-Key of a request: the same request, the same key; another request, another key."""
    request = json.dumps([case.method, case.formatted_path, case.query, case.body], sort_keys=True, default=str)
    return hashlib.sha256(request.encode()).hexdigest()


class Sequences:
    """PostgreSQL's sequences, read and set back through the database owner (the app role may only use them);
    nothing to do on SQLite, which reuses rolled-back ids."""

    def __init__(self, database: Any) -> None:
        self.engine = (
            sa.create_engine(database.owner_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
            if database.backend == "postgresql"
            else None
        )
        self.start: list[tuple[str, int, bool]] = []

    def remember(self) -> None:
        if self.engine is None:
            return
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT schemaname || '.' || sequencename, last_value FROM pg_sequences")
            ).all()
        self.start = [(name, last, True) if last is not None else (name, 1, False) for name, last in rows]

    def restore(self) -> None:
        if self.engine is None:
            return
        with self.engine.connect() as connection:
            for name, value, called in self.start:
                connection.execute(sa.text("SELECT setval(:n, :v, :c)"), {"n": name, "v": value, "c": called})

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def test_stateful_scenarios_pass_every_check(app: Flask, client: Any, db_session: Any, database: Any) -> None:
    acme = make_client(name="Stateful Ltd", base_currency="EUR")
    debtor = make_debtor(acme, external_ref="ST-1")
    make_invoice(acme, debtor, "ST-INV-1", 100_00)
    token = make_api_token(acme)
    db.session.commit()
    positions = Sequences(database)
    positions.remember()
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    schema.config.checks.positive_data_acceptance.expected_statuses = POSITIVE_OK

    @schema.auth()
    class TokenAuth:  # the token as schemathesis' own auth: its auth checks then probe without it
        def get(self, case: Any, ctx: Any) -> str:
            return token

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    base = schema.as_state_machine()
    failed: list[BaseException] = []  # the first check that failed, should hypothesis hide it behind "flaky"
    calls: list[str] = []
    followed: list[str] = []  # operations on a debtor the same scenario created: the links were followed

    class Workflow(base):  # type: ignore[misc, valid-type]
        """Each scenario starts from the same database, sequences and rate-limit counters (see the module's text)."""

        def setup(self) -> None:
            limiter.reset()
            db.session.remove()
            self.scenario = db.session.get_bind().begin_nested()
            positions.restore()
            self.created: set[int] = set()

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            """The request's own Idempotency-Key, given at sending time: the case itself is left as generated
            (changing its containers makes schemathesis re-classify it)."""
            kwargs = super().get_call_kwargs(case)
            if "Idempotency-Key" in (case.headers or {}):
                kwargs["headers"] = {**kwargs.get("headers", {}), "Idempotency-Key": request_key(case)}
            return kwargs

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)  # the recorder: stateful checks look up earlier responses
            calls.append(f"{case.method} {response.request.path_url.split('?', 1)[0]} {response.status_code}")
            # what was sent is read from the request, not from the generated case
            sent = response.request.path_url.split("?", 1)[0].removeprefix("/api/v1")
            if case.method.upper() == "POST" and sent == "/debtors" and response.status_code == 201:
                self.created.add(int(response.json()["id"]))
            elif sent.startswith("/debtors/") and response.status_code < 500:  # answered (a 412 or 409 too)
                part = sent.split("/")[2]
                if part.isdigit() and int(part) in self.created:
                    followed.append(f"{case.method} {case.path}")

        def validate_response(self, response: Any, case: Any, *args: Any, **kwargs: Any) -> None:
            try:
                super().validate_response(response, case, *args, **kwargs)
            except BaseException as exc:
                failed.append(exc)
                raise

        def teardown(self) -> None:
            db.session.remove()
            if self.scenario.is_active:
                self.scenario.rollback()
            super().teardown()

    try:
        Workflow.run(
            settings=settings(
                max_examples=SCENARIOS,
                stateful_step_count=STEPS,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],  # a failure is reported as found, without shrinking
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
        )
    except FlakyStrategyDefinition as flaky:  # never hide the check that failed
        if failed:
            raise AssertionError(f"a check failed (hypothesis then reported a flaky replay): {failed[0]}") from flaky
        raise
    finally:
        positions.close()
    assert followed, ("no scenario followed a link from a created debtor to its operations", calls[:200])
