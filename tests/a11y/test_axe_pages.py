"""axe-core (WCAG 2.1 A and AA) on every page type of every role, at desktop and phone widths, and on forms
with their errors shown. Any violation fails, listed one element per line.

How pages are picked (so pages added later are covered without touching this file):
1. Sign in as the role and crawl: start at the landing page, follow every same-site link (navigation
   included) breadth-first. Each URL is mapped to its Flask URL rule, and one URL per rule is kept: a *page
   type* is a rule (e.g. /clients/<int:client_id>), whichever client or debtor the first link points at.
2. Every GET rule without parameters that the crawl did not reach is asked for too (list pages not linked
   from anywhere the role sees); those answering 200 with HTML are kept.
3. `SEED_PAGES` adds pages only reachable by forms, with ids from the demo seed.
Downloads (PDF, CSV, XLSX), the JSON API and sign-out are left out. The same pages are checked at 1366x900
and 390x844 (the phone width, with the menu open as well as closed).

Forms with errors: on each page type, every POST form with a text field (not sign-out) is submitted empty
(the browser's own validation turned off, as a person without a mouse or with an older browser might) and the
page that answers is checked.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any
from urllib.parse import urldefrag, urlsplit

import pytest
from werkzeug.exceptions import HTTPException

from tests.a11y.conftest import DESKTOP, PHONE, QUIET, ROLES, axe_violations, describe, new_page, sign_in

pytestmark = [pytest.mark.browser, QUIET]

SKIP_PATH = re.compile(r"(/logout|/static/|/api/|\.(pdf|csv|xlsx|zip|json|png|svg)$|/download|/export|/pdf)")
SKIP_ENDPOINTS = {"static"}
MAX_PAGES = 120  # a guard against a crawl that never ends; far above today's page types per role
SEED_PAGES: dict[str, list[str]] = {  # role -> extra paths that no link reaches (ids of the demo seed)
    "agency admin": ["/admin/teams/1", "/admin/users/1"],
}


def _endpoint(app: Any, path: str) -> str | None:
    try:
        endpoint, _args = app.url_map.bind("localhost").match(path, method="GET")
    except HTTPException:
        return None
    return None if endpoint in SKIP_ENDPOINTS else str(endpoint)


def _links(page: Any, base: str) -> list[str]:
    hrefs = page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
    out = []
    for href in hrefs:
        url, _frag = urldefrag(href)
        if url.startswith(base) and not SKIP_PATH.search(urlsplit(url).path):
            out.append(url)
    return out


def _open(page: Any, url: str) -> bool:
    """Go to `url`; True when it answered 200 with an HTML page (not a download, not an error)."""
    try:
        response = page.goto(url)
    except Exception:  # a download starts instead of a page
        return False
    if response is None or response.status != 200:
        return False
    return "text/html" in (response.headers.get("content-type") or "")


def discover(app: Any, page: Any, base: str, role: str) -> dict[str, str]:
    """endpoint -> one URL of it, for every page type the role reaches (see the module docstring)."""
    found: dict[str, str] = {}
    queue: deque[str] = deque([page.url, *[base + p for p in SEED_PAGES.get(role, [])]])
    seen: set[str] = set()

    def visit(url: str) -> None:
        endpoint = _endpoint(app, urlsplit(url).path)
        if endpoint is None or endpoint in found or len(found) >= MAX_PAGES:
            return
        if _open(page, url) and urlsplit(page.url).path == urlsplit(url).path:
            found[endpoint] = url
            queue.extend(u for u in _links(page, base) if u not in seen)

    while queue:
        url = queue.popleft()
        if url not in seen:
            seen.add(url)
            visit(url)
    for rule in app.url_map.iter_rules():
        if rule.arguments or "GET" not in (rule.methods or ()) or SKIP_PATH.search(rule.rule):
            continue
        if rule.endpoint not in found and rule.endpoint not in SKIP_ENDPOINTS:
            visit(base + rule.rule)
            while queue:  # pages linked only from those
                url = queue.popleft()
                if url not in seen:
                    seen.add(url)
                    visit(url)
    return found


TEXT_FIELDS = "input[type=text], input[type=email], input[type=number], input[type=date], input:not([type]), textarea"
ERROR_FORMS_JS = """
fields => [...document.querySelectorAll('form')].filter(f =>
    (f.method || '').toLowerCase() === 'post' && !/logout/.test(f.action) && !f.dataset.confirm &&
    f.querySelector(fields)
).map(f => [...document.querySelectorAll('form')].indexOf(f))
"""

SUBMIT_EMPTY_JS = """
([i, fields]) => {
    const form = document.querySelectorAll('form')[i];
    form.noValidate = true;
    form.querySelectorAll(fields).forEach(el => { el.value = ''; });
    const button = form.querySelector('button[type=submit], button:not([type]), input[type=submit]');
    if (button) { button.click(); } else { form.requestSubmit(); }
}
"""


def _error_states(page: Any, url: str, where: str) -> list[str]:
    """Submit each POST form of the page empty and check the answer."""
    problems: list[str] = []
    if not _open(page, url):
        return problems
    for index in page.evaluate(ERROR_FORMS_JS, TEXT_FIELDS):
        if not _open(page, url):
            break
        try:
            with page.expect_navigation(timeout=10_000):
                page.evaluate(SUBMIT_EMPTY_JS, [index, TEXT_FIELDS])
        except Exception as exc:  # the form did not answer with a page (e.g. a confirmation the test declines)
            print(f"{where}: form {index + 1} gave no page ({type(exc).__name__})")
            continue
        problems += describe(f"{where} (form {index + 1} submitted empty) → {page.url}", axe_violations(page))
    return problems


@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_page_of_the_role_passes_axe(browser: Any, live_server: str, a11y_app: Any, role: str) -> None:
    problems: list[str] = []
    desk = sign_in(browser, live_server, ROLES[role], DESKTOP)
    pages = discover(a11y_app, desk, live_server, role)
    assert len(pages) >= 3, f"the crawl found too few pages for {role}: {pages}"
    for endpoint, url in sorted(pages.items()):
        if _open(desk, url):
            problems += describe(f"{role} 1366 {endpoint} {url}", axe_violations(desk))
    for endpoint, url in sorted(pages.items()):
        problems += _error_states(desk, url, f"{role} 1366 {endpoint}")
    desk.context.close()

    phone = sign_in(browser, live_server, ROLES[role], PHONE)
    for endpoint, url in sorted(pages.items()):
        if not _open(phone, url):
            continue
        problems += describe(f"{role} 390 {endpoint} {url}", axe_violations(phone))
        toggle = phone.locator("[aria-controls][aria-expanded]").first
        if endpoint in {"auth.index", "portal.index", "clients.index"} and toggle.count() and toggle.is_visible():
            toggle.click()
            problems += describe(f"{role} 390 {endpoint} (menu open)", axe_violations(phone))
    phone.context.close()
    print(f"\n{role}: {len(pages)} page types: {', '.join(sorted(pages))}")
    assert not problems, f"{len(problems)} accessibility violations:\n" + "\n".join(problems)


def test_sign_in_page_and_its_error_pass_axe(browser: Any, live_server: str) -> None:
    problems: list[str] = []
    for label, viewport in (("1366", DESKTOP), ("390", PHONE)):
        page = new_page(browser, viewport)
        page.goto(f"{live_server}/login")
        problems += describe(f"sign-in {label}", axe_violations(page))
        page.fill("#email", "admin@demo.test")
        page.fill("#password", "not-the-password")
        with page.expect_navigation():
            page.click("button[type=submit]")
        problems += describe(f"sign-in {label} (wrong password)", axe_violations(page))
        page.context.close()
    assert not problems, f"{len(problems)} accessibility violations:\n" + "\n".join(problems)
