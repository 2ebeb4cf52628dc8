"""End to end in a real Chromium: a collector takes the next account, records a promise, moves on.

Own live server (werkzeug in a thread) on a SQLite database seeded with the demo. The demo's commercial
client RHEIN gets a round-the-clock contact window, so whatever the hour of the run the queue has
accounts it may lawfully offer (the consumer clients' statutory hours still apply to theirs).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-sync"]

pytestmark = pytest.mark.browser

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from flask_migrate import upgrade
    from sqlalchemy import select

    from clients.models import Client
    from provider.app import create_app
    from provider.core.tenancy import TenantScope, scoped
    from provider.demo import seed_demo
    from provider.extensions import db
    from worklists.models import Strategy

    db_file = tmp_path_factory.mktemp("wlbrowser") / "live.db"
    app = create_app({"AR_ENV": "testing", "DATABASE_URL": f"sqlite:///{db_file}"})
    app.config["RATELIMIT_ENABLED"] = False
    with app.app_context():
        upgrade()
        seed_demo()
        with scoped(TenantScope.agency(), db.session):
            rhein = db.session.scalar(select(Client).where(Client.code == "RHEIN"))
            db.session.add(Strategy(client_id=rhein.id, contact_start_hour=0, contact_end_hour=24))
            db.session.commit()
        db.session.remove()
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
    yield context.new_page()
    context.close()


def test_collector_takes_next_account_records_a_promise_and_moves_on(
    page: Any, live_server: str, tmp_path: Path
) -> None:
    from provider.demo import DEMO_PASSWORD

    page.goto(f"{live_server}/login")
    page.fill("#email", "collector1@demo.test")
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")

    page.locator("main").click(position={"x": 5, "y": 5})
    page.keyboard.press("g")
    page.keyboard.press("w")
    page.wait_for_url("**/worklists")
    assert "My queue" in page.inner_text("main")

    page.get_by_role("button", name="Next account").first.focus()
    page.keyboard.press("Enter")  # "Next account" (also Alt+Shift+N)
    page.wait_for_url(re.compile(r".*/worklists/items/\d+$"))
    first = page.url
    assert "Why it is here" in page.inner_text("main")
    assert page.locator('[data-claim="mine"]').count() == 1

    form = page.locator('form[data-action="promise"]')
    form.get_by_label(re.compile(r"^Amount")).fill("50")
    form.get_by_role("button", name="Record promise", exact=True).click()
    page.wait_for_load_state()
    body = page.inner_text("main")
    assert "Promise to pay recorded." in body
    assert page.locator('tr[data-promise="open"]').count() == 1
    assert page.locator('tr[data-history="promise"]').count() == 1
    page.screenshot(path=str(tmp_path / "account.png"), full_page=True)

    page.get_by_role("button", name="Next account").first.click()
    page.wait_for_url(re.compile(r".*/worklists/items/\d+$"))
    assert page.url != first
    assert page.locator('[data-claim="mine"]').count() == 1
