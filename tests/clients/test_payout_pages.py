"""Pages of money operations: the remittance's payout page (prepare, approve by a second person, download and
re-download, mark paid), the client's bank details (agency admins edit, errors per field), the trust page;
who may open them, and another client's objects are 404."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from flask.testing import FlaskClient

from clients.bank_details import ClientBankAccount
from provider.extensions import db
from tests.clients.test_payouts import CLIENT_IBAN, trust_account, world
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_team, make_user


def _post(http: FlaskClient, url: str, data: dict[str, str] | None = None, page: str = "/") -> Any:
    return http.post(url, data={"csrf_token": fresh_csrf(http, page), **(data or {})})


def _logout(http: FlaskClient) -> None:
    _post(http, "/logout")


def test_four_eyes_through_the_pages(client: FlaskClient, db_session: Any) -> None:
    trust_account()
    _, run = world()
    alice, bob = make_user("manager"), make_user("manager")
    url = f"/books/remittances/{run.id}/payout"
    login(client, alice.email)
    page = client.get(url).get_data(as_text=True)
    assert "Prepare for approval" in page and "€82.00" in page
    assert _post(client, f"{url}/prepare", page=url).status_code == 302
    page = client.get(url).get_data(as_text=True)
    assert "You prepared this remittance: a second person must approve it." in page
    refused = _post(client, f"{url}/approve", page=url)
    assert refused.status_code == 302
    page = client.get(url).get_data(as_text=True)
    assert "a second person must approve it (four eyes)" in page
    assert client.get(f"{url}/file").status_code == 302  # no file before approval
    _logout(client)
    login(client, bob.email)
    assert _post(client, f"{url}/approve", page=url).status_code == 302
    first = client.get(f"{url}/file")
    second = client.get(f"{url}/file")
    assert first.status_code == second.status_code == 200
    assert first.data == second.data and first.mimetype == "application/xml"
    assert first.headers["X-Payout-Download"] == "first download"
    assert second.headers["X-Payout-Download"].startswith("re-download 2: the same file, not a new payment")
    page = client.get(url).get_data(as_text=True)
    assert "Download again (re-download)" in page and "Re-download (same file)" in page and "First download" in page
    again = _post(client, f"{url}/approve", page=url)
    assert again.status_code == 302
    assert "cannot be approved twice" in client.get(url).get_data(as_text=True)
    missing = _post(client, f"{url}/paid", {"paid_on": "", "bank_reference": ""}, page=url)
    assert missing.status_code == 422 and "give the bank&#39;s reference of the payment" in missing.get_data(
        as_text=True
    )
    bad_day = _post(client, f"{url}/paid", {"paid_on": "03/04/2026", "bank_reference": "X"}, page=url)
    assert bad_day.status_code == 422 and "like 2026-12-31" in bad_day.get_data(as_text=True)
    done = _post(client, f"{url}/paid", {"paid_on": "2026-04-03", "bank_reference": "BANK-9"}, page=url)
    assert done.status_code == 302
    db.session.refresh(run)
    assert run.status == "paid" and run.paid_on == date(2026, 4, 3)
    assert "marked paid by hand" in client.get(url).get_data(as_text=True)
    assert "approved" not in client.get(url).get_data(as_text=True).split("<h1>")[0]  # no raw status in the title


def test_a_run_without_bank_details_says_so_and_cannot_be_prepared(client: FlaskClient, db_session: Any) -> None:
    trust_account()
    _, run = world(bank=False)
    login(client, make_user("manager").email)
    url = f"/books/remittances/{run.id}/payout"
    assert "has no bank account for EUR" in client.get(url).get_data(as_text=True)
    _post(client, f"{url}/prepare", page=url)
    assert "record its bank details" in client.get(url).get_data(as_text=True)


def test_bank_details_are_edited_by_agency_admins_with_errors_per_field(client: FlaskClient, db_session: Any) -> None:
    c = make_client(base_currency="EUR")
    url = f"/clients/{c.id}/bank-details"
    manager = make_user("manager")
    login(client, manager.email)
    page = client.get(url).get_data(as_text=True)
    assert "No bank account recorded" in page and "Save bank account" not in page
    assert _post(client, url, {"currency": "EUR", "holder": "X", "iban": CLIENT_IBAN}).status_code == 404
    _logout(client)
    login(client, make_user("admin").email)
    bad = _post(client, url, {"currency": "EUR", "holder": "", "iban": "NL91ABNA0417164301", "bic": "ABNAXX"})
    text = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert "the IBAN &#39;NL91ABNA0417164301&#39; is not valid" in text and "account holder" in text
    assert 'id="f-iban"' in text and 'aria-invalid="true"' in text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ClientBankAccount)) == 0
    good = _post(client, url, {"currency": "EUR", "holder": "Client GmbH", "iban": "NL91 ABNA 0417 1643 00"})
    assert good.status_code == 302
    page = client.get(url).get_data(as_text=True)
    assert CLIENT_IBAN in page and "Client GmbH" in page


def test_who_may_open_the_pages(client: FlaskClient, db_session: Any) -> None:
    trust_account()
    c, run = world()
    other = make_client()
    collector = make_user("collector", team=make_team(c, other))
    client_user = make_user("client_admin", client=c)
    urls = [
        f"/books/remittances/{run.id}/payout",
        f"/books/remittances/{run.id}/payout/file",
        f"/clients/{c.id}/bank-details",
        "/books/trust",
    ]
    for who in (collector, client_user):
        login(client, who.email)
        for url in urls:
            assert client.get(url).status_code == 404, (who.role, url)
        for url in (f"/books/remittances/{run.id}/payout/prepare", "/books/trust/reconcile"):
            assert _post(client, url).status_code == 404, (who.role, url)
        _logout(client)
    login(client, make_user("manager").email)
    assert client.get("/books/remittances/987654321/payout").status_code == 404
    assert client.get("/clients/987654321/bank-details").status_code == 404
    assert _post(client, "/books/trust/accounts", {"currency": "USD"}).status_code == 404  # admins only


def test_the_trust_page_reconciles_a_day(client: FlaskClient, db_session: Any) -> None:
    trust_account()
    world()
    login(client, make_user("manager").email)
    page = client.get("/books/trust?date=2026-03-31").get_data(as_text=True)
    assert "Not reconciled for 2026-03-31" in page and "DE89370400440532013000" in page
    assert _post(client, "/books/trust/reconcile", {"date": "2026-03-31"}).status_code == 302
    page = client.get("/books/trust?date=2026-03-31").get_data(as_text=True)
    assert "EUR on 31 Mar 2026: No bank statement" in page and "€100.00" in page
    assert "no_statement" not in page
    empty = _post(client, "/books/trust/statements", {"date": "2026-03-31"})
    assert empty.status_code == 302
    assert "choose the trust account" in client.get("/books/trust").get_data(as_text=True)
