"""Hand-built ledgers for the KPI and report tests, posted through the real ledger services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from clients import ledger
from clients.journal import Invoice, Payment
from clients.models import Client, Debtor
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.factories import make_client, make_debtor


def at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def place(client: Client, debtor: Debtor, number: str, amount: int, issued: date, due: date, **kw: Any) -> Invoice:
    row = {
        "debtor_id": debtor.id,
        "number": number,
        "issue_date": issued,
        "due_date": due,
        "currency": kw.get("currency", client.base_currency),
        "amount_minor": amount,
        "po_reference": "",
    }
    with frozen_time(kw.get("posted", at(issued))), scoped(TenantScope.agency(), db.session):
        (invoice,) = ledger.place_invoices(db.session, client, [row])
        db.session.commit()
    return invoice


def pay(
    client: Client,
    debtor: Debtor,
    ref: str,
    amount: int,
    on: date,
    invoice: Invoice | None = None,
    *,
    by: str = "agency",
    posted: datetime | None = None,
) -> Payment:
    """A payment received on `on` (posted at `posted`, default that morning), allocated to `invoice` on `on`."""
    data = {
        "debtor_id": debtor.id,
        "external_ref": ref,
        "received_on": on,
        "currency": client.base_currency,
        "amount_minor": amount,
        "method": "bank_transfer",
        "received_by": by,
        "reference": "",
    }
    with frozen_time(posted or at(on)), scoped(TenantScope.agency(), db.session):
        payment = ledger.record_payment(db.session, client, data).payment
        if invoice is not None:
            ledger.allocate(db.session, client, payment, invoice, amount, on=on)
        db.session.commit()
    return payment


def credit(client: Client, debtor: Debtor, number: str, amount: int, on: date, invoice: Invoice) -> None:
    data = {
        "debtor_id": debtor.id,
        "number": number,
        "issued_on": on,
        "currency": client.base_currency,
        "amount_minor": amount,
        "reason": "price dispute",
        "invoice_id": invoice.id,
    }
    with frozen_time(at(on)), scoped(TenantScope.agency(), db.session):
        ledger.issue_credit_note(db.session, client, data)
        db.session.commit()


def write_off(client: Client, invoice: Invoice, on: date) -> None:
    with frozen_time(at(on)), scoped(TenantScope.agency(), db.session):
        ledger.write_off(db.session, client, db.session.get(Invoice, invoice.id), reason="insolvent")
        db.session.commit()


@dataclass
class MarchWorld:
    client: Client
    d1: Debtor
    d2: Debtor
    cutoff: datetime  # when the March report is made (before the late, backdated payment)


def march_world(**client_kw: Any) -> MarchWorld:
    """The hand-computed ledger of test_kpi.py (figures worked out in its docstring)."""
    client = make_client(base_currency="EUR", **client_kw)
    d1 = make_debtor(client, name="Dora Debtor One")
    d2 = make_debtor(client, name="Dan Debtor Two")
    a = place(client, d1, "A", 100_000, date(2026, 1, 10), date(2026, 2, 9))
    b = place(client, d1, "B", 50_000, date(2026, 2, 15), date(2026, 3, 17))
    place(client, d2, "C", 200_000, date(2026, 3, 5), date(2026, 4, 4))
    e = place(client, d2, "E", 30_000, date(2025, 10, 1), date(2025, 10, 31))
    f = place(client, d2, "F", 40_000, date(2026, 3, 20), date(2026, 3, 25))
    pay(client, d1, "P1", 40_000, date(2026, 3, 10), a)  # partial payment to the agency
    pay(client, d2, "P2", 10_000, date(2026, 2, 20), e, by="client")  # paid directly to the client
    credit(client, d1, "CN1", 10_000, date(2026, 3, 12), b)
    write_off(client, e, date(2026, 3, 28))  # the 20,000 left of E
    pay(client, d1, "P3", 50_000, date(2026, 4, 5), a)  # after the as-of date
    # received on 30 March but keyed in on 10 April: in the live figures, not in a report made on 1 April
    pay(client, d2, "P4", 5_000, date(2026, 3, 30), f, posted=at(date(2026, 4, 10)))
    return MarchWorld(client, d1, d2, at(date(2026, 4, 1), 12))
