"""The monthly report in a real Chromium: the manager's page at 1366 px and the client's portal copy at 390 px
(a phone), with the sections a client buys an agency for, one heading level 1, styled buttons, nothing wider
than the screen; and the portal's debtor list as cards with the money visible. Screenshots land in the test's
temporary directory (and in SCREENSHOTS_DIR when set) to be looked at."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.conftest import CHROMIUM

pytestmark = pytest.mark.browser

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A live server on its own SQLite database: one client's busy March 2026 and its report."""
    from flask_migrate import upgrade

    from provider.app import create_app
    from tests.factories import make_user
    from tests.reports.test_report_sections import _busy_march, _generate

    db_file = tmp_path_factory.mktemp("report-browser") / "live.db"
    app = create_app({"AR_ENV": "testing", "DATABASE_URL": f"sqlite:///{db_file}"})
    with app.app_context():
        upgrade()
        w = _busy_march()
        report = _generate(w.client).report
        manager = make_user("manager", name="Mona Manager")
        admin = make_user("client_admin", client=w.client, name="Carla Client")
        data = {"report": report.id, "manager": manager.email, "admin": admin.email, "debtor": w.d2.name}
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {**data, "base": f"http://127.0.0.1:{server.server_port}"}
    finally:
        server.shutdown()


def _tab(browser: Any, width: int, height: int) -> Any:
    context = browser.new_context(viewport={"width": width, "height": height})
    return context, context.new_page()


def _sign_in(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")


def _shot(page: Any, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    keep = os.environ.get("SCREENSHOTS_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    return path


def test_the_manager_reads_the_complete_report(browser: Any, world: dict[str, Any], tmp_path: Path) -> None:
    context, page = _tab(browser, 1366, 900)
    try:
        _sign_in(page, world["base"], world["manager"])
        page.goto(f"{world['base']}/reports/monthly/{world['report']}")
        text = page.inner_text("main")
        for words in (
            "Disputes",
            "Root causes of this month's disputes",
            "INV-H-8",
            "Goods or service not received",
            "SLA compliance",
            "Promises to pay",
            "The agency's work on your accounts",
            "Anna Weber",
            "Reminders and their effect",
            "Collections and fees",
        ):
            assert words in text, words
        assert "Not available" not in text and "queries" not in text and "_" not in page.inner_text(".report")
        assert page.locator("h1").count() == 1
        assert page.locator("main button:not(.btn), main a.button").count() == 0  # every button styled
        assert page.locator("img.rp-heatmap").count() == 1 and page.locator("img.rp-chart").count() >= 3
        assert _shot(page, tmp_path, "report-1366").stat().st_size > 0
    finally:
        context.close()


def test_the_client_reads_its_copy_on_a_phone(browser: Any, world: dict[str, Any], tmp_path: Path) -> None:
    context, page = _tab(browser, 390, 844)
    try:
        _sign_in(page, world["base"], world["admin"])
        page.goto(f"{world['base']}/portal/reports")
        page.get_by_role("link", name="March 2026").first.click()
        page.wait_for_url("**/portal/reports/*")
        assert "Root causes of this month's disputes" in page.inner_text("main")
        wide = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
        assert wide <= 1, f"the page is {wide}px wider than the phone"
        font = page.evaluate(
            "(() => { const i = document.querySelector('img.rp-chart'); return i.getBoundingClientRect().width; })()"
        )
        assert font >= 540  # the chart keeps a legible size (its section scrolls sideways)
        _shot(page, tmp_path, "report-portal-390")

        page.goto(f"{world['base']}/portal/debtors")
        row = page.locator("table.has-cards tbody tr").filter(has_text=world["debtor"]).first
        cell = row.locator("td[data-label='Open']")
        box = cell.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        assert "€" in cell.inner_text()  # the money is on screen, with its currency
        assert page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth") <= 1
        _shot(page, tmp_path, "portal-debtors-390")

        for path, name in (("/portal/disputes", "disputes"), ("/portal/ledger", "ledger"), ("/portal/", "overview")):
            page.goto(f"{world['base']}{path}")
            assert page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth") <= 1, path
            _shot(page, tmp_path, f"portal-{name}-390")
        label = page.evaluate("document.querySelector('.aging-label').getBoundingClientRect().height")
        assert label >= 10  # the overview's aging chart keeps legible labels on the phone
    finally:
        context.close()
