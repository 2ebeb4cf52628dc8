"""Recomputation of every balance from the journal, for invariant checks in the ledger tests."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select

from clients.journal import Account, CreditNote, Invoice, JournalEntry, Payment
from provider.extensions import db


def invoice_row(debtor_id: int, number: str, amount: int, currency: str = "EUR", **kw: Any) -> dict[str, Any]:
    return {
        "debtor_id": debtor_id,
        "number": number,
        "issue_date": kw.get("issue_date", date(2026, 1, 10)),
        "due_date": kw.get("due_date", date(2026, 2, 10)),
        "currency": currency,
        "amount_minor": amount,
        "po_reference": kw.get("po_reference", ""),
    }


def payment_data(debtor_id: int, ref: str, amount: int, currency: str = "EUR", **kw: Any) -> dict[str, Any]:
    return {
        "debtor_id": debtor_id,
        "external_ref": ref,
        "received_on": kw.get("received_on", date(2026, 3, 1)),
        "currency": currency,
        "amount_minor": amount,
        "method": kw.get("method", "bank_transfer"),
        "received_by": kw.get("received_by", "agency"),
        "reference": kw.get("reference", ""),
    }


def unbalanced_transactions(client_id: int) -> list[Any]:
    return list(
        db.session.execute(
            select(JournalEntry.transaction_id, JournalEntry.currency, func.sum(JournalEntry.amount_minor))
            .where(JournalEntry.client_id == client_id)
            .group_by(JournalEntry.transaction_id, JournalEntry.currency)
            .having(func.sum(JournalEntry.amount_minor) != 0)
        )
    )


def _sums(client_id: int, account: Account, column: Any) -> dict[int, int]:
    rows = db.session.execute(
        select(column, func.sum(JournalEntry.amount_minor))
        .where(JournalEntry.client_id == client_id, JournalEntry.account == account.value, column.is_not(None))
        .group_by(column)
    )
    return {k: int(v) for k, v in rows}


def cache_mismatches(client_id: int) -> list[str]:
    """Every cached balance that differs from the sum of its journal entries."""
    problems = []
    receivable = _sums(client_id, Account.RECEIVABLE, JournalEntry.invoice_id)
    adjustments = _sums(client_id, Account.ADJUSTMENT, JournalEntry.invoice_id)
    for inv in db.session.scalars(select(Invoice).where(Invoice.client_id == client_id)):
        if inv.open_minor != receivable.get(inv.id, 0):
            problems.append(f"invoice {inv.number}: cached {inv.open_minor} != journal {receivable.get(inv.id, 0)}")
        if inv.adjusted_minor != -adjustments.get(inv.id, 0):
            problems.append(f"invoice {inv.number}: adjusted {inv.adjusted_minor} != {-adjustments.get(inv.id, 0)}")
    unapplied = _sums(client_id, Account.UNAPPLIED, JournalEntry.payment_id)
    for pay in db.session.scalars(select(Payment).where(Payment.client_id == client_id)):
        if pay.unapplied_minor != -unapplied.get(pay.id, 0):
            problems.append(f"payment {pay.external_ref}: cached {pay.unapplied_minor} != {-unapplied.get(pay.id, 0)}")
    credits = _sums(client_id, Account.CREDITS, JournalEntry.credit_note_id)
    for note in db.session.scalars(select(CreditNote).where(CreditNote.client_id == client_id)):
        if note.unapplied_minor != -credits.get(note.id, 0):
            problems.append(f"credit note {note.number}: cached {note.unapplied_minor} != {-credits.get(note.id, 0)}")
    return problems


def allocated_from_payment(client_id: int, payment_id: int) -> int:
    """Money moved from a payment to invoices (receivable credits carrying the payment id)."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(JournalEntry.amount_minor), 0)).where(
            JournalEntry.client_id == client_id,
            JournalEntry.payment_id == payment_id,
            JournalEntry.account == Account.RECEIVABLE.value,
        )
    )
    return -int(total or 0)
