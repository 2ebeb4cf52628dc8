"""Shared by the accessibility tests: one live server (the demo on its own SQLite file, with last month's
report made) and one Chromium per test session (per xdist worker), and axe-core from tests/a11y/node_modules.

axe-core comes from the npm registry (`make a11y-deps`, run by `.ci/run`). Without Chromium or axe-core the
tests are skipped, except in CI (CI=true), where they must run.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

HERE = Path(__file__).resolve().parent
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}
# the live server's threads may leave a static file to the garbage collector when the browser drops a request
QUIET = pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]

# the five kinds of people who sign in, as the demo seeds them
ROLES = {
    "agency admin": "admin@demo.test",
    "manager": "maria.manager@demo.test",
    "collector": "collector1@demo.test",
    "client admin": "admin@nwind.demo.test",
    "client user": "viewer@nwind.demo.test",
}


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return "Chromium is not installed (apt-get install -y chromium)"
    if not AXE.exists():
        return "axe-core is not installed (make a11y-deps)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = _missing()
    if why is None:
        return
    if os.environ.get("CI") == "true":
        raise pytest.UsageError(f"accessibility tests cannot run in CI: {why}")
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(scope="session")
def a11y_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
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
    from sla.client_queries import ask_query

    db_file = tmp_path_factory.mktemp("a11y") / "live.db"
    app = create_app({"AR_ENV": "testing", "DATABASE_URL": f"sqlite:///{db_file}"})
    with app.app_context():
        upgrade()
        seed_demo(invoices_per_client=120)
        with scoped(TenantScope.agency(), db.session):
            client = db.session.scalar(select(Client).where(Client.code == "NWIND"))
            take_snapshot(client)
            generate_report(db.session, client, formulas.month_key(formulas.add_months(today_utc(), -1)))
            ask_query(db.session, client, "Invoice copies", "Could you send copies of last month's invoices?")
            db.session.commit()
    return app


@pytest.fixture(scope="session")
def live_server(a11y_app: Any) -> Iterator[str]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request would drown the report
    server = make_server("127.0.0.1", 0, a11y_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


def new_page(browser: Any, viewport: dict[str, int] = DESKTOP) -> Any:
    """A page in a fresh context; the context lets axe-core be injected past the app's CSP (script-src 'self')."""
    return browser.new_context(viewport=viewport, bypass_csp=True).new_page()


def sign_in(browser: Any, base: str, email: str, viewport: dict[str, int] = DESKTOP) -> Any:
    """A fresh browser context signed in as `email`; returns its page (close it with page.context.close())."""
    from provider.demo import DEMO_PASSWORD

    page = new_page(browser, viewport)
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    return page


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Run axe-core (WCAG 2.1 A and AA rules) on the page as it is now; its violations."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "tags => axe.run(document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})",
        WCAG_TAGS,
    )
    return list(result["violations"])


def describe(where: str, violations: list[dict[str, Any]]) -> list[str]:
    """One readable line per failing element: where, rule, impact, element, why."""
    lines = []
    for v in violations:
        for node in v["nodes"]:
            target = " ".join(str(t) for t in node["target"])
            why = (node.get("failureSummary") or "").replace("\n", " ").replace("Fix any of the following:", "")
            lines.append(f"{where}: [{v['id']}, {v['impact']}] {target} — {v['help']}. {why.strip()[:240]}")
    return lines
