"""A client generated from the served OpenAPI document by a generator nobody here wrote (`openapi-python-client`)
runs an ERP sync against the real app over HTTP, on each database: so a spec change that breaks generated
clients fails here.

The scenario: create debtors and place invoices, list everything with paging, pay with an Idempotency-Key and
retry it, issue a credit note, read aging, KPIs and a report's PDF, open a dispute, handle an error (a Problem),
update a debtor and an invoice with If-Match and sync incrementally (exactly the changed rows come back).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from werkzeug.serving import make_server

GENERATOR = Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "ar_ops_sdk"

pytestmark = pytest.mark.skipif(not GENERATOR.exists(), reason="openapi-python-client is not installed (dev extra)")


class Live:
    def __init__(self, base: str, token: str, client_id: int) -> None:
        self.base, self.token, self.client_id = base, token, client_id


@pytest.fixture(scope="module")
def live(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The app served over HTTP on a database of its own (built from the migrations), with one client's token."""
    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.core.audit import Actor, set_actor
    from provider.core.tenancy import TenantScope, scoped, set_scope
    from provider.extensions import db
    from tests.conftest import Database
    from tests.factories import make_api_token, make_client

    database = Database(backend, request.config.getoption("--pg-admin-url"), tmp_path_factory.mktemp("sdk"))
    app = create_app(database.environ)
    try:
        with app.app_context():
            upgrade()
            set_scope(TenantScope.agency())
            set_actor(Actor.system("test"))
            acme = make_client(base_currency="EUR")
            token = make_api_token(acme)
            _report_of(acme, "2026-01")
            client_id = acme.id
            db.session.remove()
            set_scope(TenantScope.nothing())
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield Live(f"http://127.0.0.1:{server.server_port}", token, client_id)
        finally:
            server.shutdown()
            server.server_close()
            with app.app_context():
                db.engine.dispose()
    finally:
        _ = scoped
        database.drop()


def _report_of(acme: Any, period: str) -> None:
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from provider.reporting.reports import generate_report

    with scoped(TenantScope.agency(), db.session):
        generate_report(db.session, acme, period)
        db.session.info.pop("pending_jobs", None)
        db.session.commit()


@pytest.fixture(scope="module")
def sdk(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The SDK generated from the document the live app serves."""
    out = tmp_path_factory.mktemp("generated")
    with urllib.request.urlopen(f"{live.base}/api/v1/openapi.json", timeout=30) as response:  # noqa: S310 - loopback
        (out / "openapi.json").write_bytes(response.read())
    target = out / PACKAGE
    generated = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(out / "openapi.json"),
            "--output-path",
            str(target),
            "--meta",
            "none",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "WARNING" not in generated.stdout, generated.stdout  # every operation and response was understood
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        shutil.rmtree(out, ignore_errors=True)


def _mod(sdk: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{sdk.__name__}.{name}")


def _everything(list_op: Any, client: Any, **params: Any) -> list[Any]:
    """Every page of a list through the SDK, following next_cursor."""
    items: list[Any] = []
    cursor = None
    while True:
        page = list_op.sync(client=client, limit=2, **params, **({"cursor": cursor} if cursor else {}))
        items += page.data
        cursor = page.next_cursor
        if not cursor:
            return items


def test_an_erp_sync_through_the_generated_sdk(sdk: ModuleType, live: Live) -> None:
    m = _mod(sdk, "models")
    debtors_api = {
        n: _mod(sdk, f"api.debtors.{n}") for n in ("create_debtor", "list_debtors", "update_debtor", "get_debtor")
    }
    invoices_api = {
        n: _mod(sdk, f"api.invoices.{n}") for n in ("place_invoice", "list_invoices", "get_invoice", "update_invoice")
    }
    payments_api = {n: _mod(sdk, f"api.payments.{n}") for n in ("record_payment", "list_payments", "allocate_payment")}
    client = sdk.AuthenticatedClient(base_url=f"{live.base}/api/v1", token=live.token, raise_on_unexpected_status=True)

    created = [
        debtors_api["create_debtor"].sync(
            client=client, body=m.DebtorIn(external_ref=f"ERP-{n}", name=f"Debtor {n}", email=f"ap{n}@example.com")
        )
        for n in range(3)
    ]
    assert [d.email for d in created] == ["ap0@example.com", "ap1@example.com", "ap2@example.com"]
    for n, debtor in enumerate(created):
        body = m.InvoiceIn(
            debtor_id=debtor.id,
            number=f"INV-{n}",
            issue_date=dt.date(2026, 1, 10),
            due_date=dt.date(2026, 2, 10),
            currency=m.InvoiceInCurrency("EUR"),
            amount_minor=100_00,
        )
        placed = invoices_api["place_invoice"].sync_detailed(client=client, body=body)
        assert placed.status_code == 201 and placed.parsed.open_minor == 100_00
    assert len(_everything(debtors_api["list_debtors"], client)) == 3
    invoices = _everything(invoices_api["list_invoices"], client)
    assert sorted(i.number for i in invoices) == ["INV-0", "INV-1", "INV-2"]

    pay = m.PaymentIn(
        debtor_id=created[0].id,
        external_ref="PAY-1",
        received_on=dt.date(2026, 3, 1),
        currency=m.PaymentInCurrency("EUR"),
        amount_minor=40_00,
    )
    first = payments_api["record_payment"].sync_detailed(client=client, body=pay, idempotency_key="sync-pay-1")
    retry = payments_api["record_payment"].sync_detailed(client=client, body=pay, idempotency_key="sync-pay-1")
    assert first.status_code == retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true" and retry.parsed.id == first.parsed.id
    invoice_0 = next(i for i in invoices if i.number == "INV-0")
    allocated = payments_api["allocate_payment"].sync(
        first.parsed.id, client=client, body=m.AllocationIn(invoice_id=invoice_0.id, amount_minor=40_00)
    )
    assert allocated.payment.unapplied_minor == 0

    credit = _mod(sdk, "api.credit_notes.issue_credit_note").sync(
        client=client,
        body=m.CreditNoteIn(
            debtor_id=created[1].id,
            number="CN-1",
            issued_on=dt.date(2026, 3, 2),
            currency=m.CreditNoteInCurrency("EUR"),
            amount_minor=10_00,
            invoice_id=invoices[1].id,
        ),
    )
    assert credit.amount_minor == 10_00

    aging = _mod(sdk, "api.reports.aging").sync(client=client, as_of=dt.date(2026, 3, 31))
    assert [c.currency for c in aging.currencies] == ["EUR"] and aging.currencies[0].total_minor == 250_00
    kpis = _mod(sdk, "api.reports.kpis").sync(client=client, as_of=dt.date(2026, 3, 31), days=90)
    assert kpis.currencies[0].receivable_minor == 250_00
    (report,) = _everything(_mod(sdk, "api.reports.list_reports"), client)
    pdf = _mod(sdk, "api.reports.get_report_pdf").sync(report.id, client=client)
    assert pdf.payload.read().startswith(b"%PDF")

    dispute = _mod(sdk, "api.disputes.open_dispute").sync(
        client=client,
        body=m.DisputeIn(
            reason=m.DisputeInReason("pricing"),
            summary="Price differs",
            amount_minor=20_00,
            invoice_ids=[next(i.id for i in invoices if i.number == "INV-2")],
        ),
    )
    assert dispute.status == "open"

    lenient = sdk.AuthenticatedClient(base_url=f"{live.base}/api/v1", token=live.token)
    refused = payments_api["record_payment"].sync_detailed(
        client=lenient,
        body=m.PaymentIn(
            debtor_id=10**12,
            external_ref="PAY-X",
            received_on=dt.date(2026, 3, 1),
            currency=m.PaymentInCurrency("EUR"),
            amount_minor=1,
        ),
    )
    assert refused.status_code == 409 and isinstance(refused.parsed, m.Problem)  # schema-valid, an unknown debtor
    assert refused.parsed.type_.endswith("/unknown-reference")
    assert "debtor_id" in refused.parsed.errors.additional_properties

    read = debtors_api["get_debtor"].sync_detailed(created[2].id, client=client)
    since = max(d.updated_at for d in _everything(debtors_api["list_debtors"], client)) + dt.timedelta(microseconds=1)
    patched = debtors_api["update_debtor"].sync_detailed(
        created[2].id,
        client=client,
        body=m.DebtorPatch(name="Renamed GmbH", phone="+49 30 123456"),
        if_match=read.headers["ETag"],
    )
    assert patched.status_code == 200 and patched.parsed.phone == "+49 30 123456"
    stale = debtors_api["update_debtor"].sync_detailed(
        created[2].id, client=lenient, body=m.DebtorPatch(name="Lost"), if_match=read.headers["ETag"]
    )
    assert stale.status_code == 412 and isinstance(stale.parsed, m.Problem)
    changed = _everything(
        debtors_api["list_debtors"], client, updated_since=since, sort=_mod(sdk, "models").ListDebtorsSort("updated_at")
    )
    assert [(d.id, d.name) for d in changed] == [(created[2].id, "Renamed GmbH")]

    invoice_2 = next(i for i in invoices if i.number == "INV-2")
    since = max(i.updated_at for i in _everything(invoices_api["list_invoices"], client)) + dt.timedelta(microseconds=1)
    read = invoices_api["get_invoice"].sync_detailed(invoice_2.id, client=client)
    moved = invoices_api["update_invoice"].sync_detailed(
        invoice_2.id,
        client=client,
        body=m.InvoicePatch(due_date=dt.date(2026, 3, 10), po_reference="PO-7781"),
        if_match=read.headers["ETag"],
    )
    assert moved.status_code == 200 and moved.parsed.due_date == dt.date(2026, 3, 10)
    assert moved.parsed.amount_minor == 100_00 and moved.headers["ETag"] != read.headers["ETag"]
    stale = invoices_api["update_invoice"].sync_detailed(
        invoice_2.id, client=lenient, body=m.InvoicePatch(po_reference="PO-0"), if_match=read.headers["ETag"]
    )
    assert stale.status_code == 412 and isinstance(stale.parsed, m.Problem)
    changed_invoices = _everything(
        invoices_api["list_invoices"], client, updated_since=since, sort=m.ListInvoicesSort("updated_at")
    )
    assert [(i.id, i.po_reference) for i in changed_invoices] == [(invoice_2.id, "PO-7781")]
    _ = json
