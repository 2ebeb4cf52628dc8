"""Webhooks: endpoints, the outbox (written in the transaction that caused the event) and signed delivery.

    emit_event(session, client_id, "dispute.updated", {...}, dedupe_key=f"dispute.updated:{id}:{version}")

writes one `WebhookEvent` (once per dedupe key: emitting the same event again does nothing) and one pending
`WebhookDelivery` per active endpoint subscribed to the type, and queues `deliver_webhooks_job` for after
the commit. The job POSTs each due delivery, signed:

    X-AR-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

A receiver recomputes the HMAC over the timestamp and the raw body and rejects old timestamps (replay
protection). Failures are retried with backoff (BACKOFF) by the periodic sweep; after the last one the
delivery is `dead` and can be replayed from the UI (the replay is background work too: the web request only
queues it). Every attempt is logged with its response code, or "refused" / "timed out": the sending goes
through provider.core.outbound, which refuses internal addresses and never says more than that.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from provider.api.models import (
    DeliveryStatus,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from provider.core import audit, jobs, outbound
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.tenancy import TenantScope, scoped

BACKOFF = (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1), timedelta(hours=6))
MAX_ATTEMPTS = len(BACKOFF) + 1
BATCH = 200
SIGNATURE_HEADER = "X-AR-Signature"
EVENT_TYPES = [e.value for e in EventType]


# --- signing --------------------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does (and what the tests do): check the HMAC and that the timestamp is recent."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected, header) and abs(now - timestamp) <= tolerance_s


# --- endpoints ------------------------------------------------------------------------------------------


def _policy() -> outbound.Policy:
    from flask import current_app

    return outbound.Policy.from_config(current_app.config)


def _check_endpoint(url: str, events: list[str]) -> None:
    policy = _policy()
    try:
        if len(url) > 500:
            raise outbound.OutboundRefused("too long")
        outbound.check_url(url, policy)
    except outbound.OutboundRefused:
        wanted = "an https URL" if policy.https_only else "an http(s) URL"
        raise ServiceError(f"give {wanted} of a public host (at most 500 characters)", field="url") from None
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if not events or unknown:
        raise ServiceError(f"choose events among {', '.join(EVENT_TYPES)}", field="events")


def create_endpoint(
    session: Session, client_id: int, url: str, events: list[str], description: str = ""
) -> WebhookEndpoint:
    """Register a receiving URL with a fresh signing secret (shown to the client admin on the page)."""
    url = url.strip()
    _check_endpoint(url, events)
    endpoint = WebhookEndpoint(
        client_id=client_id,
        url=url,
        description=description.strip()[:200],
        secret="whsec_" + secrets.token_urlsafe(32),
        events=sorted(set(events)),
        active=True,
    )
    session.add(endpoint)
    session.flush()
    audit.record(session, "webhook_endpoint.create", endpoint, after=audit.snapshot(endpoint, endpoint.AUDIT_FIELDS))
    return endpoint


def disable_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    if not endpoint.active:
        return
    endpoint.active, endpoint.disabled_at = False, now_utc()
    session.flush()
    audit.record(session, "webhook_endpoint.disable", endpoint, after={"active": False})


# --- the outbox -----------------------------------------------------------------------------------------

_INSERT = {"postgresql": pg_insert, "sqlite": sqlite_insert}


def subscribed(session: Session, client_id: int, event_type: str) -> list[WebhookEndpoint]:
    endpoints = session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.client_id == client_id, WebhookEndpoint.active.is_(True))
    )
    return [e for e in endpoints if event_type in (e.events or [])]


def emit_event(
    session: Session, client_id: int, event_type: str, data: dict[str, Any], *, dedupe_key: str
) -> WebhookEvent | None:
    """Write an event and its deliveries into the outbox, in the caller's transaction (flush, no commit).

    Nothing is written when no active endpoint of the client subscribes to the type. Emitting an event
    whose dedupe key exists already does nothing (returns None): an event is delivered once per endpoint.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    endpoints = subscribed(session, client_id, event_type)
    if not endpoints:
        return None
    insert = _INSERT[session.connection().dialect.name]
    now = now_utc()
    event_id = session.scalar(
        insert(WebhookEvent)
        .values(client_id=client_id, event_type=event_type, dedupe_key=dedupe_key[:200], payload={}, created_at=now)
        .on_conflict_do_nothing()
        .returning(WebhookEvent.id)
    )
    if event_id is None:
        return None
    event = session.get_one(WebhookEvent, event_id)
    event.payload = {
        "id": f"evt_{event_id}",
        "type": event_type,
        "created_at": now.isoformat(),
        "client_id": client_id,
        "data": data,
    }
    session.add_all(
        WebhookDelivery(client_id=client_id, event_id=event_id, endpoint_id=e.id, next_attempt_at=now)
        for e in endpoints
    )
    session.flush()
    jobs.enqueue(deliver_webhooks_job, client_id, job_id=f"webhooks:{client_id}")
    return event


def _on_payments_posted(session: Session, client_id: int, debtor_ids: list[int], **_: Any) -> None:
    """`payment.posted` for every payment of these debtors recorded since the subscribing endpoint was
    registered and not announced yet (the ledger's signal names debtors, not payments)."""
    from clients.journal import Payment

    endpoints = subscribed(session, client_id, EventType.PAYMENT_POSTED.value)
    if not endpoints or not debtor_ids:
        return
    since = min(e.created_at for e in endpoints)
    announced = select(WebhookEvent.dedupe_key).where(
        WebhookEvent.client_id == client_id, WebhookEvent.event_type == EventType.PAYMENT_POSTED.value
    )
    payments = session.scalars(
        select(Payment)
        .where(
            Payment.client_id == client_id,
            Payment.debtor_id.in_(debtor_ids),
            Payment.recorded_at >= since,
            ("payment.posted:" + Payment.id.cast(type_=_String())).not_in(announced),
        )
        .order_by(Payment.id)
    )
    for p in payments:
        emit_event(
            session,
            client_id,
            EventType.PAYMENT_POSTED.value,
            {
                "payment_id": p.id,
                "debtor_id": p.debtor_id,
                "external_ref": p.external_ref,
                "received_on": p.received_on.isoformat(),
                "currency": p.currency,
                "amount_minor": p.amount_minor,
                "received_by": p.received_by,
            },
            dedupe_key=f"payment.posted:{p.id}",
        )


def _String() -> Any:
    from sqlalchemy import String

    return String(40)


def connect_signals() -> None:
    from clients.ledger import payments_posted

    payments_posted.connect(_on_payments_posted, weak=False)


connect_signals()


# --- delivery -------------------------------------------------------------------------------------------


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    """(status, what the client may see: "", "refused", "timed out" or "HTTP <status>")."""
    result = outbound.post_json(url, body, headers, _policy())
    return result.status, result.shown


def attempt(session: Session, delivery: WebhookDelivery, *, replay: bool = False) -> bool:
    """Send one delivery now and log the attempt; on failure schedule the retry (or give up)."""
    event = session.get_one(WebhookEvent, delivery.event_id)
    endpoint = session.get_one(WebhookEndpoint, delivery.endpoint_id)
    body = json.dumps(event.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(now_utc().timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "AR-Ops-Webhooks/1",
        SIGNATURE_HEADER: sign(endpoint.secret, timestamp, body),
        "X-AR-Event": event.event_type,
        "X-AR-Event-Id": f"evt_{event.id}",
        "X-AR-Delivery": str(delivery.id),
    }
    started = time.perf_counter()
    code, error = _post(endpoint.url, body, headers)
    took = int((time.perf_counter() - started) * 1000)
    ok = code is not None and 200 <= code < 300
    session.add(
        WebhookAttempt(
            client_id=delivery.client_id,
            delivery_id=delivery.id,
            status_code=code,
            error=error,
            duration_ms=took,
            replay=replay,
        )
    )
    delivery.attempts += 1
    delivery.last_status_code, delivery.last_error = code, error
    if ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
            DeliveryStatus.SUCCEEDED.value,
            now_utc(),
            None,
        )
    elif delivery.attempts >= MAX_ATTEMPTS and not replay:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.DEAD.value, None
    elif not replay:
        delivery.next_attempt_at = now_utc() + BACKOFF[min(delivery.attempts, len(BACKOFF)) - 1]
    session.flush()
    return ok


def deliver_due(session: Session, client_id: int, limit: int = BATCH) -> tuple[int, int]:
    """Send the client's due deliveries (oldest first). Returns (succeeded, failed). Rows are locked (SKIP
    LOCKED on PostgreSQL) so two workers never send the same delivery at once."""
    stmt = (
        select(WebhookDelivery)
        .where(
            WebhookDelivery.client_id == client_id,
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
            WebhookDelivery.next_attempt_at <= now_utc(),
        )
        .order_by(WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    done = failed = 0
    for delivery in list(session.scalars(stmt)):
        if attempt(session, delivery):
            done += 1
        else:
            failed += 1
    return done, failed


def request_replay(session: Session, delivery: WebhookDelivery) -> bool:
    """Queue a replay of the delivery (from the UI). The sending runs as background work, never inside the web
    request; returns False when a replay of it is already waiting."""
    queued = jobs.enqueue(replay_webhook_job, delivery.client_id, delivery.id, job_id=f"webhook-replay:{delivery.id}")
    audit.record(session, "webhook_delivery.replay", delivery, after={"queued": queued is not None})
    return queued is not None


def replay_delivery(session: Session, delivery: WebhookDelivery) -> bool:
    """Send a delivery again now, whatever its state; logged as a replay attempt (run by replay_webhook_job)."""
    return attempt(session, delivery, replay=True)


@jobs.job(queue="high", timeout=120, retries=0, title="Webhook replay")
def replay_webhook_job(client_id: int, delivery_id: int) -> str:
    from provider.extensions import db

    with scoped(TenantScope.single(client_id), db.session):
        delivery = db.session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.client_id != client_id:
            return "nothing to replay"
        ok = replay_delivery(db.session, delivery)
        db.session.commit()
    return "delivered" if ok else "not delivered"


@jobs.job(queue="high", timeout=300, retries=3, title="Webhook delivery")
def deliver_webhooks_job(client_id: int) -> str:
    from provider.extensions import db

    with scoped(TenantScope.single(client_id), db.session):
        done, failed = deliver_due(db.session, client_id)
        db.session.commit()
    return f"{done} delivered, {failed} failed"


@jobs.job(queue="low", timeout=600, retries=1, title="Webhook retries")
def retry_webhooks_job() -> str:
    """Periodic: every client with a due delivery gets its retries sent."""
    from provider.extensions import db

    with scoped(TenantScope.agency(), db.session):
        client_ids = list(
            db.session.scalars(
                select(WebhookDelivery.client_id)
                .where(
                    WebhookDelivery.status == DeliveryStatus.PENDING.value, WebhookDelivery.next_attempt_at <= now_utc()
                )
                .distinct()
            )
        )
    for client_id in client_ids:
        deliver_webhooks_job(client_id)
    return f"{len(client_ids)} clients"


if not any(p.path.endswith("retry_webhooks_job") for p in jobs.PERIODIC_JOBS):
    jobs.PERIODIC_JOBS.append(jobs.Periodic("provider.api.webhooks.retry_webhooks_job", "* * * * *"))
