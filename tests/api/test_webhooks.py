"""Webhooks delivered to a real HTTP server on loopback: signed, retried with backoff, never twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from provider.api.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from provider.api.webhooks import SIGNATURE_HEADER, deliver_webhooks_job, emit_event, retry_webhooks_job, verify
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.api.helpers import invoice_body, payment_body, post
from tests.factories import make_api_token, make_client, make_debtor, make_webhook_endpoint

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


class Receiver:
    """A loopback HTTP server that records what it receives and answers with the scripted codes."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.script: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                code = receiver.script.pop(0) if receiver.script else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def _deliveries(client_id: int) -> list[WebhookDelivery]:
    with scoped(TenantScope.agency(), db.session):
        return list(db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.client_id == client_id)))


def test_payment_posted_is_delivered_signed(client: FlaskClient, db_session: Any, receiver: Receiver) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    token = make_api_token(acme)
    with frozen_time(NOW):
        endpoint = make_webhook_endpoint(acme, receiver.url, ["payment.posted", "invoice.placed"])
        assert post(client, token, "/invoices", invoice_body(debtor.id, "W-1")).status_code == 201
        assert post(client, token, "/payments", payment_body(debtor.id, "W-PAY-1", 12_00)).status_code == 201
    assert [h["x-ar-event"] for h, _ in receiver.received] == ["invoice.placed", "payment.posted"]
    headers, body = receiver.received[1]
    assert verify(endpoint.secret, headers[SIGNATURE_HEADER.lower()], body, now=int(NOW.timestamp()))
    assert not verify(endpoint.secret, headers[SIGNATURE_HEADER.lower()], body + b" ", now=int(NOW.timestamp()))
    assert not verify(endpoint.secret, headers[SIGNATURE_HEADER.lower()], body, now=int(NOW.timestamp()) + 3600)
    assert b'"external_ref":"W-PAY-1"' in body and b'"amount_minor":1200' in body
    assert all(d.status == DeliveryStatus.SUCCEEDED.value for d in _deliveries(acme.id))


def test_a_failing_receiver_is_retried_with_backoff(db_session: Any, receiver: Receiver) -> None:
    acme = make_client()
    make_webhook_endpoint(acme, receiver.url, ["dispute.updated"])
    receiver.script = [500, 503]
    with frozen_time(NOW), scoped(TenantScope.single(acme.id), db_session):
        emit_event(db_session, acme.id, "dispute.updated", {"dispute_id": 1, "status": "open"}, dedupe_key="d:1:open")
        db_session.commit()  # the job runs after the commit (eager in tests)
        deliver_webhooks_job(acme.id)
    (delivery,) = _deliveries(acme.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at == NOW + timedelta(seconds=30)
    with frozen_time(NOW + timedelta(seconds=10)):
        retry_webhooks_job()  # not due yet: nothing sent
    assert len(receiver.received) == 1
    with frozen_time(NOW + timedelta(seconds=31)):
        retry_webhooks_job()  # 503
    with frozen_time(NOW + timedelta(seconds=31 + 121)):
        retry_webhooks_job()  # 200
    assert len(receiver.received) == 3
    (delivery,) = _deliveries(acme.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 3, 200)
    with scoped(TenantScope.agency(), db_session):
        codes = list(db_session.scalars(select(WebhookAttempt.status_code).order_by(WebhookAttempt.id)))
    assert codes == [500, 503, 200]


def test_a_duplicate_event_is_not_delivered_twice(db_session: Any, receiver: Receiver) -> None:
    acme = make_client()
    make_webhook_endpoint(acme, receiver.url, ["report.ready"])
    with frozen_time(NOW), scoped(TenantScope.single(acme.id), db_session):
        first = emit_event(db_session, acme.id, "report.ready", {"period": "2026-02"}, dedupe_key="report:2026-02:v1")
        db_session.commit()
        deliver_webhooks_job(acme.id)
        again = emit_event(db_session, acme.id, "report.ready", {"period": "2026-02"}, dedupe_key="report:2026-02:v1")
        db_session.commit()
        deliver_webhooks_job(acme.id)  # at-least-once: the job may run again
    with frozen_time(NOW + timedelta(days=1)):
        retry_webhooks_job()
    assert first is not None and again is None
    assert len(receiver.received) == 1


def test_replay_from_the_portal(client: FlaskClient, db_session: Any, receiver: Receiver) -> None:
    from tests.conftest import fresh_csrf, login
    from tests.factories import make_user

    acme = make_client()
    admin = make_user("client_admin", client=acme)
    make_webhook_endpoint(acme, receiver.url, ["promise.broken"])
    receiver.script = [500]
    with frozen_time(NOW), scoped(TenantScope.single(acme.id), db_session):
        emit_event(db_session, acme.id, "promise.broken", {"promise_id": 7}, dedupe_key="promise:7:broken")
        db_session.commit()
        deliver_webhooks_job(acme.id)
    (delivery,) = _deliveries(acme.id)
    assert login(client, admin.email).status_code == 302
    page = client.get(f"/portal/api/webhooks/deliveries/{delivery.id}")
    assert page.status_code == 200 and "500" in page.get_data(as_text=True)
    replayed = client.post(
        f"/portal/api/webhooks/deliveries/{delivery.id}/replay", data={"csrf_token": fresh_csrf(client)}
    )
    assert replayed.status_code == 302
    assert len(receiver.received) == 2
    (delivery,) = _deliveries(acme.id)
    assert delivery.status == "succeeded"


class LockedWrites:
    """The database refuses the next `times` INSERTs into webhook_attempts as SQLite does under contention
    ("database is locked"): what happened to the embedded demo when a job recorded an attempt."""

    def __init__(self, times: int) -> None:
        self.left = times

    def __call__(self, conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if self.left and statement.lstrip().upper().startswith("INSERT INTO WEBHOOK_ATTEMPTS"):
            self.left -= 1
            raise OperationalError(statement, {}, Exception("database is locked"))


@pytest.fixture
def locked_writes() -> Iterator[LockedWrites]:
    from sqlalchemy import event

    fault = LockedWrites(0)
    event.listen(db.engine, "before_cursor_execute", fault)
    try:
        yield fault
    finally:
        event.remove(db.engine, "before_cursor_execute", fault)


def _run(job: Any, *args: Any) -> None:
    """Run a job as the worker would: a failure of the job is its own business (it is retried)."""
    try:
        job(*args)
    except OperationalError:
        db.session.rollback()


def test_an_acknowledged_delivery_is_not_sent_again_when_recording_meets_a_lock(
    db_session: Any, receiver: Receiver, locked_writes: LockedWrites, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("provider.api.webhooks.RECORD_BACKOFF_S", 0.0)
    acme = make_client()
    make_webhook_endpoint(acme, receiver.url, ["dispute.updated"])
    with frozen_time(NOW), scoped(TenantScope.single(acme.id), db_session):
        emit_event(db_session, acme.id, "dispute.updated", {"dispute_id": 3}, dedupe_key="d:3:open")
        db_session.commit()
        locked_writes.left = 2  # the first two tries to record the receiver's 200 meet a lock
        _run(deliver_webhooks_job, acme.id)
        _run(deliver_webhooks_job, acme.id)  # the job may run again (at least once)
    with frozen_time(NOW + timedelta(days=1)):
        _run(retry_webhooks_job)
    assert len(receiver.received) == 1
    (delivery,) = _deliveries(acme.id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("succeeded", 1, 200)


def test_a_delivery_whose_answer_could_not_be_recorded_waits_for_its_lease_then_goes_again(
    db_session: Any, receiver: Receiver, locked_writes: LockedWrites, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provider.api.webhooks import LEASE

    monkeypatch.setattr("provider.api.webhooks.RECORD_BACKOFF_S", 0.0)
    monkeypatch.setattr("provider.api.webhooks.RECORD_TRIES", 2)
    acme = make_client()
    make_webhook_endpoint(acme, receiver.url, ["dispute.updated"])
    with frozen_time(NOW), scoped(TenantScope.single(acme.id), db_session):
        emit_event(db_session, acme.id, "dispute.updated", {"dispute_id": 4}, dedupe_key="d:4:open")
        db_session.commit()
        locked_writes.left = 2  # every try to record the receiver's 200 fails
        _run(deliver_webhooks_job, acme.id)  # sent, not recorded: the job fails and the worker retries it
        _run(deliver_webhooks_job, acme.id)  # the retry, within the lease: nothing is sent
    assert len(receiver.received) == 1
    with frozen_time(NOW + LEASE + timedelta(seconds=1)):
        _run(retry_webhooks_job)  # at least once: the unrecorded delivery goes again, with the same event id
    assert len(receiver.received) == 2
    assert receiver.received[0][0]["x-ar-event-id"] == receiver.received[1][0]["x-ar-event-id"]
    (delivery,) = _deliveries(acme.id)
    assert (delivery.status, delivery.attempts) == ("succeeded", 1)
