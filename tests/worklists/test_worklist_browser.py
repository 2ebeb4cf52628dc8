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


SHOTS = Path(os.environ.get("AR_SCREENSHOTS", "/tmp/ar-screenshots"))  # noqa: S108 - a place to look at them


def _sign_in(page: Any, live_server: str, email: str) -> None:
    from provider.demo import DEMO_PASSWORD

    page.goto(f"{live_server}/login")
    page.fill("#email", email)
    page.fill("#password", DEMO_PASSWORD)
    with page.expect_navigation():
        page.keyboard.press("Enter")


def _focused(page: Any, selector: str) -> bool:
    return bool(page.evaluate("s => !!document.activeElement && document.activeElement.matches(s)", selector))


def test_a_collector_works_several_accounts_with_the_keyboard_alone(page: Any, live_server: str) -> None:
    """n: next account; a number: the outcome (only its form shows, focus in its first field); Enter: save
    and take the next account. No mouse from the queue to the twentieth account."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    _sign_in(page, live_server, "collector1@demo.test")
    page.goto(f"{live_server}/worklists")
    with page.expect_navigation():
        page.keyboard.press("n")
    assert re.search(r"/worklists/items/\d+$", page.url)
    seen = [page.url]

    page.keyboard.press("?")  # the help lists the collector screen's keys
    help_text = page.inner_text("dialog[data-help]")
    assert "Outcome: No answer" in help_text and "Outcome: Promise to pay" in help_text and "Next account" in help_text
    page.keyboard.press("Escape")
    assert not page.evaluate("document.querySelector('dialog[data-help]').open")

    for n in range(18):  # no answer, Enter: logged and the next account opens (20 accounts in all)
        assert page.locator("form[data-outcome-form]:not([hidden])").count() == 0
        page.keyboard.press("1")
        assert page.locator("form[data-outcome-form]:not([hidden])").count() == 1
        assert _focused(page, 'form[data-action="no_answer"] [name=note]')
        assert "outcome=no_answer" in page.url
        if n == 0:
            page.screenshot(path=str(SHOTS / "desk-no-answer.png"), full_page=False)
        page.keyboard.type(f"rang at {n}")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert "Call logged: no answer." in page.inner_text("main")
        assert page.url not in seen, "the next account is another one"
        seen.append(page.url)

    page.keyboard.press("3")  # promise: amount, then Enter
    assert _focused(page, 'form[data-action="promise"] [name=amount]')
    page.screenshot(path=str(SHOTS / "desk-promise.png"), full_page=False)
    page.keyboard.type("25")
    promised = page.url
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "Promise to pay recorded." in page.inner_text("main") and page.url != promised
    assert len(seen) == 19 and page.url not in seen  # the twentieth account is open

    page.goto(promised)  # the promised account: its full account view is one key away
    with page.expect_navigation():
        page.keyboard.press("a")
    assert re.search(r"/clients/\d+/debtors/\d+/account$", page.url)
    body = page.inner_text("main")
    assert "Account timeline" in body and "Promise to pay" in body and "right_party" not in body
    rows = "[data-timeline=account] tbody tr[data-on]"
    dates = page.eval_on_selector_all(rows, "rows => rows.map(r => r.dataset.on)")
    assert dates and dates == sorted(dates, reverse=True)
    page.screenshot(path=str(SHOTS / "account-view.png"), full_page=True)


def test_the_manager_sees_the_account_view_from_the_ledger(page: Any, live_server: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    _sign_in(page, live_server, "maria.manager@demo.test")
    page.goto(f"{live_server}/clients")
    first_client = page.locator("main table tbody a[href^='/clients/']").first.get_attribute("href")
    page.goto(f"{live_server}{first_client}/ledger")
    page.locator("main table tbody a[href$='/account']").first.click()
    page.wait_for_url(re.compile(r".*/debtors/\d+/account$"))
    assert page.locator("[data-timeline=account]").count() == 1
    assert page.locator("[data-account-head]").count() == 1
    page.screenshot(path=str(SHOTS / "account-view-manager.png"), full_page=True)

    page.goto(f"{live_server}/worklists/manage")  # distribution, targets and activity at 1366 px
    body = page.inner_text("main")
    assert "Targets and progress" in body and "Assignment rules" in body and "ref. units" not in body
    table = page.locator("section[aria-labelledby=apc-h] table")
    box = table.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1366, "actions per collector is cut off"
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    unowned = page.eval_on_selector_all(
        "tr[data-size] td:nth-child(4)", "cells => cells.map(c => Number(c.textContent.replace(/,/g, '')))"
    )
    assert unowned and sum(unowned) == 0, "every demo work item has an owner"
    page.screenshot(path=str(SHOTS / "worklists-manage.png"), full_page=True)


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

    page.get_by_role("link", name=re.compile("Promise to pay")).click()  # the outcome first
    form = page.locator('form[data-action="promise"]')
    form.get_by_label(re.compile(r"^Amount")).fill("50")
    form.get_by_role("button", name="Record promise, stay here", exact=True).click()
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
