"""The OpenAPI 3 document, generated from the operations' marshmallow schemas (apispec), and the docs page."""

from __future__ import annotations

from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import current_app, jsonify, render_template

from provider.api.base import OPERATIONS, PUBLIC_MARK, bp
from provider.api.glossary import describe
from provider.api.idempotency import HEADER, KEY_REGEX, REPLAY_HEADER
from provider.api.problems import CONFLICTS, PROBLEM_TYPE
from provider.api.spec_examples import add_examples
from provider.api.spec_shapes import mark_access, share_pagination
from provider.api.webhook_docs import add_webhooks

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An error (RFC 9457 problem details). Every error of the API has this shape.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {
            "type": "string",
            "description": "what kind of problem: a URI ending in e.g. `validation` (422: the input does not match "
            "this document), a rule's name on a 409 (`unknown-reference`, `date-rule`, `currency-mismatch`, "
            "`amount-rule`, `field-combination`, `duplicate`, `state-conflict`, `invalid-cursor`, `url-refused`, "
            "`ledger-rule`, `in-flight`), `not-found`, `idempotency-mismatch`, `read-only`, `precondition-failed`, "
            "`busy`, `unsupported-media-type`",
            "example": "https://ar-ops.example/problems/validation",
        },
        "title": {"type": "string", "description": "the HTTP status in words", "example": "Unprocessable content"},
        "status": {"type": "integer", "description": "the HTTP status code", "example": 422},
        "detail": {
            "type": "string",
            "description": "what went wrong, for a person",
            "example": "the request has invalid fields; nothing was written",
        },
        "errors": {
            "type": "object",
            "description": "per field (`amount_minor`, `invoices.3.currency`, a header name): the messages",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "example": {
                "amount_minor": ["Must be greater than or equal to 1 and less than or equal to 999999999999999."]
            },
        },
    },
}
PROBLEM = {"$ref": "#/components/schemas/Problem"}
RATE_HEADERS = {
    "RateLimit-Limit": {"schema": {"type": "integer"}, "description": "requests allowed per window for this token"},
    "RateLimit-Remaining": {"schema": {"type": "integer"}, "description": "requests left in the current window"},
    "RateLimit-Reset": {"schema": {"type": "integer"}, "description": "seconds until the window resets"},
    "RateLimit-Policy": {"schema": {"type": "string"}, "description": "`<requests>;w=<window seconds>`"},
}
RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait before retrying"}}
ETAG = {"ETag": {"schema": {"type": "string"}, "description": "the representation's version, for `If-Match`"}}
WITH_ETAG = {"get_debtor", "create_debtor", "update_debtor", "get_invoice", "update_invoice"}
ERRORS = {
    400: "bad request (a staff token without X-Client-Id)",
    401: "missing, unknown or revoked token",
    404: "no such object for this token's client (another client's object looks exactly the same)",
    405: "method not allowed",
    429: "rate limit of the token exceeded",
    503: "the database is busy (another writer holds the lock); nothing was written: retry after `Retry-After` "
    "seconds, with the same Idempotency-Key",
    414: "the URL is longer than the server accepts (4,000 characters)",
}
WRITE_ERRORS = {
    403: "the token is read-only",
    409: "a request with this Idempotency-Key is still running (type `in-flight`): retry it after a moment",
    413: "the body is larger than the server accepts",
    415: "the body is not declared JSON (Content-Type: application/json)",
}
LIST_CONFLICTS = ["invalid-cursor"]
WRITE_CONFLICTS = ["ledger-rule"]
REVERSAL = ["date-rule", "state-conflict"]
CONFLICTS_OF = {  # the 409 types each operation can answer (besides `in-flight` on every POST)
    "create_debtor": ["duplicate"],
    "update_debtor": ["duplicate"],
    "place_invoice": ["unknown-reference", "date-rule", "currency-mismatch", "duplicate"],
    "place_invoice_batch": ["unknown-reference", "date-rule", "currency-mismatch", "duplicate", "ledger-rule"],
    "record_payment": ["unknown-reference", "date-rule", "currency-mismatch", "duplicate"],
    "allocate_payment": [
        "unknown-reference",
        "field-combination",
        "date-rule",
        "amount-rule",
        "currency-mismatch",
        "state-conflict",
        "ledger-rule",
    ],
    "reverse_payment": REVERSAL,
    "reverse_credit_note": REVERSAL,
    "reverse_transaction": [*REVERSAL, "amount-rule"],
    "write_off_invoice": ["date-rule", "amount-rule", "state-conflict"],
    "issue_credit_note": ["unknown-reference", "date-rule", "currency-mismatch", "duplicate", "amount-rule"],
    "open_dispute": ["unknown-reference", "field-combination", "currency-mismatch", "amount-rule", "ledger-rule"],
    "add_dispute_message": ["state-conflict"],
    "answer_dispute": ["state-conflict"],
    "decide_proposal": ["state-conflict", "field-combination", "ledger-rule"],
    "replay_event": ["unknown-reference", "state-conflict"],
    "create_webhook_endpoint": ["url-refused"],
    "send_test_event": ["state-conflict"],
    "get_forecast": ["date-rule"],
    "get_backtest": ["date-rule"],
}
IN_FLIGHT_EXAMPLE = {
    "summary": "in-flight: a request with this Idempotency-Key is still running",
    "value": {
        "type": PROBLEM_TYPE + "in-flight",
        "title": "Conflict",
        "status": 409,
        "detail": "a request with this Idempotency-Key is still being processed",
    },
}
DESCRIPTION = """JSON API for client businesses' ERP integrations.

**Auth**: `Authorization: Bearer <token>`. A client token sees and changes only its client's ledger; a staff
token names the client with `X-Client-Id`. Read tokens cannot write (403).

**Money**: `amount_minor` is an integer in the currency's minor unit (cents; yen; fils) and `currency` an ISO 4217
code; responses add `amount`, the same value as a decimal string with the currency's exponent.

**Lists**: `?limit=` (1-200), `?sort=field` or `-field`, `?cursor=` from the previous page's `next_cursor`; every
page is `{"data": [...], "next_cursor": ...}` (the shared `Pagination` component and a typed `data`).
`?updated_since=` on every list is the change feed (every resource has a non-null `updated_at`).

**Updates**: `PATCH` debtors and invoices (due date, PO reference; never amounts: money moves only through the
ledger) with `If-Match: <ETag>` from a GET; a changed object answers 412.

**Errors**: `application/problem+json` with `type`, `title`, `status`, `detail` and per-field `errors`.

**Idempotency**: every POST accepts `Idempotency-Key`; a retry returns the stored response with
`Idempotent-Replayed: true`; the same key with another body is a 422; while the first is running, a 409.

**422 or 409**: a 422 (type `validation`) means the input does not match this document (types, formats,
lengths, patterns, enums, required fields). Input that matches it but breaks a rule it cannot state is a
409 Conflict whose `type` names the rule: `unknown-reference` (an id in the body that is not this client's),
`date-rule` (e.g. a due date before the issue date, a date in the future), `currency-mismatch`, `amount-rule`
(more than is open), `field-combination`, `duplicate`, `state-conflict` (e.g. already reversed),
`invalid-cursor`, `url-refused`, `ledger-rule`; `errors` names the field. Nothing is written either way.

**Webhooks**: signed `X-AR-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`.

**Events**: the webhook outbox, not a history of everything: an event is recorded only when an active endpoint
subscribed to its type at the moment it happened. For a complete sync use the lists' `updated_since`.
"""


def _responses(op: Any) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "OK", "headers": dict(RATE_HEADERS)}
    if op.response is not None:
        ok["content"] = {op.content_type: {"schema": op.response}}
        if op.content_type != "application/json":  # generators keep a binary answer declared as octet-stream
            ok["content"]["application/octet-stream"] = {"schema": op.response}
    if op.idempotent:
        ok["headers"][REPLAY_HEADER] = {"schema": {"type": "string"}, "description": "true on a stored replay"}
    if op.endpoint in WITH_ETAG:
        ok["headers"] |= ETAG
    out: dict[str, Any] = {str(op.status): ok}
    for code, text in op.extra_responses.items():
        if code >= 400:
            problem = {"description": text, "headers": dict(RATE_HEADERS)}
            out[str(code)] = problem | {"content": {"application/problem+json": {"schema": PROBLEM}}}
        else:
            out[str(code)] = {**ok, "description": text}
    errors = dict(ERRORS)
    if op.query or op.body:
        errors[422] = "the input does not match this document (type `validation`); per-field errors, nothing written"
    if op.write:
        errors |= WRITE_ERRORS
        if op.idempotent:
            errors[422] = (
                errors.get(422, "an invalid Idempotency-Key (type `validation`)")
                + "; or an Idempotency-Key used before with another body (type `idempotency-mismatch`)"
            )
    conflict = _conflict_response(op)
    if conflict is not None:
        out.setdefault("409", conflict)
    for code, text in errors.items():
        headers = dict(RATE_HEADERS) | (RETRY_AFTER if code in (429, 503) else {})
        out.setdefault(
            str(code),
            {"description": text, "headers": headers, "content": {"application/problem+json": {"schema": PROBLEM}}},
        )
    return out


def _conflict_response(op: Any) -> dict[str, Any] | None:
    """The 409 of an operation: input that matches this document but breaks a rule it cannot state (`type` says
    which, `errors` names the field; nothing written), and on a POST an Idempotency-Key still running."""
    paged = op.query is not None and "cursor" in op.query._declared_fields
    kinds = CONFLICTS_OF.get(op.endpoint) or (WRITE_CONFLICTS if op.body else LIST_CONFLICTS if paged else [])
    if not kinds and not op.idempotent:
        return None
    examples: dict[str, Any] = {}
    for kind in kinds:
        meaning, detail, errors = CONFLICTS[kind]
        value: dict[str, Any] = {"type": PROBLEM_TYPE + kind, "title": "Conflict", "status": 409, "detail": detail}
        if errors:
            value["errors"] = errors
        examples[kind] = {"summary": f"{kind}: {meaning}", "value": value}
    if op.idempotent:
        examples["in-flight"] = IN_FLIGHT_EXAMPLE
    lines = [f"- `{kind}`: {CONFLICTS[kind][0]}" for kind in kinds]
    if op.idempotent:
        lines.append("- `in-flight`: a request with this Idempotency-Key is still running; retry after a moment")
    text = (
        "Conflict: the input matches this document but a rule it cannot state refused it (nothing written); "
        "`type` ends in one of:\n" + "\n".join(lines)
    )
    content = {"application/problem+json": {"schema": PROBLEM, "examples": examples}}
    return {"description": text, "headers": dict(RATE_HEADERS), "content": content}


def build_spec() -> dict[str, Any]:
    spec = APISpec(
        title="AR Ops API",
        version="1.0.0",
        openapi_version="3.1.0",
        plugins=[MarshmallowPlugin()],
        info={"description": DESCRIPTION},
        servers=[{"url": "/api/v1"}],
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Problem", PROBLEM_SCHEMA)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        params: list[dict[str, Any]] = [
            {"in": "path", "name": name[1:-1], "required": True, "schema": {"type": "integer", "minimum": 1}}
            for name in _path_args(op.path)
        ]
        if op.query is not None:
            params.append({"in": "query", "schema": op.query})
        if op.method == "PATCH":
            params.append(
                {
                    "in": "header",
                    "name": "If-Match",
                    "required": False,
                    "description": "the ETag you read: the change applies only if the object is unchanged since (412)",
                    "schema": {"type": "string"},
                }
            )
        if op.idempotent:
            params.append(
                {
                    "in": "header",
                    "name": HEADER,
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_REGEX},
                }
            )
        item: dict[str, Any] = {
            "operationId": op.endpoint,
            "summary": op.summary,
            "description": op.description or _default_description(op),
            "tags": [op.tag],
            "security": [{"bearer": []}],
            "parameters": params,
            "responses": _responses(op),
        }
        if op.body is not None:
            item["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
        paths.setdefault(op.path, {})[op.method.lower()] = item
    _link_created(paths)
    for path, operations in paths.items():
        spec.path(path=path, operations=operations)
    document = share_pagination(mark_access(describe(_outputs_required(spec.to_dict()))))
    return add_examples(add_webhooks(document))


def _link_created(paths: dict[str, dict[str, Any]]) -> None:
    """OpenAPI links from each create (a POST answering 201 on a collection) to the operations on what it created:
    `POST /debtors` -> `GET /debtors/{debtor_id}`, `PATCH /debtors/{debtor_id}`, `GET /debtors/{debtor_id}/...`,
    the id taken from the answer's `id`. Clients and stateful testers (schemathesis) follow them."""
    for collection, operations in paths.items():
        create = operations.get("post")
        if create is None or "201" not in create["responses"] or collection.endswith("}"):
            continue
        links: dict[str, Any] = {}
        prefix = collection.rstrip("/") + "/{"
        for path, targets in paths.items():
            if not path.startswith(prefix):
                continue
            name = path[len(prefix) :].split("}", 1)[0]
            if path.count("{") != collection.count("{") + 1:
                continue  # only the created object's own operations
            for target in targets.values():
                link_name = target["operationId"].replace(".", "_")
                links[link_name] = {
                    "operationId": target["operationId"],
                    "parameters": {name: "$response.body#/id"},
                    "description": f"{target['summary']} (the object just created)",
                }
        if links:
            create["responses"]["201"]["links"] = links


def _outputs_required(document: dict[str, Any]) -> dict[str, Any]:
    """Every field of a response schema is always present (null when it has no value): mark them required, so
    that generated clients type them as present. Request schemas keep their own `required` lists."""
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        if name.endswith(("Out", "Page")) and "properties" in schema:
            schema["required"] = sorted(schema["properties"])
    return document


def _default_description(op: Any) -> str:
    if op.method == "GET" and op.query is not None and "cursor" in op.query._declared_fields:
        return (
            f"{op.summary}, one page at a time (`limit`, `cursor` from the previous page's `next_cursor`, `sort`). "
            "For incremental sync: `sort=updated_at&updated_since=<the largest updated_at seen, minus a minute>`."
        )
    if op.method == "GET":
        return f"{op.summary}. Another client's id answers 404, like an id that does not exist."
    return f"{op.summary}."


def _path_args(path: str) -> list[str]:
    return [part for part in path.split("/") if part.startswith("{")]


def _public(view: Any) -> Any:
    view.required_permissions = PUBLIC_MARK
    return view


@bp.route("/openapi.json")
@_public
def openapi_json() -> Any:
    cached = current_app.extensions.get("ar_openapi")
    if cached is None:
        cached = current_app.extensions["ar_openapi"] = build_spec()
    return jsonify(cached)


@bp.route("/docs")
@_public
def docs() -> Any:
    spec = current_app.extensions.get("ar_openapi") or build_spec()
    return render_template("api/docs.html", spec=spec)
