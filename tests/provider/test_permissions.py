"""Permissions are named constants granted to roles in one table; every page declares what it needs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask

from provider.core.permissions import ROLE_PERMISSIONS, Permission, Role, has_permission

# the second sign-in step and every signed-in user's own account pages (two-factor, sessions), like logout
ACCOUNT_ENDPOINTS = {
    "two_factor.verify",
    "two_factor.setup",
    "two_factor.sessions",
    "two_factor.end_session",
    "account.settings",
}
PUBLIC_ENDPOINTS = {"static", "auth.login", "auth.logout", "provider.home", "provider.healthz", *ACCOUNT_ENDPOINTS}
# the debtor's self-service pages: no account, reached only through a signed, expiring single-debtor link
# (tests/dunning/test_debtor_page.py tries them expired, tampered and for another debtor or client)
SIGNED_LINK_BLUEPRINT = "debtor_pages."
ROOT = Path(__file__).resolve().parents[2]
ROLE_CHECK = re.compile(r"current_user\.role\s*(==|!=|in\b|not in\b)")


class FakeUser:
    is_authenticated = True

    def __init__(self, role: str, active: bool = True) -> None:
        self.role, self.is_active = role, active


@pytest.mark.parametrize(
    ("role", "permission", "allowed"),
    [
        (Role.ADMIN, Permission.USERS_MANAGE, True),
        (Role.ADMIN, Permission.AUDIT_READ, True),
        (Role.MANAGER, Permission.CLIENTS_MANAGE, True),
        (Role.MANAGER, Permission.USERS_MANAGE, False),
        (Role.MANAGER, Permission.AUDIT_READ, False),
        (Role.COLLECTOR, Permission.WORKLISTS_WORK, True),
        (Role.COLLECTOR, Permission.CLIENTS_MANAGE, False),
        (Role.COLLECTOR, Permission.PORTAL, False),
        (Role.CLIENT_ADMIN, Permission.PORTAL, True),
        (Role.CLIENT_ADMIN, Permission.PORTAL_USERS_MANAGE, True),
        (Role.CLIENT_ADMIN, Permission.BACKOFFICE, False),
        (Role.CLIENT_VIEWER, Permission.PORTAL, True),
        (Role.CLIENT_VIEWER, Permission.PORTAL_USERS_MANAGE, False),
        (Role.CLIENT_ADMIN, Permission.PORTAL_PLACE, True),
        (Role.CLIENT_VIEWER, Permission.PORTAL_PLACE, False),
        (Role.CLIENT_VIEWER, Permission.CLIENTS_READ, False),
    ],
)
def test_role_permission_table(role: Role, permission: Permission, allowed: bool) -> None:
    assert has_permission(FakeUser(role), permission) is allowed


def test_inactive_or_unknown_roles_have_no_permissions() -> None:
    assert not has_permission(FakeUser(Role.ADMIN, active=False), Permission.BACKOFFICE)
    assert not has_permission(FakeUser("superhero"), Permission.BACKOFFICE)
    assert not has_permission(None, Permission.BACKOFFICE)


def test_staff_and_client_permissions_do_not_overlap() -> None:
    client_side = ROLE_PERMISSIONS[Role.CLIENT_ADMIN] | ROLE_PERMISSIONS[Role.CLIENT_VIEWER]
    staff_side = ROLE_PERMISSIONS[Role.ADMIN] | ROLE_PERMISSIONS[Role.MANAGER] | ROLE_PERMISSIONS[Role.COLLECTOR]
    assert not client_side & staff_side
    assert all(p.value.startswith("client:") for p in client_side)


def test_every_page_declares_its_permission(app: Flask) -> None:
    undeclared = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in PUBLIC_ENDPOINTS
        and not rule.endpoint.startswith(SIGNED_LINK_BLUEPRINT)
        and not getattr(app.view_functions[rule.endpoint], "required_permissions", None)
    ]
    assert not undeclared, f"pages without @require(...): {undeclared}"


def test_views_do_not_compare_roles() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("provider", "clients", "worklists", "sla", "portal")
        for path in (ROOT / package).rglob("views.py")
        if ROLE_CHECK.search(path.read_text())
    ]
    assert not offenders, f"use @require(Permission.X), not role comparisons: {offenders}"
