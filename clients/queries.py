"""Tenant-scoped reads on clients and debtors (the ORM guard and RLS apply underneath)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import Select, func, or_, select

from clients.models import Client, Debtor
from provider.extensions import db
from provider.ui import Page


def visible_clients() -> Select[Any]:
    """Clients the current scope may see (the ORM guard and RLS do the filtering)."""
    return select(Client)


def debtor_counts(client_ids: list[int]) -> dict[int, int]:
    """Debtors per client, for one page of clients (an index-only count on PostgreSQL)."""
    if not client_ids:
        return {}
    rows = db.session.execute(
        select(Debtor.client_id, func.count()).where(Debtor.client_id.in_(client_ids)).group_by(Debtor.client_id)
    )
    return {cid: n for cid, n in rows}


def with_debtor_counts(page: Page) -> Page:
    """The same page with `(client, debtors)` rows."""
    counts = debtor_counts([c.id for c in page.items])
    return replace(page, items=[(c, counts.get(c.id, 0)) for c in page.items])


def debtors_of(client_id: int, search: str | None = None) -> Select[Any]:
    stmt = select(Debtor).where(Debtor.client_id == client_id)
    if search:
        like = f"%{search.strip().lower()}%"
        stmt = stmt.where(or_(func.lower(Debtor.name).like(like), func.lower(Debtor.external_ref).like(like)))
    return stmt


def debtor_count(client_id: int) -> int:
    return db.session.scalar(select(func.count(Debtor.id)).where(Debtor.client_id == client_id)) or 0


DEBTOR_SORTS = {
    "name": Debtor.name,
    "ref": Debtor.external_ref,
    "segment": Debtor.segment,
    "created": Debtor.created_at,
}
CLIENT_SORTS = {"name": Client.name, "code": Client.code, "currency": Client.base_currency, "status": Client.status}
