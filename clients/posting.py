"""Posting to the journal: balanced transactions and the cached balances they move, all or nothing.

`post()` refuses a transaction whose entries do not sum to zero per currency. `apply_to_documents()` moves
the cached balances (invoice open, payment and credit-note unapplied) by exactly what the entries say, with
guarded UPDATEs (`... WHERE open_minor + :delta BETWEEN 0 AND amount`), so two sessions racing for the same
money cannot both win: the loser's UPDATE matches no row and the whole service call is refused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from clients.journal import Account, CreditNote, Invoice, JournalEntry, JournalTransaction, Payment
from provider.core import audit
from provider.core.clock import now_utc
from provider.core.errors import ServiceError


class UnbalancedTransaction(ServiceError):
    """The entries of a journal transaction do not sum to zero in some currency."""


@dataclass(frozen=True)
class Line:
    account: Account
    debtor_id: int
    currency: str
    amount_minor: int
    invoice_id: int | None = None
    payment_id: int | None = None
    credit_note_id: int | None = None

    def negated(self) -> Line:
        return Line(
            self.account,
            self.debtor_id,
            self.currency,
            -self.amount_minor,
            self.invoice_id,
            self.payment_id,
            self.credit_note_id,
        )


def check_balanced(lines: Iterable[Line]) -> None:
    totals: dict[str, int] = defaultdict(int)
    count = 0
    for line in lines:
        if line.amount_minor == 0:
            raise UnbalancedTransaction("a journal entry of zero is meaningless")
        totals[line.currency] += line.amount_minor
        count += 1
    if count < 2:
        raise UnbalancedTransaction("a journal transaction needs at least two entries")
    unbalanced = {c: t for c, t in totals.items() if t != 0}
    if unbalanced:
        raise UnbalancedTransaction(f"journal transaction does not balance: {unbalanced}")


def post_many(
    session: Session,
    client_id: int,
    kind: str,
    batch: list[tuple[date, list[Line]]],
    memo: str = "",
    reverses_id: int | None = None,
) -> list[int]:
    """Post several transactions of one kind in bulk (one INSERT for headers, one for entries)."""
    for _, lines in batch:
        check_balanced(lines)
    actor = audit.current_actor()
    now = now_utc()
    headers = [
        {
            "client_id": client_id,
            "kind": kind,
            "occurred_on": occurred_on,
            "posted_at": now,
            "actor_user_id": actor.user_id,
            "actor_label": actor.label,
            "memo": memo,
            "reverses_id": reverses_id,
        }
        for occurred_on, _ in batch
    ]
    ids = list(
        session.scalars(
            insert(JournalTransaction).returning(JournalTransaction.id, sort_by_parameter_order=True), headers
        )
    )
    rows = [
        {
            "client_id": client_id,
            "transaction_id": tx_id,
            "account": line.account.value,
            "debtor_id": line.debtor_id,
            "invoice_id": line.invoice_id,
            "payment_id": line.payment_id,
            "credit_note_id": line.credit_note_id,
            "currency": line.currency,
            "amount_minor": line.amount_minor,
        }
        for tx_id, (_, lines) in zip(ids, batch, strict=True)
        for line in lines
    ]
    session.execute(insert(JournalEntry), rows)
    return ids


def post(
    session: Session,
    client_id: int,
    kind: str,
    occurred_on: date,
    lines: list[Line],
    memo: str = "",
    reverses_id: int | None = None,
) -> JournalTransaction:
    """Post one balanced transaction and move the cached balances it touches; returns the transaction."""
    apply_to_documents(session, client_id, lines)
    (tx_id,) = post_many(session, client_id, kind, [(occurred_on, lines)], memo, reverses_id)
    return session.get_one(JournalTransaction, tx_id)


def apply_to_documents(session: Session, client_id: int, lines: Iterable[Line]) -> None:
    """Move the cached balances by what the entries say, refusing any that would leave its range."""
    invoice_open: dict[int, int] = defaultdict(int)
    invoice_adjusted: dict[int, int] = defaultdict(int)
    payment_unapplied: dict[int, int] = defaultdict(int)
    credit_unapplied: dict[int, int] = defaultdict(int)
    for line in lines:
        if line.account == Account.RECEIVABLE and line.invoice_id:
            invoice_open[line.invoice_id] += line.amount_minor
        elif line.account == Account.ADJUSTMENT and line.invoice_id:
            invoice_adjusted[line.invoice_id] -= line.amount_minor
        elif line.account == Account.UNAPPLIED and line.payment_id:
            payment_unapplied[line.payment_id] -= line.amount_minor
        elif line.account == Account.CREDITS and line.credit_note_id:
            credit_unapplied[line.credit_note_id] -= line.amount_minor

    for invoice_id in sorted(set(invoice_open) | set(invoice_adjusted)):  # sorted: a stable lock order
        d_open, d_adj = invoice_open[invoice_id], invoice_adjusted[invoice_id]
        _guarded(
            session,
            update(Invoice)
            .where(
                Invoice.client_id == client_id,
                Invoice.id == invoice_id,
                Invoice.open_minor + d_open >= 0,
                Invoice.open_minor + d_open <= Invoice.amount_minor + Invoice.adjusted_minor + d_adj,
            )
            .values(open_minor=Invoice.open_minor + d_open, adjusted_minor=Invoice.adjusted_minor + d_adj),
            f"invoice #{invoice_id}: its open balance would leave the range 0..amount",
        )
    for model, changes, what in (
        (Payment, payment_unapplied, "payment"),
        (CreditNote, credit_unapplied, "credit note"),
    ):
        for doc_id in sorted(changes):
            delta = changes[doc_id]
            _guarded(
                session,
                update(model)
                .where(
                    model.client_id == client_id,
                    model.id == doc_id,
                    model.unapplied_minor + delta >= 0,
                    model.unapplied_minor + delta <= model.amount_minor,
                )
                .values(unapplied_minor=model.unapplied_minor + delta),
                f"{what} #{doc_id}: not enough left to allocate" if delta < 0 else f"{what} #{doc_id}: over-returned",
            )


def _guarded(session: Session, stmt: Any, message: str) -> None:
    result = session.execute(stmt.execution_options(synchronize_session="fetch"))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ServiceError(message)


def lines_of(transaction: JournalTransaction) -> list[Line]:
    return [
        Line(Account(e.account), e.debtor_id, e.currency, e.amount_minor, e.invoice_id, e.payment_id, e.credit_note_id)
        for e in transaction.entries
    ]
