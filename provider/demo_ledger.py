"""Demo receivables: invoices over 18 months with realistic payment habits, through the real services.

Each debtor has a habit (how many days late it usually pays, how often it pays in part or never); invoices
are placed, paid, allocated, credited and written off with the same services the product uses, so the
demo ledger obeys every invariant the tests check.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from clients import services
from clients.journal import Invoice
from clients.models import Client, Debtor, DebtType
from provider.core.clock import today_utc
from provider.core.money import exponent
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db

MONTHS = 18


def _amount(rng: random.Random, client: Client) -> int:
    low, high = (40, 1_500) if client.debt_type == DebtType.CONSUMER.value else (400, 25_000)
    if client.base_currency == "JPY":
        low, high = low * 100, high * 100
    unit = 10 ** exponent(client.base_currency)
    return rng.randint(low * unit, high * unit)  # whole minor units, never a float


def _invoices_for(client: Client, debtor_ids: list[int], per_debtor: int, anchor: date, seed: int) -> list[dict]:
    rows = []
    terms = 14 if client.debt_type == DebtType.CONSUMER.value else 30
    for debtor_id in debtor_ids:
        rng = random.Random(seed * 7_919 + debtor_id)  # noqa: S311 - deterministic demo data
        for k in range(per_debtor):
            issued = anchor - timedelta(days=rng.randint(5, MONTHS * 30))
            rows.append(
                {
                    "debtor_id": debtor_id,
                    "number": f"{client.code}-{debtor_id:06d}-{k + 1}",
                    "issue_date": issued,
                    "due_date": issued + timedelta(days=terms),
                    "currency": client.base_currency,
                    "amount_minor": _amount(rng, client),
                    "po_reference": "",
                }
            )
    return rows


def _settle(client: Client, invoice: Invoice, anchor: date, seed: int) -> None:
    """Pay, part-pay, credit, write off or leave open, by the debtor's habit."""
    habit = random.Random(seed * 104_729 + invoice.debtor_id)  # noqa: S311 - the debtor's own habit
    late_days, never = habit.randint(-5, 75), habit.random() < 0.12
    rng = random.Random(seed * 1_299_709 + invoice.id)  # noqa: S311
    paid_on = max(invoice.due_date + timedelta(days=late_days + rng.randint(-10, 10)), invoice.issue_date)
    if rng.random() < 0.04:
        services.issue_credit_note(
            db.session,
            client,
            {
                "debtor_id": invoice.debtor_id,
                "number": f"CN-{invoice.number}",
                "issued_on": invoice.issue_date,
                "currency": invoice.currency,
                "amount_minor": max(invoice.amount_minor // 10, 1),
                "invoice_id": invoice.id,
                "reason": "price correction",
            },
        )
    if never or paid_on > anchor:
        if never and invoice.due_date < anchor - timedelta(days=360) and rng.random() < 0.3:
            services.write_off(db.session, client, invoice, reason="debtor insolvent")
        return
    db.session.refresh(invoice)
    amount = invoice.open_minor if rng.random() > 0.15 else invoice.open_minor // 2
    if amount <= 0:
        return
    result = services.record_payment(
        db.session,
        client,
        {
            "debtor_id": invoice.debtor_id,
            "external_ref": f"BANK-{invoice.number}",
            "received_on": paid_on,
            "currency": invoice.currency,
            "amount_minor": amount,
            "received_by": "client" if rng.random() < 0.2 else "agency",
            "reference": f"Invoice {invoice.number}",
        },
    )
    services.auto_allocate(db.session, client, result.payment)


def seed_ledger(clients: list[Client], debtors_per_client: int, per_debtor: int, seed: int) -> int:
    """Place and settle demo invoices for clients that have none yet. Returns how many were placed."""
    anchor = today_utc().replace(day=1)
    placed = 0
    for client in clients:
        with scoped(TenantScope.single(client.id), db.session):
            if db.session.scalar(select(func.count(Invoice.id)).where(Invoice.client_id == client.id)):
                continue
            debtor_ids = list(
                db.session.scalars(
                    select(Debtor.id).where(Debtor.client_id == client.id).order_by(Debtor.id).limit(debtors_per_client)
                )
            )
            rows = _invoices_for(client, debtor_ids, per_debtor, anchor, seed)
            invoices = services.place_invoices(db.session, client, rows)
            for invoice in invoices:
                _settle(client, invoice, anchor, seed)
            db.session.flush()
            placed += len(invoices)
    return placed


def ledger_summary() -> dict[str, Any]:
    return {"invoices": db.session.scalar(select(func.count(Invoice.id))) or 0}
