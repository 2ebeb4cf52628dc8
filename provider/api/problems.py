"""Error bodies of the API: RFC 9457 problem+json (type, title, status, detail, and per-field `errors`)."""

from __future__ import annotations

import json
from typing import Any

from flask import Response

PROBLEM_TYPE = "https://ar-ops.example/problems/"
TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request too large",
    414: "URI too long",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


# 422 means the body does not match the published schema. A body the schema accepts that breaks a rule the schema
# cannot state (across fields, of the ledger, an id in the body naming nothing of this client, the state of the
# object) is a 409 Conflict with one of these types (the last part of `type`), the field named in `errors`.
# The one exception: an Idempotency-Key reused with another body stays 422 (`idempotency-mismatch`).
CONFLICTS: dict[str, tuple[str, str, dict[str, list[str]]]] = {
    "unknown-reference": (
        "an id in the body names nothing of this client (or another client's object)",
        "no such debtor: 4096",
        {"debtor_id": ["not a debtor of this client"]},
    ),
    "date-rule": (
        "a date breaks a rule of the ledger or of another field: in the future, before the document it follows, "
        "a due date before the issue date",
        "the allocation date 2026-01-05 is before invoice INV-1 was issued (2026-02-01)",
        {"allocated_on": ["the allocation date 2026-01-05 is before invoice INV-1 was issued (2026-02-01)"]},
    ),
    "currency-mismatch": (
        "the currency differs from the debtor's or the document's",
        "cannot allocate EUR to an invoice in GBP",
        {"currency": ["cannot allocate EUR to an invoice in GBP"]},
    ),
    "amount-rule": (
        "the amount is more than is open or left to allocate, or otherwise not allowed for this object",
        "invoice INV-1 has only €100.00 open",
        {"amount_minor": ["invoice INV-1 has only €100.00 open"]},
    ),
    "field-combination": (
        "fields that go together are missing or contradict each other",
        "an amount or date applies to one invoice: give its invoice_id",
        {"invoice_id": ["an amount or date applies to one invoice: give its invoice_id"]},
    ),
    "duplicate": (
        "a unique reference (external_ref, number) is already used with other details",
        "a debtor with this external reference exists",
        {"external_ref": ["exists"]},
    ),
    "state-conflict": (
        "the object's state does not allow it (already reversed, closed, disabled, no pending proposal)",
        "this payment was already reversed",
        {},
    ),
    "invalid-cursor": (
        "the cursor was not issued for this list and sort",
        "the cursor is not valid for this list and sort",
        {"cursor": ["invalid"]},
    ),
    "url-refused": (
        "the URL's host is not one this server may send to (resolved and checked: loopback, private, link-local, "
        "reserved addresses are refused), or not https in production",
        "give an https URL of a public host (at most 500 characters)",
        {"url": ["give an https URL of a public host (at most 500 characters)"]},
    ),
    "ledger-rule": (
        "another rule of the ledger refused it (named in `detail`)",
        "the invoices of one dispute must belong to one debtor",
        {"invoice_ids": ["the invoices of one dispute must belong to one debtor"]},
    ),
}


class Rule(str):
    """A marshmallow message for a rule the schema cannot state (raised inside `@validates_schema`): a body whose
    only errors are rules answers 409 with the rule's `kind` instead of 422."""

    kind: str

    def __new__(cls, message: str, kind: str) -> Rule:
        rule = super().__new__(cls, message)
        rule.kind = kind
        return rule


def rule_kind(messages: Any) -> str | None:
    """The kind of the rules when every message of a marshmallow error is a `Rule`; None otherwise (a 422)."""
    kinds: list[str] = []

    def walk(value: Any) -> bool:
        if isinstance(value, dict):
            return all(walk(v) for v in value.values())
        if isinstance(value, list):
            return all(walk(v) for v in value)
        if isinstance(value, Rule):
            kinds.append(value.kind)
            return True
        return False

    return kinds[0] if walk(messages) and kinds else None


DATE_FIELDS = ("_on", "_date", "as_of")
REFERENCES = ("debtor_id", "invoice_id", "invoice_ids", "endpoint_id", "transaction_id")


def conflict_kind(field: str | None, kind: str | None = None) -> str:
    """The problem type of a refusal by a rule, from the service's own `kind` or else the field it names."""
    if kind:
        return kind
    name = (field or "").rsplit(".", 1)[-1]
    if name in REFERENCES:
        return "unknown-reference"
    if name.endswith(DATE_FIELDS):
        return "date-rule"
    if name == "currency":
        return "currency-mismatch"
    if name in ("amount", "amount_minor"):
        return "amount-rule"
    if name in ("number", "external_ref"):
        return "duplicate"
    return "ledger-rule"


class ApiProblem(Exception):
    """Raise inside an API view to answer with a problem+json body."""

    def __init__(
        self, status: int, detail: str, *, kind: str | None = None, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.kind, self.errors = status, detail, kind, errors


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    errors: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + (kind or TITLES.get(status, "error").lower().replace(" ", "-")),
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def field_errors(messages: Any) -> dict[str, list[str]]:
    """marshmallow's nested messages flattened to {"field" or "rows.3.amount_minor": [messages]}."""
    out: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), inner)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            out.setdefault(prefix or "_body", []).extend(value)
        elif isinstance(value, list):
            for inner in value:
                walk(prefix, inner)
        else:
            out.setdefault(prefix or "_body", []).append(str(value))

    walk("", messages)
    return out
