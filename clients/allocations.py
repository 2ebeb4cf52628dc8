"""Allocation: applying a payment or credit note to invoices of the same client, debtor and currency.

An allocation is dated, and the date matters to every month-end figure (AR, CEI, the recovery stair). However
it is made (automatically, by hand on the payment's page, through the API with an invoice id), it is dated by
default the day the money arrived: the payment's receipt (or the credit note's issue), or the invoice's issue
date when the invoice came later. A date given explicitly must lie between those and the client's today, and
no balance it reduces may fall below zero at its date or after (`clients.ledger_dates`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clients.journal import Account, CreditNote, Invoice, JournalEntry, JournalTransaction, Payment, TxKind
from clients.ledger_common import atomic, chunks, money, only_open
from clients.ledger_dates import _running, check_day, check_reductions, earliest_fit, headroom, lowest_from
from clients.models import Client
from clients.posting import Line, apply_to_documents_bulk, post, post_many
from provider.core.errors import ServiceError


def source_date(source: Payment | CreditNote) -> date:
    """The day the money a payment or credit note brings became available: received, or issued."""
    return source.received_on if isinstance(source, Payment) else source.issued_on


def allocation_date(source: Payment | CreditNote, invoice: Invoice) -> date:
    """The date an allocation takes unless one is given: the later of the money's date and the invoice's."""
    return max(source_date(source), invoice.issue_date)


def _allocation_lines(source: Payment | CreditNote, invoice: Invoice, amount_minor: int) -> list[Line]:
    doc = {"payment_id": source.id} if isinstance(source, Payment) else {"credit_note_id": source.id}
    account = Account.UNAPPLIED if isinstance(source, Payment) else Account.CREDITS
    return [
        Line(account, invoice.debtor_id, invoice.currency, amount_minor, invoice_id=invoice.id, **doc),
        Line(Account.RECEIVABLE, invoice.debtor_id, invoice.currency, -amount_minor, invoice_id=invoice.id, **doc),
    ]


@atomic
def allocate(
    session: Session,
    client: Client,
    source: Payment | CreditNote,
    invoice: Invoice,
    amount_minor: int,
    on: date | None = None,
    *,
    allow_held: bool = False,
) -> JournalTransaction:
    """Apply part or all of a payment or credit note to one invoice of the same client, debtor and currency.

    Dated `on`, by default `allocation_date` (the payment's receipt or the invoice's issue, whichever is
    later; or the first later date the dated balances allow, when a reversal raised one after it).
    Refuses (field `allocated_on`) a date before either of those or after the client's today, and one
    at which (or after which) the invoice would be overpaid or the payment over-allocated. An invoice on hold
    (disputed) refuses allocations unless the caller's rule allows it (`allow_held`), e.g. the credit note that
    settles the dispute holding it."""
    what = "payment" if isinstance(source, Payment) else "credit note"
    if source.client_id != client.id or invoice.client_id != client.id:
        raise ServiceError("an allocation cannot cross clients")
    if source.debtor_id != invoice.debtor_id:
        raise ServiceError(f"this {what} is from another debtor than invoice {invoice.number}")
    if source.currency != invoice.currency:
        raise ServiceError(f"cannot allocate {source.currency} to an invoice in {invoice.currency}", field="currency")
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ServiceError("the amount to allocate must be positive", field="amount")
    if invoice.on_hold and not allow_held:
        raise ServiceError(
            f"invoice {invoice.number} is on hold (disputed); allocate after the dispute is settled",
            kind="state-conflict",
        )
    session.refresh(source)
    session.refresh(invoice)
    if on is not None:
        arrived = "the payment was received" if isinstance(source, Payment) else "the credit note was issued"
        check_day(
            client,
            on,
            "allocated_on",
            "the allocation date",
            [(invoice.issue_date, f"invoice {invoice.number} was issued"), (source_date(source), arrived)],
        )
    if amount_minor > source.unapplied_minor:
        raise ServiceError(
            f"the {what} has only {money(source.unapplied_minor, source.currency)} left to allocate", field="amount"
        )
    if amount_minor > invoice.open_minor:
        raise only_open(invoice)
    day = (
        on
        if on is not None
        else earliest_fit(session, [invoice, source], amount_minor, allocation_date(source, invoice))
    )
    lines = _allocation_lines(source, invoice, amount_minor)
    check_reductions(session, lines, day, "allocated_on")
    tx = post(session, client.id, TxKind.ALLOCATION.value, day, lines, memo=f"{what} → invoice {invoice.number}")
    session.refresh(source)
    session.refresh(invoice)
    return tx


@atomic
def auto_allocate(session: Session, client: Client, payment: Payment) -> list[JournalTransaction]:
    """Allocate what is left of a payment: first to the invoice its reference names, then oldest due first.
    Each allocation is dated `allocation_date`, and takes no more than the dated balances allow."""
    session.refresh(payment)
    candidates = list(
        session.scalars(
            select(Invoice)
            .where(
                Invoice.client_id == client.id,
                Invoice.debtor_id == payment.debtor_id,
                Invoice.currency == payment.currency,
                Invoice.open_minor > 0,
                Invoice.on_hold.is_(False),
            )
            .order_by(Invoice.due_date, Invoice.id)
        )
    )
    named = [inv for inv in candidates if inv.number and inv.number.lower() in payment.reference.lower()]
    ordered = named + [inv for inv in candidates if inv not in named]
    done = []
    for invoice in ordered:
        if payment.unapplied_minor == 0:
            break
        day = allocation_date(payment, invoice)
        amount = min(
            payment.unapplied_minor,
            invoice.open_minor,
            headroom(session, invoice, day),
            headroom(session, payment, day),
        )
        if amount > 0:
            done.append(allocate(session, client, payment, invoice, amount, on=day))
    return done


@dataclass(frozen=True)
class _Allocation:
    payment_id: int
    debtor_id: int
    currency: str
    invoice_id: int
    invoice_number: str
    amount_minor: int
    on: date


def _undone(session: Session, client_id: int, column: Any, ids: list[int], account: Account, sign: int) -> set[int]:
    """The documents among `ids` whose balance went back up after a reduction (a reversal, or an adjustment
    adding to an invoice): only for these can a dated balance be lower than today's."""
    found: set[int] = set()
    for chunk in chunks(ids):
        found.update(
            session.scalars(
                select(column)
                .join(
                    JournalTransaction,
                    (JournalTransaction.client_id == JournalEntry.client_id)
                    & (JournalTransaction.id == JournalEntry.transaction_id),
                )
                .where(
                    JournalEntry.client_id == client_id,
                    column.in_(chunk),
                    JournalEntry.account == account.value,
                    JournalEntry.amount_minor * sign > 0,
                    JournalTransaction.kind.in_([TxKind.REVERSAL.value, TxKind.ADJUSTMENT.value]),
                )
                .distinct()
            )
        )
    return found


@atomic
def auto_allocate_many(session: Session, client: Client, payments: list[Payment] | list[int]) -> list[int]:
    """`auto_allocate` for many payments at once (e.g. a whole bank file): for each payment, in the given
    order, what is left of it goes first to the invoices its reference names, then oldest due first.

    Balances are read fresh from the database (two queries per 5,000 payments), the allocations are posted
    with `post_many` (one balanced transaction each, dated like `auto_allocate`'s) and the cached balances
    moved by `apply_to_documents_bulk`, whose guards refuse the whole call if a concurrent session spent
    the same money first. Invoices on hold are skipped. A document whose balance was ever raised again (a
    reversal, an adjustment) gives no more than its lowest dated balance. Returns the allocation transaction ids.
    """
    ids = [p.id if isinstance(p, Payment) else int(p) for p in payments]
    sources: dict[int, Any] = {}
    for chunk in chunks(sorted(set(ids))):
        sources.update(
            (row.id, row)
            for row in session.execute(
                select(
                    Payment.id,
                    Payment.debtor_id,
                    Payment.currency,
                    Payment.unapplied_minor,
                    Payment.received_on,
                    Payment.reference,
                ).where(Payment.client_id == client.id, Payment.id.in_(chunk), Payment.unapplied_minor > 0)
            )
        )
    open_by_key: dict[tuple[int, str], list[list[Any]]] = {}
    for chunk in chunks(sorted({row.debtor_id for row in sources.values()})):
        stmt = (
            select(
                Invoice.id, Invoice.debtor_id, Invoice.currency, Invoice.number, Invoice.open_minor, Invoice.issue_date
            )
            .where(
                Invoice.client_id == client.id,
                Invoice.debtor_id.in_(chunk),
                Invoice.open_minor > 0,
                Invoice.on_hold.is_(False),
            )
            .order_by(Invoice.due_date, Invoice.id)
        )
        for inv_id, debtor_id, currency, number, open_minor, issued in session.execute(stmt):
            open_by_key.setdefault((debtor_id, currency), []).append([inv_id, number, open_minor, issued])
    _cap_by_timeline(session, client.id, sources, open_by_key)
    plan: list[_Allocation] = []
    for payment_id in dict.fromkeys(ids):  # each payment once, in the order given
        source = sources.get(payment_id)
        if source is None:
            continue
        candidates = open_by_key.get((source.debtor_id, source.currency), [])
        reference = source.reference.lower()
        named = [c for c in candidates if c[1] and c[1].lower() in reference]
        left = source.unapplied_minor
        for cand in named + [c for c in candidates if c not in named]:
            if left <= 0:
                break
            amount = min(left, cand[2])
            if amount <= 0:
                continue
            cand[2] -= amount
            left -= amount
            on = max(source.received_on, cand[3])
            plan.append(_Allocation(payment_id, source.debtor_id, source.currency, cand[0], cand[1], amount, on))
    return _post_allocations(session, client, plan)


def _cap_by_timeline(
    session: Session, client_id: int, sources: dict[int, Any], open_by_key: dict[tuple[int, str], list[list[Any]]]
) -> None:
    """Lower today's balances of the (rare) documents raised again after a reduction to their lowest dated
    balance from their own date on: any allocation dated on or after it then keeps every date non-negative."""
    invoices = {cand[0]: cand for cands in open_by_key.values() for cand in cands}
    for inv_id in _undone(session, client_id, JournalEntry.invoice_id, sorted(invoices), Account.RECEIVABLE, 1):
        cand = invoices[inv_id]
        points = _running(session, client_id, JournalEntry.invoice_id, inv_id, Account.RECEIVABLE, 1)
        cand[2] = min(cand[2], max(lowest_from(points, cand[3])[0], 0))
    for pay_id in _undone(session, client_id, JournalEntry.payment_id, sorted(sources), Account.UNAPPLIED, -1):
        row = sources[pay_id]
        points = _running(session, client_id, JournalEntry.payment_id, pay_id, Account.UNAPPLIED, -1)
        capped = min(row.unapplied_minor, max(lowest_from(points, row.received_on)[0], 0))
        sources[pay_id] = row._replace(unapplied_minor=capped)


def _post_allocations(session: Session, client: Client, plan: list[_Allocation]) -> list[int]:
    if not plan:
        return []
    batch = [
        (
            a.on,
            [
                Line(
                    Account.UNAPPLIED,
                    a.debtor_id,
                    a.currency,
                    a.amount_minor,
                    invoice_id=a.invoice_id,
                    payment_id=a.payment_id,
                ),
                Line(
                    Account.RECEIVABLE,
                    a.debtor_id,
                    a.currency,
                    -a.amount_minor,
                    invoice_id=a.invoice_id,
                    payment_id=a.payment_id,
                ),
            ],
        )
        for a in plan
    ]
    apply_to_documents_bulk(session, client.id, [line for _, lines in batch for line in lines])
    memos = [f"payment → invoice {a.invoice_number}" for a in plan]
    return post_many(session, client.id, TxKind.ALLOCATION.value, batch, memos=memos)


__all__ = ["allocate", "allocation_date", "auto_allocate", "auto_allocate_many", "source_date"]
