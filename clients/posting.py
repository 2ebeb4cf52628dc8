"""Posting to the journal: balanced transactions and the cached balances they move, all or nothing.

`post()` refuses a transaction whose entries do not sum to zero per currency. `apply_to_documents()` moves
the cached balances (invoice open, payment and credit-note unapplied) by exactly what the entries say, with
guarded UPDATEs (`... WHERE open_minor + :delta BETWEEN 0 AND amount`), so two sessions racing for the same
money cannot both win: the loser's UPDATE matches no row and the whole service call is refused.
`apply_to_documents_bulk()` is the same guard for thousands of documents at once: one executemany per
table, refused as a whole when any row falls outside its range (the matched-row count tells).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import bindparam, insert, inspect, update
from sqlalchemy.orm import Mapper, Session

from clients import month_totals
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
    memos: list[str] | None = None,
) -> list[int]:
    """Post several transactions of one kind in bulk (one INSERT for headers, one for entries).

    Every transaction is checked to balance before anything is written. `memos`, when given, holds one
    memo per transaction (instead of the shared `memo`). Returns the transaction ids in batch order.
    """
    for _, lines in batch:
        check_balanced(lines)
    if memos is not None and len(memos) != len(batch):
        raise ValueError("post_many: one memo per transaction")
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
            "memo": memos[n] if memos is not None else memo,
            "reverses_id": reverses_id,
        }
        for n, (occurred_on, _) in enumerate(batch)
    ]
    ids = list(session.scalars(_INSERT_TRANSACTIONS, headers))
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
    session.execute(_INSERT_ENTRIES, rows)
    if not month_totals.kept_by_trigger(session):
        month_totals.add_posted(session, client_id, JournalEntry.__table__.c.transaction_id.in_(ids))
    return ids


# Core statements built once: the journal tables take no ORM-side defaults, so the ORM's bulk machinery would
# only add per-call overhead. RETURNING on the entries makes SQLAlchemy batch them as multi-row INSERTs
# ("insertmanyvalues", up to 1,000 rows a statement) instead of one statement per row.
_INSERT_TRANSACTIONS = insert(JournalTransaction.__table__).returning(
    JournalTransaction.__table__.c.id, sort_by_parameter_order=True
)
_INSERT_ENTRIES = insert(JournalEntry.__table__).returning(JournalEntry.__table__.c.id)


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


@dataclass
class _Deltas:
    """What a set of entries does to the cached balances, per document."""

    invoice_open: dict[int, int]
    invoice_adjusted: dict[int, int]
    payment_unapplied: dict[int, int]
    credit_unapplied: dict[int, int]


def document_deltas(lines: Iterable[Line]) -> _Deltas:
    """What the entries do to each document's cached balance (open, adjusted, unapplied), summed per document."""
    d = _Deltas(defaultdict(int), defaultdict(int), defaultdict(int), defaultdict(int))
    for line in lines:
        if line.account == Account.RECEIVABLE and line.invoice_id:
            d.invoice_open[line.invoice_id] += line.amount_minor
        elif line.account == Account.ADJUSTMENT and line.invoice_id:
            d.invoice_adjusted[line.invoice_id] -= line.amount_minor
        elif line.account == Account.UNAPPLIED and line.payment_id:
            d.payment_unapplied[line.payment_id] -= line.amount_minor
        elif line.account == Account.CREDITS and line.credit_note_id:
            d.credit_unapplied[line.credit_note_id] -= line.amount_minor
    return d


def apply_to_documents(session: Session, client_id: int, lines: Iterable[Line]) -> None:
    """Move the cached balances by what the entries say, refusing any that would leave its range."""
    d = document_deltas(lines)
    invoice_open, invoice_adjusted = d.invoice_open, d.invoice_adjusted
    payment_unapplied, credit_unapplied = d.payment_unapplied, d.credit_unapplied

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


def apply_to_documents_bulk(session: Session, client_id: int, lines: Iterable[Line]) -> None:
    """`apply_to_documents` for many documents: the same guarded UPDATE, one executemany per table.

    Each row's UPDATE matches only if its new balance stays in range; when the matched-row count falls
    short of the documents touched, some balance would have left its range (or a concurrent session won
    the race) and the whole call is refused with `ServiceError` (the caller's savepoint undoes the rest).
    ORM objects of the touched documents are expired so the session reads the new balances.
    """
    d = document_deltas(lines)
    inv = Invoice.__table__.c
    invoice_ids = sorted(set(d.invoice_open) | set(d.invoice_adjusted))  # sorted: a stable lock order
    invoice_stmt = (
        update(Invoice.__table__)
        .where(
            inv.client_id == client_id,
            inv.id == bindparam("doc_id"),
            inv.open_minor + bindparam("d_open") >= 0,
            inv.open_minor + bindparam("d_open") <= inv.amount_minor + inv.adjusted_minor + bindparam("d_adj"),
        )
        .values(open_minor=inv.open_minor + bindparam("d_open"), adjusted_minor=inv.adjusted_minor + bindparam("d_adj"))
    )
    _guarded_many(
        session,
        invoice_stmt,
        [{"doc_id": i, "d_open": d.invoice_open.get(i, 0), "d_adj": d.invoice_adjusted.get(i, 0)} for i in invoice_ids],
        "invoice open balance(s) would leave the range 0..amount",
    )
    _expire(session, Invoice, invoice_ids, ["open_minor", "adjusted_minor"])
    for model, changes, what in (
        (Payment, d.payment_unapplied, "payment"),
        (CreditNote, d.credit_unapplied, "credit note"),
    ):
        col = model.__table__.c
        stmt = (
            update(model.__table__)
            .where(
                col.client_id == client_id,
                col.id == bindparam("doc_id"),
                col.unapplied_minor + bindparam("delta") >= 0,
                col.unapplied_minor + bindparam("delta") <= col.amount_minor,
            )
            .values(unapplied_minor=col.unapplied_minor + bindparam("delta"))
        )
        ids = sorted(changes)
        _guarded_many(
            session,
            stmt,
            [{"doc_id": i, "delta": changes[i]} for i in ids],
            f"{what}(s) would be over-allocated or over-returned",
        )
        _expire(session, model, ids, ["unapplied_minor"])


def _guarded_many(session: Session, stmt: Any, params: list[dict[str, int]], message: str) -> None:
    if not params:
        return
    result = session.connection().execute(stmt, params)
    if result.rowcount != len(params):
        raise ServiceError(f"{len(params) - result.rowcount} {message}; nothing was posted")


def _expire(session: Session, model: type, ids: list[int], attributes: list[str]) -> None:
    mapper: Mapper[Any] = inspect(model)
    for doc_id in ids:
        obj = session.identity_map.get(mapper.identity_key_from_primary_key((doc_id,)))
        if obj is not None:
            session.expire(obj, attributes)


def _guarded(session: Session, stmt: Any, message: str) -> None:
    result = session.execute(stmt.execution_options(synchronize_session="fetch"))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ServiceError(message)


def lines_of(transaction: JournalTransaction) -> list[Line]:
    return [
        Line(Account(e.account), e.debtor_id, e.currency, e.amount_minor, e.invoice_id, e.payment_id, e.credit_note_id)
        for e in transaction.entries
    ]
