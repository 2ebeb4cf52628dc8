"""In a real Chromium: a manager opens the SLA dashboard and drills into a breached dispute.

A live server (werkzeug, in a thread) on its own SQLite database with a small demo agency (the SLA demo
opens disputes in every state over the last weeks and sweeps them, so some are breached)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.browser

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.demo import seed_demo

    db_file = tmp_path_factory.mktemp("sla-browser") / "live.db"
    app = create_app({"AR_ENV": "testing", "DATABASE_URL": f"sqlite:///{db_file}"})
    with app.app_context():
        upgrade()
        seed_demo(invoices_per_client=300)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.fixture
def page(browser: Any, live_server: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    yield context.new_page()
    context.close()


def test_manager_drills_from_the_dashboard_into_a_breached_dispute(page: Any, live_server: str, tmp_path: Path) -> None:
    from provider.demo import DEMO_PASSWORD

    page.goto(f"{live_server}/login")
    page.fill("#email", "maria.manager@demo.test")
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.goto(f"{live_server}/slas")
    assert page.get_by_role("heading", name="SLA dashboard").is_visible()
    page.get_by_role("link", name="Time left").click()  # sort by time left: most overdue first
    page.wait_for_url("**sort=time_left**")
    row = page.locator("#attention-title + .table-wrap tbody tr", has=page.locator(".badge-danger")).first
    assert "breached" in row.inner_text().lower()
    link = row.get_by_role("link", name="Dispute #")
    number = link.inner_text().split("#", 1)[1]
    link.click()
    page.wait_for_url(f"**/slas/disputes/{number}")
    assert page.get_by_role("heading", name=f"Dispute #{number}").is_visible()
    clocks = page.locator("#clocks-title + .table-wrap")
    assert "breached" in clocks.inner_text().lower()
    page.screenshot(path=str(tmp_path / "dispute.png"), full_page=True)
