"""Tenant-scoped reads on clients and debtors (the ORM guard and RLS apply underneath)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, or_, select

from clients.models import Client, Debtor
from provider.extensions import db


def visible_clients() -> Select[Any]:
    """Clients the current scope may see, with their debtor counts (one grouped query)."""
    counts = select(Debtor.client_id, func.count(Debtor.id).label("debtors")).group_by(Debtor.client_id).subquery()
    return select(Client, func.coalesce(counts.c.debtors, 0).label("debtors")).outerjoin(
        counts, counts.c.client_id == Client.id
    )


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
