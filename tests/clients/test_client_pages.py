"""Managers create and edit clients and debtors; bad input is reported field by field and saves nothing."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from clients.models import Client, Debtor, DebtorContact
from provider.extensions import db
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_debtor, make_team, make_user

GOOD_CLIENT = {
    "name": "Globex Corporation",
    "code": "globex",
    "base_currency": "usd",
    "timezone": "America/Chicago",
    "country": "us",
    "debt_type": "commercial",
    "status": "active",
}


@pytest.fixture
def manager_client(client: FlaskClient, db_session: Any) -> FlaskClient:
    make_user("manager", email="mgr@example.test")
    login(client, "mgr@example.test")
    return client


def _count(model: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_manager_creates_a_client_with_normalised_codes(manager_client: FlaskClient) -> None:
    response = manager_client.post("/clients/new", data={**GOOD_CLIENT, "csrf_token": fresh_csrf(manager_client)})
    assert response.status_code == 302
    client = db.session.scalar(select(Client).where(Client.code == "GLOBEX"))
    assert client is not None
    assert (client.base_currency, client.country, client.timezone) == ("USD", "US", "America/Chicago")
    page = manager_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Globex Corporation" in page


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("base_currency", "XXY", "ISO 4217"),
        ("timezone", "Mars/Olympus", "IANA time zone"),
        ("country", "ZZ", "ISO 3166"),
        ("debt_type", "payday", "Choose one of the options offered"),
        ("code", "bad code!", "letters, digits and dashes"),
        ("name", "", "Enter a name"),
    ],
)
def test_bad_client_input_names_the_field_and_saves_nothing(
    manager_client: FlaskClient, field: str, value: str, message: str
) -> None:
    before = _count(Client)
    data = {**GOOD_CLIENT, field: value, "csrf_token": fresh_csrf(manager_client)}
    response = manager_client.post("/clients/new", data=data)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message.lower() in body.lower()
    assert 'value="Globex Corporation"' in body or field == "name"  # what the user typed is kept
    assert _count(Client) == before


def test_duplicate_client_code_is_refused(manager_client: FlaskClient) -> None:
    make_client(code="GLOBEX")
    response = manager_client.post("/clients/new", data={**GOOD_CLIENT, "csrf_token": fresh_csrf(manager_client)})
    assert response.status_code == 422
    assert "already used" in response.get_data(as_text=True)


def test_base_currency_is_fixed_once_debtors_exist(manager_client: FlaskClient) -> None:
    client = make_client(base_currency="EUR")
    make_debtor(client)
    data = {**GOOD_CLIENT, "code": client.code, "csrf_token": fresh_csrf(manager_client)}
    response = manager_client.post(f"/clients/{client.id}/edit", data=data)
    assert response.status_code == 422
    assert "base currency cannot change" in response.get_data(as_text=True)
    db.session.refresh(client)
    assert client.base_currency == "EUR" and client.name != "Globex Corporation"


def test_debtor_create_edit_and_duplicate_reference(manager_client: FlaskClient) -> None:
    client = make_client()
    token = fresh_csrf(manager_client)
    data = {
        "external_ref": "CUST-1",
        "name": "Wayne Enterprises",
        "email": "ap@wayne.test",
        "phone": "+1 555 0100",
        "segment": "enterprise",
        "csrf_token": token,
    }
    response = manager_client.post(f"/clients/{client.id}/debtors/new", data=data)
    assert response.status_code == 302
    debtor = db.session.scalar(select(Debtor).where(Debtor.client_id == client.id, Debtor.external_ref == "CUST-1"))
    assert debtor is not None
    assert {c.value for c in db.session.scalars(select(DebtorContact).where(DebtorContact.debtor_id == debtor.id))} == {
        "ap@wayne.test",
        "+1 555 0100",
    }

    again = manager_client.post(f"/clients/{client.id}/debtors/new", data=data)
    assert again.status_code == 422 and "already has a debtor with reference CUST-1" in again.get_data(as_text=True)

    edit = {"name": "Wayne Enterprises Inc.", "segment": "key-account", "do_not_contact": "y", "csrf_token": token}
    assert manager_client.post(f"/clients/{client.id}/debtors/{debtor.id}/edit", data=edit).status_code == 302
    db.session.refresh(debtor)
    assert (debtor.name, debtor.segment, debtor.do_not_contact) == ("Wayne Enterprises Inc.", "key-account", True)
    page = manager_client.get(f"/clients/{client.id}/debtors/{debtor.id}").get_data(as_text=True)
    assert "debtor.update" in page  # the history shows the change


def test_bad_debtor_email_is_reported(manager_client: FlaskClient) -> None:
    client = make_client()
    data = {"external_ref": "X", "name": "Y", "email": "not-an-email", "csrf_token": fresh_csrf(manager_client)}
    response = manager_client.post(f"/clients/{client.id}/debtors/new", data=data)
    assert response.status_code == 422 and "email" in response.get_data(as_text=True).lower()
    assert _count(Debtor) == 0


def test_collector_may_read_but_not_manage(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    make_user("collector", team=make_team(acme), email="col@example.test")
    login(client, "col@example.test")
    assert client.get(f"/clients/{acme.id}").status_code == 200
    assert client.get("/clients/new").status_code == 404
    assert client.get(f"/clients/{acme.id}/edit").status_code == 404
    assert client.get(f"/clients/{acme.id}/debtors/new").status_code == 404


def test_debtor_list_pages_sorts_and_searches_in_a_bounded_number_of_queries(manager_client: FlaskClient) -> None:
    client = make_client()
    for i in range(30):
        make_debtor(client, name=f"Debtor {i:02d}", external_ref=f"R{i:02d}")
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    engine = db.session.get_bind()
    event.listen(engine, "before_cursor_execute", count)
    try:
        page = manager_client.get(f"/clients/{client.id}?sort=name&dir=desc&per_page=25&page=1")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert body.index("Debtor 29") < body.index("Debtor 05")
    assert "Debtor 04" not in body  # on page 2
    assert len(statements) <= 10, statements
    second = manager_client.get(f"/clients/{client.id}?sort=name&dir=desc&per_page=25&page=2").get_data(as_text=True)
    assert "Debtor 04" in second and "Debtor 29" not in second
    found = manager_client.get(f"/clients/{client.id}?q=r07").get_data(as_text=True)
    assert "Debtor 07" in found and "Debtor 08" not in found
