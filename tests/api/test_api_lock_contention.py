"""The embedded default under contention, through a real HTTP server: SQLite has one writer at a time.

A write straight after a payment used to wait for the webhook job, which held SQLite's write lock while the
receiver answered, and failed with "database is locked" as a 500. Now no lock is held while a receiver
answers, and a write that cannot get the lock answers 503 problem+json with Retry-After, never 500; its
Idempotency-Key is free again, so the retry with the same key does the work once.

SQLite only: the single-writer lock is SQLite's (PostgreSQL locks rows; tests/api/test_webhooks.py covers
a lock met while recording on both databases). The busy timeout is cut to 4 s (the receiver takes 15 s) so that the
waits are short.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from werkzeug.serving import make_server

PROBLEM = "application/problem+json"
BUSY_TIMEOUT_MS = 4000  # shorter than the default 30 s, yet long enough for a loaded test machine


@dataclass
class SlowReceiver:
    """Answers 200 after `delay` seconds (or when `released`); `arrived` is set when a delivery comes in."""

    delay: float = 15.0
    received: list[str] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


@dataclass
class Live:
    base: str
    token: str
    debtor_id: int
    db_file: Path
    receiver: SlowReceiver

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, dict[str, str], Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the test server on loopback
            self.base + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json", **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, dict(response.headers), json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), json.loads(exc.read() or b"null")


@pytest.fixture(scope="module")
def live(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    if backend != "sqlite":
        pytest.skip("SQLite's single-writer lock")
    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.core.audit import Actor, set_actor
    from provider.core.tenancy import TenantScope, set_scope
    from provider.extensions import db
    from tests.factories import make_api_token, make_client, make_debtor, make_webhook_endpoint

    receiver = SlowReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.received.append(json.loads(body)["id"])
            receiver.arrived.set()
            receiver.released.wait(receiver.delay)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    hooks = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=hooks.serve_forever, daemon=True).start()
    db_file = tmp_path_factory.mktemp("contention") / "live.db"
    app = create_app(
        {"AR_ENV": "testing", "DATABASE_URL": f"sqlite:///{db_file}", "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"}
    )
    app.config["JOBS_MODE"] = "thread"  # as the embedded demo runs its jobs
    with app.app_context():
        upgrade()
        set_scope(TenantScope.agency())
        set_actor(Actor.system("test"))
        acme = make_client()
        debtor_id = make_debtor(acme).id
        token = make_api_token(acme)
        make_webhook_endpoint(acme, f"http://127.0.0.1:{hooks.server_address[1]}/hooks", ["payment.posted"])
        db.session.remove()
    with app.app_context():  # this app's connections only: a shorter busy timeout, so that the waits are short
        db.engine.dispose()
        event.listen(db.engine, "connect", _short_busy_timeout)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Live(f"http://127.0.0.1:{server.server_port}/api/v1", token, debtor_id, db_file, receiver)
    finally:
        _quiesce(app, receiver)
        server.shutdown()
        server.server_close()
        hooks.shutdown()
        hooks.server_close()
        with app.app_context():
            db.engine.dispose()


def _quiesce(app: Any, receiver: SlowReceiver) -> None:
    """Before the module ends, this app's background threads stop: its job dispatcher, and the deliveries still
    waiting for the receiver (they use the global session that the next tests' fixture takes over)."""
    from sqlalchemy import func, select

    from provider.core.outbox_models import BackgroundJob, JobStatus
    from provider.extensions import db

    receiver.released.set()
    stop = app.extensions.get("ar_job_dispatcher")
    if stop is not None:
        stop.set()
    deadline = time.monotonic() + 60
    with app.app_context():
        running = select(func.count()).where(BackgroundJob.status == JobStatus.RUNNING.value)
        while time.monotonic() < deadline and (db.session.scalar(running) or 0) > 0:
            db.session.rollback()
            time.sleep(0.2)
        db.session.remove()
    while time.monotonic() < deadline and any(t.name == "job-dispatcher" for t in threading.enumerate()):
        time.sleep(0.2)


def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _payment(live: Live, ref: str) -> dict[str, Any]:
    return {
        "debtor_id": live.debtor_id,
        "external_ref": ref,
        "received_on": "2026-03-01",
        "currency": "EUR",
        "amount_minor": 10_00,
    }


def test_a_write_while_a_receiver_answers_a_webhook_succeeds(live: Live) -> None:
    live.receiver.arrived.clear()
    status, _, _ = live.call("POST", "/payments", _payment(live, "LIVE-1"), **{"Idempotency-Key": "pay-live-1"})
    assert status == 201
    assert live.receiver.arrived.wait(10)  # the webhook job is now waiting for the (slow) receiver
    status, _, body = live.call(
        "POST", "/debtors", {"external_ref": "LIVE-D1", "name": "Right after"}, **{"Idempotency-Key": "debtor-1"}
    )
    assert status == 201, body


def test_a_write_that_cannot_get_the_lock_is_a_503_and_its_retry_succeeds(live: Live) -> None:
    other = sqlite3.connect(live.db_file, isolation_level=None, timeout=5)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock longer than the busy timeout
    try:
        status, headers, body = live.call("POST", "/payments", _payment(live, "LIVE-2"), **{"Idempotency-Key": "p-2"})
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert status == 503, body
    assert headers["Content-Type"] == PROBLEM and body["type"].endswith("/busy")
    assert int(headers["Retry-After"]) >= 1
    status, headers, body = live.call("POST", "/payments", _payment(live, "LIVE-2"), **{"Idempotency-Key": "p-2"})
    assert status == 201, body
    again = live.call("POST", "/payments", _payment(live, "LIVE-2"), **{"Idempotency-Key": "p-2"})
    assert (again[0], again[1].get("Idempotent-Replayed"), again[2]["id"]) == (201, "true", body["id"])


def test_concurrent_requests_with_one_key_make_one_payment_and_no_500(live: Live) -> None:
    from concurrent.futures import ThreadPoolExecutor

    body = _payment(live, "LIVE-3")
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: live.call("POST", "/payments", body, **{"Idempotency-Key": "p-3"}), range(8)))
    codes = [status for status, _, _ in answers]
    assert set(codes) <= {201, 409, 503}, codes
    assert all(b["type"].endswith(("/in-flight", "/busy")) for status, _, b in answers if status != 201)
    made = {b["id"] for status, _, b in answers if status == 201}
    status, _, final = live.call("POST", "/payments", body, **{"Idempotency-Key": "p-3"})  # a client's retry
    assert status == 201 and made <= {final["id"]}
    status, _, listed = live.call("GET", "/payments?external_ref=LIVE-3")
    assert status == 200 and len(listed["data"]) == 1
