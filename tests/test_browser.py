"""End to end in a real Chromium: sign in, keyboard navigation, tenant separation, sign out.

Runs against a live server (werkzeug, in a thread) on its own SQLite database seeded with the demo.
Skipped when /usr/bin/chromium is missing, except in CI (CI=true), where it must run.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.demo import seed_demo

    db_file = tmp_path_factory.mktemp("browser") / "live.db"
    app = create_app({"AR_ENV": "testing", "DATABASE_URL": f"sqlite:///{db_file}"})
    with app.app_context():
        upgrade()
        seed_demo(invoices_per_client=120)  # a small ledger: the browser test needs pages, not volume
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.fixture
def page(browser: Any, tmp_path: Path) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    tab = context.new_page()
    yield tab
    context.close()


def _sign_in(page: Any, base: str, email: str) -> None:
    from provider.demo import DEMO_PASSWORD

    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")


def test_collector_works_with_the_keyboard(page: Any, live_server: str, tmp_path: Path) -> None:
    _sign_in(page, live_server, "collector1@demo.test")
    assert page.url.endswith("/clients")
    body = page.inner_text("main")
    assert "Rheinland Maschinenbau GmbH" in body
    assert "Sakura Logistics" not in body  # the other team's client

    page.keyboard.press("/")
    assert page.evaluate("document.activeElement && document.activeElement.name") == "q"
    page.keyboard.type("rhein")
    page.keyboard.press("Enter")
    page.wait_for_url("**/clients?q=rhein*")
    assert "Thames Utilities" not in page.inner_text("main")

    page.locator("main").click(position={"x": 5, "y": 5})
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url("**/clients/*")
    assert "Rheinland Maschinenbau GmbH" in page.inner_text("main")
    assert page.locator("table tbody tr").count() >= 25  # its debtors, paged
    page.screenshot(path=str(tmp_path / "client.png"), full_page=True)

    page.keyboard.press("g")
    page.keyboard.press("s")
    page.wait_for_url("**/slas")


def test_client_user_sees_only_their_company_and_signs_out(page: Any, live_server: str) -> None:
    _sign_in(page, live_server, "admin@thames.demo.test")
    assert "/portal" in page.url
    assert "Thames Utilities" in page.inner_text("body")
    page.goto(f"{live_server}/portal/debtors")
    assert page.locator("table tbody tr").count() >= 25
    response = page.goto(f"{live_server}/clients")
    assert response.status == 404
    page.goto(f"{live_server}/portal/")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/login")
    assert page.goto(f"{live_server}/portal/").url.endswith("/login?next=%2Fportal%2F")


def test_wrong_password_shows_a_clear_message(page: Any, live_server: str) -> None:
    page.goto(f"{live_server}/login")
    page.fill("#email", "admin@demo.test")
    page.fill("#password", "not-the-password")
    page.click("button[type=submit]")
    assert "Incorrect email or password." in page.inner_text("[role=alert]")
