"""Two-factor sign-in in a real Chromium: a manager (a required role) is sent to enrolment, scans nothing but types
the key's code, keeps the recovery codes, signs out, and signs in again with a code from the authenticator."""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyotp
import pytest
from werkzeug.serving import make_server

from tests.test_browser import CHROMIUM

pytestmark = pytest.mark.browser

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

EMAIL, PASSWORD = "mia.manager@example.test", "correct-horse-battery"
SHOTS = Path(os.environ.get("AR_SCREENSHOTS", "/tmp/ar-screenshots"))  # noqa: S108 - a place to look at them


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.core.passwords import hash_password
    from provider.extensions import db
    from provider.models import User

    db_file = tmp_path_factory.mktemp("browser2fa") / "live.db"
    app = create_app(
        {"AR_ENV": "testing", "DATABASE_URL": f"sqlite:///{db_file}", "REQUIRE_2FA_ROLES": "admin,manager,client_admin"}
    )
    with app.app_context():
        upgrade()
        db.session.add(User(email=EMAIL, name="Mia Manager", role="manager", password_hash=hash_password(PASSWORD)))
        db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.fixture
def page(browser: Any, live_server: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    yield context.new_page()
    context.close()


def _password_step(page: Any, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def test_enrol_then_sign_in_with_a_code(page: Any, live_server: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    _password_step(page, live_server)
    assert page.url.endswith("/account/two-factor")
    assert page.locator(".qr svg").count() == 1
    page.screenshot(path=str(SHOTS / "two_factor_setup.png"), full_page=True)
    secret = page.inner_text("#totp-key").replace(" ", "")
    page.fill("#code", pyotp.TOTP(secret).now())
    with page.expect_navigation():
        page.keyboard.press("Enter")
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10 and all(re.fullmatch(r"[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}", c) for c in codes)
    page.screenshot(path=str(SHOTS / "two_factor_codes.png"), full_page=True)

    with page.expect_navigation():
        page.click("form.logout button")
    _password_step(page, live_server)
    assert page.url.endswith("/login/code")
    page.screenshot(path=str(SHOTS / "two_factor_verify.png"), full_page=True)
    page.fill("#code", "000000")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "not right" in page.inner_text("#code-errors")
    page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))  # the next step: the enrolment's is used
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "/login" not in page.url
    page.goto(f"{live_server}/account/sessions")
    assert "(this browser)" in page.inner_text("table")
    page.screenshot(path=str(SHOTS / "sessions.png"), full_page=True)
