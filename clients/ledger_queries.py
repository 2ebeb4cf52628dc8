"""Tenant-scoped reads on the ledger: balances as sums of journal entries, aging, open items, history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import case, func, select

from clients.journal import Account, Invoice, JournalEntry, JournalTransaction, Payment
from provider.core.clock import today_utc
from provider.extensions import db

BUCKETS = ("Current", "1-30", "31-60", "61-90", "91-120", "120+")


def bucket_expression(as_of: date) -> Any:
    """SQL CASE putting an invoice in its aging bucket by days past its due date (DESIGN §7)."""
    return case(
        (Invoice.due_date >= as_of, "Current"),
        (Invoice.due_date >= as_of - timedelta(days=30), "1-30"),
        (Invoice.due_date >= as_of - timedelta(days=60), "31-60"),
        (Invoice.due_date >= as_of - timedelta(days=90), "61-90"),
        (Invoice.due_date >= as_of - timedelta(days=120), "91-120"),
        else_="120+",
    )


def bucket_of(due: date, as_of: date) -> str:
    days = (as_of - due).days
    if days <= 0:
        return "Current"
    for limit, name in ((30, "1-30"), (60, "31-60"), (90, "61-90"), (120, "91-120")):
        if days <= limit:
            return name
    return "120+"


@dataclass(frozen=True)
class Aging:
    currency: str
    buckets: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.buckets.values())

    @property
    def overdue(self) -> int:
        return self.total - self.buckets["Current"]

    def share(self, bucket: str) -> float:
        return self.buckets[bucket] / self.total if self.total else 0.0


def aging(client_id: int, as_of: date, debtor_id: int | None = None) -> list[Aging]:
    """Open receivables by bucket and currency, in one grouped query over the open invoices."""
    bucket = bucket_expression(as_of).label("bucket")
    stmt = (
        select(Invoice.currency, bucket, func.sum(Invoice.open_minor))
        .where(Invoice.client_id == client_id, Invoice.open_minor > 0)
        .group_by(Invoice.currency, bucket)
    )
    if debtor_id is not None:
        stmt = stmt.where(Invoice.debtor_id == debtor_id)
    by_currency: dict[str, dict[str, int]] = {}
    for currency, name, amount in db.session.execute(stmt):
        by_currency.setdefault(currency, dict.fromkeys(BUCKETS, 0))[name] = int(amount)
    return [Aging(c, b) for c, b in sorted(by_currency.items())]


@dataclass(frozen=True)
class Balance:
    currency: str
    receivable: int
    unapplied: int
    credits: int

    @property
    def net(self) -> int:
        """What the debtor owes after cash and credits not yet allocated."""
        return self.receivable - self.unapplied - self.credits


def debtor_balances(client_id: int, debtor_id: int) -> list[Balance]:
    """The debtor's balances per currency, summed from the journal (not from cached figures)."""
    rows = db.session.execute(
        select(JournalEntry.currency, JournalEntry.account, func.sum(JournalEntry.amount_minor))
        .where(
            JournalEntry.client_id == client_id,
            JournalEntry.debtor_id == debtor_id,
            JournalEntry.account.in_([Account.RECEIVABLE.value, Account.UNAPPLIED.value, Account.CREDITS.value]),
        )
        .group_by(JournalEntry.currency, JournalEntry.account)
    )
    sums: dict[str, dict[str, int]] = {}
    for currency, account, amount in rows:
        sums.setdefault(currency, {})[account] = int(amount)
    return [
        Balance(c, s.get("receivable", 0), -s.get("unapplied", 0), -s.get("credits", 0))
        for c, s in sorted(sums.items())
    ]


def open_invoices(client_id: int, debtor_id: int) -> list[Invoice]:
    return list(
        db.session.scalars(
            select(Invoice)
            .where(Invoice.client_id == client_id, Invoice.debtor_id == debtor_id, Invoice.open_minor > 0)
            .order_by(Invoice.due_date, Invoice.id)
        )
    )


def unapplied_payments(client_id: int, debtor_id: int) -> list[Payment]:
    return list(
        db.session.scalars(
            select(Payment)
            .where(Payment.client_id == client_id, Payment.debtor_id == debtor_id, Payment.unapplied_minor > 0)
            .order_by(Payment.received_on)
        )
    )


@dataclass(frozen=True)
class HistoryLine:
    transaction: JournalTransaction
    currency: str
    receivable_change: int  # + the debtor owes more, - less
    documents: str


def debtor_history(client_id: int, debtor_id: int, limit: int = 50) -> list[HistoryLine]:
    """The debtor's journal transactions, newest first, with their effect on what the debtor owes."""
    tx_ids = (
        select(JournalEntry.transaction_id)
        .where(JournalEntry.client_id == client_id, JournalEntry.debtor_id == debtor_id)
        .distinct()
        .subquery()
    )
    transactions = list(
        db.session.scalars(
            select(JournalTransaction)
            .where(JournalTransaction.client_id == client_id, JournalTransaction.id.in_(select(tx_ids)))
            .order_by(JournalTransaction.posted_at.desc(), JournalTransaction.id.desc())
            .limit(limit)
        )
    )
    if not transactions:
        return []
    entries = db.session.scalars(
        select(JournalEntry).where(
            JournalEntry.client_id == client_id, JournalEntry.transaction_id.in_([t.id for t in transactions])
        )
    ).all()
    numbers = dict(
        db.session.execute(
            select(Invoice.id, Invoice.number).where(
                Invoice.client_id == client_id, Invoice.id.in_({e.invoice_id for e in entries if e.invoice_id})
            )
        ).all()
    )
    by_tx: dict[int, list[JournalEntry]] = {}
    for entry in entries:
        by_tx.setdefault(entry.transaction_id, []).append(entry)
    lines = []
    for tx in transactions:
        rows = by_tx.get(tx.id, [])
        change = sum(e.amount_minor for e in rows if e.account == Account.RECEIVABLE.value)
        invoices = sorted({numbers[e.invoice_id] for e in rows if e.invoice_id in numbers})
        lines.append(HistoryLine(tx, rows[0].currency if rows else "", change, ", ".join(invoices)))
    return lines


def account_context(client_id: int, debtor_id: int) -> dict[str, Any]:
    """Everything a debtor account page shows, for the back office and the portal alike."""
    as_of = today_utc()
    return {
        "as_of": as_of,
        "balances": debtor_balances(client_id, debtor_id),
        "agings": aging(client_id, as_of, debtor_id),
        "open_items": open_invoices(client_id, debtor_id),
        "journal": debtor_history(client_id, debtor_id),
    }
