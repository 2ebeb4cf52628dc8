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
