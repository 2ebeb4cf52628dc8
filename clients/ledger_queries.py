"""Tenant-scoped reads on the ledger: balances as sums of journal entries, aging, open items, history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import aliased

from clients.interest import charge_totals
from clients.journal import Account, CreditNote, Invoice, JournalEntry, JournalTransaction, Payment
from provider.core.clock import today_utc
from provider.extensions import db

BUCKETS = ("Current", "1-30", "31-60", "61-90", "91-120", "120+")


def bucket_expression(as_of: date, due: Any = None) -> Any:
    """SQL CASE putting an invoice in its aging bucket by days past its due date (DESIGN §7); `due` is the
    due-date column (default `Invoice.due_date`)."""
    due = Invoice.due_date if due is None else due
    return case(
        (due >= as_of, "Current"),
        (due >= as_of - timedelta(days=30), "1-30"),
        (due >= as_of - timedelta(days=60), "31-60"),
        (due >= as_of - timedelta(days=90), "61-90"),
        (due >= as_of - timedelta(days=120), "91-120"),
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
    """The debtor's journal transactions in date order, newest first (the business date of the event, then
    when it was posted: a payment received on the 1st but posted on the 9th sits on the 1st), with their
    effect on what the debtor owes."""
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
            .order_by(
                JournalTransaction.occurred_on.desc(), JournalTransaction.posted_at.desc(), JournalTransaction.id.desc()
            )
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
        "charges": charge_totals(db.session, client_id, debtor_id=debtor_id),
    }


# --- one invoice: its journal history and what paid it ------------------------------------------------


@dataclass(frozen=True)
class InvoiceEvent:
    transaction: JournalTransaction
    open_change: int  # what the transaction did to the invoice's open amount (+ more owed, - less)
    reversed_by_id: int | None


def invoice_history(client_id: int, invoice_id: int, limit: int = 200) -> list[InvoiceEvent]:
    """Every journal transaction with an entry on the invoice, oldest first, and who reversed it (one query)."""
    effects = (
        select(
            JournalEntry.transaction_id,
            func.sum(
                case((JournalEntry.account == Account.RECEIVABLE.value, JournalEntry.amount_minor), else_=0)
            ).label("open_change"),
        )
        .where(JournalEntry.client_id == client_id, JournalEntry.invoice_id == invoice_id)
        .group_by(JournalEntry.transaction_id)
        .subquery()
    )
    reversal = aliased(JournalTransaction)
    rows = db.session.execute(
        select(JournalTransaction, effects.c.open_change, reversal.id)
        .join(effects, effects.c.transaction_id == JournalTransaction.id)
        .outerjoin(
            reversal,
            and_(reversal.client_id == JournalTransaction.client_id, reversal.reverses_id == JournalTransaction.id),
        )
        .where(JournalTransaction.client_id == client_id)
        .order_by(JournalTransaction.posted_at, JournalTransaction.id)
        .limit(limit)
    )
    return [InvoiceEvent(tx, int(change or 0), rev_id) for tx, change, rev_id in rows]


@dataclass(frozen=True)
class Allocation:
    transaction_id: int
    occurred_on: date
    kind: str  # allocation, or reversal (of an allocation)
    source: str  # "payment" or "credit note"
    source_ref: str
    currency: str
    amount: int  # applied to the invoice (+), or taken back by a reversal (-)


def invoice_allocations(client_id: int, invoice_id: int, limit: int = 200) -> list[Allocation]:
    """Which payments and credit notes paid how much of the invoice (reversals as negative lines), one query."""
    rows = db.session.execute(
        select(
            JournalTransaction.id,
            JournalTransaction.occurred_on,
            JournalTransaction.kind,
            JournalEntry.payment_id,
            Payment.external_ref,
            CreditNote.number,
            JournalEntry.currency,
            JournalEntry.amount_minor,
        )
        .join(
            JournalTransaction,
            and_(
                JournalTransaction.client_id == JournalEntry.client_id,
                JournalTransaction.id == JournalEntry.transaction_id,
            ),
        )
        .outerjoin(Payment, and_(Payment.client_id == JournalEntry.client_id, Payment.id == JournalEntry.payment_id))
        .outerjoin(
            CreditNote,
            and_(CreditNote.client_id == JournalEntry.client_id, CreditNote.id == JournalEntry.credit_note_id),
        )
        .where(
            JournalEntry.client_id == client_id,
            JournalEntry.invoice_id == invoice_id,
            JournalEntry.account == Account.RECEIVABLE.value,
            or_(JournalEntry.payment_id.is_not(None), JournalEntry.credit_note_id.is_not(None)),
        )
        .order_by(JournalTransaction.posted_at, JournalTransaction.id)
        .limit(limit)
    )
    return [
        Allocation(
            tx_id,
            occurred_on,
            kind,
            "payment" if payment_id else "credit note",
            (payment_ref if payment_id else note_number) or "",
            currency,
            -int(amount),
        )
        for tx_id, occurred_on, kind, payment_id, payment_ref, note_number, currency, amount in rows
    ]


# --- statements ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementLine:
    invoice_id: int
    number: str
    issue_date: date
    due_date: date
    currency: str
    original_minor: int
    open_minor: int
    days_overdue: int
    bucket: str


@dataclass(frozen=True)
class UnappliedItem:
    kind: str  # "payment" or "credit note"
    reference: str
    on: date
    currency: str
    amount: int


@dataclass(frozen=True)
class StatementTotal:
    currency: str
    open: int
    unapplied: int

    @property
    def due(self) -> int:
        return self.open - self.unapplied


@dataclass(frozen=True)
class Statement:
    as_of: date
    lines: list[StatementLine]
    more: int  # open items beyond the listed ones (a statement lists at most `limit`)
    agings: list[Aging]
    unapplied: list[UnappliedItem]
    totals: list[StatementTotal]


def _entries_through(through: date | None) -> Any:
    """Journal entries joined to their transaction, dated on or before `through` (all when None)."""
    stmt = select(JournalEntry).join(
        JournalTransaction,
        and_(
            JournalTransaction.client_id == JournalEntry.client_id,
            JournalTransaction.id == JournalEntry.transaction_id,
        ),
    )
    return stmt if through is None else stmt.where(JournalTransaction.occurred_on <= through)


def _open_as_of(client_id: int, debtor_id: int, through: date | None) -> Any:
    """Per invoice of the debtor: what was open on `through` (sum of its receivable entries up to then)."""
    return (
        _entries_through(through)
        .with_only_columns(JournalEntry.invoice_id, func.sum(JournalEntry.amount_minor).label("open"))
        .where(
            JournalEntry.client_id == client_id,
            JournalEntry.debtor_id == debtor_id,
            JournalEntry.account == Account.RECEIVABLE.value,
            JournalEntry.invoice_id.is_not(None),
        )
        .group_by(JournalEntry.invoice_id)
        .having(func.sum(JournalEntry.amount_minor) > 0)
        .subquery()
    )


def _unapplied_as_of(client_id: int, debtor_id: int, through: date | None) -> list[UnappliedItem]:
    items = []
    for account, document, kind, ref_column, date_column in (
        (Account.UNAPPLIED, JournalEntry.payment_id, "payment", Payment.external_ref, Payment.received_on),
        (Account.CREDITS, JournalEntry.credit_note_id, "credit note", CreditNote.number, CreditNote.issued_on),
    ):
        model = ref_column.class_
        rows = db.session.execute(
            _entries_through(through)
            .with_only_columns(ref_column, date_column, JournalEntry.currency, -func.sum(JournalEntry.amount_minor))
            .join(model, and_(model.client_id == JournalEntry.client_id, model.id == document))
            .where(
                JournalEntry.client_id == client_id,
                JournalEntry.debtor_id == debtor_id,
                JournalEntry.account == account.value,
            )
            .group_by(document, ref_column, date_column, JournalEntry.currency)
            .having(func.sum(JournalEntry.amount_minor) < 0)
            .order_by(date_column, ref_column)
        )
        items += [UnappliedItem(kind, ref, on, currency, int(amount)) for ref, on, currency, amount in rows]
    return items


def debtor_statement(
    client_id: int, debtor_id: int, as_of: date, through: date | None = None, limit: int = 2000
) -> Statement:
    """A debtor's statement: open items aged as of `as_of`, aging and totals per currency, unapplied money.

    Amounts are sums of journal entries dated on or before `through` (None: everything posted so far, i.e.
    the same figures as the cached balances). Four queries whatever the number of items.
    """
    open_now = _open_as_of(client_id, debtor_id, through)
    joined = and_(Invoice.client_id == client_id, Invoice.id == open_now.c.invoice_id)
    rows = db.session.execute(
        select(
            Invoice.id,
            Invoice.number,
            Invoice.issue_date,
            Invoice.due_date,
            Invoice.currency,
            Invoice.amount_minor,
            open_now.c.open,
        )
        .join(open_now, joined)
        .order_by(Invoice.due_date, Invoice.id)
        .limit(limit + 1)
    ).all()
    lines = [
        StatementLine(
            inv_id, number, issued, due, currency, amount, int(open_), max((as_of - due).days, 0), bucket_of(due, as_of)
        )
        for inv_id, number, issued, due, currency, amount, open_ in rows[:limit]
    ]
    bucket = bucket_expression(as_of).label("bucket")
    by_currency: dict[str, dict[str, int]] = {}
    counts = 0
    for currency, name, amount, n in db.session.execute(
        select(Invoice.currency, bucket, func.sum(open_now.c.open), func.count())
        .join(open_now, joined)
        .group_by(Invoice.currency, bucket)
    ):
        by_currency.setdefault(currency, dict.fromkeys(BUCKETS, 0))[name] = int(amount)
        counts += int(n)
    agings = [Aging(c, b) for c, b in sorted(by_currency.items())]
    unapplied = _unapplied_as_of(client_id, debtor_id, through)
    currencies = sorted({a.currency for a in agings} | {u.currency for u in unapplied})
    open_by = {a.currency: a.total for a in agings}
    totals = [
        StatementTotal(c, open_by.get(c, 0), sum(u.amount for u in unapplied if u.currency == c)) for c in currencies
    ]
    return Statement(as_of, lines, max(counts - len(lines), 0), agings, unapplied, totals)
