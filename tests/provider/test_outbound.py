"""Outbound requests (provider.core.outbound) against real HTTP servers on loopback, run in this process.

Loopback is refused unless configured; encoded and IPv6 forms of internal addresses are refused as written;
redirects are answers, not followed; answers are capped in size and time; clients see only "refused",
"timed out" or "HTTP <status>". Webhook deliveries and replays go through it (and replays through the outbox).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from provider.api.models import WebhookAttempt, WebhookDelivery
from provider.api.webhooks import create_endpoint, deliver_webhooks_job, emit_event
from provider.core import outbound
from provider.core.errors import ServiceError
from provider.core.outbox_models import BackgroundJob
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_user, make_webhook_endpoint

OPEN = outbound.Policy(https_only=False, connect_timeout_s=2, read_timeout_s=2, deadline_s=4)
LOOPBACK_ALLOWED = outbound.Policy(
    https_only=False, allowed_hosts=frozenset({"127.0.0.1", "localhost"}), read_timeout_s=1, deadline_s=2
)


class Server:
    """A loopback HTTP server whose answer is a function of the request (method, path, headers)."""

    def __init__(self, answer: Any) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                answer(self)

            do_GET = do_POST = _handle

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _reply(code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
    def answer(h: BaseHTTPRequestHandler) -> None:
        h.send_response(code)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return answer


@pytest.fixture
def ok_server() -> Iterator[Server]:
    s = Server(_reply(200, b"thanks"))
    yield s
    s.close()


# --- addresses ------------------------------------------------------------------------------------------

INTERNAL_URLS = [
    "http://127.0.0.1:{port}/",
    "http://localhost:{port}/",
    "http://LOCALHOST.:{port}/",
    "http://2130706433:{port}/",
    "http://0x7f000001:{port}/",
    "http://0x7f.1:{port}/",
    "http://127.1:{port}/",
    "http://0177.0.0.1:{port}/",
    "http://127.0.0.1.:{port}/",
    "http://0:{port}/",
    "http://0.0.0.0:{port}/",
    "http://[::1]:{port}/",
    "http://[::]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/",
    "http://[::ffff:7f00:1]:{port}/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]:{port}/",
    "http://[::127.0.0.1]:{port}/",
    "http://[2002:7f00:1::]:{port}/",
    "http://[64:ff9b::127.0.0.1]:{port}/",
    "http://[64:ff9b::a9fe:a9fe]:{port}/",
    "http://[fe80::1%25eth0]:{port}/",
    "http://[fd00:ec2::254]:{port}/",
    "http://[fc00::1]:{port}/",
    "http://[ff02::1]:{port}/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.100.100.200/",
    "http://168.63.129.16/",
    "http://100.64.0.1/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://198.18.0.1/",
    "http://user:pw@example.com/",
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/",
]


@pytest.mark.parametrize("template", INTERNAL_URLS)
def test_internal_and_encoded_addresses_are_refused(template: str, ok_server: Server) -> None:
    result = outbound.send("GET", template.format(port=ok_server.port), None, {}, OPEN)
    assert (result.status, result.shown) == (None, "refused"), result.reason
    assert ok_server.requests == []


def test_loopback_is_reached_only_when_configured(ok_server: Server) -> None:
    assert outbound.send("POST", ok_server.url, b"{}", {}, OPEN).shown == "refused"
    assert ok_server.requests == []
    result = outbound.send("POST", ok_server.url, b"{}", {}, LOOPBACK_ALLOWED)
    assert (result.status, result.body) == (200, b"thanks")
    assert len(ok_server.requests) == 1


def test_the_checked_address_is_connected_to_and_the_name_kept(ok_server: Server) -> None:
    result = outbound.send("GET", f"http://localhost:{ok_server.port}/x", None, {}, LOOPBACK_ALLOWED)
    assert result.ok
    assert ok_server.requests[0][2]["host"] == f"localhost:{ok_server.port}"


def test_https_only_refuses_plain_http(ok_server: Server) -> None:
    strict = outbound.Policy(https_only=True, allowed_hosts=frozenset({"127.0.0.1"}))
    assert outbound.send("GET", ok_server.url, None, {}, strict).shown == "refused"
    assert ok_server.requests == []


@given(st.sampled_from(["10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "192.168.0.0/16"]), st.data())
def test_every_form_of_an_internal_ipv4_is_blocked(net: str, data: st.DataObject) -> None:
    network = ipaddress.ip_network(net)
    v4 = network[data.draw(st.integers(0, network.num_addresses - 1))]
    forms = [
        v4,
        ipaddress.IPv6Address(f"::ffff:{v4}"),
        ipaddress.IPv6Address(f"::{v4}"),
        ipaddress.IPv6Address(f"64:ff9b::{v4}"),
        ipaddress.IPv6Address((0x2002 << 112) | (int(v4) << 80)),
    ]
    assert all(outbound.blocked_reason(f) for f in forms), forms


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::6810:85e5", "::ffff:8.8.8.8", "1.1.1.1"])
def test_public_addresses_pass(address: str) -> None:
    assert outbound.blocked_reason(ipaddress.ip_address(address)) is None


# --- what the other side does ----------------------------------------------------------------------------


def test_redirects_are_not_followed() -> None:
    target = Server(_reply(200))
    redirecting = Server(_reply(302, headers={"Location": target.url}))
    try:
        result = outbound.send("POST", redirecting.url, b"{}", {}, LOOPBACK_ALLOWED)
        assert (result.status, result.shown) == (302, "HTTP 302")
        assert target.requests == []
    finally:
        target.close()
        redirecting.close()


def test_the_answer_is_capped_in_size() -> None:
    big = Server(_reply(200, b"x" * (2 * 1024 * 1024)))
    try:
        capped = outbound.Policy(https_only=False, allowed_hosts=frozenset({"127.0.0.1"}), max_response_bytes=64_000)
        result = outbound.send("GET", big.url, None, {}, capped)
        assert (result.status, result.shown) == (None, "refused")
        assert "larger than" in result.reason
    finally:
        big.close()


def _silent(h: BaseHTTPRequestHandler) -> None:
    time.sleep(3)


def _drip(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Length", "1000")
    h.end_headers()
    for _ in range(30):
        h.wfile.write(b"x")
        h.wfile.flush()
        time.sleep(0.1)


@pytest.mark.parametrize("answer", [_silent, _drip], ids=["silent", "slow-drip"])
def test_slow_receivers_time_out(answer: Any) -> None:
    slow = Server(answer)
    try:
        policy = outbound.Policy(
            https_only=False, allowed_hosts=frozenset({"127.0.0.1"}), read_timeout_s=0.5, deadline_s=1
        )
        started = time.monotonic()
        result = outbound.send("GET", slow.url, None, {}, policy)
        assert (result.status, result.shown) == (None, "timed out")
        assert time.monotonic() - started < 2.9  # gave up before the receiver finished (3 s)
    finally:
        slow.close()


def test_a_closed_port_says_refused_and_nothing_more() -> None:
    result = outbound.send("GET", "http://127.0.0.1:9/", None, {}, LOOPBACK_ALLOWED)
    assert (result.status, result.shown) == (None, "refused")


# --- webhooks -------------------------------------------------------------------------------------------


@pytest.fixture
def default_policy(app: Flask) -> Iterator[None]:
    """The configuration of a fresh install: no internal host allowed."""
    before = app.config["OUTBOUND_ALLOWED_HOSTS"]
    app.config["OUTBOUND_ALLOWED_HOSTS"] = frozenset()
    yield
    app.config["OUTBOUND_ALLOWED_HOSTS"] = before


def test_webhook_registration_refuses_internal_addresses(app: Flask, db_session: Any, default_policy: None) -> None:
    acme = make_client()
    for url in ("http://127.0.0.1:8080/x", "http://2130706433/", "https://[::ffff:169.254.169.254]/", "http://0x7f.1/"):
        with scoped(TenantScope.agency(), db.session), pytest.raises(ServiceError):
            create_endpoint(db.session, acme.id, url, ["invoice.placed"])
        db.session.rollback()


def test_webhooks_to_loopback_are_not_sent_by_default(
    app: Flask, db_session: Any, ok_server: Server, default_policy: None
) -> None:
    acme = make_client()
    app.config["OUTBOUND_ALLOWED_HOSTS"] = frozenset({"127.0.0.1"})
    make_webhook_endpoint(acme, ok_server.url, ["invoice.placed"])  # registered while it was allowed
    app.config["OUTBOUND_ALLOWED_HOSTS"] = frozenset()
    with scoped(TenantScope.agency(), db.session):
        emit_event(db.session, acme.id, "invoice.placed", {"x": 1}, dedupe_key="t:1")
        db.session.info.pop("pending_jobs", None)
        db.session.commit()
    deliver_webhooks_job(acme.id)
    assert ok_server.requests == []
    with scoped(TenantScope.agency(), db.session):
        errors = db.session.scalars(select(WebhookAttempt.error).where(WebhookAttempt.client_id == acme.id)).all()
    assert errors == ["refused"]


def test_a_webhook_to_a_closed_port_shows_only_refused(app: Flask, db_session: Any) -> None:
    acme = make_client()
    make_webhook_endpoint(acme, "http://127.0.0.1:9/hook", ["invoice.placed"])
    with scoped(TenantScope.agency(), db.session):
        emit_event(db.session, acme.id, "invoice.placed", {"x": 1}, dedupe_key="t:2")
        db.session.info.pop("pending_jobs", None)
        db.session.commit()
    deliver_webhooks_job(acme.id)
    with scoped(TenantScope.agency(), db.session):
        delivery = db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.client_id == acme.id)).one()
    assert (delivery.last_status_code, delivery.last_error) == (None, "refused")


def test_replay_is_queued_work_not_sent_in_the_request(
    app: Flask, client: FlaskClient, db_session: Any, ok_server: Server
) -> None:
    acme = make_client()
    make_webhook_endpoint(acme, ok_server.url, ["invoice.placed"])
    with scoped(TenantScope.agency(), db.session):
        emit_event(db.session, acme.id, "invoice.placed", {"x": 1}, dedupe_key="t:3")
        db.session.info.pop("pending_jobs", None)
        db.session.commit()
        delivery = db.session.scalars(select(WebhookDelivery).where(WebhookDelivery.client_id == acme.id)).one()
    make_user("client_admin", email="hooks@acme.test", client=acme)
    login(client, "hooks@acme.test")
    app.config["JOBS_MODE"], before = "held", app.config["JOBS_MODE"]  # no mode runs it: it waits in the outbox
    try:
        response = client.post(
            f"/portal/api/webhooks/deliveries/{delivery.id}/replay", data={"csrf_token": fresh_csrf(client)}
        )
    finally:
        app.config["JOBS_MODE"] = before
        db.session.info.pop("ready_jobs", None)
    assert response.status_code == 302
    assert ok_server.requests == []  # nothing was sent by the web request
    with scoped(TenantScope.agency(), db.session):
        queued = db.session.scalars(select(BackgroundJob.path).where(BackgroundJob.client_id == acme.id)).all()
    assert "provider.api.webhooks.replay_webhook_job" in queued
