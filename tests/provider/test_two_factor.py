"""Two-factor sign-in: required roles are sent to enrolment, enrolment needs a code from the app, then every sign-in
asks for a code (once each) or a recovery code (once each); failed codes are rate limited; a user sees and ends
their sessions. REQUIRE_2FA_ROLES is switched on here as production has it by default."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient

from provider.config import load_settings
from provider.extensions import db, limiter
from provider.models import User
from tests.conftest import csrf_token, fresh_csrf, login
from tests.factories import make_client, make_team, make_user

REQUIRED = frozenset({"admin", "manager", "client_admin"})


@pytest.fixture
def required(app: Flask) -> Iterator[None]:
    before = app.config["REQUIRE_2FA_ROLES"]
    app.config["REQUIRE_2FA_ROLES"] = REQUIRED
    limiter.reset()
    yield
    app.config["REQUIRE_2FA_ROLES"] = before
    limiter.reset()


def _next_code(secret: str) -> str:
    """The code of the next 30-second step (accepted: one step of drift), unused by the enrolment's step."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def _enrol(client: FlaskClient) -> tuple[str, list[str]]:
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert "<svg" in page
    secret = re.search(r'id="totp-key">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    wrong = client.post("/account/two-factor", data={"code": "000000", "csrf_token": csrf_token(page)})
    assert wrong.status_code == 400
    done = client.post(
        "/account/two-factor", data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf_token(page)}
    ).get_data(as_text=True)
    codes = re.findall(r"<li><code>([0-9a-f-]{14})</code></li>", done)
    assert len(codes) == 10
    return secret, codes


def _sign_out(client: FlaskClient) -> None:
    client.post("/logout", data={"csrf_token": fresh_csrf(client, "/account/two-factor")})


def _code_step(client: FlaskClient, code: str) -> Any:
    page = client.get("/login/code").get_data(as_text=True)
    return client.post("/login/code", data={"code": code, "csrf_token": csrf_token(page)})


def test_a_required_role_is_sent_to_enrolment_then_signs_in_with_a_code(
    client: FlaskClient, db_session: Any, required: None
) -> None:
    make_user("manager", email="mia@agency.test")
    first = login(client, "mia@agency.test")
    assert first.status_code == 302
    assert client.get("/clients").headers["Location"].endswith("/account/two-factor")  # nothing else until enrolled
    secret, _codes = _enrol(client)
    assert client.get("/clients").status_code == 200
    _sign_out(client)

    response = login(client, "mia@agency.test")
    assert response.headers["Location"].endswith("/login/code")
    assert client.get("/clients").status_code == 302  # the password alone opened no session
    assert _code_step(client, "123456").status_code == 401
    code = _next_code(secret)
    assert _code_step(client, code).status_code == 302
    assert client.get("/clients").status_code == 200
    _sign_out(client)

    login(client, "mia@agency.test")
    assert _code_step(client, code).status_code == 401  # the same code is good once


def test_a_recovery_code_signs_in_once(client: FlaskClient, db_session: Any, required: None) -> None:
    client_co = make_client()
    make_user("client_admin", email="ca@client.test", client=client_co)
    login(client, "ca@client.test")
    _secret, codes = _enrol(client)
    _sign_out(client)
    login(client, "ca@client.test")
    assert _code_step(client, codes[3].upper()).status_code == 302
    _sign_out(client)
    login(client, "ca@client.test")
    assert _code_step(client, codes[3]).status_code == 401
    user = db.session.scalars(db.select(User).where(User.email == "ca@client.test")).one()
    db.session.refresh(user)
    assert len(user.recovery_codes or []) == 9
    assert all(c.startswith("$argon2id$") for c in user.recovery_codes or [])


def test_failed_codes_are_rate_limited(app: Flask, client: FlaskClient, db_session: Any, required: None) -> None:
    make_user("admin", email="ada@agency.test")
    login(client, "ada@agency.test")
    secret, _ = _enrol(client)
    _sign_out(client)
    login(client, "ada@agency.test")
    limit = app.config["LOGIN_RATE_LIMIT"]
    codes = [_code_step(client, f"{n:06d}").status_code for n in range(limit + 1)]
    assert codes[:limit] == [401] * limit
    assert codes[-1] == 429
    assert _code_step(client, _next_code(secret)).status_code == 429  # even the right code waits


def test_other_roles_may_choose(client: FlaskClient, db_session: Any, required: None) -> None:
    make_user("collector", email="col@agency.test", team=make_team())
    login(client, "col@agency.test")
    assert client.get("/clients").status_code == 200  # no enrolment asked for
    page = client.get("/account/two-factor").get_data(as_text=True)
    assert "Set it up" in page and "Your role signs in with a second factor" not in page


def test_a_user_sees_and_ends_their_sessions(app: Flask, client: FlaskClient, db_session: Any) -> None:
    make_user("collector", email="col2@agency.test", team=make_team())
    other_user = make_user("collector", email="col3@agency.test", team=make_team())
    laptop = app.test_client()
    login(laptop, "col2@agency.test")
    login(client, "col2@agency.test")
    page = client.get("/account/sessions").get_data(as_text=True)
    ids = re.findall(r"/account/sessions/([0-9a-f]{64})/end", page)
    assert len(ids) == 2
    mine = re.search(r"/account/sessions/([0-9a-f]{64})/end\">[^<]*<input[^>]*>\s*<button[^>]*>Sign out here", page)
    laptop_id = next(i for i in ids if not mine or i != mine.group(1))
    assert laptop.get("/account/sessions").status_code == 200
    ended = client.post(f"/account/sessions/{laptop_id}/end", data={"csrf_token": csrf_token(page)})
    assert ended.status_code == 302
    assert laptop.get("/account/sessions").status_code == 302  # signed out there
    # another user's session is not there to end
    other = app.test_client()
    login(other, "col3@agency.test")
    theirs = re.findall(r"/account/sessions/([0-9a-f]{64})/end", other.get("/account/sessions").get_data(as_text=True))
    assert other_user.id and theirs
    refused = client.post(f"/account/sessions/{theirs[0]}/end", data={"csrf_token": csrf_token(page)})
    assert refused.status_code == 404
    assert other.get("/account/sessions").status_code == 200


def test_required_roles_by_environment() -> None:
    assert set(load_settings({"AR_ENV": "production", "SECRET_KEY": "x" * 40}).require_2fa_roles) == REQUIRED
    assert load_settings({"AR_ENV": "demo"}).require_2fa_roles == ()
    assert load_settings({"AR_ENV": "demo", "REQUIRE_2FA_ROLES": "admin"}).require_2fa_roles == ("admin",)
