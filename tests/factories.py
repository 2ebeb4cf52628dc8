"""Factories that build objects through the real services (so audit and validation run too)."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from clients import services as client_services
from clients.journal import Invoice, Payment
from clients.models import Client, Debtor
from provider import services
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.models import Team, User

PASSWORD = "correct-horse-battery"
_seq = itertools.count(1)


def make_client(**overrides: Any) -> Client:
    n = next(_seq)
    data = {
        "name": f"Client {n} Ltd",
        "code": f"C{n:04d}",
        "base_currency": "EUR",
        "timezone": "Europe/Berlin",
        "country": "DE",
        "debt_type": "commercial",
        "status": "active",
    }
    data.update(overrides)
    with scoped(TenantScope.agency(), db.session):
        client = client_services.create_client(db.session, data)
        db.session.commit()
    return client


def make_debtor(client: Client, **overrides: Any) -> Debtor:
    n = next(_seq)
    data = {"external_ref": f"D-{n:06d}", "name": f"Debtor {n}", "segment": "standard", "do_not_contact": False}
    data.update(overrides)
    with scoped(TenantScope.agency(), db.session):
        debtor = client_services.create_debtor(db.session, client, data)
        db.session.commit()
    return debtor


def make_team(*clients: Client, name: str | None = None) -> Team:
    with scoped(TenantScope.agency(), db.session):
        team = services.create_team(db.session, name or f"Team {next(_seq)}")
        services.set_team_clients(db.session, team, {c.id for c in clients})
        db.session.commit()
    return team


def make_user(role: str, *, client: Client | None = None, team: Team | None = None, **overrides: Any) -> User:
    n = next(_seq)
    data: dict[str, Any] = {
        "email": f"user{n}@example.test",
        "name": f"User {n}",
        "role": role,
        "password": PASSWORD,
        "client_id": client.id if client else None,
        "team_id": team.id if team else None,
    }
    data.update(overrides)
    with scoped(TenantScope.agency(), db.session):
        user = services.create_user(db.session, data)
        db.session.commit()
    return user


def make_invoice(client: Client, debtor: Debtor, number: str, amount_minor: int, **overrides: Any) -> Invoice:
    """One invoice placed through the ledger (default: EUR, issued 2026-01-05, due 2026-02-04)."""
    from clients.ledger import place_invoices

    row = {
        "debtor_id": debtor.id,
        "number": number,
        "issue_date": date(2026, 1, 5),
        "due_date": date(2026, 2, 4),
        "currency": "EUR",
        "amount_minor": amount_minor,
        "po_reference": "",
    }
    row.update(overrides)
    with scoped(TenantScope.agency(), db.session):
        (invoice,) = place_invoices(db.session, client, [row])
        db.session.commit()
    return invoice


def make_payment(client: Client, debtor: Debtor, ref: str, amount_minor: int, **overrides: Any) -> Payment:
    """One payment recorded through the ledger, left unapplied (default: EUR, received 2026-03-01 by the agency)."""
    from clients.ledger import record_payment

    data = {
        "debtor_id": debtor.id,
        "external_ref": ref,
        "received_on": date(2026, 3, 1),
        "currency": "EUR",
        "amount_minor": amount_minor,
        "method": "bank_transfer",
        "received_by": "agency",
        "reference": "",
    }
    data.update(overrides)
    with scoped(TenantScope.agency(), db.session):
        payment = record_payment(db.session, client, data).payment
        db.session.commit()
    return payment


def make_contract_terms(client: Client, effective_from: date = date(2025, 1, 1), **kwargs: Any) -> Any:
    """A version of the client's contract terms (default: the agency's standard SLAs)."""
    from sla.services import add_contract_terms

    with scoped(TenantScope.agency(), db.session):
        terms = add_contract_terms(db.session, client, effective_from, **kwargs)
        db.session.commit()
    return terms


def make_dispute(client: Client, debtor: Debtor, invoices: list[Invoice], **overrides: Any) -> Any:
    """A dispute opened through the service (default: pricing, the invoices' full open amount)."""
    from sla.disputes import open_dispute

    data: dict[str, Any] = {
        "reason": "pricing",
        "summary": "Price differs from the quote",
        "amount_minor": sum(i.open_minor for i in invoices),
        "invoice_ids": [i.id for i in invoices],
    }
    data.update(overrides)
    with scoped(TenantScope.agency(), db.session):
        dispute = open_dispute(db.session, client, debtor, data)
        db.session.commit()
    return dispute


def make_work_items(client: Client) -> dict[int, int]:
    """Build the client's worklist (as the nightly job does). Returns {debtor id: work item id}."""
    from sqlalchemy import select

    from worklists.models import WorkItem
    from worklists.scoring import rescore

    with scoped(TenantScope.agency(), db.session):
        rescore(db.session, [client.id])
        db.session.commit()
        rows = db.session.execute(select(WorkItem.debtor_id, WorkItem.id).where(WorkItem.client_id == client.id))
        return {debtor_id: item_id for debtor_id, item_id in rows}


def make_api_token(client: Client | None, access: str = "read_write", name: str = "ERP sync") -> str:
    """An API token of the client (None: a staff integration's token). Returns the secret (shown once)."""
    from provider.api.tokens import create_token

    with scoped(TenantScope.agency(), db.session):
        issued = create_token(
            db.session, name=name, access=access, client_id=client.id if client else None, created_by_id=None
        )
        db.session.commit()
    return issued.secret


def make_webhook_endpoint(client: Client, url: str, events: list[str] | None = None) -> Any:
    """A webhook endpoint of the client subscribed to `events` (default: all)."""
    from provider.api.webhooks import EVENT_TYPES, create_endpoint

    with scoped(TenantScope.agency(), db.session):
        endpoint = create_endpoint(db.session, client.id, url, events or list(EVENT_TYPES))
        db.session.commit()
    return endpoint
