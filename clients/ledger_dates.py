"""Money dated right: when an allocation, credit note, write-off or reversal may happen, and what it leaves.

Every balance the KPIs read is a balance *as of a date* (the journal summed up to it), so a posting is checked
against the whole timeline, not only against today's cached balance:

- its date lies between the events it depends on (the invoice's issue date, the payment's receipt, the credit
  note's issue, the transaction it reverses) and the client's today (in the client's time zone);
- at its date and at every later date, no document it reduces falls below zero: an invoice's open balance,
  a payment's or credit note's unallocated amount. Without this, an allocation back-dated before a reversal
  of an earlier one would make AR negative at the month-ends between the two.

Refusals are `ServiceError`s naming the date field and saying why, in words; nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from clients.journal import Account, CreditNote, Invoice, JournalEntry, JournalTransaction, Payment
from clients.models import Client
from clients.posting import Line, document_deltas
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.money import format_money


def client_today(client: Client) -> date:
    """Today in the client's time zone: what "in the future" means for its ledger."""
    return now_utc().astimezone(ZoneInfo(client.timezone)).date()


def check_day(client: Client, day: object, field: str, what: str, earliest: Iterable[tuple[date, str]] = ()) -> date:
    """`day` when it is a date no later than the client's today and no earlier than each `(bound, why)`;
    otherwise a `ServiceError` on `field`, e.g. "the write-off date 2026-01-05 is before invoice A-1 was
    issued (2026-02-01)"."""
    if not isinstance(day, date) or isinstance(day, datetime):
        raise ServiceError(f"{what} must be a date (YYYY-MM-DD)", field=field)
    today = client_today(client)
    if day > today:
        raise ServiceError(f"{what} {day.isoformat()} is in the future (today is {today.isoformat()})", field=field)
    for bound, why in earliest:
        if day < bound:
            raise ServiceError(f"{what} {day.isoformat()} is before {why} ({bound.isoformat()})", field=field)
    return day


# --- balances along the timeline -------------------------------------------------------------------------

_BALANCE_OF = {
    Invoice: (JournalEntry.invoice_id, Account.RECEIVABLE, 1),
    Payment: (JournalEntry.payment_id, Account.UNAPPLIED, -1),
    CreditNote: (JournalEntry.credit_note_id, Account.CREDITS, -1),
}


def timeline(session: Session, document: Invoice | Payment | CreditNote) -> list[tuple[date, int]]:
    """[(date, balance at the end of that date)] of a document, from its journal entries: an invoice's open
    balance, a payment's or credit note's unallocated amount."""
    column, account, sign = _BALANCE_OF[type(document)]
    return _running(session, document.client_id, column, document.id, account, sign)


def _running(
    session: Session,
    client_id: int,
    column: InstrumentedAttribute[int | None],
    doc_id: int,
    account: Account,
    sign: int,
) -> list[tuple[date, int]]:
    rows = session.execute(
        select(JournalTransaction.occurred_on, func.sum(JournalEntry.amount_minor))
        .join(
            JournalTransaction,
            (JournalTransaction.client_id == JournalEntry.client_id)
            & (JournalTransaction.id == JournalEntry.transaction_id),
        )
        .where(JournalEntry.client_id == client_id, column == doc_id, JournalEntry.account == account.value)
        .group_by(JournalTransaction.occurred_on)
        .order_by(JournalTransaction.occurred_on)
    ).all()
    out, balance = [], 0
    for day, amount in rows:
        balance += sign * int(amount)
        out.append((day, balance))
    return out


def lowest_from(points: list[tuple[date, int]], day: date) -> tuple[int, date]:
    """The lowest balance at `day` or any later date, and the first date it is reached."""
    before = [b for d, b in points if d <= day]
    low, when = (before[-1] if before else 0), day
    for d, balance in points:
        if d > day and balance < low:
            low, when = balance, d
    return low, when


def headroom(session: Session, document: Invoice | Payment | CreditNote, day: date) -> int:
    """How much may be taken off the document's balance on `day` without it falling below zero then or later."""
    low, _ = lowest_from(timeline(session, document), day)
    return max(low, 0)


def earliest_fit(session: Session, documents: list[Invoice | Payment | CreditNote], amount: int, day: date) -> date:
    """The first date on or after `day` from which `amount` can be taken off every one of `documents` without
    any falling below zero then or later (`day` itself in the usual case; a later date only when a balance
    was raised again after `day`, e.g. by a reversal); `day` when no date fits (the caller's checks refuse)."""
    timelines = [timeline(session, d) for d in documents]
    candidates = sorted({day, *(d for points in timelines for d, _ in points if d > day)})
    for candidate in candidates:
        if all(lowest_from(points, candidate)[0] >= amount for points in timelines):
            return candidate
    return day


def _name(document: Invoice | Payment | CreditNote) -> str:
    if isinstance(document, Invoice):
        return f"invoice {document.number}"
    if isinstance(document, Payment):
        return f"payment {document.external_ref}"
    return f"credit note {document.number}"


def check_reductions(session: Session, lines: list[Line], day: date, field: str) -> None:
    """Refuse (on `field`) when posting `lines` on `day` would take any document's balance below zero on `day`
    or at any later date: "invoice A-1 would be overpaid on 2026-03-12: only €75.00 of it is open then"."""
    d = document_deltas(lines)
    wanted: list[tuple[type[Invoice] | type[Payment] | type[CreditNote], int, int]] = [
        *((Invoice, i, -delta) for i, delta in d.invoice_open.items() if delta < 0),
        *((Payment, i, -delta) for i, delta in d.payment_unapplied.items() if delta < 0),
        *((CreditNote, i, -delta) for i, delta in d.credit_unapplied.items() if delta < 0),
    ]
    for model, doc_id, taken in wanted:
        document: Invoice | Payment | CreditNote = session.get_one(model, doc_id)  # type: ignore[assignment]
        low, when = lowest_from(timeline(session, document), day)
        if taken > low:
            left = format_money(max(low, 0), document.currency)
            if isinstance(document, Invoice):
                why = f"would be overpaid on {when.isoformat()}: only {left} of it is open then"
            else:
                why = f"would be over-allocated on {when.isoformat()}: only {left} of it is unallocated then"
            raise ServiceError(f"{_name(document)} {why}", field=field)
