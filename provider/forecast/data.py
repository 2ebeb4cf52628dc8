"""Read one client's ledger history into the model's frames (set-based: a handful of statements per client).

Only what the model reads: invoices (as placed), the receivable moves after placement (payments' allocations,
credits, write-offs, adjustments, reversals) by invoice and day, payments received, promises and disputes. The
as-of rule (nothing dated after the forecast's day) is applied by the model on these frames, so one read serves
the forecast and every month-end of the backtest.
"""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from clients.journal import Account, Invoice, JournalEntry, JournalTransaction, Payment, TxKind
from clients.models import Debtor
from provider.forecast.forecast import History
from sla.models import Dispute
from worklists.models import Promise


def _ordinal(value: date | datetime | None) -> float | None:
    if value is None:
        return None
    return float((value.date() if isinstance(value, datetime) else value).toordinal())


def load_history(session: Session, client_id: int) -> History:
    """The client's history (its tenant scope must be set by the caller)."""
    inv_rows = session.execute(
        select(Invoice.id, Invoice.debtor_id, Invoice.currency, Invoice.issue_date, Invoice.due_date,
               Invoice.amount_minor).where(Invoice.client_id == client_id)
    ).all()  # fmt: skip
    invoices = pd.DataFrame(
        {
            "id": [r[0] for r in inv_rows],
            "debtor_id": [r[1] for r in inv_rows],
            "currency": [r[2] for r in inv_rows],
            "issue": [r[3].toordinal() for r in inv_rows],
            "due": [r[4].toordinal() for r in inv_rows],
            "amount": [int(r[5]) for r in inv_rows],
        },
        columns=["id", "debtor_id", "currency", "issue", "due", "amount"],
    )
    cash = case((JournalEntry.payment_id.is_not(None), 1), else_=0)
    mv_rows = session.execute(
        select(JournalEntry.invoice_id, JournalTransaction.occurred_on, cash, func.sum(JournalEntry.amount_minor))
        .join(
            JournalTransaction,
            (JournalTransaction.client_id == JournalEntry.client_id)
            & (JournalTransaction.id == JournalEntry.transaction_id),
        )
        .where(
            JournalEntry.client_id == client_id,
            JournalEntry.account == Account.RECEIVABLE.value,
            JournalEntry.invoice_id.is_not(None),
            JournalTransaction.kind != TxKind.INVOICE.value,
        )
        .group_by(JournalEntry.invoice_id, JournalTransaction.occurred_on, cash)
    ).all()
    moves = pd.DataFrame(
        {
            "invoice_id": [r[0] for r in mv_rows],
            "day": [r[1].toordinal() for r in mv_rows],
            "cash": [bool(r[2]) for r in mv_rows],
            "amount": [int(r[3]) for r in mv_rows],
        },
        columns=["invoice_id", "day", "cash", "amount"],
    )
    pay_rows = session.execute(
        select(Payment.debtor_id, Payment.currency, Payment.received_on, func.sum(Payment.amount_minor))
        .where(Payment.client_id == client_id)
        .group_by(Payment.debtor_id, Payment.currency, Payment.received_on)
    ).all()
    payments = pd.DataFrame(
        {
            "debtor_id": [r[0] for r in pay_rows],
            "currency": [r[1] for r in pay_rows],
            "day": [r[2].toordinal() for r in pay_rows],
            "amount": [int(r[3]) for r in pay_rows],
        },
        columns=["debtor_id", "currency", "day", "amount"],
    )
    pr_rows = session.execute(
        select(Promise.debtor_id, Promise.currency, Promise.created_at, Promise.due_on, Promise.amount_minor,
               Promise.status, Promise.resolved_at).where(Promise.client_id == client_id)
    ).all()  # fmt: skip
    promises = pd.DataFrame(
        {
            "debtor_id": [r[0] for r in pr_rows],
            "currency": [r[1] for r in pr_rows],
            "created": [_ordinal(r[2]) for r in pr_rows],
            "due": [r[3].toordinal() for r in pr_rows],
            "amount": [int(r[4]) for r in pr_rows],
            "status": [r[5] for r in pr_rows],
            "resolved": [(_ordinal(r[6]) or _ordinal(r[2])) if r[5] != "open" else None for r in pr_rows],
        },
        columns=["debtor_id", "currency", "created", "due", "amount", "status", "resolved"],
    )
    promises["resolved"] = promises["resolved"].astype(float)
    dis_rows = session.execute(select(Dispute.debtor_id, Dispute.opened_at).where(Dispute.client_id == client_id)).all()
    disputes = pd.DataFrame(
        {"debtor_id": [r[0] for r in dis_rows], "opened": [_ordinal(r[1]) for r in dis_rows]},
        columns=["debtor_id", "opened"],
    )
    debtor_ids = list(session.scalars(select(Debtor.id).where(Debtor.client_id == client_id).order_by(Debtor.id)))
    return History(invoices, moves, payments, promises, disputes, debtor_ids)
