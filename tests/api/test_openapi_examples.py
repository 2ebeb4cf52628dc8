"""The served OpenAPI document has an example for every operation, each valid against its schema; one shared
pagination envelope; `readOnly`/`writeOnly` where true. Walked over the whole document, so a new operation or
schema without them fails here."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture
def document(app: Any) -> dict[str, Any]:
    from provider.api.openapi import build_spec

    return build_spec()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, ops in document["paths"].items() for method, op in ops.items()]


def _valid(document: dict[str, Any], schema: dict[str, Any], value: Any) -> list[str]:
    """The errors of `value` under `schema` (JSON Schema 2020-12, as OpenAPI 3.1 uses; `$ref`s into components)."""
    root = {**schema, "components": document["components"]}
    validator = jsonschema.Draft202012Validator(root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(value)]


def _examples(document: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any]]:
    found = []
    for path, method, op in _operations(document):
        body = op.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None:
            found.append((f"{method.upper()} {path} body", body["schema"], body.get("example")))
        for code, response in op["responses"].items():
            content = response.get("content", {}).get("application/json")
            if code.startswith("2") and content is not None:
                found.append((f"{method.upper()} {path} {code}", content["schema"], content.get("example")))
    return found


def test_every_body_and_every_json_success_has_an_example_valid_under_its_schema(document: dict[str, Any]) -> None:
    examples = _examples(document)
    assert len(examples) > 60
    missing = [where for where, _, example in examples if example is None]
    assert not missing, f"no example: {missing}"
    invalid = {where: errors for where, schema, example in examples if (errors := _valid(document, schema, example))}
    assert not invalid, invalid


def test_the_validation_can_fail(document: dict[str, Any]) -> None:
    schema = document["paths"]["/invoices"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    example = dict(document["paths"]["/invoices"]["post"]["requestBody"]["content"]["application/json"]["example"])
    assert _valid(document, schema, example) == []
    assert _valid(document, schema, example | {"amount_minor": "120.50"})  # money is never a decimal string
    assert _valid(document, schema, {k: v for k, v in example.items() if k != "currency"})


def test_money_examples_are_integer_minor_units_with_their_currency(document: dict[str, Any]) -> None:
    def walk(value: Any, where: str, currency: str | None = None) -> None:
        if isinstance(value, dict):
            currency = (
                value.get("currency")
                or currency
                or next((v["currency"] for v in value.values() if isinstance(v, dict) and "currency" in v), None)
            )
            for key in (k for k in value if k.endswith("_minor") and value[k] is not None):
                assert isinstance(value[key], int), f"{where}.{key}"
            if "amount_minor" in value and not where.endswith("body"):  # a request may take the currency elsewhere
                assert currency is not None, where
            if "amount" in value and value.get("currency") == "EUR":
                assert value["amount"] == f"{value['amount_minor'] // 100}.{value['amount_minor'] % 100:02d}", where
            for key, item in value.items():
                walk(item, f"{where}.{key}", currency)
        elif isinstance(value, list):
            for item in value:
                walk(item, where, currency)

    for where, _, example in _examples(document):
        walk(example, where)


def test_every_list_page_shares_the_one_pagination_envelope(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    pages = [
        (path, op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1])
        for path, method, op in _operations(document)
        if method == "get" and any(p["name"] == "cursor" for p in op["parameters"])
    ]
    assert len(pages) >= 9
    for path, name in pages:
        shared, own = schemas[name]["allOf"]
        assert shared == {"$ref": "#/components/schemas/Pagination"}, path
        assert set(own["properties"]) == {"data"} and own["required"] == ["data"], path
    assert schemas["Pagination"]["required"] == ["next_cursor"]
    assert not [n for n, s in schemas.items() if "next_cursor" in s.get("properties", {}) and n != "Pagination"]


def test_read_only_and_write_only_where_true(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name, schema in schemas.items():
        properties = schema.get("properties", {})
        if name.endswith("Out"):
            for field in ("id", "created_at", "updated_at", "open_minor", "unapplied_minor", "amount", "secret"):
                if field in properties:
                    assert properties[field].get("readOnly") is True, f"{name}.{field}"
        if name.endswith(("In", "Patch")):
            assert not [f for f, p in properties.items() if p.get("readOnly")], name  # nothing a client sends
    assert schemas["WebhookEndpointCreatedOut"]["properties"]["secret"]["readOnly"] is True
    assert schemas["InvoiceOut"]["properties"]["open_minor"]["readOnly"] is True
    assert schemas["InvoiceOut"]["properties"]["due_date"].get("readOnly") is None  # the ERP may change it (PATCH)
    assert schemas["RotateSecretIn"]["properties"]["overlap_hours"]["writeOnly"] is True
    assert schemas["DisputeIn"]["properties"]["message"]["writeOnly"] is True
    assert schemas["AllocationIn"]["properties"]["allocated_on"]["writeOnly"] is True
    assert schemas["InvoiceIn"]["properties"]["amount_minor"].get("writeOnly") is None  # read back on the invoice


def test_the_served_document_is_the_one_checked(client: FlaskClient, db_session: Any, document: Any) -> None:
    served = client.get("/api/v1/openapi.json").get_json()
    assert served["paths"]["/invoices"]["post"]["requestBody"] == document["paths"]["/invoices"]["post"]["requestBody"]


def test_the_events_say_when_they_exist(document: dict[str, Any]) -> None:
    """Events are the webhook outbox: recorded only for a type an active endpoint subscribed to at the time."""
    assert "subscribed" in document["paths"]["/events"]["get"]["description"]
    assert "updated_since" in document["paths"]["/events"]["get"]["description"]
    assert "subscribed to its type at the moment it happened" in document["info"]["description"]


def test_the_docs_page_shows_pages_examples_and_access(client: FlaskClient, db_session: Any) -> None:
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "all of <code>Pagination</code>" in html  # a typed page shows its shared envelope and its data
    assert "INV-2026-0042" in html and "read-only" in html and "write-only" in html
