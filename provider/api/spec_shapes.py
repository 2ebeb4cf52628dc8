"""Shapes the generated OpenAPI document shares across operations, applied after apispec built it:

- one pagination envelope: every cursor-paged list's schema (`DebtorPage`, `InvoicePage`, ...) is `allOf` the
  shared `Pagination` component (`next_cursor`) and its own typed `data` array, so generators keep typed pages
  while the paging part is defined once (the wire format is unchanged: `{"data": [...], "next_cursor": ...}`);
- `readOnly` on what the server alone writes (ids, creation and change times, computed balances and decimal
  amounts) and `writeOnly` on what a client sends but never reads back; the signing secret is readOnly: it is
  shown when an endpoint is created or its secret rotated, never accepted in a request.
"""

from __future__ import annotations

from typing import Any

PAGINATION = "Pagination"
PAGINATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The paging part of every list: pass `next_cursor` as `cursor` (same `sort` and filters) for the "
    "next page; null on the last page. The items are in `data`.",
    "required": ["next_cursor"],
    "properties": {
        "next_cursor": {
            "type": ["string", "null"],
            "description": "pass as `cursor` to get the next page; null on the last page",
            "example": "eyJzIjoiaWQiLCJ2Ijo1MCwiaSI6NTB9",
        }
    },
}

# written by the server alone, whatever object they are on
READ_ONLY = frozenset(
    {
        "id",
        "created_at",
        "updated_at",
        "placed_at",
        "recorded_at",
        "opened_at",
        "closed_at",
        "disabled_at",
        "delivered_at",
        "next_attempt_at",
        "amount",  # the decimal rendering of amount_minor
        "open_minor",
        "adjusted_minor",
        "unapplied_minor",
        "on_hold",
        "attempts",
        "last_status_code",
        "secret",
        "previous_secret_until",
        "pdf_sha256",
    }
)
# sent by the client but never read back: no answer or representation carries them
WRITE_ONLY: dict[str, frozenset[str]] = {
    "AllocationIn": frozenset({"allocated_on"}),
    "CreditNoteIn": frozenset({"invoice_id"}),
    "DisputeIn": frozenset({"message"}),  # becomes the conversation's first message
    "ProposalDecisionIn": frozenset({"decision", "note"}),
    "ReversalIn": frozenset({"reason"}),
    "WriteOffIn": frozenset({"reason"}),
    "RotateSecretIn": frozenset({"overlap_hours"}),
}


def share_pagination(document: dict[str, Any]) -> dict[str, Any]:
    """Every schema with `data` and `next_cursor` becomes `allOf: [Pagination, {data}]`."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name, schema in list(schemas.items()):
        properties = schema.get("properties", {})
        if set(properties) != {"data", "next_cursor"}:
            continue
        schemas[name] = {
            "description": f"One page of a list: the items in `data`, the paging part from `{PAGINATION}`.",
            "allOf": [
                {"$ref": f"#/components/schemas/{PAGINATION}"},
                {"type": "object", "required": ["data"], "properties": {"data": properties["data"]}},
            ],
        }
    schemas[PAGINATION] = PAGINATION_SCHEMA
    return document


def mark_access(document: dict[str, Any]) -> dict[str, Any]:
    """`readOnly` on server-written fields of response schemas, `writeOnly` on request-only fields."""
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        properties = schema.get("properties", {})
        if name.endswith("Out"):
            for field, prop in properties.items():
                if field in READ_ONLY:
                    prop["readOnly"] = True
        for field in WRITE_ONLY.get(name, ()):
            if field in properties:
                properties[field]["writeOnly"] = True
    return document
