"""Shared set-up of the worklist tests: a frozen working day, accounts with overdue invoices."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.factories import make_client, make_debtor, make_invoice
from worklists import scoring
from worklists.models import WorkItem

# Tuesday 10 March 2026, 14:00 UTC: 15:00 in Berlin, 10:00 in New York, 23:00 in Tokyo.
NOON = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
TODAY = NOON.date()


@contextmanager
def working_day(at: datetime = NOON) -> Iterator[datetime]:
    with frozen_time(at) as now:
        yield now


def overdue_account(client: Any, amount_minor: int = 500_00, *, due: date = date(2026, 2, 4), **debtor: Any) -> Any:
    """A debtor of `client` with one overdue invoice (in the client's base currency)."""
    d = make_debtor(client, **debtor)
    make_invoice(
        client,
        d,
        f"INV-{d.id}",
        amount_minor,
        currency=client.base_currency,
        due_date=due,
        issue_date=due - timedelta(days=30),
    )
    return d


def rebuild(*clients: Any) -> None:
    with scoped(TenantScope.agency(), db.session):
        scoring.rescore(db.session, [c.id for c in clients] or None)
        db.session.commit()


def item_of(debtor: Any) -> WorkItem:
    with scoped(TenantScope.agency(), db.session):
        item = db.session.scalar(
            select(WorkItem).where(WorkItem.client_id == debtor.client_id, WorkItem.debtor_id == debtor.id)
        )
        if item is not None:
            db.session.refresh(item)
        return item


def commercial_client(**overrides: Any) -> Any:
    data = {"debt_type": "commercial", "timezone": "Europe/Berlin", "base_currency": "EUR", "country": "DE"}
    data.update(overrides)
    return make_client(**data)
