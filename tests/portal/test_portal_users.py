"""A client admin manages their own company's portal users, and nobody else's."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from provider.extensions import db
from provider.models import User
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_user


@pytest.fixture
def company(client: FlaskClient, db_session: Any) -> dict[str, Any]:
    acme = make_client(name="Acme Receivables")
    admin = make_user("client_admin", client=acme, email="boss@acme.test")
    viewer = make_user("client_viewer", client=acme, email="clerk@acme.test")
    login(client, admin.email)
    return {"client": acme, "admin": admin, "viewer": viewer}


def test_client_admin_adds_a_colleague_bound_to_their_company(client: FlaskClient, company: dict[str, Any]) -> None:
    data = {
        "email": "new@acme.test",
        "name": "New Person",
        "role": "client_viewer",
        "password": "long-enough-pw",
        "csrf_token": fresh_csrf(client, "/portal/users"),
    }
    assert client.post("/portal/users/new", data=data).status_code == 302
    user = db.session.scalar(select(User).where(User.email == "new@acme.test"))
    assert (user.client_id, user.role, user.team_id) == (company["client"].id, "client_viewer", None)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("role", "manager", "Choose one of the options offered."),
        ("password", "short", "Use at least 10 characters."),
        ("email", "nope", "Enter an e-mail address like name@example.com."),
        ("name", "", "Enter a name."),
    ],
)
def test_bad_colleague_input_is_refused(
    client: FlaskClient, company: dict[str, Any], field: str, value: str, message: str
) -> None:
    data = {
        "email": "x@acme.test",
        "name": "X",
        "role": "client_viewer",
        "password": "long-enough-pw",
        field: value,
        "csrf_token": fresh_csrf(client, "/portal/users"),
    }
    response = client.post("/portal/users/new", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and message in page
    for raw in ("Missing data for required field", "Must be one of", "Not a valid email", "Shorter than minimum"):
        assert raw not in page
    assert db.session.scalar(select(User).where(User.email == data["email"])) is None


def test_smuggled_client_id_is_refused(client: FlaskClient, company: dict[str, Any]) -> None:
    other = make_client()
    data = {
        "email": "spy@acme.test",
        "name": "Spy",
        "role": "client_admin",
        "password": "long-enough-pw",
        "client_id": str(other.id),
        "csrf_token": fresh_csrf(client, "/portal/users"),
    }
    assert client.post("/portal/users/new", data=data).status_code == 422
    assert db.session.scalar(select(User).where(User.email == "spy@acme.test")) is None


def test_disable_and_enable_a_colleague_but_not_oneself(client: FlaskClient, company: dict[str, Any]) -> None:
    viewer, admin = company["viewer"], company["admin"]
    token = fresh_csrf(client, "/portal/users")
    assert (
        client.post(f"/portal/users/{viewer.id}/access", data={"active": "0", "csrf_token": token}).status_code == 302
    )
    db.session.refresh(viewer)
    assert viewer.active is False
    client.post(f"/portal/users/{admin.id}/access", data={"active": "0", "csrf_token": token})
    db.session.refresh(admin)
    assert admin.active is True


def test_viewer_cannot_manage_people(client: FlaskClient, company: dict[str, Any]) -> None:
    client.post("/logout", data={"csrf_token": fresh_csrf(client, "/portal/users")})
    login(client, company["viewer"].email)
    assert client.get("/portal/users/new").status_code == 404
    token = fresh_csrf(client, "/portal/users")
    response = client.post(f"/portal/users/{company['admin'].id}/access", data={"active": "0", "csrf_token": token})
    assert response.status_code == 404
