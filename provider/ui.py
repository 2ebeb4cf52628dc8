"""Small helpers shared by the server-rendered pages: navigation, paging, sorting, query strings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import request, url_for
from flask_login import current_user
from markupsafe import Markup, escape
from sqlalchemy import Select, func, select

from provider.core.permissions import Permission
from provider.extensions import db

PER_PAGE_CHOICES = (25, 50, 100, 200)


@dataclass(frozen=True)
class NavItem:
    label: str
    endpoint: str
    section: str
    key: str  # access key (Alt+Shift+key in most browsers)


_STAFF_NAV = (
    (NavItem("Clients", "clients.index", "clients", "c"), Permission.CLIENTS_READ),
    (NavItem("Worklists", "worklists.index", "worklists", "w"), Permission.WORKLISTS_WORK),
    (NavItem("SLAs", "sla.index", "sla", "s"), Permission.SLAS_READ),
    (NavItem("Dunning", "dunning.index", "dunning", "d"), Permission.CLIENTS_READ),
    (NavItem("Reports", "provider.reports", "reports", "r"), Permission.REPORTS_READ),
    (NavItem("Forecast", "forecast.index", "forecast", "e"), Permission.REPORTS_READ),
    (NavItem("Mail", "comms.index", "comms", "m"), Permission.DEBTORS_READ),
    (NavItem("Books", "books.overview", "books", "f"), Permission.BOOKS_READ),
    (NavItem("Background work", "background.index", "background", "b"), Permission.JOBS_MANAGE),
    (NavItem("Admin", "provider.users", "admin", "a"), Permission.USERS_MANAGE),
    (NavItem("API", "api_admin.tokens", "api", "k"), Permission.API_TOKENS_MANAGE),
)
_PORTAL_NAV = (
    (NavItem("Overview", "portal.index", "portal", "o"), Permission.PORTAL),
    (NavItem("Debtors", "portal.debtors", "portal-debtors", "d"), Permission.PORTAL),
    (NavItem("Ledger", "portal_ledger.index", "portal-ledger", "l"), Permission.PORTAL),
    (NavItem("Placements", "portal.imports", "portal-imports", "p"), Permission.PORTAL_PLACE),
    (NavItem("Payments", "portal_payments.index", "portal_payments", "y"), Permission.PORTAL),
    (NavItem("Disputes", "sla_portal.index", "sla_portal", "i"), Permission.PORTAL),
    (NavItem("Questions", "sla_portal.queries", "portal-queries", "q"), Permission.PORTAL),
    (NavItem("Messages", "comms_portal.portal_index", "comms_portal", "e"), Permission.PORTAL),
    (NavItem("Reports", "portal_reports.portal_index", "portal-reports", "r"), Permission.PORTAL),
    (NavItem("Forecast", "forecast_portal.portal_index", "forecast_portal", "c"), Permission.PORTAL),
    (NavItem("Reminders", "dunning_portal.portal_index", "dunning_portal", "m"), Permission.PORTAL),
    (NavItem("Remittances", "books_portal.index", "books_portal", "t"), Permission.PORTAL),
    (NavItem("People", "portal.users", "portal-users", "u"), Permission.PORTAL),
    (NavItem("API", "api_portal.tokens_portal", "portal-api", "k"), Permission.PORTAL_API_MANAGE),
)


def nav_items() -> list[NavItem]:
    if not current_user.is_authenticated:
        return []
    table = _PORTAL_NAV if current_user.is_client_user else _STAFF_NAV
    return [item for item, perm in table if current_user.can(perm)]


def url_with(**changes: Any) -> str:
    """The current URL with some query arguments replaced (None removes one)."""
    args = request.args.to_dict()
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value
    return url_for(request.endpoint or "provider.home", **(request.view_args or {}), **args)


def sort_link(column: str, label: str) -> Markup:
    """A sortable table header link that toggles direction; marks the active column."""
    current = request.args.get("sort", "")
    direction = request.args.get("dir", "asc")
    new_dir = "desc" if current == column and direction == "asc" else "asc"
    arrow = ""
    if current == column:
        arrow = " ▲" if direction == "asc" else " ▼"
    href = url_with(sort=column, dir=new_dir, page=None)
    return Markup(f'<a href="{escape(href)}">{escape(label)}{arrow}</a>')  # noqa: S704 - escaped


def apply_sort(stmt: Select[Any], columns: dict[str, Any], default: str, tiebreak: Any = None) -> Select[Any]:
    """Order by the whitelisted ?sort= column (?dir=asc|desc); unknown names fall back to `default`.

    `tiebreak` (usually the primary key) makes the order total, so paging never repeats or skips rows.
    """
    key = request.args.get("sort", default)
    column = columns.get(key, columns[default])
    descending = request.args.get("dir", "asc") == "desc"
    stmt = stmt.order_by(column.desc() if descending else column.asc())
    return stmt.order_by(tiebreak) if tiebreak is not None else stmt


@dataclass(frozen=True)
class Page:
    """One page of a query: `items` are objects (one-entity selects) or rows (multi-column selects)."""

    items: list[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max((self.total + self.per_page - 1) // self.per_page, 1)

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def prev_num(self) -> int | None:
        return self.page - 1 if self.has_prev else None

    @property
    def next_num(self) -> int | None:
        return self.page + 1 if self.has_next else None

    @property
    def first(self) -> int:
        return 0 if self.total == 0 else (self.page - 1) * self.per_page + 1

    @property
    def last(self) -> int:
        return min(self.page * self.per_page, self.total)


def paginate(stmt: Select[Any], default_per_page: int = 50) -> Page:
    """Two queries (count, page) with a bounded page size; out-of-range pages are empty, not errors."""
    per_page = request.args.get("per_page", default_per_page, type=int)
    if per_page not in PER_PAGE_CHOICES:
        per_page = default_per_page
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    result = db.session.execute(stmt.limit(per_page).offset((page - 1) * per_page))
    items = list(result.scalars()) if len(stmt.column_descriptions) == 1 else list(result.all())
    return Page(items=items, page=page, per_page=per_page, total=total)
