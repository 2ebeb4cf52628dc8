"""An example for every operation of the OpenAPI document: each request body and each JSON answer of a success.

One story runs through them: client Northwind's debtor 120 ("Contoso Retail GmbH", ERP reference ERP-10023) owes
invoice 5501 (INV-2026-0042) of 120.50 EUR, i.e. `amount_minor` 12050 in cents; a payment of 40.00 EUR (4000) was
allocated to it, so 80.50 EUR (8050) is open. Money is always integer minor units with its currency beside it,
and `amount` the same value as a decimal string.

An example is built from its schema (each property's own example where the schema has one, else a plain value
of its type) with the curated values below on top, so it stays complete when a schema gains a field.
tests/api/test_openapi_examples.py validates every example against its schema.
"""

from __future__ import annotations

import copy
from typing import Any

DEBTOR = {
    "id": 120,
    "external_ref": "ERP-10023",
    "name": "Contoso Retail GmbH",
    "timezone": "Europe/Berlin",
    "segment": "standard",
    "do_not_contact": False,
    "email": "ap@contoso.example",
    "phone": "+49 30 1234567",
    "created_at": "2026-01-05T08:00:00+00:00",
    "updated_at": "2026-03-02T10:15:00+00:00",
}
INVOICE = {
    "id": 5501,
    "debtor_id": 120,
    "number": "INV-2026-0042",
    "issue_date": "2026-01-10",
    "due_date": "2026-02-09",
    "currency": "EUR",
    "amount_minor": 12050,
    "amount": "120.50",
    "adjusted_minor": 0,
    "open_minor": 8050,
    "po_reference": "PO-7781",
    "on_hold": False,
    "placed_at": "2026-01-11T08:00:00+00:00",
    "updated_at": "2026-03-01T09:30:05+00:00",
}
PAYMENT = {
    "id": 880,
    "debtor_id": 120,
    "external_ref": "BANK-2026-03-01-17",
    "received_on": "2026-03-01",
    "currency": "EUR",
    "amount_minor": 4000,
    "amount": "40.00",
    "unapplied_minor": 0,
    "method": "bank_transfer",
    "received_by": "agency",
    "reference": "INV-2026-0042",
    "recorded_at": "2026-03-01T09:30:00+00:00",
    "updated_at": "2026-03-01T09:30:05+00:00",
}
CREDIT_NOTE = {
    "id": 42,
    "debtor_id": 120,
    "number": "CN-2026-0007",
    "issued_on": "2026-02-01",
    "currency": "EUR",
    "amount_minor": 1500,
    "amount": "15.00",
    "unapplied_minor": 0,
    "reason": "two items returned",
    "recorded_at": "2026-02-01T11:00:00+00:00",
    "updated_at": "2026-02-01T11:00:00+00:00",
}
DISPUTE = {
    "id": 17,
    "debtor_id": 120,
    "reason": "pricing",
    "status": "open",
    "summary": "Price differs from the quote",
    "currency": "EUR",
    "amount_minor": 2050,
    "amount": "20.50",
    "opened_at": "2026-02-15T10:00:00+00:00",
    "closed_at": None,
    "resolution": None,
    "proposed_resolution": None,
    "proposed_amount_minor": None,
    "proposal_note": "",
    "updated_at": "2026-02-15T10:00:00+00:00",
}
ENDPOINT = {
    "id": 2,
    "url": "https://erp.northwind.example/ar-webhooks",
    "description": "ERP production",
    "events": ["payment.posted", "dispute.updated"],
    "active": True,
    "created_at": "2026-01-05T08:00:00+00:00",
    "updated_at": "2026-01-05T08:00:00+00:00",
    "disabled_at": None,
}
SECRET = "whsec_3f9d0c1b7a2e4c5d8b6a1f0e9d8c7b6a"  # noqa: S105 - an example in the documentation
REPORT = {
    "id": 9,
    "period": "2026-02",
    "version": 1,
    "status": "current",
    "as_of": "2026-02-28",
    "pages": 6,
    "pdf_sha256": "9f2c1a0b6e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a49",
    "created_at": "2026-03-01T06:00:00+00:00",
    "updated_at": "2026-03-01T06:00:00+00:00",
}
EVENT = {
    "id": 1234,
    "event_id": "evt_1234",
    "type": "payment.posted",
    "created_at": "2026-03-01T09:30:05+00:00",
    "updated_at": "2026-03-01T09:30:05+00:00",
    "payload": {
        "id": "evt_1234",
        "type": "payment.posted",
        "created_at": "2026-03-01T09:30:05+00:00",
        "data": {"payment_id": 880, "debtor_id": 120, "currency": "EUR", "amount_minor": 4000},
    },
}
DELIVERY = {
    "delivery_id": 77,
    "endpoint_id": 2,
    "status": "succeeded",
    "attempts": 1,
    "last_status_code": 200,
    "next_attempt_at": None,
    "delivered_at": "2026-03-01T09:30:06+00:00",
}
AGING_EUR = {
    "currency": "EUR",
    "buckets": {"Current": 240000, "1-30": 8050, "31-60": 51000, "61-90": 0, "91-120": 12500, "120+": 3000},
    "total_minor": 314550,
    "overdue_minor": 74550,
}
KPI_EUR = {
    "currency": "EUR",
    "receivable_minor": 314550,
    "current_minor": 240000,
    "overdue_minor": 74550,
    "sales_minor": 612000,
    "dso": "46.26",
    "best_possible_dso": "35.29",
    "average_days_delinquent": "10.97",
}

# schema name -> the curated values of its example
CURATED: dict[str, dict[str, Any]] = {
    "DebtorOut": DEBTOR,
    "DebtorIn": {k: DEBTOR[k] for k in ("external_ref", "name", "timezone", "segment", "email", "phone")},
    "DebtorPatch": {"name": "Contoso Retail AG", "email": "invoices@contoso.example"},
    "InvoiceOut": INVOICE,
    "InvoiceIn": {
        "debtor_id": 120,
        "number": "INV-2026-0042",
        "issue_date": "2026-01-10",
        "due_date": "2026-02-09",
        "currency": "EUR",
        "amount_minor": 12050,
        "po_reference": "PO-7781",
    },
    "InvoicePatch": {"due_date": "2026-03-10", "po_reference": "PO-7781-A"},
    "PlacedInvoiceOut": {"id": 5501, "number": "INV-2026-0042"},
    "InvoiceBatchOut": {"placed": 1, "unchanged": 0},
    "PaymentOut": PAYMENT,
    "PaymentIn": {k: PAYMENT[k] for k in ("debtor_id", "external_ref", "received_on", "currency", "amount_minor")}
    | {"method": "bank_transfer", "received_by": "agency", "reference": "INV-2026-0042"},
    "AllocationIn": {"invoice_id": 5501, "amount_minor": 4000, "allocated_on": "2026-03-01"},
    "AllocationOut": {"transaction_ids": [90211]},
    "ReversalIn": {"reason": "posted to the wrong debtor", "reversed_on": "2026-03-05"},
    "ReversalOut": {
        "transaction_id": 90230,
        "reverses_id": 90210,
        "reversed_on": "2026-03-05",
        "allocations_reversed": [90211],
    },
    "PaymentReversalOut": {
        "transaction_id": 90230,
        "reverses_id": 90210,
        "reversed_on": "2026-03-05",
        "allocations_reversed": [90211],
    },
    "WriteOffIn": {"amount_minor": 8050, "reason": "debtor insolvent", "written_off_on": "2026-03-05"},
    "WriteOffOut": {
        "transaction_id": 90240,
        "written_off_on": "2026-03-05",
        "amount_minor": 8050,
        "invoice": INVOICE | {"open_minor": 0, "updated_at": "2026-03-05T16:20:00+00:00"},
    },
    "CreditNoteOut": CREDIT_NOTE,
    "CreditNoteIn": {k: CREDIT_NOTE[k] for k in ("debtor_id", "number", "issued_on", "currency", "amount_minor")}
    | {"reason": "two items returned", "invoice_id": 5501},
    "DisputeOut": DISPUTE,
    "DisputeDetailOut": DISPUTE,
    "DisputeIn": {
        "debtor_id": 120,
        "reason": "pricing",
        "summary": "Price differs from the quote",
        "amount_minor": 2050,
        "invoice_ids": [5501],
        "message": "The quote said 100.00 EUR net; please check the unit price.",
    },
    "CommentIn": {"body": "Please find the signed quote attached to our e-mail of 16 February."},
    "CommentOut": {
        "id": 301,
        "dispute_id": 17,
        "body": "Please find the signed quote attached to our e-mail of 16 February.",
        "from_client": True,
        "created_at": "2026-02-16T09:12:00+00:00",
    },
    "ProposalDecisionIn": {"decision": "approve", "note": ""},
    "ReportOut": REPORT,
    "ReportDetailOut": REPORT
    | {
        "figures": {"EUR": {"collected_minor": 1250000, "placed_minor": 2400000}},
        "summary": ["Collected 12,500.00 EUR in February", "DSO 46 days (best possible 35)"],
    },
    "AgingCurrencyOut": AGING_EUR,
    "AgingOut": {"as_of": "2026-03-31", "currencies": [AGING_EUR]},
    "KpiCurrencyOut": KPI_EUR,
    "KpiOut": {"as_of": "2026-03-31", "period_days": 90, "currencies": [KPI_EUR]},
    "WorkActionOut": {
        "id": 6120,
        "debtor_id": 120,
        "kind": "call",
        "outcome": "promise",
        "note": "will pay the rest by 20 March",
        "occurred_at": "2026-03-02T14:05:00+00:00",
        "updated_at": "2026-03-02T14:05:00+00:00",
    },
    "EventOut": EVENT,
    "EventDetailOut": EVENT,
    "EventDeliveryOut": DELIVERY,
    "ReplayIn": {"endpoint_id": 2},
    "ReplayOut": {"event_id": "evt_1234", "delivery_id": 78, "queued": True},
    "WebhookEndpointIn": {
        "url": "https://erp.northwind.example/ar-webhooks",
        "events": ["payment.posted", "dispute.updated"],
        "description": "ERP production",
    },
    "WebhookEndpointOut": ENDPOINT,
    "WebhookEndpointCreatedOut": ENDPOINT | {"secret": SECRET},
    "RotateSecretIn": {"overlap_hours": 24},
    "RotatedSecretOut": ENDPOINT
    | {
        "secret": "whsec_8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
        "updated_at": "2026-03-03T12:00:00+00:00",
        "previous_secret_until": "2026-03-04T12:00:00+00:00",
    },
    "TestEventOut": {"event_id": "evt_1240", "delivery_id": 79},
    "CreditPolicyIn": {"currency": "EUR", "months": {"A": 3, "B": 2, "C": 1, "D": 0, "E": 0}, "cap_minor": 2500000},
    "CreditPolicyOut": {"currency": "EUR", "months": {"A": 3, "B": 2, "C": 1, "D": 0, "E": 0}, "cap_minor": 2500000},
}
PLAIN = {"string": "text", "integer": 1, "number": 0.5, "boolean": False, "object": {}}
FORMATS = {"date": "2026-03-01", "date-time": "2026-03-01T09:30:00+00:00", "binary": None}


def add_examples(document: dict[str, Any]) -> dict[str, Any]:
    """`example` on every JSON request body and every JSON answer of a success (2xx)."""
    schemas = document.get("components", {}).get("schemas", {})
    for operations in document.get("paths", {}).values():
        for op in operations.values():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                body["example"] = example_of(body["schema"], schemas)
            for code, response in op.get("responses", {}).items():
                content = response.get("content", {}).get("application/json")
                if code.startswith("2") and content is not None:
                    content["example"] = example_of(content["schema"], schemas)
    return document


def example_of(schema: dict[str, Any], schemas: dict[str, Any], name: str | None = None, depth: int = 0) -> Any:
    """An example value valid under `schema` (`$ref`s resolved in `schemas`)."""
    if "$ref" in schema:
        ref = schema["$ref"].rsplit("/", 1)[-1]
        return example_of(schemas[ref], schemas, ref, depth + 1)
    if "allOf" in schema:
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            merged |= example_of(part, schemas, None, depth + 1)
        return merged | copy.deepcopy(CURATED.get(name or "", {}))
    if "example" in schema and name is None:
        return copy.deepcopy(schema["example"])
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" and "properties" in schema:
        built = {
            field: example_of(prop, schemas, None, depth + 1)
            for field, prop in schema["properties"].items()
            if depth < 6 or field in schema.get("required", [])
        }
        return built | copy.deepcopy(CURATED.get(name or "", {}))
    if kind == "array":
        return [example_of(schema.get("items", {}), schemas, None, depth + 1)] * max(1, schema.get("minItems", 1))
    if kind == "string" and schema.get("format") in FORMATS:
        return FORMATS[schema["format"]]
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "null":
        return None
    return copy.deepcopy(PLAIN.get(kind, "text"))
