"""Two PATCHes carrying the same ETag, at the same moment, through a real HTTP server on PostgreSQL: one applies,
the other is a 412 (the row is locked before If-Match is compared). Without the lock both read the same version,
both pass the comparison, and the second silently overwrites the first (a lost update).

The race is made certain: another connection holds the row's lock while both requests start, so both wait at
the same point, then lets go. SQLite has one writer at a time (a request holds the write lock from its start).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.serving import make_server


@dataclass
class Live:
    base: str
    token: str
    owner_url: str
    invoice_id: int
    debtor_id: int

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, dict[str, str], Any]:
        request = urllib.request.Request(  # noqa: S310 - the test server on loopback
            self.base + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json", **headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status, dict(response.headers), json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read() or b"null")


@pytest.fixture(scope="module")
def live(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    if backend != "postgresql":
        pytest.skip("SQLite serialises writers for the whole request")
    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.core.audit import Actor, set_actor
    from provider.core.tenancy import TenantScope, set_scope
    from provider.extensions import db
    from tests.conftest import Database
    from tests.factories import make_api_token, make_client, make_debtor, make_invoice

    database = Database(backend, request.config.getoption("--pg-admin-url"), tmp_path_factory.mktemp("race"))
    app = create_app(database.environ)
    try:
        with app.app_context():
            upgrade()
            set_scope(TenantScope.agency())
            set_actor(Actor.system("test"))
            acme = make_client()
            token = make_api_token(acme)
            debtor = make_debtor(acme)
            invoice_id, debtor_id = make_invoice(acme, debtor, "RACE-1", 120_50).id, debtor.id
            db.session.remove()
            set_scope(TenantScope.nothing())
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield Live(f"http://127.0.0.1:{server.server_port}", token, database.owner_url, invoice_id, debtor_id)
        finally:
            server.shutdown()
            server.server_close()
            with app.app_context():
                db.engine.dispose()
    finally:
        database.drop()


def _race(live: Live, table: str, row_id: int, path: str, bodies: list[dict[str, Any]]) -> list[int]:
    """PATCH `path` with each body at once, all with the ETag read before; the row is held meanwhile."""
    # a write first: the token's last use is then committed, so neither PATCH writes the token's row (which
    # would queue them one behind the other whatever the PATCH does)
    assert live.call("PATCH", path, {})[0] == 200
    status, headers, _ = live.call("GET", path)
    assert status == 200
    owner = sa.create_engine(live.owner_url, poolclass=sa.NullPool)
    try:
        with owner.connect() as holder:
            holder.execute(sa.text(f"SELECT id FROM {table} WHERE id = :id FOR UPDATE"), {"id": row_id})
            with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
                calls = [pool.submit(live.call, "PATCH", path, b, **{"If-Match": headers["ETag"]}) for b in bodies]
                time.sleep(1.5)  # both requests are now waiting for the row
                holder.rollback()
                return sorted(call.result()[0] for call in calls)
    finally:
        owner.dispose()


def test_two_invoice_patches_with_one_etag_one_wins(live: Live) -> None:
    path = f"/api/v1/invoices/{live.invoice_id}"
    codes = _race(live, "invoices", live.invoice_id, path, [{"po_reference": "PO-A"}, {"po_reference": "PO-B"}])
    assert codes == [200, 412], codes


def test_two_debtor_patches_with_one_etag_one_wins(live: Live) -> None:
    path = f"/api/v1/debtors/{live.debtor_id}"
    codes = _race(live, "debtors", live.debtor_id, path, [{"name": "Name A"}, {"name": "Name B"}])
    assert codes == [200, 412], codes
