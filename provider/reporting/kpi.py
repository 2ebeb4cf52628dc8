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

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ARRAY, Date, Integer, String, and_, case, cast, func, literal, or_, select

from clients import month_totals
from clients.journal import Account, Invoice, JournalEntry, JournalMonthTotal, JournalTransaction, TxKind
from clients.ledger_queries import BUCKETS, bucket_expression
from clients.models import Debtor
from provider.extensions import db
from provider.reporting import formulas as f

CASH = (Account.CASH_AGENCY.value, Account.CASH_CLIENT.value)
OTHER_FLOWS = (Account.WRITE_OFF.value, Account.SALES.value)


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
    """{currency: {month: {"sales", "agency", "client", "written_off", "credited"}}} for the months first..last,
    up to the day `last` (the month of `last` only so far: what occurred later in it must not leak in)."""
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
        _dated(stmt, last, posted_by, since=f.month_start(first))
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
    return [_debtor_row(row, as_of) for row in db.session.execute(stmt)]


def _debtor_row(row: Any, as_of: date) -> dict[str, Any]:
    debtor_id, name, ref, currency, amount, n, oldest = row
    return {
        "debtor_id": debtor_id,
        "name": name,
        "ref": ref,
        "currency": currency,
        "overdue": int(amount),
        "invoices": int(n),
        "oldest_due": oldest.isoformat() if isinstance(oldest, date) else str(oldest),
        "days": (as_of - (oldest if isinstance(oldest, date) else date.fromisoformat(str(oldest)))).days,
    }


# --- the single journal pass of `figures.collect_inputs` ------------------------------------------------


@dataclass
class JournalPass:
    """What one read of a client's journal gives `figures.collect_inputs` (same shapes as the functions above)."""

    flows: dict[str, Any]
    series: dict[str, list[tuple[int, int]]]
    stair: dict[str, dict[str, Any]]
    stale: bool  # a receivable entry occurred after the as-of date or was posted after the cut-off


def _bucket(column: Any, thresholds: list[date]) -> Any:
    """How many of the ascending `thresholds` are <= column (0 before the first; NULL for NULL)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.width_bucket(column, cast(literal(thresholds, type_=ARRAY(Date)), ARRAY(Date)))
    whens = [(column >= t, literal(len(thresholds) - i)) for i, t in enumerate(reversed(thresholds))]
    return case((column.is_(None), literal(None, type_=Integer)), *whens, else_=literal(0))


@contextmanager
def _analytic_settings() -> Iterator[None]:
    """PostgreSQL settings for one grouped read of a client's journal, restored afterwards.

    jit off: compiling such a statement (~100k rows, tens of ms) costs more than it saves, and much more for a
    big client, where the planner's cost passes the inlining threshold. work_mem 64MB: the planner cannot tell
    that a few hundred (month, due bucket, account) groups come out, so with the default 4MB it sorts ~100k rows
    on disk instead of hashing them. Both are transaction-local (`set_config(..., true)`) and put back at once.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        yield
        return
    wanted = {"jit": "off", "work_mem": "64MB"}
    before = db.session.execute(select(*(func.current_setting(k) for k in wanted))).one()
    db.session.execute(select(*(func.set_config(k, v, True) for k, v in wanted.items())))
    try:
        yield
    finally:
        db.session.execute(select(*(func.set_config(k, v, True) for k, v in zip(wanted, before, strict=True))))


def journal_pass(
    client_id: int, ends: list[date], stair_from: date, flows_from: date, posted_by: datetime | None = None
) -> JournalPass:
    """`flows_by_month`, `ar_series` and `recovery_stair` of one client from one grouped read of its journal.

    The client's entries (receivable, cash, write-off, sales) are joined to their transactions (and receivable
    entries to their invoices' due dates) and summed in SQL by (currency, account, kind, month bucket, due bucket,
    late): a few hundred rows, from which the month flows, the AR series and the placed amounts follow. The stair's
    collected amounts (allocations to invoices placed since `stair_from`, by placement and payment month) come from
    the receivable entries alone (placements in the window and allocations), found with a window over each invoice's
    entries instead of a self-join. Both parts are one statement, and no row of the journal reaches Python.
    Nothing is dropped in SQL for being after the as-of date, so the pass also tells whether the cached invoice
    balances equal the journal's as of then (`stale` false).
    """
    end = ends[-1]
    last_day = f.month_end(end)
    months: list[date] = []
    month = f.month_start(flows_from)
    while month <= end:
        months.append(month)
        month = f.add_months(month, 1)
    split = end < last_day  # the last month's bucket holds only entries up to `end`; the rest of it follows
    thresholds = months + ([end + timedelta(days=1)] if split else []) + [last_day + timedelta(days=1)]
    count = len(months)  # buckets 1..count: those months, up to `end`; count + 1: rest of end's month if split
    stair_first = months.index(f.month_start(stair_from)) + 1 if f.month_start(stair_from) in months else 1

    je, tx, inv = JournalEntry.__table__, JournalTransaction.__table__, Invoice.__table__
    late = (tx.c.posted_at > posted_by) if posted_by is not None else literal(False)
    rec = Account.RECEIVABLE.value
    mb = _bucket(tx.c.occurred_on, thresholds).label("mb")
    dk = _bucket(inv.c.due_date, ends).label("dk")
    on_tx = and_(tx.c.client_id == je.c.client_id, tx.c.id == je.c.transaction_id)
    grouped = (
        select(
            literal("f").label("tag"),
            je.c.currency,
            je.c.account,
            tx.c.kind,
            mb,
            late.label("late"),
            dk,
            func.sum(je.c.amount_minor).label("amount"),
            func.count().label("n"),
            literal(None, type_=String).label("early"),
        )
        .select_from(je)
        .join(tx, on_tx)
        .outerjoin(inv, and_(je.c.account == rec, inv.c.client_id == je.c.client_id, inv.c.id == je.c.invoice_id))
        .where(je.c.client_id == client_id, je.c.account.in_([rec, *CASH, *OTHER_FLOWS]))
        .group_by(je.c.currency, je.c.account, tx.c.kind, mb, late, dk)
    )
    # the stair: receivable entries only, each tagged placement (an invoice_placed entry in the stair's months,
    # posted by the cut-off) or payment (an allocation, or its reversal); the placement month of the invoice
    # comes from a window over the invoice's entries
    not_late = tx.c.posted_at <= posted_by if posted_by is not None else literal(True)
    placement = and_(tx.c.kind == TxKind.INVOICE.value, not_late, mb.between(stair_first, count))
    payment = and_(je.c.payment_id.is_not(None), not_late, mb <= count)
    by_invoice = {"partition_by": je.c.invoice_id}
    pieces = (
        select(
            case((placement, literal(1)), else_=literal(2)).label("role"),
            je.c.amount_minor.label("amount"),
            mb,
            tx.c.occurred_on.label("occ"),
            func.max(case((placement, mb))).over(**by_invoice).label("placed_mb"),
            func.max(case((placement, je.c.currency))).over(**by_invoice).label("placed_currency"),
            func.count(case((placement, literal(1)))).over(**by_invoice).label("times"),
        )
        .select_from(je)
        .join(tx, on_tx)
        .where(
            je.c.client_id == client_id,
            je.c.account == rec,
            or_(tx.c.kind == TxKind.INVOICE.value, je.c.payment_id.is_not(None)),
            or_(placement, payment),
        )
        .subquery("pieces")
    )
    p = pieces.c
    early = case((p.mb == 0, _month(p.occ)), else_=literal(None, type_=String))
    paid = (
        select(
            literal("p").label("tag"),
            p.placed_currency,
            literal(None, type_=String),
            literal(None, type_=String),
            p.placed_mb,
            literal(False),
            p.mb,
            -func.sum(p.amount * p.times),
            func.count(),
            early,
        )
        .where(p.role == 2, p.placed_mb.is_not(None))
        .group_by(p.placed_currency, p.placed_mb, p.mb, early)
    )
    with _analytic_settings():
        rows = db.session.execute(grouped.union_all(paid)).all()
    return _fold(rows, months, ends, count, stair_first)


def totals_pass(
    client_id: int, ends: list[date], stair_from: date, flows_from: date, posted_by: datetime | None = None
) -> JournalPass:
    """`journal_pass` from the monthly totals (`journal_month_totals`, a few hundred rows a client) instead of
    the whole journal.

    Months after `end`'s are left out (a receivable entry there makes the pass `stale`, as in `journal_pass`).
    When `end` falls inside a month and some of that month occurred after it, that month alone is read from
    the journal up to `end` (through the (client_id, occurred_on) index, 0017). With a posting cut-off, the
    entries posted after it are read through the (client_id, posted_at) index and taken out, key by key. The
    last point of the AR series holds the AR at `end` exactly, but its *current* AR only when `end` is a month's
    last day (due dates are kept to the month): `figures.collect_inputs` takes it from the aging otherwise.
    """
    end = ends[-1]
    end_month = f.month_start(end)
    months: list[date] = []
    month = f.month_start(flows_from)
    while month <= end:
        months.append(month)
        month = f.add_months(month, 1)
    count = len(months)
    index = {m: i + 1 for i, m in enumerate(months)}
    stair_first = index.get(f.month_start(stair_from), 1)
    rec = Account.RECEIVABLE.value
    je, tx = JournalEntry.__table__, JournalTransaction.__table__
    day = month_totals.as_date
    query = month_totals.grouped_totals(JournalMonthTotal.__table__.c.client_id == client_id)
    totals = [(_key(row), row) for row in db.session.execute(query)]
    split = any(key[3] == end_month and day(row.last_occurred_on) > end for key, row in totals)
    cells: dict[tuple[Any, ...], list[int]] = {}
    stale = False

    def add(keyed: Any, sign: int = 1) -> None:
        for key, row in keyed:
            cell = cells.setdefault(key, [0, 0])
            cell[0] += sign * int(row.amount_minor)
            cell[1] += sign * int(row.entries)

    kept = []
    for key, row in totals:
        if key[3] > end_month or (split and key[3] == end_month):
            stale = stale or (row.account == rec and day(row.last_occurred_on) > end)
        else:
            kept.append((key, row))
    add(kept)
    mine = je.c.client_id == client_id
    if split:  # the month of `end`, up to `end`, from the journal (what was posted by the cut-off)
        by_cutoff = [tx.c.posted_at <= posted_by] if posted_by is not None else []
        month_so_far = month_totals.keyed_journal(
            db.session, mine, tx.c.occurred_on >= end_month, tx.c.occurred_on <= end, *by_cutoff
        )
        add((_key(row), row) for row in db.session.execute(month_so_far))
    if posted_by is not None:
        late = month_totals.keyed_journal(db.session, mine, tx.c.posted_at > posted_by, tx.c.occurred_on <= end)
        late_rows = [(_key(row), row) for row in db.session.execute(late)]
        stale = stale or any(row.account == rec for _, row in late_rows)
        add([(key, row) for key, row in late_rows if not (split and key[3] == end_month)], sign=-1)
    month_ends = [f.month_start(e) for e in ends]
    rows: list[tuple[Any, ...]] = []
    for (currency, account, kind, occurred, due, placed), (amount, n) in cells.items():
        if not n:
            continue  # every entry of the key was posted after the cut-off
        mb = index.get(occurred, 0)
        dk = None if due is None else sum(1 for m in month_ends if m < due)
        rows.append(("f", currency, account, kind, mb, False, dk, amount, n, None))
        placed_mb = index.get(placed) if placed is not None else None
        if account == rec and placed_mb is not None and stair_first <= placed_mb:
            rows.append(("p", currency, None, None, placed_mb, False, mb, -amount, n, f.month_key(occurred)))
    folded = _fold(rows, months, ends, count, stair_first)
    folded.stale = stale  # the rows handed to `_fold` are all on or before `end` and posted by the cut-off
    return folded


def _key(row: Any) -> tuple[Any, ...]:
    day = month_totals.as_date
    return (row.currency, row.account, row.kind, day(row.month), day(row.due_month), day(row.placed_month))


def _end_buckets(months: list[date], ends: list[date], count: int) -> list[int]:
    """The last month bucket that lies entirely on or before each date in `ends` (the final end: `count`)."""
    index = {m: i + 1 for i, m in enumerate(months)}
    out = []
    for e in ends[:-1]:
        out.append(index.get(f.month_start(e), 0 if e < months[0] else count))
    return [*out, count]


def _fold(rows: list[Any], months: list[date], ends: list[date], count: int, stair_first: int) -> JournalPass:
    keys = [f.month_key(m) for m in months]
    flow_of = {Account.CASH_AGENCY.value: "agency", Account.CASH_CLIENT.value: "client"}
    flows: dict[str, dict[str, dict[str, int]]] = {}
    ar: dict[str, dict[tuple[int, int], int]] = {}
    stair: dict[str, dict[str, Any]] = {}
    paid_rows = []
    stale = False
    for tag, currency, account, kind, mb, late, dk, amount, n, early in rows:
        if tag == "p":
            paid_rows.append((currency, mb, dk, amount, early))
            continue
        amount, mb = int(amount or 0), int(mb)
        if account == Account.RECEIVABLE.value and (late or mb > count):
            stale = True
        if late:
            continue
        if 1 <= mb <= count:
            flow = flows.setdefault(currency, {}).setdefault(
                keys[mb - 1],
                {"sales": 0, "agency": 0, "client": 0, "written_off": 0, "credited": 0},
            )
            if account == Account.RECEIVABLE.value and kind == TxKind.INVOICE.value:
                flow["sales"] += amount
            elif account in flow_of:
                flow[flow_of[account]] += amount
            elif account == Account.WRITE_OFF.value:
                flow["written_off"] += amount
            elif account == Account.SALES.value and kind == TxKind.CREDIT_NOTE.value:
                flow["credited"] += amount
        if account != Account.RECEIVABLE.value or mb > count:
            continue
        if dk is not None:
            cell = ar.setdefault(currency, {})
            cell[(mb, int(dk))] = cell.get((mb, int(dk)), 0) + amount
        if kind == TxKind.INVOICE.value and stair_first <= mb and n:
            row = stair.setdefault(currency, {}).setdefault(keys[mb - 1], {"placed": 0, "collected": {}})
            row["placed"] += amount
    for currency, placed_mb, paid_mb, amount, early in paid_rows:
        row = stair.setdefault(currency, {}).setdefault(keys[int(placed_mb) - 1], {"placed": 0, "collected": {}})
        paid_key = early if int(paid_mb) == 0 else keys[int(paid_mb) - 1]
        row["collected"][paid_key] = row["collected"].get(paid_key, 0) + int(amount or 0)
    limits = _end_buckets(months, ends, count)
    series = {}
    for currency, cells in ar.items():
        series[currency] = [
            (
                sum(v for (mb, _), v in cells.items() if mb <= limit),
                sum(v for (mb, dk), v in cells.items() if mb <= limit and dk > i),
            )
            for i, limit in enumerate(limits)
        ]
    return JournalPass(flows, series, stair, stale)


# --- aging and top debtors from the cached invoice balances ------------------------------------------------


def aging_cached(client_id: int, as_of: date) -> dict[str, AgingFigures]:
    """`aging_at` from `invoices.open_minor`: equal to it when no receivable entry of the client occurred after
    `as_of` (or was posted after the cut-off), since the cached balance is the sum of the invoice's receivable
    entries (a ledger invariant) and every invoice has its placement entry."""
    bucket = bucket_expression(as_of).label("bucket")
    stmt = (
        select(
            Invoice.currency, bucket, func.sum(Invoice.open_minor), func.sum(case((Invoice.open_minor > 0, 1), else_=0))
        )
        .where(Invoice.client_id == client_id, Invoice.open_minor > 0)  # paid invoices add nothing
        .group_by(Invoice.currency, bucket)
    )
    return _aging_rows(db.session.execute(stmt))


def _aging_rows(rows: Any) -> dict[str, AgingFigures]:
    """{currency: AgingFigures} from rows (currency, bucket, amount, open invoices)."""
    result: dict[str, AgingFigures] = {}
    for currency, name, amount, n in rows:
        figures = result.setdefault(currency, AgingFigures(currency))
        figures.amounts[name] += int(amount or 0)
        figures.counts[name] += int(n or 0)
    return result


def _named_debtors(top: Any, client_id: Any, as_of: date) -> list[dict[str, Any]]:
    """The rows of `top` (debtor_id, currency, overdue, invoices, oldest), joined to their debtors, in order."""
    stmt = (
        select(Debtor.id, Debtor.name, Debtor.external_ref, top.c.currency, top.c.overdue, top.c.invoices, top.c.oldest)
        .join(top, and_(Debtor.client_id == client_id, Debtor.id == top.c.debtor_id))
        .order_by(top.c.overdue.desc(), Debtor.id)
    )
    return [_debtor_row(row, as_of) for row in db.session.execute(stmt)]


def top_debtors_cached(client_id: int, as_of: date, limit: int = 10) -> list[dict[str, Any]]:
    """`top_debtors` from the cached invoice balances (same condition as `aging_cached`).

    The client's overdue open invoices are summed per debtor first and only the top `limit` are joined to their
    debtors (the debtor id decides the order among equal amounts, as in `top_debtors`)."""
    overdue = func.sum(Invoice.open_minor).label("overdue")
    top = (
        select(
            Invoice.client_id,
            Invoice.debtor_id,
            Invoice.currency,
            overdue,
            func.count().label("invoices"),
            func.min(Invoice.due_date).label("oldest"),
        )
        .where(Invoice.client_id == client_id, Invoice.open_minor > 0, Invoice.due_date < as_of)
        .group_by(Invoice.client_id, Invoice.debtor_id, Invoice.currency)
        .order_by(overdue.desc(), Invoice.debtor_id)
        .limit(limit)
        .subquery()
    )
    return _named_debtors(top, top.c.client_id, as_of)


# --- aging and top debtors at a past date: the cached balances less what came after ----------------------


def _open_then(client_id: int, as_of: date, posted_by: datetime | None) -> Any:
    """Subquery (currency, due_date, debtor_id, open): each invoice's receivable balance as of the date and cut-off,
    from its cached balance less the receivable entries that occurred after the date or were posted after the
    cut-off. Those are found through the transactions' (client_id, occurred_on) and (client_id, posted_at)
    indexes, so a date shortly before today reads little of the journal. An invoice counts when some entry of
    it remains (it existed then), as in `open_by_invoice`; untouched open invoices come from the open-invoice
    index."""
    je, tx, inv = JournalEntry.__table__, JournalTransaction.__table__, Invoice.__table__
    rec = Account.RECEIVABLE.value
    after = tx.c.occurred_on > as_of
    if posted_by is not None:
        after = or_(after, tx.c.posted_at > posted_by)
    later = (
        select(
            je.c.invoice_id.label("invoice_id"),
            func.sum(je.c.amount_minor).label("amount"),
            func.count().label("n"),
        )
        .select_from(je.join(tx, and_(tx.c.client_id == je.c.client_id, tx.c.id == je.c.transaction_id)))
        .where(je.c.client_id == client_id, tx.c.client_id == client_id, je.c.account == rec, after)
        .where(je.c.invoice_id.is_not(None))
        .group_by(je.c.invoice_id)
        .cte("later")
    )
    mine = inv.c.client_id == client_id
    untouched = select(inv.c.currency, inv.c.due_date, inv.c.debtor_id, inv.c.open_minor.label("open")).where(
        mine, inv.c.open_minor > 0, ~select(later.c.invoice_id).where(later.c.invoice_id == inv.c.id).exists()
    )
    other = je.alias("entries")
    entries = (
        select(func.count())
        .where(other.c.client_id == client_id, other.c.invoice_id == later.c.invoice_id, other.c.account == rec)
        .scalar_subquery()
    )
    touched = (
        select(inv.c.currency, inv.c.due_date, inv.c.debtor_id, (inv.c.open_minor - later.c.amount).label("open"))
        .select_from(later.join(inv, and_(mine, inv.c.id == later.c.invoice_id)))
        .where(entries > later.c.n)
    )
    return untouched.union_all(touched).subquery("open_then")


def aging_then(client_id: int, as_of: date, posted_by: datetime | None = None) -> dict[str, AgingFigures]:
    """`aging_at` from the cached balances less what came after (see `_open_then`)."""
    then = _open_then(client_id, as_of, posted_by)
    bucket = bucket_expression(as_of, then.c.due_date).label("bucket")
    stmt = select(
        then.c.currency, bucket, func.sum(then.c.open), func.sum(case((then.c.open > 0, 1), else_=0))
    ).group_by(then.c.currency, bucket)
    return _aging_rows(db.session.execute(stmt))


def top_debtors_then(
    client_id: int, as_of: date, posted_by: datetime | None = None, limit: int = 10
) -> list[dict[str, Any]]:
    """`top_debtors` from the cached balances less what came after (see `_open_then`)."""
    then = _open_then(client_id, as_of, posted_by)
    overdue = func.sum(then.c.open).label("overdue")
    top = (
        select(
            then.c.debtor_id,
            then.c.currency,
            overdue,
            func.count().label("invoices"),
            func.min(then.c.due_date).label("oldest"),
        )
        .where(then.c.open > 0, then.c.due_date < as_of)
        .group_by(then.c.debtor_id, then.c.currency)
        .order_by(overdue.desc(), then.c.debtor_id)
        .limit(limit)
        .subquery()
    )
    return _named_debtors(top, client_id, as_of)
