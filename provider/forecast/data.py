"""Read one client's ledger history into the model's frames (set-based: a handful of statements per client).

Only what the model reads: invoices (as placed), the receivable moves after placement (payments' allocations,
credits, write-offs, adjustments, reversals) by invoice and day, payments received, promises and disputes. The
as-of rule (nothing dated after the forecast's day) is applied by the model on these frames, so one read serves
the forecast and every month-end of the backtest.

Days arrive as date ordinals computed by the database. On PostgreSQL each statement's rows come back as one CSV
text (`string_agg` in the database) read by pandas' C parser: no Python object per row or value, which would
otherwise be most of a nightly refit's cost. Only numbers and codes are read this way (no value holds a comma or a
line break). The statements run on the session's connection, under the client's tenant scope.
"""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from sqlalchemy import Date, Integer, case, cast, func, literal, select, text, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select

from clients.journal import Account, Invoice, JournalEntry, JournalTransaction, Payment, TxKind
from clients.models import Debtor
from provider.forecast.forecast import History
from sla.models import Dispute
from worklists.models import Promise


def day_ordinal(dialect: str, column: Any, timestamp: bool = False) -> ColumnElement[int]:
    """The date ordinal (`date.toordinal()`) of a date column, or of a UTC timestamp's day, in SQL."""
    if dialect == "postgresql":
        day = cast(func.timezone("UTC", column), Date) if timestamp else column
        return type_coerce(day - cast(literal("0001-01-01"), Date), Integer) + 1
    return cast(func.julianday(func.date(column)) - 1721424.5, Integer)


def read_frame(session: Session, stmt: Select[Any] | Any, columns: list[str], dtypes: dict[str, str]) -> pd.DataFrame:
    """The rows of `stmt` as a frame with these column names and dtypes."""
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
        cells = ", ".join(f"COALESCE(CAST(q.c{i} AS text), '')" for i in range(len(columns)))
        labelled = ", ".join(f"c{i}" for i in range(len(columns)))
        # the statement is ours, compiled by SQLAlchemy with its values as literals (numbers and dates only)
        wrapped = f"SELECT string_agg(concat_ws(',', {cells}), E'\\n') FROM ({sql}) AS q({labelled})"  # noqa: S608
        data = conn.exec_driver_sql(wrapped).scalar_one()
        if data:
            return pd.read_csv(io.StringIO(data), header=None, names=columns, dtype=dtypes, keep_default_na=False,
                               na_values={c: [""] for c, t in dtypes.items() if t == "float64"})  # fmt: skip
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in dtypes.items()}, columns=columns)
    rows = conn.execute(stmt).all()
    frame = pd.DataFrame.from_records(rows, columns=columns) if rows else pd.DataFrame(columns=columns)
    return frame.astype(dtypes)


def load_history(session: Session, client_id: int) -> History:
    """The client's history (its tenant scope must be set by the caller)."""
    dialect = session.connection().dialect.name
    if dialect == "postgresql":
        # these statements are short; compiling them to machine code (JIT) costs more than it saves (about 45 ms
        # a statement on a client of 40,000 invoices); for this transaction only
        session.execute(text("SET LOCAL jit = off"))

    def day(column: Any, timestamp: bool = False) -> ColumnElement[int]:
        return day_ordinal(dialect, column, timestamp)

    invoices = read_frame(
        session,
        select(
            Invoice.id,
            Invoice.debtor_id,
            Invoice.currency,
            day(Invoice.issue_date),
            day(Invoice.due_date),
            Invoice.amount_minor,
        ).where(Invoice.client_id == client_id),
        ["id", "debtor_id", "currency", "issue", "due", "amount"],
        {
            "id": "int64",
            "debtor_id": "int64",
            "currency": "object",
            "issue": "int64",
            "due": "int64",
            "amount": "int64",
        },
    )
    cash = case((JournalEntry.payment_id.is_not(None), 1), else_=0)
    moves = read_frame(
        session,
        select(JournalEntry.invoice_id, day(JournalTransaction.occurred_on), cash, func.sum(JournalEntry.amount_minor))
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
        .group_by(JournalEntry.invoice_id, JournalTransaction.occurred_on, cash),
        ["invoice_id", "day", "cash", "amount"],
        {"invoice_id": "int64", "day": "int64", "cash": "int64", "amount": "int64"},
    )
    moves["cash"] = moves["cash"].astype(bool)
    payments = read_frame(
        session,
        select(Payment.debtor_id, Payment.currency, day(Payment.received_on), func.sum(Payment.amount_minor))
        .where(Payment.client_id == client_id)
        .group_by(Payment.debtor_id, Payment.currency, Payment.received_on),
        ["debtor_id", "currency", "day", "amount"],
        {"debtor_id": "int64", "currency": "object", "day": "int64", "amount": "int64"},
    )
    created = day(Promise.created_at, timestamp=True)
    resolved = case((Promise.status != "open", func.coalesce(day(Promise.resolved_at, timestamp=True), created)))
    promises = read_frame(
        session,
        select(
            Promise.debtor_id,
            Promise.currency,
            created,
            day(Promise.due_on),
            Promise.amount_minor,
            Promise.status,
            resolved,
        ).where(Promise.client_id == client_id),
        ["debtor_id", "currency", "created", "due", "amount", "status", "resolved"],
        {
            "debtor_id": "int64",
            "currency": "object",
            "created": "float64",
            "due": "int64",
            "amount": "int64",
            "status": "object",
            "resolved": "float64",
        },
    )
    disputes = read_frame(
        session,
        select(Dispute.debtor_id, day(Dispute.opened_at, timestamp=True)).where(Dispute.client_id == client_id),
        ["debtor_id", "opened"],
        {"debtor_id": "int64", "opened": "float64"},
    )
    debtors = read_frame(
        session,
        select(Debtor.id).where(Debtor.client_id == client_id).order_by(Debtor.id),
        ["id"],
        {"id": "int64"},
    )
    return History(invoices, moves, payments, promises, disputes, debtors["id"].tolist())
