"""The KPI engine: set-based SQL over the journal, as of any date, per client (DESIGN §7).

Every figure is a sum of journal entries whose transaction *occurred on or before* the as-of date and,
when `posted_by` is given, was *posted* by then too: a report made on 5 November for October ignores a
payment keyed in on 20 November and backdated to 28 October, so re-running it gives the same figures.

    AR at a date          receivable entries, occurred_on <= date
    current AR            the same, on invoices not yet due (due_date >= date)
    credit sales S        receivable entries of `invoice_placed` transactions, by occurred_on
    collected             cash entries (paid to the agency / directly to the client), by occurred_on
    written off, credited write-off entries, and sales entries of credit notes, by occurred_on

A handful of grouped queries produce every figure of a report, whatever the number of invoices; the
formulas (formulas.py) turn these sums into ratios. No Python loop walks ledger rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, case, func, literal, select

from clients.journal import Account, Invoice, JournalEntry, JournalTransaction, TxKind
from clients.ledger_queries import BUCKETS, bucket_expression
from clients.models import Debtor
from provider.extensions import db
from provider.reporting import formulas as f

CASH = (Account.CASH_AGENCY.value, Account.CASH_CLIENT.value)


def _tx_join() -> Any:
    return and_(
        JournalTransaction.client_id == JournalEntry.client_id, JournalTransaction.id == JournalEntry.transaction_id
    )


def _dated(stmt: Any, through: date | None, posted_by: datetime | None, since: date | None = None) -> Any:
    """Restrict a statement joined to JournalTransaction to what had happened (and been posted) by then."""
    if through is not None:
        stmt = stmt.where(JournalTransaction.occurred_on <= through)
    if since is not None:
        stmt = stmt.where(JournalTransaction.occurred_on >= since)
    if posted_by is not None:
        stmt = stmt.where(JournalTransaction.posted_at <= posted_by)
    return stmt


def _clients(stmt: Any, column: Any, client_ids: list[int] | int | None) -> Any:
    if client_ids is None:
        return stmt
    if isinstance(client_ids, int):
        return stmt.where(column == client_ids)
    return stmt.where(column.in_(client_ids))


def _month(column: Any) -> Any:
    if db.session.get_bind().dialect.name == "postgresql":
        return func.to_char(column, "YYYY-MM")
    return func.strftime("%Y-%m", column)


# --- aging ----------------------------------------------------------------------------------------


@dataclass
class AgingFigures:
    """Open receivables by bucket of days past due: amounts (minor units) and counts of open invoices."""

    currency: str
    amounts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))

    @property
    def total(self) -> int:
        return sum(self.amounts.values())

    @property
    def current(self) -> int:
        return self.amounts["Current"]

    @property
    def overdue(self) -> int:
        return self.total - self.current

    @property
    def open_count(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {"currency": self.currency, "amounts": dict(self.amounts), "counts": dict(self.counts)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AgingFigures:
        return cls(data["currency"], dict(data["amounts"]), dict(data["counts"]))


def open_by_invoice(client_ids: list[int] | int | None, as_of: date, posted_by: datetime | None = None) -> Any:
    """Subquery (client_id, invoice_id, open): each invoice's receivable balance as of the date."""
    stmt = (
        select(
            JournalEntry.client_id.label("client_id"),
            JournalEntry.invoice_id.label("invoice_id"),
            func.sum(JournalEntry.amount_minor).label("open"),
        )
        .join(JournalTransaction, _tx_join())
        .where(JournalEntry.account == Account.RECEIVABLE.value)
        .group_by(JournalEntry.client_id, JournalEntry.invoice_id)
    )
    return _dated(_clients(stmt, JournalEntry.client_id, client_ids), as_of, posted_by).subquery()


def aging_by_client(
    client_ids: list[int] | int | None, as_of: date, posted_by: datetime | None = None
) -> dict[int, dict[str, AgingFigures]]:
    """{client_id: {currency: AgingFigures}} as of the date, for one, some or all visible clients (one query)."""
    per_invoice = open_by_invoice(client_ids, as_of, posted_by)
    bucket = bucket_expression(as_of).label("bucket")
    stmt = (
        select(
            Invoice.client_id,
            Invoice.currency,
            bucket,
            func.sum(per_invoice.c.open),
            func.sum(case((per_invoice.c.open > 0, 1), else_=0)),
        )
        .join(per_invoice, and_(Invoice.client_id == per_invoice.c.client_id, Invoice.id == per_invoice.c.invoice_id))
        .group_by(Invoice.client_id, Invoice.currency, bucket)
    )
    result: dict[int, dict[str, AgingFigures]] = {}
    for client_id, currency, name, amount, count in db.session.execute(stmt):
        figures = result.setdefault(client_id, {}).setdefault(currency, AgingFigures(currency))
        figures.amounts[name] += int(amount or 0)
        figures.counts[name] += int(count or 0)
    return result


def aging_at(client_id: int, as_of: date, posted_by: datetime | None = None) -> dict[str, AgingFigures]:
    return aging_by_client(client_id, as_of, posted_by).get(client_id, {})


def receivable_total(client_id: int, as_of: date, posted_by: datetime | None = None) -> dict[str, int]:
    """AR per currency: the plain sum of receivable entries (an independent check of the aging total)."""
    stmt = (
        select(JournalEntry.currency, func.sum(JournalEntry.amount_minor))
        .join(JournalTransaction, _tx_join())
        .where(JournalEntry.client_id == client_id, JournalEntry.account == Account.RECEIVABLE.value)
        .group_by(JournalEntry.currency)
    )
    return {c: int(v or 0) for c, v in db.session.execute(_dated(stmt, as_of, posted_by))}


# --- series over month ends -------------------------------------------------------------------------


def ar_series(client_id: int, ends: list[date], posted_by: datetime | None = None) -> dict[str, list[tuple[int, int]]]:
    """{currency: [(AR, current AR) at each date in `ends`]} in one scan of the client's receivable entries."""
    if not ends:
        return {}
    columns: list[Any] = []
    for end in ends:
        upto = JournalTransaction.occurred_on <= end
        columns.append(func.sum(case((upto, JournalEntry.amount_minor), else_=literal(0))))
        columns.append(
            func.sum(case((and_(upto, Invoice.due_date >= end), JournalEntry.amount_minor), else_=literal(0)))
        )
    stmt = (
        select(JournalEntry.currency, *columns)
        .join(JournalTransaction, _tx_join())
        .join(Invoice, and_(Invoice.client_id == JournalEntry.client_id, Invoice.id == JournalEntry.invoice_id))
        .where(JournalEntry.client_id == client_id, JournalEntry.account == Account.RECEIVABLE.value)
        .group_by(JournalEntry.currency)
    )
    out: dict[str, list[tuple[int, int]]] = {}
    for currency, *sums in db.session.execute(_dated(stmt, max(ends), posted_by)):
        values = [int(v or 0) for v in sums]
        out[currency] = [(values[2 * i], values[2 * i + 1]) for i in range(len(ends))]
    return out


def flows_by_month(client_id: int, first: date, last: date, posted_by: datetime | None = None) -> dict[str, Any]:
    """{currency: {month: {"sales", "agency", "client", "written_off", "credited"}}} for months first..last."""
    kind_is = JournalTransaction.kind
    acct = JournalEntry.account
    amount = JournalEntry.amount_minor
    month = _month(JournalTransaction.occurred_on).label("month")
    zero = literal(0)
    stmt = (
        select(
            JournalEntry.currency,
            month,
            func.sum(
                case((and_(acct == Account.RECEIVABLE.value, kind_is == TxKind.INVOICE.value), amount), else_=zero)
            ),
            func.sum(case((acct == Account.CASH_AGENCY.value, amount), else_=zero)),
            func.sum(case((acct == Account.CASH_CLIENT.value, amount), else_=zero)),
            func.sum(case((acct == Account.WRITE_OFF.value, amount), else_=zero)),
            func.sum(
                case((and_(acct == Account.SALES.value, kind_is == TxKind.CREDIT_NOTE.value), amount), else_=zero)
            ),
        )
        .join(JournalTransaction, _tx_join())
        .where(
            JournalEntry.client_id == client_id,
            acct.in_([Account.RECEIVABLE.value, *CASH, Account.WRITE_OFF.value, Account.SALES.value]),
        )
        .group_by(JournalEntry.currency, month)
    )
    out: dict[str, dict[str, dict[str, int]]] = {}
    for currency, key, sales, agency, client, written, credited in db.session.execute(
        _dated(stmt, f.month_end(last), posted_by, since=f.month_start(first))
    ):
        out.setdefault(currency, {})[key] = {
            "sales": int(sales or 0),
            "agency": int(agency or 0),
            "client": int(client or 0),
            "written_off": int(written or 0),
            "credited": int(credited or 0),
        }
    return out


# --- recovery by placement month ----------------------------------------------------------------------


def recovery_stair(
    client_id: int, first: date, as_of: date, posted_by: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Stair-step recovery: {currency: {placement month: {"placed": n, "collected": {month: n}}}}.

    Placed = receivable amount of the invoices placed in that month; collected = what payments paid of
    those invoices (allocations, net of reversed allocations), by the month the allocation occurred.
    """
    placed_tx = (
        select(
            JournalEntry.invoice_id.label("invoice_id"),
            JournalEntry.currency.label("currency"),
            _month(JournalTransaction.occurred_on).label("placed_month"),
            JournalEntry.amount_minor.label("amount"),
        )
        .join(JournalTransaction, _tx_join())
        .where(
            JournalEntry.client_id == client_id,
            JournalEntry.account == Account.RECEIVABLE.value,
            JournalTransaction.kind == TxKind.INVOICE.value,
        )
    )
    placed = _dated(placed_tx, as_of, posted_by, since=f.month_start(first)).subquery()
    out: dict[str, dict[str, Any]] = {}
    for currency, key, amount in db.session.execute(
        select(placed.c.currency, placed.c.placed_month, func.sum(placed.c.amount)).group_by(
            placed.c.currency, placed.c.placed_month
        )
    ):
        out.setdefault(currency, {})[key] = {"placed": int(amount or 0), "collected": {}}
    paid_month = _month(JournalTransaction.occurred_on).label("paid_month")
    paid = (
        select(placed.c.currency, placed.c.placed_month, paid_month, -func.sum(JournalEntry.amount_minor))
        .select_from(JournalEntry)
        .join(JournalTransaction, _tx_join())
        .join(placed, placed.c.invoice_id == JournalEntry.invoice_id)
        .where(
            JournalEntry.client_id == client_id,
            JournalEntry.account == Account.RECEIVABLE.value,
            JournalEntry.payment_id.is_not(None),
        )
        .group_by(placed.c.currency, placed.c.placed_month, paid_month)
    )
    for currency, key, month, amount in db.session.execute(_dated(paid, as_of, posted_by)):
        row = out.setdefault(currency, {}).setdefault(key, {"placed": 0, "collected": {}})
        row["collected"][month] = int(amount or 0)
    return out


# --- debtors -----------------------------------------------------------------------------------------


def top_debtors(
    client_id: int, as_of: date, posted_by: datetime | None = None, limit: int = 10
) -> list[dict[str, Any]]:
    """The debtors with the most overdue money as of the date (open on invoices past due)."""
    per_invoice = open_by_invoice(client_id, as_of, posted_by)
    overdue = func.sum(per_invoice.c.open).label("overdue")
    stmt = (
        select(
            Debtor.id,
            Debtor.name,
            Debtor.external_ref,
            Invoice.currency,
            overdue,
            func.count().label("invoices"),
            func.min(Invoice.due_date),
        )
        .select_from(per_invoice)
        .join(Invoice, and_(Invoice.client_id == per_invoice.c.client_id, Invoice.id == per_invoice.c.invoice_id))
        .join(Debtor, and_(Debtor.client_id == Invoice.client_id, Debtor.id == Invoice.debtor_id))
        .where(per_invoice.c.open > 0, Invoice.due_date < as_of)
        .group_by(Debtor.id, Debtor.name, Debtor.external_ref, Invoice.currency)
        .order_by(overdue.desc(), Debtor.id)
        .limit(limit)
    )
    return [
        {
            "debtor_id": debtor_id,
            "name": name,
            "ref": ref,
            "currency": currency,
            "overdue": int(amount),
            "invoices": int(n),
            "oldest_due": oldest.isoformat() if isinstance(oldest, date) else str(oldest),
            "days": (as_of - (oldest if isinstance(oldest, date) else date.fromisoformat(str(oldest)))).days,
        }
        for debtor_id, name, ref, currency, amount, n, oldest in db.session.execute(stmt)
    ]
