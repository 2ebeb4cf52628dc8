"""Permissions as named constants, granted to roles in one table and checked by one helper.

Views never compare roles; they declare `@require(Permission.X)`. Object-level access (which client,
which account) is the tenancy layer's job; this module answers "may this kind of user do this at all".
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    COLLECTOR = "collector"
    CLIENT_ADMIN = "client_admin"
    CLIENT_VIEWER = "client_viewer"


STAFF_ROLES = frozenset({Role.ADMIN, Role.MANAGER, Role.COLLECTOR})
CLIENT_ROLES = frozenset({Role.CLIENT_ADMIN, Role.CLIENT_VIEWER})


class Permission(StrEnum):
    """`scope:resource:action`."""

    BACKOFFICE = "staff:backoffice:access"
    CLIENTS_READ = "staff:clients:read"
    CLIENTS_MANAGE = "staff:clients:manage"
    DEBTORS_READ = "staff:debtors:read"
    DEBTORS_MANAGE = "staff:debtors:manage"
    WORKLISTS_WORK = "staff:worklists:work"
    WORKLISTS_MANAGE = "staff:worklists:manage"
    SLAS_READ = "staff:slas:read"
    DISPUTES_WORK = "staff:disputes:work"
    DISPUTES_RESOLVE = "staff:disputes:resolve"
    SLAS_MANAGE = "staff:slas:manage"
    REPORTS_READ = "staff:reports:read"
    REPORTS_MANAGE = "staff:reports:manage"
    USERS_MANAGE = "staff:users:manage"
    AUDIT_READ = "staff:audit:read"
    API_TOKENS_MANAGE = "staff:api:manage"  # API tokens for staff integrations (agency admins)
    PAYMENTS_IMPORT = "staff:payments:import"
    PAYMENTS_ALLOCATE = "staff:payments:allocate"
    JOBS_MANAGE = "staff:jobs:manage"  # the background work of every client: follow, retry, cancel
    LEDGER_CORRECT = "staff:ledger:correct"  # write off an invoice, reverse a payment, allocation or write-off
    MAIL_MANAGE = "staff:mail:manage"  # inbound and unmatched mail, sending identities, resending a message
    BOOKS_READ = "staff:books:read"  # the agency's own books: fees, trust held, remittances, fee invoices
    BOOKS_MANAGE = "staff:books:manage"  # fee schedules (and, in money-ops, approving and paying remittances)
    BANK_DETAILS_MANAGE = "staff:bank_details:manage"  # where the agency pays clients and its trust accounts: admins
    PORTAL = "client:portal:access"
    PORTAL_USERS_MANAGE = "client:users:manage"
    PORTAL_PLACE = "client:placements:upload"
    PORTAL_PAYMENTS = "client:payments:upload"
    PORTAL_DISPUTES = "client:disputes:answer"
    PORTAL_RECALL = "client:accounts:recall"
    PORTAL_AUDIT = "client:audit:read"
    PORTAL_API_MANAGE = "client:api:manage"  # the client's API tokens and webhook endpoints


_STAFF_COMMON = {
    Permission.BACKOFFICE,
    Permission.CLIENTS_READ,
    Permission.DEBTORS_READ,
    Permission.WORKLISTS_WORK,
    Permission.SLAS_READ,
    Permission.REPORTS_READ,
    Permission.PAYMENTS_ALLOCATE,  # a collector working an account applies the cash the debtor says is for it
    Permission.DISPUTES_WORK,  # open, acknowledge, investigate, ask the client, message, add evidence
}
_MANAGER = _STAFF_COMMON | {
    Permission.CLIENTS_MANAGE,
    Permission.DEBTORS_MANAGE,
    Permission.WORKLISTS_MANAGE,
    Permission.PAYMENTS_IMPORT,  # posting a file of cash is a manager's job, not a collector's
    Permission.DISPUTES_RESOLVE,  # a resolution can post a credit note or a write-off
    Permission.SLAS_MANAGE,  # contract terms (SLA targets) and business calendars
    Permission.REPORTS_MANAGE,  # generate and re-issue monthly reports, follow their runs
    Permission.JOBS_MANAGE,
    Permission.LEDGER_CORRECT,  # write-offs and reversals change what the client is owed: a manager's call
    Permission.MAIL_MANAGE,
    Permission.BOOKS_READ,  # the agency's fee income and trust money: managers, not collectors
    Permission.BOOKS_MANAGE,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(
        _MANAGER
        | {
            Permission.USERS_MANAGE,
            Permission.AUDIT_READ,
            Permission.API_TOKENS_MANAGE,
            Permission.BANK_DETAILS_MANAGE,
        }
    ),
    Role.MANAGER: frozenset(_MANAGER),
    Role.COLLECTOR: frozenset(_STAFF_COMMON),
    Role.CLIENT_ADMIN: frozenset(
        {
            Permission.PORTAL,
            Permission.PORTAL_USERS_MANAGE,
            Permission.PORTAL_PLACE,
            Permission.PORTAL_PAYMENTS,
            Permission.PORTAL_DISPUTES,
            Permission.PORTAL_API_MANAGE,
            Permission.PORTAL_RECALL,
            Permission.PORTAL_AUDIT,
        }
    ),
    Role.CLIENT_VIEWER: frozenset({Permission.PORTAL}),
}


def has_permission(user: Any, permission: Permission) -> bool:
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    try:
        role = Role(user.role)
    except ValueError:
        return False
    return permission in ROLE_PERMISSIONS[role]


F = TypeVar("F", bound=Callable[..., Any])


def require(*permissions: Permission) -> Callable[[F], F]:
    """View decorator: 401 (to the login page) when anonymous, 404 when the permission is missing.

    404 rather than 403 so that a client user probing staff URLs learns nothing about them.
    """

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                from flask import current_app

                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if not all(has_permission(current_user, p) for p in permissions):
                abort(404)
            return view(*args, **kwargs)

        wrapped.required_permissions = permissions  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator
