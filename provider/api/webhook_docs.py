"""The webhooks of the OpenAPI document (its `webhooks` section, OpenAPI 3.1): every event type with its
payload schema, the headers, the signature scheme, the timestamp tolerance, the retry schedule, ordering and
de-duplication. The payload shapes are those `provider.api.event_sources` and `provider.api.webhooks` send."""

from __future__ import annotations

from typing import Any

from provider.api.webhooks import BACKOFF, MAX_ATTEMPTS, SIGNATURE_HEADER, SIGNATURE_TOLERANCE_S


def _human(seconds: float) -> str:
    return (
        f"{int(seconds // 3600)} h"
        if seconds >= 3600
        else (f"{int(seconds // 60)} min" if seconds >= 60 else f"{int(seconds)} s")
    )


SCHEDULE = ", ".join(_human(step.total_seconds()) for step in BACKOFF)
DELIVERY = f"""Each event is POSTed as JSON to every active endpoint of the client subscribed to its type.

**Signature.** `{SIGNATURE_HEADER}: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`. Recompute the
HMAC over the timestamp, a dot and the *raw* body bytes with the endpoint's secret (`whsec_...`) and compare in
constant time; refuse a timestamp more than {SIGNATURE_TOLERANCE_S} s from your clock (replay protection). During a
secret rotation the header carries one `v1=` per valid secret: accept the request if any of them matches.

**Acknowledge** with any 2xx within 8 s (3 s to connect, 5 s to answer); do the work afterwards.

**Retries.** A non-2xx answer, a timeout or a refused connection is retried after {SCHEDULE}
({MAX_ATTEMPTS} attempts in all); then the delivery is `dead` and can be replayed (portal, or
`POST /events/{{event_id}}/replay`).

**At least once; de-duplicate by event id.** An event can arrive more than once (a retry after your 2xx was lost,
a replay): `X-AR-Event-Id` and the payload's `id` (`evt_<n>`) are the same every time; keep the ids you processed.
Events are sent oldest first per client but **ordering is not guaranteed** across retries: use `created_at`, and
read the object from the API when the order matters."""

HEADERS = [
    (SIGNATURE_HEADER, "the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256>` (see above)"),
    ("X-AR-Event", "the event type"),
    ("X-AR-Event-Id", "`evt_<n>`, the same on every retry and replay: de-duplicate by it"),
    ("X-AR-Delivery", "the delivery (one event to one endpoint); its attempts are listed on GET /events/{event_id}"),
]

MONEY = {
    "currency": {"type": "string", "description": "ISO 4217", "example": "EUR"},
    "amount_minor": {"type": "integer", "description": "in the currency's minor unit", "example": 12050},
}
DATA: dict[str, tuple[str, dict[str, Any]]] = {
    "payment.posted": (
        "A payment was recorded (API, file, bank statement, back office).",
        {
            "payment_id": {"type": "integer"},
            "debtor_id": {"type": "integer"},
            "external_ref": {"type": "string"},
            "received_on": {"type": "string", "format": "date"},
            **MONEY,
            "received_by": {"type": "string", "enum": ["agency", "client"]},
        },
    ),
    "invoice.placed": (
        "Invoices were placed: through the API (`invoices`, one event per call) or by a placement file "
        "(`source`: placement_file, `import_id`, `status`).",
        {
            "invoices": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "integer"},
                        "number": {"type": "string"},
                        "debtor_id": {"type": "integer"},
                        **MONEY,
                        "due_date": {"type": "string", "format": "date"},
                    },
                },
            },
            "source": {"type": "string", "enum": ["placement_file"]},
            "import_id": {"type": "integer"},
            "status": {"type": "string", "enum": ["posted", "partial"]},
        },
    ),
    "promise.made": ("A debtor promised to pay (or a payment plan's instalment was set).", {}),
    "promise.broken": ("A promise's date passed without the money.", {}),
    "dispute.updated": (
        "A dispute was opened or moved (acknowledged, investigating, awaiting your answer, resolved, withdrawn).",
        {
            "dispute_id": {"type": "integer"},
            "debtor_id": {"type": "integer"},
            "status": {"type": "string"},
            "reason": {"type": "string"},
            **MONEY,
            "resolution": {"type": ["string", "null"]},
        },
    ),
    "sla.breached": (
        "An SLA deadline of the agency passed (once per clock).",
        {
            "clock_id": {"type": "integer"},
            "sla": {"type": "string"},
            "subject_type": {"type": "string"},
            "subject_id": {"type": "integer"},
            "deadline_at": {"type": ["string", "null"], "format": "date-time"},
        },
    ),
    "report.ready": (
        "A month's report was generated or re-issued (read it with GET /reports/{report_id}).",
        {
            "report_id": {"type": "integer"},
            "period": {"type": "string", "example": "2026-02"},
            "version": {"type": "integer"},
            "pages": {"type": "integer"},
        },
    ),
    "webhook.test": (
        "Sent by POST /webhook-endpoints/{endpoint_id}/test, to that endpoint only.",
        {"endpoint_id": {"type": "integer"}, "message": {"type": "string"}},
    ),
}
PROMISE = {
    "promise_id": {"type": "integer"},
    "debtor_id": {"type": "integer"},
    "plan_id": {"type": ["integer", "null"]},
    **MONEY,
    "paid_minor": {"type": "integer"},
    "due_on": {"type": "string", "format": "date"},
    "status": {"type": "string"},
}
DATA["promise.made"] = (DATA["promise.made"][0], PROMISE)
DATA["promise.broken"] = (DATA["promise.broken"][0], PROMISE)


def _schema_name(event_type: str) -> str:
    return "".join(part.capitalize() for part in event_type.replace(".", "_").split("_")) + "Event"


def event_schema(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"The body of a `{event_type}` webhook.",
        "required": ["id", "type", "created_at", "client_id", "data"],
        "properties": {
            "id": {"type": "string", "description": "`evt_<n>`: de-duplicate by it", "example": "evt_4711"},
            "type": {"type": "string", "const": event_type, "description": "the event type"},
            "created_at": {"type": "string", "format": "date-time", "description": "when it happened (UTC)"},
            "client_id": {"type": "integer", "description": "the client the event belongs to"},
            "data": {"type": "object", "properties": data, "description": "the event's details"},
        },
    }


def add_webhooks(document: dict[str, Any]) -> dict[str, Any]:
    """The `webhooks` section and one payload schema per event type (components `<Type>Event`)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    hooks: dict[str, Any] = {}
    for event_type, (summary, data) in DATA.items():
        name = _schema_name(event_type)
        schemas[name] = event_schema(event_type, data)
        hooks[event_type] = {
            "post": {
                "operationId": f"on_{event_type.replace('.', '_')}",
                "summary": summary,
                "description": DELIVERY,
                "tags": ["webhooks"],
                "parameters": [
                    {
                        "in": "header",
                        "name": header,
                        "required": True,
                        "schema": {"type": "string"},
                        "description": text,
                    }
                    for header, text in HEADERS
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}},
                },
                "responses": {
                    "2XX": {"description": "acknowledged: the delivery is done"},
                    "default": {"description": "not acknowledged: retried on the schedule above"},
                },
            }
        }
    document["webhooks"] = hooks
    return document
