"""Payment pages: upload and result in the back office and the portal, the unmatched list, cash application by
hand (all lines or none, the typed values kept on error), and who may see what."""

from __future__ import annotations

import io
import re
from datetime import date
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from clients.journal import Invoice, JournalEntry, Payment
from provider.extensions import db
from tests.clients.test_payment_imports import GOOD, HEADER
from tests.conftest import csrf_token, fresh_csrf, login
from tests.factories import make_client, make_debtor, make_invoice, make_payment, make_team, make_user


def _upload(client: FlaskClient, url: str, content: str, name: str = "payments.csv", **fields: str) -> Any:
    data = {"csrf_token": fresh_csrf(client, url), "file": (io.BytesIO(content.encode()), name), **fields}
    return client.post(url, data=data, content_type="multipart/form-data")


def _acme() -> Any:
    """D-1 owes INV-1 (100.00) and INV-2 (50.00, due later); D-2 owes INV-3 (200.00)."""
    acme = make_client(base_currency="EUR")
    d1 = make_debtor(acme, external_ref="D-1", name="Dora One")
    d2 = make_debtor(acme, external_ref="D-2", name="Dan Two")
    make_invoice(acme, d1, "INV-1", 10000)
    make_invoice(acme, d1, "INV-2", 5000, due_date=date(2026, 3, 4))
    make_invoice(acme, d2, "INV-3", 20000)
    return acme


def _entries() -> int:
    return db.session.scalar(select(func.count()).select_from(JournalEntry)) or 0


def _payment(client_id: int, ref: str) -> Payment:
    db.session.expire_all()
    return db.session.scalars(select(Payment).where(Payment.client_id == client_id, Payment.external_ref == ref)).one()


def test_manager_imports_payments_and_sees_what_was_allocated(client: FlaskClient, db_session: Any) -> None:
    acme = _acme()
    make_user("manager", email="m@example.test")
    login(client, "m@example.test")
    assert "Payments" in client.get(f"/clients/{acme.id}").get_data(as_text=True)
    response = _upload(client, f"/clients/{acme.id}/payments/imports", GOOD)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Payments recorded" in page and "posted" in page
    assert "€395.00" in page and "€345.00" in page and "€50.00" in page  # received, allocated, still unapplied
    listing = client.get(f"/clients/{acme.id}/payments/imports").get_data(as_text=True)
    assert "payments.csv" in listing
    payments = client.get(f"/clients/{acme.id}/payments?unapplied=1").get_data(as_text=True)
    assert "P-2" in payments and "P-1" not in payments  # only P-2 has money left
    assert _payment(acme.id, "P-2").received_by == "client" and _payment(acme.id, "P-1").received_by == "agency"


def test_a_rejected_file_lists_every_problem_and_posts_nothing(client: FlaskClient, db_session: Any) -> None:
    acme = _acme()
    make_user("admin", email="a@example.test")
    login(client, "a@example.test")
    bad = HEADER + "P-1,D-1,2026-03-10,40.00,EUR,,,\nP-2,D-404,2026-03-10,abc,EUR,,,\n"
    response = _upload(client, f"/clients/{acme.id}/payments/imports", bad, received_by="client")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Nothing was posted" in page and "D-404" in page and "is not a number" in page
    assert db.session.scalars(select(Payment).where(Payment.client_id == acme.id)).all() == []
    wrong = _upload(client, f"/clients/{acme.id}/payments/imports", "x", name="payments.pdf")
    assert wrong.status_code == 422 and "import a .csv or .xlsx payments file" in wrong.get_data(as_text=True)


def _allocate_url(acme: Any, payment: Payment) -> str:
    return f"/clients/{acme.id}/payments/{payment.id}/allocate"


def test_an_unmatched_payment_is_allocated_by_hand(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme, name="Early Payer")
    payment = make_payment(acme, debtor, "EARLY-1", 12000, reference="for INV-B")
    inv_a = make_invoice(acme, debtor, "INV-A", 8000)
    inv_b = make_invoice(acme, debtor, "INV-B", 5000, due_date=date(2026, 3, 1))
    team = make_team(acme)
    make_user("collector", team=team, email="c@example.test")
    login(client, "c@example.test")

    unmatched = client.get(f"/clients/{acme.id}/payments/unmatched").get_data(as_text=True)
    assert "EARLY-1" in unmatched and "€120.00" in unmatched and "€130.00" in unmatched  # unapplied, debtor's open
    form = client.get(_allocate_url(acme, payment)).get_data(as_text=True)
    # prefilled like automatic allocation: the invoice the reference names first, then the oldest due
    assert re.search(rf'name="amount_{inv_b.id}"\s+value="50.00"', form)
    assert re.search(rf'name="amount_{inv_a.id}"\s+value="70.00"', form)
    assert re.findall(r'name="amount_(\d+)"', form) == [str(inv_b.id), str(inv_a.id)]
    response = client.post(
        _allocate_url(acme, payment),
        data={"csrf_token": csrf_token(form), f"amount_{inv_a.id}": "80.00", f"amount_{inv_b.id}": "40"},
    )
    assert response.status_code == 302
    assert _payment(acme.id, "EARLY-1").unapplied_minor == 0
    invoices = db.session.scalars(select(Invoice).where(Invoice.client_id == acme.id))
    assert {i.number: i.open_minor for i in invoices} == {"INV-A": 0, "INV-B": 1000}
    assert "Every payment is allocated" in client.get(f"/clients/{acme.id}/payments/unmatched").get_data(as_text=True)


def test_over_allocation_is_refused_keeps_the_values_and_changes_nothing(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    payment = make_payment(acme, debtor, "OVER-1", 10000)
    inv_a = make_invoice(acme, debtor, "INV-A", 8000)
    inv_b = make_invoice(acme, debtor, "INV-B", 5000, due_date=date(2026, 3, 1))
    make_user("manager", email="m@example.test")
    login(client, "m@example.test")
    url = _allocate_url(acme, payment)
    before = _entries()

    too_much = client.post(
        url, data={"csrf_token": fresh_csrf(client, url), f"amount_{inv_a.id}": "80.00", f"amount_{inv_b.id}": "30.00"}
    )
    page = too_much.get_data(as_text=True)
    assert too_much.status_code == 422 and "add up to €110.00" in page and "€100.00" in page
    assert 'value="80.00"' in page and 'value="30.00"' in page

    over_open = client.post(
        url, data={"csrf_token": fresh_csrf(client, url), f"amount_{inv_a.id}": "90", f"amount_{inv_b.id}": "1,0x"}
    )
    page = over_open.get_data(as_text=True)
    assert over_open.status_code == 422 and 'value="90"' in page and 'value="1,0x"' in page
    # every problem at once, each next to its own field: the unreadable amount and the one above the open amount
    assert re.search(rf'id="f-amount_{inv_b.id}-error">[^<]*is not a number', page)
    assert re.search(rf'id="f-amount_{inv_a.id}-error">[^<]*only €80.00 is open on invoice INV-A', page)

    assert _entries() == before and _payment(acme.id, "OVER-1").unapplied_minor == 10000


def test_client_admin_reports_direct_payments_in_the_portal(client: FlaskClient, db_session: Any) -> None:
    acme = _acme()
    admin = make_user("client_admin", client=acme)
    login(client, admin.email)
    assert "/portal/payments/" in client.get("/portal/").get_data(as_text=True)
    form = client.get("/portal/payments/imports").get_data(as_text=True)
    assert 'name="received_by"' not in form  # the portal reports payments made to the client, nothing else
    content = HEADER + "C-1,D-1,2026-03-10,30.00,EUR,,,\n"
    response = _upload(client, "/portal/payments/imports", content, received_by="agency")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Payments recorded" in page and "posted" in page
    assert _payment(acme.id, "C-1").received_by == "client"
    listing = client.get("/portal/payments/").get_data(as_text=True)
    assert "C-1" in listing and "/allocate" not in listing


def test_who_may_see_and_do_what(client: FlaskClient, db_session: Any) -> None:
    acme, other = _acme(), make_client()
    debtor = make_debtor(acme)
    payment = make_payment(acme, debtor, "P-X", 1000)
    outsider = make_user("collector", team=make_team(other), email="outsider@example.test")
    insider = make_user("collector", team=make_team(acme), email="insider@example.test")
    viewer = make_user("client_viewer", client=acme)
    other_admin = make_user("client_admin", client=other)
    base = f"/clients/{acme.id}/payments"

    login(client, outsider.email)
    for url in (base, f"{base}/unmatched", _allocate_url(acme, payment), f"{base}/imports"):
        assert client.get(url).status_code == 404, url
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})

    login(client, insider.email)
    assert client.get(f"{base}/unmatched").status_code == 200
    assert client.get(_allocate_url(acme, payment)).status_code == 200
    assert client.get(f"{base}/imports").status_code == 404  # collectors apply cash, managers import it
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})

    login(client, viewer.email)
    assert client.get("/portal/payments/").status_code == 200
    assert client.get("/portal/payments/imports").status_code == 404
    assert client.get(base).status_code == 404
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})

    make_user("manager", email="boss@example.test")
    login(client, "boss@example.test")
    batch = _upload(client, f"{base}/imports", GOOD).headers["Location"]
    placements = _upload(client, f"/clients/{acme.id}/imports", "invoice_number\n").headers["Location"]
    assert client.get(f"{base}/imports/{placements.rsplit('/', 1)[-1]}").status_code == 404  # not a payments file
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})

    login(client, other_admin.email)
    assert client.get(f"/portal/payments/imports/{batch.rsplit('/', 1)[-1]}").status_code == 404
    assert "P-X" not in client.get("/portal/payments/").get_data(as_text=True)
