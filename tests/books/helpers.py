"""Helpers for the books tests: a client with a fee schedule, and independent sums over the agency journal."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlalchemy import func, select

from provider.books.models import AgencyEntry, AgencyTransaction
from provider.books.services import TierInput, add_fee_schedule
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db

STANDARD_TIERS = [
    TierInput(0, 90, rate_bp=1500, direct_rate_bp=1000),
    TierInput(91, 365, rate_bp=2500, direct_rate_bp=2000),
]


def give_schedule(client: Any, tiers: list[TierInput] | None = None, **kw: Any) -> Any:
    with scoped(TenantScope.agency(), db.session):
        schedule = add_fee_schedule(
            db.session,
            client,
            effective_from=kw.pop("effective_from", date(2025, 1, 1)),
            currency=kw.pop("currency", "EUR"),
            tiers=STANDARD_TIERS if tiers is None else tiers,
            tax_rate_bp=kw.pop("tax_rate_bp", 2000),
            **kw,
        )
        db.session.commit()
    return schedule


def unbalanced(client_id: int) -> list[Any]:
    e = AgencyEntry
    return db.session.execute(
        select(e.transaction_id, e.currency, func.sum(e.amount_minor))
        .where(e.client_id == client_id)
        .group_by(e.transaction_id, e.currency)
        .having(func.sum(e.amount_minor) != 0)
    ).all()


def by_kind(client_id: int) -> dict[tuple[str, str, str], int]:
    """{(transaction kind, account, currency): sum} of a client's books."""
    e, t = AgencyEntry, AgencyTransaction
    rows = db.session.execute(
        select(t.kind, e.account, e.currency, func.sum(e.amount_minor))
        .join(t, (t.client_id == e.client_id) & (t.id == e.transaction_id))
        .where(e.client_id == client_id)
        .group_by(t.kind, e.account, e.currency)
    )
    out: dict[tuple[str, str, str], int] = defaultdict(int)
    for kind, account, currency, total in rows:
        out[(kind, account, currency)] = int(total)
    return out
