"""The portal in a real Chromium: sign in, read the overview, filter invoices, download a report, answer a
dispute; at laptop and tablet widths. Live server on its own SQLite database seeded with the demo.

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
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
LAPTOP = {"width": 1366, "height": 768}
TABLET = {"width": 820, "height": 1180}
ADMIN = "admin@nwind.demo.test"
LAST_MONTH: dict[str, str] = {}  # the month the demo's latest report covers (set by live_server)

pytestmark = pytest.mark.browser

if not CHROMIUM.exists() and os.environ.get("CI") != "true":
    pytest.skip("Chromium is not installed (apt-get install -y chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from flask_migrate import upgrade
    from sqlalchemy import select

    from clients.models import Client
    from provider.app import create_app
    from provider.core.clock import today_utc
    from provider.core.tenancy import TenantScope, scoped
    from provider.demo import seed_demo
    from provider.extensions import db
    from provider.reporting import formulas
    from provider.reporting.jobs import take_snapshot
    from provider.reporting.reports import generate_report

    db_file = tmp_path_factory.mktemp("portal-browser") / "live.db"
    app = create_app({"AR_ENV": "testing", "DATABASE_URL": f"sqlite:///{db_file}"})
    with app.app_context():
        upgrade()
        seed_demo(invoices_per_client=120)
        with scoped(TenantScope.agency(), db.session):
            client = db.session.scalar(select(Client).where(Client.code == "NWIND"))
            take_snapshot(client)
            generate_report(
                db.session,
                client,
                LAST_MONTH.setdefault("key", formulas.month_key(formulas.add_months(today_utc(), -1))),
            )
            db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def _page(browser: Any, viewport: dict[str, int]) -> Any:
    return browser.new_context(viewport=viewport, accept_downloads=True).new_page()


def _sign_in(page: Any, base: str, email: str) -> None:
    from provider.demo import DEMO_PASSWORD

    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")


def _shots(page: Any, name: str) -> None:
    """Screenshots for a human to look at (kept under $PORTAL_SHOTS when set)."""
    folder = os.environ.get("PORTAL_SHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _no_horizontal_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert width <= 1, f"the page scrolls sideways by {width}px"


@pytest.mark.parametrize(("label", "viewport"), [("laptop", LAPTOP), ("tablet", TABLET)])
def test_overview_reads_well_on_laptop_and_tablet(browser: Any, live_server: str, label: str, viewport: Any) -> None:
    page = _page(browser, viewport)
    _sign_in(page, live_server, ADMIN)
    page.goto(f"{live_server}/portal/")
    main = page.locator("main")
    for heading in (
        "Total receivables",
        "Overdue",
        "Collected in",
        "DSO",
        "CEI",
        "Disputes awaiting you",
        "Latest report",
    ):
        assert main.get_by_role("heading", name=heading).first.is_visible(), heading
    assert LAST_MONTH["key"] in main.inner_text()
    assert page.locator("svg.aging-chart").is_visible()
    _no_horizontal_scroll(page)
    _shots(page, f"overview-{label}")
    page.goto(f"{live_server}/portal/debtors?status=overdue&sort=overdue&dir=desc")
    _no_horizontal_scroll(page)
    _shots(page, f"debtors-{label}")
    page.context.close()


def test_filter_invoices_and_download_a_report(browser: Any, live_server: str, tmp_path: Path) -> None:
    page = _page(browser, LAPTOP)
    _sign_in(page, live_server, ADMIN)
    page.get_by_role("link", name="Ledger").first.click()
    page.wait_for_url("**/portal/ledger*")
    page.select_option("#f-status", "overdue")
    with page.expect_navigation():
        page.get_by_role("button", name="Filter").click()
    assert "status=overdue" in page.url
    statuses = page.locator("table tbody tr td .badge").all_inner_texts()
    assert statuses and {s.strip().lower() for s in statuses} == {"overdue"}

    page.goto(f"{live_server}/portal/reports")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download").first.click()
    target = tmp_path / "report.pdf"
    info.value.save_as(target)
    assert target.read_bytes().startswith(b"%PDF")
    page.context.close()


def _open_awaiting(browser: Any, live_server: str, which: str, why: str) -> Any:
    """Sign in and open the first dispute of the overview's "awaiting you" list that matches `which`."""
    page = _page(browser, LAPTOP)
    _sign_in(page, live_server, ADMIN)
    page.goto(f"{live_server}/portal/")
    links = page.locator(f"section[aria-labelledby=awaiting-title] {which} a")
    assert links.count() > 0, why
    with page.expect_navigation():
        links.first.click()
    return page


def test_answer_a_dispute_waiting_for_the_client(browser: Any, live_server: str) -> None:
    # a question from the agency (a proposal to approve is the next test's)
    page = _open_awaiting(
        browser, live_server, "li:not(:has(.badge-warn))", "the demo has disputes awaiting the client's answer"
    )
    page.fill("textarea[name=body]", "The delivery note is signed; scan attached to our ERP.")
    with page.expect_navigation():
        page.get_by_role("button", name="Answer").click()
    assert "Answer sent to the agency." in page.inner_text("main")
    page.context.close()


def test_approve_a_proposed_resolution(browser: Any, live_server: str) -> None:
    page = _open_awaiting(
        browser, live_server, "li:has(.badge-warn)", "the demo has a resolution waiting for the client's approval"
    )
    heading = page.locator("#proposal-title").inner_text()
    assert heading.startswith("The agency proposes a credit note of")
    _shots(page, "dispute-proposal")
    page.fill("#f-approve-note", "Agreed, the pallet arrived crushed.")
    with page.expect_navigation():
        page.get_by_role("button", name="Approve").click()
    main = page.inner_text("main")
    assert "Approved: the dispute is resolved." in main
    assert page.locator("#proposal-title").count() == 0
    assert "credit note" in main.lower()
    page.context.close()
