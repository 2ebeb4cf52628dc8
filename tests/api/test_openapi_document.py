"""The served OpenAPI document is one a generator turns into a good SDK: one Problem schema for every error, every
response field required, every field and parameter described, binary answers declared, readable operationIds,
and the webhooks with a payload schema per event type."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient

from provider.api.models import EventType


def _document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return response.get_json()  # type: ignore[no-any-return]


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def test_every_error_is_the_one_problem_schema(client: FlaskClient, db_session: Any) -> None:
    document = _document(client)
    assert document["openapi"].startswith("3.1")
    errors = [
        (path, method, code, response)
        for path, method, op in _operations(document)
        for code, response in op["responses"].items()
        if code.isdigit() and int(code) >= 400
    ]
    assert len(errors) > 100
    for path, method, code, response in errors:
        content = response["content"]
        assert list(content) == ["application/problem+json"], (path, method, code)
        assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}


def test_response_fields_are_required_and_every_field_is_described(client: FlaskClient, db_session: Any) -> None:
    document = _document(client)
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        properties = schema.get("properties", {})
        if name.endswith(("Out", "Page")):
            assert sorted(schema.get("required", [])) == sorted(properties), name
        for field, prop in properties.items():
            assert "description" in prop or "$ref" in prop, f"{name}.{field} is not described"
    for path, method, op in _operations(document):
        assert op["summary"] and op["description"], (path, method)
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", op["operationId"]), op["operationId"]  # a method name
        for param in op["parameters"]:
            assert "description" in param or "description" in param.get("schema", {}), (path, method, param["name"])


def test_binary_answers_are_declared_for_generators(client: FlaskClient, db_session: Any) -> None:
    ok = _document(client)["paths"]["/reports/{report_id}/pdf"]["get"]["responses"]["200"]["content"]
    assert {"application/pdf", "application/octet-stream"} <= set(ok)
    assert ok["application/octet-stream"]["schema"] == {"type": "string", "format": "binary"}


def test_the_webhooks_are_documented(client: FlaskClient, db_session: Any) -> None:
    document = _document(client)
    hooks = document["webhooks"]
    assert set(hooks) == {e.value for e in EventType} | {"webhook.test"}
    for event_type, item in hooks.items():
        post = item["post"]
        for words in ("X-AR-Signature", "300 s", "30 s, 2 min, 10 min, 1 h, 6 h", "X-AR-Event-Id", "ordering"):
            assert words in post["description"], (event_type, words)
        schema_ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = document["components"]["schemas"][schema_ref.rsplit("/", 1)[-1]]
        assert schema["properties"]["type"]["const"] == event_type
        assert {p["name"] for p in post["parameters"]} >= {"X-AR-Signature", "X-AR-Event-Id"}
