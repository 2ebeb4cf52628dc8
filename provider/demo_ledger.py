"""Demo receivables: invoices over 18 months with realistic payment habits, through the real ledger services.

Each debtor has a habit, drawn once from the seed: how late it usually pays (prompt, a little late, very
late, or hardly ever), how often it pays only part of an invoice, and whether it tends to pay the client
directly instead of the agency. From that, every invoice gets its story: some are credited in part, most
are paid (late, by the debtor's own delay), some in two instalments, some only in part, some not at all,
and a few of the oldest unpaid ones are written off. Everything is posted with the verbs the product uses
(`place_invoices`, `issue_credit_note`, `record_payments`, `auto_allocate_many`, `write_off`), so the
demo ledger obeys every invariant the tests check. Deterministic for a seed and a month; a client that
already has invoices is left as it is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from clients import services
from clients.journal import CreditNote, Invoice, Payment
from clients.ledger_dates import client_today
from clients.models import Client, Debtor, DebtType
from provider.core.clock import today_utc
from provider.core.money import exponent
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db

MONTHS = 18
MEAN_INVOICES_PER_DEBTOR = 14
CHUNK = 2_000  # invoices placed / payments recorded per service call
METHODS = ["bank_transfer"] * 6 + ["card", "direct_debit", "direct_debit", "cheque"]


@dataclass(frozen=True)
class Habit:
    """How one debtor pays."""

    delay_days: int  # mean days after the due date
    never: float  # chance an invoice is never paid
    partial: float  # chance an invoice is paid only in part
    to_client: float  # chance a payment goes to the client directly


def habit_of(rng: random.Random) -> Habit:
    kind = rng.random()
    if kind < 0.30:
        delay, never = rng.randint(-6, 4), 0.01  # pays on time
    elif kind < 0.75:
        delay, never = rng.randint(8, 40), 0.03  # a little late
    elif kind < 0.92:
        delay, never = rng.randint(40, 110), 0.08  # very late
    else:
        delay, never = rng.randint(60, 150), 0.85  # hardly ever pays
    partial = 0.45 if rng.random() < 0.12 else 0.03
    to_client = 0.85 if rng.random() < 0.15 else 0.07
    return Habit(delay, never, partial, to_client)


def _amount(rng: random.Random, client: Client) -> int:
    low, high = (40, 1_500) if client.debt_type == DebtType.CONSUMER.value else (400, 25_000)
    if client.base_currency == "JPY":
        low, high = low * 100, high * 100
    unit = 10 ** exponent(client.base_currency)
    return rng.randint(low * unit, high * unit)  # whole minor units, never a float


def _invoice_rows(client: Client, debtor_ids: list[int], anchor: date, seed: int) -> list[dict[str, Any]]:
    terms = 14 if client.debt_type == DebtType.CONSUMER.value else 30
    drafts = []
    for k, debtor_id in enumerate(debtor_ids):
        rng = random.Random(f"{seed}:{client.code}:invoices:{k}")  # noqa: S311 - deterministic demo data
        for _ in range(rng.randint(1, 2 * MEAN_INVOICES_PER_DEBTOR - 1)):
            issued = anchor - timedelta(days=rng.randint(5, MONTHS * 30))
            drafts.append((issued, k, debtor_id, _amount(rng, client)))
    drafts.sort()
    return [
        {
            "debtor_id": debtor_id,
            "number": f"{client.code}-{n:06d}",
            "issue_date": issued,
            "due_date": issued + timedelta(days=terms),
            "currency": client.base_currency,
            "amount_minor": amount,
            "po_reference": f"PO-{k:04d}-{n % 97:02d}" if client.debt_type == DebtType.COMMERCIAL.value else "",
        }
        for n, (issued, k, debtor_id, amount) in enumerate(drafts, start=1)
    ]


def _payment(invoice: Invoice, ref: str, day: date, amount: int, habit: Habit, rng: random.Random) -> dict[str, Any]:
    return {
        "debtor_id": invoice.debtor_id,
        "external_ref": ref,
        "received_on": day,
        "currency": invoice.currency,
        "amount_minor": amount,
        "method": rng.choice(METHODS),
        "received_by": "client" if rng.random() < habit.to_client else "agency",
        "reference": f"Invoice {invoice.number}",
    }


@dataclass
class _Story:
    """What happens to one client's invoices, decided before anything is posted."""

    credits: list[tuple[Invoice, int, date]]
    payments: list[dict[str, Any]]
    write_offs: list[Invoice]


def _stories(client: Client, invoices: list[Invoice], habits: dict[int, Habit], seed: int) -> _Story:
    today = client_today(client)  # credit notes may not be dated in the client's future
    story = _Story([], [], [])
    for invoice in invoices:
        habit = habits[invoice.debtor_id]
        rng = random.Random(f"{seed}:{invoice.number}")  # noqa: S311 - deterministic demo data
        owed = invoice.amount_minor
        if rng.random() < 0.015:
            credit = max(owed * rng.randint(5, 30) // 100, 1)
            story.credits.append((invoice, credit, min(invoice.issue_date + timedelta(days=rng.randint(1, 20)), today)))
            owed -= credit
        if rng.random() < habit.never:
            if invoice.due_date < today - timedelta(days=300) and rng.random() < 0.35:
                story.write_offs.append(invoice)
            continue
        paid_on = max(invoice.due_date + timedelta(days=habit.delay_days + rng.randint(-7, 7)), invoice.issue_date)
        if paid_on > today or owed <= 0:
            continue  # not paid yet: still open
        ref = f"BANK-{invoice.number}"
        if rng.random() < habit.partial:
            first = max(owed * rng.randint(30, 80) // 100, 1)
            story.payments.append(_payment(invoice, ref, paid_on, first, habit, rng))
            rest_on = paid_on + timedelta(days=rng.randint(20, 75))
            if rng.random() < 0.4 and rest_on <= today and owed - first > 0:
                story.payments.append(_payment(invoice, f"{ref}-2", rest_on, owed - first, habit, rng))
        else:
            story.payments.append(_payment(invoice, ref, paid_on, owed, habit, rng))
    story.payments.sort(key=lambda p: (p["received_on"], p["external_ref"]))
    return story


def _seed_client(client: Client, invoices_per_client: int, seed: int) -> int:
    wanted = max(-(-invoices_per_client // MEAN_INVOICES_PER_DEBTOR), 1)
    debtor_ids = list(
        db.session.scalars(select(Debtor.id).where(Debtor.client_id == client.id).order_by(Debtor.id).limit(wanted))
    )
    if not debtor_ids:
        return 0
    habits = {
        d: habit_of(random.Random(f"{seed}:{client.code}:habit:{k}"))  # noqa: S311 - the debtor's own habit
        for k, d in enumerate(debtor_ids)
    }
    rows = _invoice_rows(client, debtor_ids, today_utc().replace(day=1), seed)
    invoices: list[Invoice] = []
    for start in range(0, len(rows), CHUNK):
        invoices += services.place_invoices(db.session, client, rows[start : start + CHUNK])
    story = _stories(client, invoices, habits, seed)
    for invoice, amount, issued_on in story.credits:
        services.issue_credit_note(
            db.session,
            client,
            {
                "debtor_id": invoice.debtor_id,
                "number": f"CN-{invoice.number}",
                "issued_on": issued_on,
                "currency": invoice.currency,
                "amount_minor": amount,
                "invoice_id": invoice.id,
                "reason": "price correction",
            },
        )
    for start in range(0, len(story.payments), CHUNK):
        results = services.record_payments(db.session, client, story.payments[start : start + CHUNK])
        services.auto_allocate_many(db.session, client, [r.payment.id for r in results])
    for invoice in story.write_offs:
        services.write_off(db.session, client, invoice, reason="debtor insolvent, collection closed")
    db.session.flush()
    return len(invoices)


def seed_ledger(clients: list[Client], invoices_per_client: int, seed: int) -> int:
    """Place and settle about `invoices_per_client` demo invoices for each client that has none yet.
    Returns how many invoices were placed."""
    placed = 0
    for client in clients:
        with scoped(TenantScope.single(client.id), db.session):
            if db.session.scalar(select(func.count(Invoice.id)).where(Invoice.client_id == client.id)):
                continue
            placed += _seed_client(client, invoices_per_client, seed)
    return placed


def ledger_summary() -> dict[str, Any]:
    count = {model.__tablename__: db.session.scalar(select(func.count(model.id))) or 0 for model in (Invoice, Payment)}
    count["credit_notes"] = db.session.scalar(select(func.count(CreditNote.id))) or 0
    return count
