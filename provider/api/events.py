"""API v1 events and webhook endpoints: list and read the events the client's endpoints were sent, replay one
to an endpoint, register, list and disable endpoints, and send an endpoint a test event.

An event exists when at least one active endpoint of the client subscribed to its type when it happened (the
outbox writes events for delivery, not a full history). A replay or a test event is background work like every
delivery: the answer (202) says it is queued; its attempts show on GET /events/{id}.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask import url_for
from sqlalchemy import select

from provider.api import schemas as s
from provider.api import webhooks
from provider.api.base import current_client, load, operation, parse_body, parse_query
from provider.api.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent
from provider.api.pagination import as_int, keyset_page
from provider.api.problems import ApiProblem
from provider.core import audit, jobs
from provider.core.clock import now_utc
from provider.extensions import db

TEST_EVENT = "webhook.test"
EVENT_OUT, EVENT_DETAIL_OUT, ENDPOINT_OUT = s.EventOut(), s.EventDetailOut(), s.WebhookEndpointOut()


@operation("/events", "GET", summary="List events", tag="events", query=s.EventQuery, response=s.page_of(s.EventOut))
def list_events() -> Any:
    """Newest last by default (`sort=-id` for newest first); `updated_since` filters on the creation time (events
    never change). Events are the webhook outbox, not a full history: one is recorded only when an active endpoint
    of the client subscribed to its type at the moment it happened (subscribing later creates no past events). For
    a complete sync, use the lists with `updated_since`."""
    args = parse_query(s.EventQuery())
    stmt = select(WebhookEvent).where(WebhookEvent.client_id == current_client().id)
    if args.get("type"):
        stmt = stmt.where(WebhookEvent.event_type == args["type"])
    if args.get("updated_since"):
        stmt = stmt.where(WebhookEvent.created_at >= args["updated_since"])
    sorts = {"id": (WebhookEvent.id, as_int), "updated_at": (WebhookEvent.id, as_int)}
    items, cursor = keyset_page(stmt, WebhookEvent.id, sorts, args)
    return {"data": EVENT_OUT.dump(items, many=True), "next_cursor": cursor}


def _detail(event: WebhookEvent) -> dict[str, Any]:
    deliveries = db.session.scalars(
        select(WebhookDelivery)
        .where(WebhookDelivery.client_id == event.client_id, WebhookDelivery.event_id == event.id)
        .order_by(WebhookDelivery.id)
    ).all()
    return {**EVENT_OUT.dump(event), "deliveries": s.EventDeliveryOut().dump(deliveries, many=True)}


@operation(
    "/events/{event_id}", "GET", summary="One event, with its deliveries", tag="events", response=s.EventDetailOut
)
def get_event(event_id: int) -> Any:
    return _detail(load(WebhookEvent, event_id))


@operation(
    "/events/{event_id}/replay",
    "POST",
    summary="Send an event (again) to one endpoint",
    tag="events",
    body=s.ReplayIn,
    response=s.ReplayOut,
    status=202,
)
def replay_event(event_id: int) -> Any:
    """The endpoint must be the client's and active. The delivery is queued (202): its attempt, logged as a replay,
    shows on GET /events/{id}. Receivers de-duplicate by `event_id` if they must not act twice."""
    event = load(WebhookEvent, event_id)
    data = parse_body(s.ReplayIn())
    endpoint = _active_endpoint(data["endpoint_id"])
    delivery = db.session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.client_id == event.client_id,
            WebhookDelivery.event_id == event.id,
            WebhookDelivery.endpoint_id == endpoint.id,
        )
    )
    if delivery is None:  # the endpoint was registered after the event: a first delivery, due now
        delivery = WebhookDelivery(
            client_id=event.client_id, event_id=event.id, endpoint_id=endpoint.id, next_attempt_at=now_utc()
        )
        db.session.add(delivery)
        db.session.flush()
        jobs.enqueue(webhooks.deliver_webhooks_job, event.client_id, job_id=f"webhooks:{event.client_id}")
        audit.record(db.session, "webhook_delivery.replay", delivery, after={"queued": True})
        queued = True
    else:
        queued = webhooks.request_replay(db.session, delivery)
    return {"event_id": f"evt_{event.id}", "delivery_id": delivery.id, "queued": queued}, 202


def _active_endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.client_id != current_client().id:
        raise ApiProblem(
            409,
            f"no such webhook endpoint: {endpoint_id}",
            kind="unknown-reference",
            errors={"endpoint_id": ["not an endpoint of this client"]},
        )
    if not endpoint.active:
        raise ApiProblem(409, "the endpoint is disabled", kind="state-conflict", errors={"endpoint_id": ["disabled"]})
    return endpoint


# --- endpoints ------------------------------------------------------------------------------------------


@operation(
    "/webhook-endpoints",
    "GET",
    summary="List webhook endpoints",
    tag="webhooks",
    query=s.ListQuery,
    response=s.page_of(s.WebhookEndpointOut),
)
def list_webhook_endpoints() -> Any:
    args = parse_query(s.ListQuery())
    stmt = select(WebhookEndpoint).where(WebhookEndpoint.client_id == current_client().id)
    if args.get("updated_since"):
        stmt = stmt.where(WebhookEndpoint.created_at >= args["updated_since"])
    items, cursor = keyset_page(stmt, WebhookEndpoint.id, {"id": (WebhookEndpoint.id, as_int)}, args)
    return {"data": ENDPOINT_OUT.dump(items, many=True), "next_cursor": cursor}


@operation(
    "/webhook-endpoints/{endpoint_id}",
    "GET",
    summary="One webhook endpoint",
    tag="webhooks",
    response=s.WebhookEndpointOut,
)
def get_webhook_endpoint(endpoint_id: int) -> Any:
    """The signing secret is not repeated here: it was in the answer to the POST, and client admins see it on
    the portal's endpoint page."""
    return ENDPOINT_OUT.dump(load(WebhookEndpoint, endpoint_id))


@operation(
    "/webhook-endpoints",
    "POST",
    summary="Register a webhook endpoint",
    tag="webhooks",
    body=s.WebhookEndpointIn,
    response=s.WebhookEndpointCreatedOut,
    status=201,
)
def create_webhook_endpoint() -> Any:
    """An https URL of a public host (http and private addresses are refused); the answer carries the signing
    secret. Audited."""
    data = parse_body(s.WebhookEndpointIn())
    endpoint = webhooks.create_endpoint(
        db.session, current_client().id, data["url"], data["events"], data.get("description", "")
    )
    location = url_for("api.get_webhook_endpoint", endpoint_id=endpoint.id)
    return s.WebhookEndpointCreatedOut().dump(endpoint), 201, {"Location": location}


@operation(
    "/webhook-endpoints/{endpoint_id}/disable",
    "POST",
    summary="Disable a webhook endpoint (nothing more is sent to it)",
    tag="webhooks",
    response=s.WebhookEndpointOut,
)
def disable_webhook_endpoint(endpoint_id: int) -> Any:
    """Deliveries still pending for it are not sent. Disabling a disabled endpoint changes nothing. Audited."""
    endpoint = load(WebhookEndpoint, endpoint_id)
    webhooks.disable_endpoint(db.session, endpoint)
    return ENDPOINT_OUT.dump(endpoint)


@operation(
    "/webhook-endpoints/{endpoint_id}/secret-rotation",
    "POST",
    summary="Rotate an endpoint's signing secret, with an overlap",
    tag="webhooks",
    body=s.RotateSecretIn,
    response=s.RotatedSecretOut,
    status=201,
)
def rotate_webhook_secret(endpoint_id: int) -> Any:
    """A new secret (in the answer). For `overlap_hours` (default 24) every delivery carries two `v1=`
    signatures, with the new and with the old secret: deploy the new secret to the receiver meanwhile (a receiver
    accepts a request when any `v1` matches). Audited."""
    endpoint = load(WebhookEndpoint, endpoint_id)
    data = parse_body(s.RotateSecretIn())
    webhooks.rotate_secret(db.session, endpoint, timedelta(hours=data["overlap_hours"]))
    return s.RotatedSecretOut().dump(endpoint), 201


@operation(
    "/webhook-endpoints/{endpoint_id}/test",
    "POST",
    summary="Send a test event to an endpoint",
    tag="webhooks",
    response=s.TestEventOut,
    status=202,
)
def send_test_event(endpoint_id: int) -> Any:
    """A `webhook.test` event, signed like every other, to this endpoint only (queued: 202). Use it to check the
    receiver's signature verification; its delivery shows on GET /events/{id}."""
    endpoint = load(WebhookEndpoint, endpoint_id)
    if not endpoint.active:
        raise ApiProblem(409, "the endpoint is disabled", kind="state-conflict", errors={"endpoint_id": ["disabled"]})
    now = now_utc()
    event = WebhookEvent(
        client_id=endpoint.client_id,
        event_type=TEST_EVENT,
        dedupe_key=f"{TEST_EVENT}:{endpoint.id}:{uuid.uuid4().hex}",
        payload={},
        created_at=now,
    )
    db.session.add(event)
    db.session.flush()
    event.payload = {
        "id": f"evt_{event.id}",
        "type": TEST_EVENT,
        "created_at": now.isoformat(),
        "client_id": endpoint.client_id,
        "data": {"endpoint_id": endpoint.id, "message": "a test event: verify its signature, then answer 2xx"},
    }
    delivery = WebhookDelivery(
        client_id=endpoint.client_id, event_id=event.id, endpoint_id=endpoint.id, next_attempt_at=now
    )
    db.session.add(delivery)
    db.session.flush()
    jobs.enqueue(webhooks.deliver_webhooks_job, endpoint.client_id, job_id=f"webhooks:{endpoint.client_id}")
    return {"event_id": f"evt_{event.id}", "delivery_id": delivery.id}, 202


_ = DeliveryStatus
