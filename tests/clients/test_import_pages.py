"""Uploading placement files from the back office and the portal; the result page lists every problem."""

from __future__ import annotations

import io
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from clients.journal import Invoice
from provider.extensions import db
from tests.clients.test_imports import GOOD, MIXED
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_user


def _upload(client: FlaskClient, url: str, content: str, name: str = "file.csv", **fields: str) -> Any:
    data = {"csrf_token": fresh_csrf(client, url), "file": (io.BytesIO(content.encode()), name), **fields}
    return client.post(url, data=data, content_type="multipart/form-data")


def test_manager_uploads_a_file_and_sees_the_result(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    make_user("manager", email="m@example.test")
    login(client, "m@example.test")
    response = _upload(client, f"/clients/{acme.id}/imports", GOOD)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "posted" in page and "Invoices posted" in page
    assert len(db.session.scalars(select(Invoice).where(Invoice.client_id == acme.id)).all()) == 3
    listing = client.get(f"/clients/{acme.id}/imports").get_data(as_text=True)
    assert "file.csv" in listing


def test_portal_upload_reports_problems_and_remembers_the_mapping(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    admin = make_user("client_admin", client=acme)
    login(client, admin.email)
    bad = _upload(client, "/portal/placements", MIXED)
    page = client.get(bad.headers["Location"]).get_data(as_text=True)
    assert "Nothing was posted" in page and "ISO 4217" in page and "before the issue date" in page
    assert db.session.scalars(select(Invoice).where(Invoice.client_id == acme.id)).all() == []

    erp = "Nr,Kunde,Name,Datum,Faellig,Betrag,Whg\nR-1,K-1,Kunde 1,2026-01-05,2026-02-04,10.00,EUR\n"
    mapping = {
        "map_invoice_number": "Nr",
        "map_debtor_ref": "Kunde",
        "map_debtor_name": "Name",
        "map_issue_date": "Datum",
        "map_due_date": "Faellig",
        "map_amount": "Betrag",
        "map_currency": "Whg",
    }
    ok = _upload(client, "/portal/placements", erp, **mapping)
    assert "posted" in client.get(ok.headers["Location"]).get_data(as_text=True)
    form = client.get("/portal/placements").get_data(as_text=True)
    assert 'value="Betrag"' in form  # the next upload starts from the saved mapping


def test_missing_or_wrong_file_is_refused_and_viewers_cannot_upload(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    admin = make_user("client_admin", client=acme)
    login(client, admin.email)
    response = client.post("/portal/placements", data={"csrf_token": fresh_csrf(client, "/portal/placements")})
    assert response.status_code == 422 and "Choose a CSV or XLSX file" in response.get_data(as_text=True)
    response = _upload(client, "/portal/placements", "x", name="invoices.pdf")
    assert response.status_code == 422 and "only .csv and .xlsx" in response.get_data(as_text=True)
    client.post("/logout", data={"csrf_token": fresh_csrf(client, "/portal/")})
    viewer = make_user("client_viewer", client=acme)
    login(client, viewer.email)
    assert client.get("/portal/placements").status_code == 404


def test_a_payments_file_neither_sets_the_placement_mapping_nor_opens_as_a_placement(
    client: FlaskClient, db_session: Any
) -> None:
    from clients.imports import ImportBatch
    from provider.core.tenancy import TenantScope, scoped

    acme = make_client()
    with scoped(TenantScope.single(acme.id), db.session):
        payments = ImportBatch(
            client_id=acme.id,
            kind="payments",
            filename="cash.csv",
            sha256="0" * 64,
            content=b"",
            mapping={"invoice_number": "PaymentRefColumn"},
            status="posted",
            errors=[],
        )
        db.session.add(payments)
        db.session.flush()
        payments_id = payments.id
    make_user("manager", email="m2@example.test")
    login(client, "m2@example.test")
    form = client.get(f"/clients/{acme.id}/imports").get_data(as_text=True)
    assert "PaymentRefColumn" not in form
    assert client.get(f"/clients/{acme.id}/imports/{payments_id}").status_code == 404
