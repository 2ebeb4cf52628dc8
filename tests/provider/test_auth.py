"""Sign-in security: argon2id, CSRF, rate limit, session regeneration and invalidation, bad input."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from provider.core.audit import AuditEvent
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.models import AuthSession, User
from tests.conftest import csrf_token, fresh_csrf, login
from tests.factories import PASSWORD, make_client, make_team, make_user


@pytest.fixture
def manager(db_session: Any) -> User:
    return make_user("manager", email="boss@example.test")


def _sid(client: FlaskClient) -> str | None:
    with client.session_transaction() as sess:
        return sess.get("sid")


def test_password_hashes_are_argon2id(manager: User) -> None:
    stored = db.session.scalar(select(User.password_hash).where(User.id == manager.id))
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


def test_login_and_logout_round_trip(client: FlaskClient, manager: User) -> None:
    response = login(client, "Boss@Example.test")
    assert response.status_code == 302 and response.headers["Location"].endswith("/clients")
    assert client.get("/clients").status_code == 200
    token = fresh_csrf(client)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/clients").status_code == 302  # back to the login page


def test_wrong_password_and_unknown_user_get_the_same_message(client: FlaskClient, manager: User) -> None:
    wrong = login(client, "boss@example.test", "not-the-password")
    unknown = login(client, "nobody@example.test", "not-the-password")
    assert wrong.status_code == unknown.status_code == 401
    for response in (wrong, unknown):
        assert "Incorrect email or password." in response.get_data(as_text=True)
    assert _sid(client) is None


def test_disabled_user_cannot_sign_in_and_is_told_why(client: FlaskClient, db_session: Any) -> None:
    user = make_user("collector", team=make_team(), active=False, email="gone@example.test")
    response = login(client, user.email)
    assert response.status_code == 403
    assert "disabled" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(AuthSession)) == 0


def test_post_without_csrf_token_is_refused_and_changes_nothing(client: FlaskClient, manager: User) -> None:
    login(client, manager.email)
    before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    response = client.post(
        "/clients/new",
        data={
            "name": "X",
            "code": "XX",
            "base_currency": "EUR",
            "timezone": "Europe/Paris",
            "country": "FR",
            "debt_type": "commercial",
        },
    )
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    with scoped(TenantScope.agency(), db.session):
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == before
    # the login form itself is CSRF-protected too
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})
    assert client.post("/login", data={"email": manager.email, "password": PASSWORD}).status_code == 400


def test_sixth_failure_in_a_minute_is_refused_with_429(client: FlaskClient, manager: User) -> None:
    for _ in range(5):
        assert login(client, manager.email, "wrong-password-x").status_code == 401
    assert login(client, manager.email, "wrong-password-x").status_code == 429
    # even the right password is refused while the window lasts, for this account from this address
    assert login(client, manager.email).status_code == 429
    # another account from the same address is not locked out by someone else's failures
    other = make_user("manager", email="other@example.test")
    assert login(client, other.email).status_code == 302


def test_successful_logins_do_not_count_against_the_limit(client: FlaskClient, manager: User) -> None:
    for _ in range(7):
        assert login(client, manager.email).status_code == 302
        client.post("/logout", data={"csrf_token": fresh_csrf(client)})


def test_session_id_changes_at_login_and_planted_session_data_is_dropped(client: FlaskClient, manager: User) -> None:
    with client.session_transaction() as sess:
        sess["sid"] = "attacker-chosen"
        sess["planted"] = "x"
    login(client, manager.email)
    first = _sid(client)
    assert first and first != "attacker-chosen"
    with client.session_transaction() as sess:
        assert "planted" not in sess
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})
    login(client, manager.email)
    assert _sid(client) not in (None, first)


def test_logout_invalidates_the_server_side_session(app: Any, client: FlaskClient, manager: User) -> None:
    login(client, manager.email)
    with client.session_transaction() as sess:
        stolen = dict(sess)
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})
    replay = app.test_client()
    with replay.session_transaction() as sess:
        sess.update(stolen)
    assert replay.get("/clients").status_code == 302  # the copied cookie no longer signs anyone in
    revoked = db.session.scalars(select(AuthSession.revoked_at).where(AuthSession.user_id == manager.id)).all()
    assert revoked and all(r is not None for r in revoked)


def test_deactivating_a_user_ends_their_sessions(app: Any, client: FlaskClient, manager: User) -> None:
    from provider import services

    login(client, manager.email)
    assert client.get("/clients").status_code == 200
    with scoped(TenantScope.agency(), db.session):
        services.update_user(db.session, db.session.get(User, manager.id), {"active": False})
        db.session.commit()
    assert client.get("/clients").status_code == 302


def test_client_user_gets_404_on_staff_pages(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    user = make_user("client_viewer", client=acme)
    assert login(client, user.email).headers["Location"].endswith("/portal/")
    for path in ("/clients", f"/clients/{acme.id}", "/admin/users", "/admin/audit", "/worklists", "/slas", "/reports"):
        assert client.get(path).status_code == 404, path


def test_open_redirect_after_login_is_ignored(client: FlaskClient, manager: User) -> None:
    page = client.get("/login?next=https://evil.example/")
    response = client.post(
        "/login?next=https://evil.example/",
        data={"email": manager.email, "password": PASSWORD, "csrf_token": csrf_token(page.get_data(as_text=True))},
    )
    assert response.headers["Location"].endswith("/clients")


def test_login_is_audited(client: FlaskClient, manager: User) -> None:
    login(client, manager.email)
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.actor_user_id == manager.id)).all()
    assert "user.login" in actions
