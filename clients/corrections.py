"""Credit notes, write-offs, adjustments and reversals: the verbs that correct what an invoice or payment says.

Each is dated and audited. A credit note, a write-off and a reversal cannot be dated in the future (the
client's today) or before the event they concern: the invoice's issue date, the credited invoice's, the
reversed transaction's (and, for a payment or credit note, its allocations'). Reversing a payment or a credit
note first reverses its allocations, in the same database transaction and on the same date, so the money goes
back to the invoices it paid instead of the reversal being refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clients.journal import Account, CreditNote, Invoice, JournalEntry, JournalTransaction, Payment, TxKind
from clients.ledger_common import atomic, check_currency, debtor_of, only_open, payments_posted
from clients.ledger_dates import check_day, check_reductions, client_today
from clients.models import Client
from clients.posting import Line, lines_of, post, post_many
from provider.core import audit
from provider.core.clock import today_utc
from provider.core.errors import ServiceError


def _invoice_of(session: Session, client: Client, invoice_id: Any) -> Invoice:
    invoice = session.get(Invoice, invoice_id) if isinstance(invoice_id, int) else None
    if invoice is None or invoice.client_id != client.id:
        raise ServiceError(f"invoice #{invoice_id} is not an invoice of {client.code}", field="invoice_id")
    return invoice


@atomic
def issue_credit_note(session: Session, client: Client, data: dict[str, Any]) -> CreditNote:
    """Record a credit note the client granted; allocate it with `allocate` (or to `invoice_id` at once, dated
    the note's date). Refuses a date in the client's future, and with `invoice_id` one before the invoice's issue."""
    from clients.allocations import allocate

    currency = check_currency(data.get("currency", ""))
    if isinstance(data.get("amount_minor"), bool) or not isinstance(data.get("amount_minor"), int):
        raise ServiceError("the amount must be positive", field="amount")
    if data["amount_minor"] <= 0:
        raise ServiceError("the amount must be positive", field="amount")
    number = (data.get("number") or "").strip()
    if not number:
        raise ServiceError("a credit note needs a number", field="number")
    if session.scalar(select(CreditNote.id).where(CreditNote.client_id == client.id, CreditNote.number == number)):
        raise ServiceError(f"credit note {number} already exists", field="number")
    invoice = _invoice_of(session, client, data["invoice_id"]) if data.get("invoice_id") else None
    earliest = [(invoice.issue_date, f"invoice {invoice.number} was issued")] if invoice else []
    issued_on = check_day(client, data.get("issued_on"), "issued_on", "the credit note date", earliest)
    debtor = debtor_of(session, client, data["debtor_id"])
    if invoice is not None and invoice.debtor_id != debtor.id:
        raise ServiceError(f"invoice {invoice.number} is another debtor's", field="invoice_id")
    note = CreditNote(
        client_id=client.id,
        debtor_id=debtor.id,
        number=number,
        issued_on=issued_on,
        currency=currency,
        amount_minor=data["amount_minor"],
        unapplied_minor=data["amount_minor"],
        reason=data.get("reason") or "",
    )
    session.add(note)
    session.flush()
    post_many(
        session,
        client.id,
        TxKind.CREDIT_NOTE.value,
        [
            (
                note.issued_on,
                [
                    Line(Account.SALES, debtor.id, currency, note.amount_minor, credit_note_id=note.id),
                    Line(Account.CREDITS, debtor.id, currency, -note.amount_minor, credit_note_id=note.id),
                ],
            )
        ],
    )
    audit.record(
        session,
        "credit_note.issue",
        note,
        after={"number": number, "amount_minor": note.amount_minor, "issued_on": issued_on.isoformat()},
    )
    if invoice is not None:
        amount = min(note.amount_minor, invoice.open_minor)
        if amount > 0:
            allocate(session, client, note, invoice, amount, on=note.issued_on)
    return note


@atomic
def write_off(
    session: Session,
    client: Client,
    invoice: Invoice,
    amount_minor: int | None = None,
    reason: str = "",
    on: date | None = None,
) -> JournalTransaction:
    """Write off all (default) or part of an invoice's open balance as bad debt, dated `on` (default: the
    client's today). Refuses (field `written_off_on`) a date before the invoice's issue or in the future, and
    one from which the invoice would be overpaid at some later date."""
    session.refresh(invoice)
    if invoice.client_id != client.id:
        raise ServiceError("that invoice belongs to another client")
    day = check_day(
        client,
        client_today(client) if on is None else on,
        "written_off_on",
        "the write-off date",
        [(invoice.issue_date, f"invoice {invoice.number} was issued")],
    )
    amount = invoice.open_minor if amount_minor is None else amount_minor
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ServiceError(
            f"invoice {invoice.number} has nothing to write off"
            if amount_minor is None
            else "the amount to write off must be positive",
            field="amount",
        )
    if amount > invoice.open_minor:
        raise only_open(invoice)
    lines = [
        Line(Account.WRITE_OFF, invoice.debtor_id, invoice.currency, amount, invoice_id=invoice.id),
        Line(Account.RECEIVABLE, invoice.debtor_id, invoice.currency, -amount, invoice_id=invoice.id),
    ]
    check_reductions(session, lines, day, "written_off_on")
    tx = post(session, client.id, TxKind.WRITE_OFF.value, day, lines, memo=reason[:300])
    audit.record(
        session,
        "invoice.write_off",
        invoice,
        after={"amount_minor": amount, "written_off_on": day.isoformat(), "reason": reason[:300], "transaction": tx.id},
    )
    session.refresh(invoice)
    return tx


@atomic
def adjust(session: Session, client: Client, invoice: Invoice, delta_minor: int, reason: str) -> JournalTransaction:
    """Correct an invoice's amount by `delta_minor` (+ adds, - reduces; not below what is already paid)."""
    if not isinstance(delta_minor, int) or delta_minor == 0:
        raise ServiceError("an adjustment must change the amount", field="amount")
    if not reason.strip():
        raise ServiceError("say why the invoice is adjusted", field="reason")
    session.refresh(invoice)
    if invoice.open_minor + delta_minor < 0:
        raise only_open(invoice)
    lines = [
        Line(Account.RECEIVABLE, invoice.debtor_id, invoice.currency, delta_minor, invoice_id=invoice.id),
        Line(Account.ADJUSTMENT, invoice.debtor_id, invoice.currency, -delta_minor, invoice_id=invoice.id),
    ]
    day = max(today_utc(), invoice.issue_date)
    check_reductions(session, lines, day, "amount")
    tx = post(session, client.id, TxKind.ADJUSTMENT.value, day, lines, memo=reason[:300])
    session.refresh(invoice)
    return tx


# --- reversals ---------------------------------------------------------------------------------------------

_WHAT = {
    TxKind.INVOICE.value: "the invoice's placement",
    TxKind.PAYMENT.value: "the payment",
    TxKind.ALLOCATION.value: "the allocation",
    TxKind.CREDIT_NOTE.value: "the credit note",
    TxKind.WRITE_OFF.value: "the write-off",
    TxKind.ADJUSTMENT.value: "the adjustment",
}


def open_allocations(session: Session, client_id: int, transaction: JournalTransaction) -> list[JournalTransaction]:
    """The allocations of the payment or credit note `transaction` recorded that are not reversed yet."""
    column = {TxKind.PAYMENT.value: JournalEntry.payment_id, TxKind.CREDIT_NOTE.value: JournalEntry.credit_note_id}
    if transaction.kind not in column:
        return []
    doc_ids = {getattr(e, column[transaction.kind].key) for e in transaction.entries} - {None}
    if not doc_ids:
        return []
    reversed_ids = select(JournalTransaction.reverses_id).where(
        JournalTransaction.client_id == client_id, JournalTransaction.reverses_id.is_not(None)
    )
    return list(
        session.scalars(
            select(JournalTransaction)
            .where(
                JournalTransaction.client_id == client_id,
                JournalTransaction.kind == TxKind.ALLOCATION.value,
                JournalTransaction.id.in_(
                    select(JournalEntry.transaction_id).where(
                        JournalEntry.client_id == client_id, column[transaction.kind].in_(doc_ids)
                    )
                ),
                JournalTransaction.id.not_in(reversed_ids),
            )
            .order_by(JournalTransaction.id)
        )
    )


@atomic
def reverse(
    session: Session, client: Client, transaction: JournalTransaction, reason: str, on: date | None = None
) -> JournalTransaction:
    """Post the exact opposite of a transaction, dated `on` (default: the client's today, or the original's
    date if that is later). A payment's or credit note's allocations are reversed first, in the same database
    transaction and on the same date, so its money leaves the invoices it paid.

    Refused when it was reversed already, is itself a reversal, has no reason, when `on` (field
    `reversed_on`) is in the future or before the original event or any of the allocations it takes back,
    or when undoing it would take a document below zero at some date (e.g. a placement whose invoice is paid)."""
    if transaction.client_id != client.id:
        raise ServiceError("that transaction belongs to another client")
    if transaction.kind == TxKind.REVERSAL.value:
        raise ServiceError(
            "a reversal cannot be reversed; post the original event again instead", kind="state-conflict"
        )
    if _reversal_of(session, client.id, transaction.id):
        raise ServiceError(
            f"{_WHAT.get(transaction.kind, 'this transaction')} was already reversed", kind="state-conflict"
        )
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("say why it is reversed", field="reason")
    cascade = open_allocations(session, client.id, transaction)
    what = _WHAT.get(transaction.kind, "the original")
    earliest = [(transaction.occurred_on, f"the date of {what}")]
    if cascade:
        last = max(cascade, key=lambda t: t.occurred_on)
        earliest.append((last.occurred_on, "the date its money was allocated to an invoice"))
    if on is None:  # the original may be dated "tomorrow" (a payment within a day's time-zone tolerance)
        day = max([client_today(client), *(bound for bound, _ in earliest)])
    else:
        day = check_day(client, on, "reversed_on", "the reversal date", earliest)
    for allocation in cascade:
        _post_reversal(session, client, allocation, day, f"{reason} (with {_WHAT[transaction.kind]})")
    tx = _post_reversal(session, client, transaction, day, reason)
    audit.record(
        session,
        "transaction.reverse",
        "JournalTransaction",
        client_id=client.id,
        object_id=transaction.id,
        after={
            "kind": transaction.kind,
            "reversed_on": day.isoformat(),
            "reason": reason[:300],
            "reversal": tx.id,
            "allocations_reversed": [a.id for a in cascade],
        },
    )
    if transaction.kind == TxKind.PAYMENT.value:
        debtor_ids = sorted({e.debtor_id for e in transaction.entries})
        payments_posted.send(session, client_id=client.id, debtor_ids=debtor_ids)
    return tx


def _reversal_of(session: Session, client_id: int, transaction_id: int) -> int | None:
    return session.scalar(
        select(JournalTransaction.id).where(
            JournalTransaction.client_id == client_id, JournalTransaction.reverses_id == transaction_id
        )
    )


def _post_reversal(
    session: Session, client: Client, transaction: JournalTransaction, day: date, reason: str
) -> JournalTransaction:
    lines = [line.negated() for line in lines_of(transaction)]
    check_reductions(session, lines, day, "reversed_on")
    return post(
        session,
        client.id,
        TxKind.REVERSAL.value,
        day,
        lines,
        memo=f"reverses #{transaction.id}: {reason}"[:300],
        reverses_id=transaction.id,
    )


def reversal_of(session: Session, client: Client, transaction: JournalTransaction) -> int | None:
    """The id of the transaction that reversed `transaction`, if any."""
    return _reversal_of(session, client.id, transaction.id)


def document_transaction(
    session: Session, client: Client, document: Payment | CreditNote | Invoice
) -> JournalTransaction:
    """The transaction that recorded a payment, issued a credit note or placed an invoice (what reversing it
    reverses)."""
    column, kind = {
        Payment: (JournalEntry.payment_id, TxKind.PAYMENT.value),
        CreditNote: (JournalEntry.credit_note_id, TxKind.CREDIT_NOTE.value),
        Invoice: (JournalEntry.invoice_id, TxKind.INVOICE.value),
    }[type(document)]
    return session.scalars(
        select(JournalTransaction)
        .where(
            JournalTransaction.client_id == client.id,
            JournalTransaction.kind == kind,
            JournalTransaction.id.in_(
                select(JournalEntry.transaction_id).where(JournalEntry.client_id == client.id, column == document.id)
            ),
        )
        .order_by(JournalTransaction.id)
        .limit(1)
    ).one()


@dataclass(frozen=True)
class Reversal:
    """What reversing a document posted: its own reversal and those of the allocations that went with it."""

    transaction: JournalTransaction
    allocations: list[int]  # ids of the allocation transactions reversed with it


def reverse_document(
    session: Session, client: Client, document: Payment | CreditNote, reason: str, on: date | None = None
) -> Reversal:
    """Reverse the payment (a bounced transfer, a cheque returned) or credit note (cancelled), with every
    allocation of its money still standing: `reverse` of the transaction that recorded it."""
    original = document_transaction(session, client, document)
    cascade = [t.id for t in open_allocations(session, client.id, original)]
    tx = reverse(session, client, original, reason, on)
    session.refresh(document)
    return Reversal(tx, cascade)


__all__ = [
    "Reversal",
    "adjust",
    "document_transaction",
    "issue_credit_note",
    "open_allocations",
    "reversal_of",
    "reverse",
    "reverse_document",
    "write_off",
]
