"""Debtor account pages: balances summed from the journal, open items with aging, history with who did it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient

from clients import services
from clients.ledger_queries import BUCKETS, aging, bucket_of
from provider.core.clock import today_utc
from provider.extensions import db
from tests.clients.ledger_helpers import invoice_row, payment_data
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_debtor, make_user


def test_bucket_boundaries_follow_the_design() -> None:
    day = today_utc()
    cases = {
        0: "Current",
        -3: "Current",
        1: "1-30",
        30: "1-30",
        31: "31-60",
        60: "31-60",
        61: "61-90",
        90: "61-90",
        91: "91-120",
        120: "91-120",
        121: "120+",
        400: "120+",
    }
    for days_past_due, bucket in cases.items():
        assert bucket_of(day - timedelta(days=days_past_due), day) == bucket


def test_account_page_shows_what_the_journal_says(client: FlaskClient, db_session: Any) -> None:
    acme = make_client(base_currency="EUR")
    debtor = make_debtor(acme, name="Wayne Holdings")
    today = today_utc()
    services.place_invoices(
        db.session,
        acme,
        [
            invoice_row(
                debtor.id, "OLD-1", 400_00, issue_date=today - timedelta(days=100), due_date=today - timedelta(days=70)
            ),
            invoice_row(
                debtor.id, "NEW-1", 250_00, issue_date=today - timedelta(days=5), due_date=today + timedelta(days=25)
            ),
        ],
    )
    paid = services.record_payment(
        db.session, acme, payment_data(debtor.id, "B-1", 100_00, received_on=today, reference="OLD-1")
    )
    services.auto_allocate(db.session, acme, paid.payment)
    db.session.commit()

    (eur,) = aging(acme.id, today)
    assert eur.buckets == {**dict.fromkeys(BUCKETS, 0), "Current": 250_00, "61-90": 300_00}

    make_user("manager", email="m@example.test")
    login(client, "m@example.test")
    page = client.get(f"/clients/{acme.id}/debtors/{debtor.id}").get_data(as_text=True)
    for text in ("€550.00", "€300.00", "€250.00", "OLD-1", "NEW-1", "payment received", "allocation", "-€100.00"):
        assert text in page, text

    viewer = make_user("client_viewer", client=acme, email="v@acme.test")
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})
    login(client, viewer.email)
    portal = client.get(f"/portal/debtors/{debtor.id}").get_data(as_text=True)
    assert "€550.00" in portal and "OLD-1" in portal
    assert "€550.00" in client.get("/portal/").get_data(as_text=True)
