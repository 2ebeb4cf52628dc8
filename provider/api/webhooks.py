"""Webhooks: endpoints, the outbox (written in the transaction that caused the event) and signed delivery.

    emit_event(session, client_id, "dispute.updated", {...}, dedupe_key=f"dispute.updated:{id}:{version}")

writes one `WebhookEvent` (once per dedupe key: emitting the same event again does nothing) and one pending
`WebhookDelivery` per active endpoint subscribed to the type, and queues `deliver_webhooks_job` for after
the commit. The job POSTs each due delivery, signed:

    X-AR-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

A receiver recomputes the HMAC over the timestamp and the raw body and rejects old timestamps (replay
protection).

Delivery is at least once, and an acknowledged delivery is not sent again because of a local failure: each
delivery is *leased* in a short transaction of its own (`_lease`: only a due, pending delivery can be taken, so
a delivery already sent and recorded is never taken again), the POST runs with no transaction open (on SQLite no
write lock is held while a receiver answers), and the answer is recorded in another short transaction, retried on
lock contention (`record_attempt`). Only when every try to record fails is the delivery sent again, after its
lease ran out, with the same `X-AR-Event-Id` (`evt_<id>`, also the payload's `id`), by which receivers de-duplicate.

Failures are retried with backoff (BACKOFF) by the periodic sweep; after the last one the
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
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from provider.api.contention import retry_on_lock
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
SIGNATURE_TOLERANCE_S = 300  # what receivers should accept between the signature's timestamp and their clock
EVENT_TYPES = [e.value for e in EventType]


# --- signing --------------------------------------------------------------------------------------------


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp: int, body: bytes, *also: str) -> str:
    """`t=<timestamp>,v1=<mac>`, with one more `v1=` per secret in `also` (a rotated-out one still valid)."""
    return ",".join([f"t={timestamp}", *(f"v1={_mac(s, timestamp, body)}" for s in (secret, *also))])


def verify(secret: str, header: str, body: bytes, now: int, tolerance_s: int = SIGNATURE_TOLERANCE_S) -> bool:
    """What a receiver does (and what the tests do): one of the `v1` signatures is the HMAC with this secret, and
    the timestamp is recent."""
    try:
        parts = [item.split("=", 1) for item in header.split(",")]
        timestamp = int(dict(parts)["t"])
    except (ValueError, KeyError):
        return False
    expected = _mac(secret, timestamp, body)
    signatures = [value for key, value in parts if key == "v1"]
    return any(hmac.compare_digest(expected, s) for s in signatures) and abs(now - timestamp) <= tolerance_s


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The endpoint's secret, then the rotated-out one while its overlap lasts."""
    if endpoint.previous_secret and endpoint.previous_secret_until and now < endpoint.previous_secret_until:
        return [endpoint.secret, endpoint.previous_secret]
    return [endpoint.secret]


def rotate_secret(session: Session, endpoint: WebhookEndpoint, overlap: timedelta) -> WebhookEndpoint:
    """A new signing secret; the old one keeps signing beside it for `overlap` (0: at once replaced), so a
    receiver can switch without refusing a delivery. Audited (without the secrets)."""
    endpoint.previous_secret = endpoint.secret if overlap > timedelta(0) else None
    endpoint.previous_secret_until = now_utc() + overlap if overlap > timedelta(0) else None
    endpoint.secret = "whsec_" + secrets.token_urlsafe(32)
    session.flush()
    until = endpoint.previous_secret_until.isoformat() if endpoint.previous_secret_until else None
    audit.record(session, "webhook_endpoint.rotate_secret", endpoint, after={"previous_valid_until": until})
    return endpoint


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
        raise ServiceError(
            f"give {wanted} of a public host (at most 500 characters)", field="url", kind="url-refused"
        ) from None
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


LEASE = timedelta(minutes=2)  # one attempt's hold on a delivery: well over the outbound deadline (3 s + 5 s)
RECORD_TRIES = 6  # recording an attempt is retried this often on lock contention (each waits the busy timeout)
RECORD_BACKOFF_S = 0.25


def _lease(session: Session, delivery_id: int, now: datetime) -> bool:
    """Take a due pending delivery for one attempt, in a short transaction of its own: its `next_attempt_at`
    moves to now + LEASE, so no other run sends it meanwhile. False when it is not due any more (sent by
    another run, given up, or leased by one): that run's answer stands and nothing is sent twice."""
    taken = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
            WebhookDelivery.next_attempt_at <= now,
        )
        .values(next_attempt_at=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    return bool(getattr(taken, "rowcount", 0))


def _request(session: Session, delivery_id: int) -> tuple[str, bytes, dict[str, str]]:
    """(url, body, headers) of a delivery, signed now; ends the read transaction (no lock is held while sending)."""
    delivery = session.get_one(WebhookDelivery, delivery_id)
    event = session.get_one(WebhookEvent, delivery.event_id)
    endpoint = session.get_one(WebhookEndpoint, delivery.endpoint_id)
    body = json.dumps(event.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(now_utc().timestamp())
    current, *older = signing_secrets(endpoint, now_utc())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "AR-Ops-Webhooks/1",
        SIGNATURE_HEADER: sign(current, timestamp, body, *older),
        "X-AR-Event": event.event_type,
        "X-AR-Event-Id": f"evt_{event.id}",
        "X-AR-Delivery": str(delivery.id),
    }
    url = endpoint.url
    session.commit()
    return url, body, headers


def _record(session: Session, delivery_id: int, code: int | None, error: str, took_ms: int, *, replay: bool) -> None:
    """Log the attempt and settle the delivery (succeeded, retry later, or dead), in a short transaction."""
    delivery = session.get_one(WebhookDelivery, delivery_id, populate_existing=True)
    ok = code is not None and 200 <= code < 300
    session.add(
        WebhookAttempt(
            client_id=delivery.client_id,
            delivery_id=delivery.id,
            status_code=code,
            error=error,
            duration_ms=took_ms,
            replay=replay,
        )
    )
    delivery.attempts += 1
    delivery.last_status_code, delivery.last_error = code, error
    if ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
            DeliveryStatus.SUCCEEDED.value,
            delivery.delivered_at or now_utc(),
            None,
        )
    elif delivery.status != DeliveryStatus.PENDING.value:
        pass  # a replay of a delivery that had succeeded or was given up: logged, its state stands
    elif delivery.attempts >= MAX_ATTEMPTS and not replay:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.DEAD.value, None
    elif not replay:
        delivery.next_attempt_at = now_utc() + BACKOFF[min(delivery.attempts, len(BACKOFF)) - 1]
    session.commit()


def record_attempt(
    session: Session, delivery_id: int, code: int | None, error: str, took_ms: int, *, replay: bool = False
) -> None:
    """`_record`, retried on lock contention: what the receiver answered is not lost to a busy database (on
    SQLite each try already waits the busy timeout). If every try fails the error is raised; the delivery's
    lease then runs out and the delivery is sent again (at least once, never silently dropped)."""
    retry_on_lock(
        session,
        lambda: _record(session, delivery_id, code, error, took_ms, replay=replay),
        tries=RECORD_TRIES,
        backoff_s=RECORD_BACKOFF_S,
        what=f"recording webhook delivery {delivery_id}",
    )


def send(session: Session, delivery_id: int, *, replay: bool = False) -> bool:
    """POST one delivery (no database transaction open meanwhile) and record the attempt. True on a 2xx."""
    url, body, headers = _request(session, delivery_id)
    started = time.perf_counter()
    code, error = _post(url, body, headers)
    took = int((time.perf_counter() - started) * 1000)
    record_attempt(session, delivery_id, code, error, took, replay=replay)
    return code is not None and 200 <= code < 300


def attempt(session: Session, delivery: WebhookDelivery, *, replay: bool = False) -> bool:
    """Send one delivery now and log the attempt; on failure schedule the retry (or give up). Commits."""
    return send(session, delivery.id, replay=replay)


def deliver_due(session: Session, client_id: int, limit: int = BATCH) -> tuple[int, int]:
    """Send the client's due deliveries (oldest first). Returns (succeeded, failed).

    Each delivery is leased in a short transaction before it is sent (`_lease`): two runs never send the same
    delivery, a delivery that was sent and recorded is never sent again, and no transaction (so on SQLite no
    write lock) is held while the receiver answers."""
    now = now_utc()
    due = list(
        session.scalars(
            select(WebhookDelivery.id)
            .where(
                WebhookDelivery.client_id == client_id,
                WebhookDelivery.status == DeliveryStatus.PENDING.value,
                WebhookDelivery.next_attempt_at <= now,
                WebhookDelivery.endpoint_id.in_(  # nothing more goes to a disabled endpoint
                    select(WebhookEndpoint.id).where(
                        WebhookEndpoint.client_id == client_id, WebhookEndpoint.active.is_(True)
                    )
                ),
            )
            .order_by(WebhookDelivery.id)
            .limit(limit)
        )
    )
    session.commit()
    done = failed = 0
    for delivery_id in due:
        if not _lease(session, delivery_id, now_utc()):
            continue
        if send(session, delivery_id):
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
    return send(session, delivery.id, replay=True)


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
