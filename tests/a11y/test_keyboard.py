"""Keyboard only: the collector's account screen, a portal form with errors, the shortcuts dialog (`?`) and
the phone-width menu (Escape closes it). No mouse clicks; focus is checked after each step."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.a11y.conftest import PHONE, QUIET, ROLES, axe_violations, describe, sign_in

pytestmark = [pytest.mark.browser, QUIET]


def _active(page: Any, script: str = "el => el") -> Any:
    return page.evaluate(f"(() => {{ const f = {script}; return f(document.activeElement); }})()")


def _focused_matches(page: Any, selector: str) -> bool:
    return bool(page.evaluate("s => !!document.activeElement && document.activeElement.matches(s)", selector))


def _tab_to(page: Any, selector: str, limit: int = 80, back: bool = False) -> int:
    """Press Tab (or Shift+Tab) until the focused element matches `selector`; how many presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Shift+Tab" if back else "Tab")
        if _focused_matches(page, selector):
            return presses
    raise AssertionError(f"{selector} was not reached with {limit} presses of Tab")


def test_collector_logs_a_call_with_the_keyboard_alone(browser: Any, live_server: str) -> None:
    page = sign_in(browser, live_server, ROLES["collector"])
    page.goto(f"{live_server}/worklists")
    assert _tab_to(page, "a.skip-link", limit=1) == 1  # the skip link comes first
    _tab_to(page, "button[accesskey=n]")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # Next account
    assert re.search(r"/worklists/items/\d+$", page.url)
    assert _focused_matches(page, "body")  # nothing grabs focus deep in the page
    assert _tab_to(page, "a.skip-link", limit=1) == 1
    page.keyboard.press("Enter")  # skip to the content
    page.keyboard.press("2")  # the outcome first: "Spoke to the debtor" shows its form, focus in its first field
    assert _focused_matches(page, 'form[data-action="right_party"] [name=note]')
    assert page.locator("form[data-outcome-form]:not([hidden])").count() == 1
    page.keyboard.type("Spoke to accounts payable")
    _tab_to(page, 'form[data-action="right_party"] button[type=submit]:not([data-submit-next])')
    with page.expect_navigation():
        page.keyboard.press("Enter")  # "..., stay here"
    assert "Conversation logged." in page.inner_text("body")
    assert page.locator('tr[data-history="call"]').count() >= 1
    assert not axe_violations(page), describe("work item after a call", axe_violations(page))
    page.context.close()


def test_portal_question_form_shows_every_error_and_focuses_the_summary(browser: Any, live_server: str) -> None:
    page = sign_in(browser, live_server, ROLES["client admin"])
    page.goto(f"{live_server}/portal/queries")
    _tab_to(page, "form[action$='/portal/queries'] button[type=submit]")
    with page.expect_navigation():
        page.keyboard.press("Enter")  # both fields empty
    assert _focused_matches(page, "[data-error-summary]")  # focus on the summary, not the body
    for field in ("subject", "body"):  # every field's error at once, tied to its field
        assert page.get_attribute(f"#f-{field}", "aria-invalid") == "true"
        assert f"f-{field}-error" in (page.get_attribute(f"#f-{field}", "aria-describedby") or "")
        assert page.inner_text(f"#f-{field}-error").strip()
    page.keyboard.press("Tab")
    assert _focused_matches(page, "[data-error-summary] a[href='#f-subject']")
    page.keyboard.press("Enter")
    assert _focused_matches(page, "#f-subject")
    problems = describe("portal question form with errors", axe_violations(page))
    page.keyboard.type("Invoice 1001")
    page.keyboard.press("Tab")
    page.keyboard.type("When was it paid?")
    with page.expect_navigation():
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
    assert "/portal/queries/" in page.url
    assert not problems, "\n".join(problems)
    page.context.close()


def test_portal_new_dispute_is_checked_by_the_server_and_its_error_tied_to_the_field(
    browser: Any, live_server: str
) -> None:
    page = sign_in(browser, live_server, ROLES["client admin"])
    page.goto(f"{live_server}/portal/disputes/new")
    _tab_to(page, "main form button[type=submit]")
    with page.expect_navigation():  # no browser pop-up stops the empty form: the server answers
        page.keyboard.press("Enter")
    assert _focused_matches(page, "[data-error-summary]")
    described = page.get_attribute("#f-numbers", "aria-describedby") or ""
    assert "f-numbers-error" in described.split()
    assert "invoice" in page.inner_text("#f-numbers-error").lower()
    assert page.get_attribute("#f-numbers", "aria-invalid") == "true"
    problems = describe("portal new dispute with an error", axe_violations(page))
    assert not problems, "\n".join(problems)
    page.context.close()


def test_the_shortcuts_dialog_opens_with_question_mark_and_closes_with_escape(browser: Any, live_server: str) -> None:
    page = sign_in(browser, live_server, ROLES["manager"])
    page.keyboard.press("?")
    dialog = page.locator("dialog[data-help]")
    assert dialog.evaluate("d => d.open")
    assert page.evaluate("() => document.querySelector('dialog[data-help]').contains(document.activeElement)")
    problems = describe("shortcuts dialog", axe_violations(page))
    page.keyboard.press("Escape")
    assert not dialog.evaluate("d => d.open")
    _tab_to(page, "[data-help-open]")
    page.keyboard.press("Enter")  # the "?" button opens it too
    assert dialog.evaluate("d => d.open")
    page.keyboard.press("Escape")
    assert not dialog.evaluate("d => d.open")
    assert _focused_matches(page, "[data-help-open]")  # focus returns to the button
    assert not problems, "\n".join(problems)
    page.context.close()


@pytest.mark.parametrize("role", ["collector", "client admin"])
def test_the_phone_menu_opens_from_the_keyboard_and_escape_closes_it(browser: Any, live_server: str, role: str) -> None:
    page = sign_in(browser, live_server, ROLES[role], PHONE)
    toggle = "[data-nav-toggle]"
    assert page.is_visible(toggle)
    _tab_to(page, toggle)
    page.keyboard.press("Enter")
    assert page.get_attribute(toggle, "aria-expanded") == "true"
    assert page.is_visible("[data-nav-menu] a")
    page.keyboard.press("Tab")  # into the menu
    assert page.evaluate("() => document.querySelector('[data-nav-menu]').contains(document.activeElement)")
    problems = describe(f"{role} phone menu open", axe_violations(page))
    page.keyboard.press("Escape")
    assert page.get_attribute(toggle, "aria-expanded") == "false"
    assert not page.is_visible("[data-nav-menu] a")
    assert _focused_matches(page, toggle)  # focus back on the button that opened it
    assert not problems, "\n".join(problems)
    page.context.close()
