"""Monthly journal totals (`journal_month_totals`): what they hold, rebuilding, compacting and checking them.

The database keeps them: a trigger on `journal_entries` (migration 0015) inserts, for each statement that posts
entries, their sums by key (see `JournalMonthTotal`). Every posting path (the ORM, the bulk placement and payment
loads, the single payment's one statement) is covered without any of them knowing. This module holds the same
mapping from journal rows to keys in SQL (`keyed_journal`), which

- `rebuild()` uses to recompute a client's totals from its journal (after a load that bypassed triggers, such
  as a benchmark's seed, or to repair); the migration's backfill is the same statement;
- `kpi.totals_pass()` uses to take out the entries posted after a report's cut-off;
- `mismatches()` uses to prove the totals equal the journal (the tests run it after every test).

`compact()` folds a client's rows into one per key, in one statement on PostgreSQL (`DELETE ... RETURNING`
feeding the `INSERT`), so rows that concurrent postings commit meanwhile are neither lost nor counted twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from clients.journal import Account, Invoice, JournalEntry, JournalMonthTotal, JournalTransaction, TxKind
from provider.core.jobs import job
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db

TOTALLED_ACCOUNTS = (Account.RECEIVABLE, Account.CASH_AGENCY, Account.CASH_CLIENT, Account.WRITE_OFF, Account.SALES)
KEY = ("currency", "account", "kind", "month", "due_month", "placed_month")


def _pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def month_of(session: Session, column: Any, days: int = 0) -> Any:
    """The first day of the month of `column` (+ `days`), as a date, in the session's dialect."""
    if _pg(session):
        shifted = column + sa.literal(days) if days else column
        return sa.cast(sa.func.date_trunc("month", shifted), sa.Date)
    if days:
        return sa.func.date(column, f"{days:+d} days", "start of month")
    return sa.func.date(column, "start of month")


def keyed_journal(session: Session, *where: Any, client_id: int | None = None) -> Any:
    """Journal entries (joined to their transactions as `tx`) as rows of the totals' key with sum, count and
    last occurrence, grouped; `where` narrows the entries (by client, by posting time, ...). With `client_id`
    every table read names that client itself (so Citus runs the statement on that client's shards alone)."""
    je, tx, inv = JournalEntry.__table__, JournalTransaction.__table__, Invoice.__table__
    rec = Account.RECEIVABLE.value
    pe, pt = je.alias("placement"), tx.alias("placement_tx")
    one = [] if client_id is None else [t.c.client_id == client_id for t in (je, tx)]
    one_pe = [] if client_id is None else [pe.c.client_id == client_id, pt.c.client_id == client_id]
    one_inv = [] if client_id is None else [inv.c.client_id == client_id]
    placed = (
        sa.select(sa.func.min(month_of(session, pt.c.occurred_on)))
        .select_from(pe.join(pt, sa.and_(pt.c.client_id == pe.c.client_id, pt.c.id == pe.c.transaction_id)))
        .where(
            pe.c.client_id == je.c.client_id,
            pe.c.invoice_id == je.c.invoice_id,
            pe.c.account == rec,
            pt.c.kind == TxKind.INVOICE.value,
            *one_pe,
        )
        .scalar_subquery()
    )
    due = (
        sa.select(month_of(session, inv.c.due_date, days=1))
        .where(inv.c.client_id == je.c.client_id, inv.c.id == je.c.invoice_id, *one_inv)
        .scalar_subquery()
    )
    per_entry = (
        sa.select(
            je.c.client_id.label("client_id"),
            je.c.currency.label("currency"),
            je.c.account.label("account"),
            tx.c.kind.label("kind"),
            month_of(session, tx.c.occurred_on).label("month"),
            sa.case((je.c.account == rec, due)).label("due_month"),
            sa.case((sa.and_(je.c.account == rec, je.c.payment_id.is_not(None)), placed)).label("placed_month"),
            je.c.amount_minor.label("amount_minor"),
            tx.c.occurred_on.label("occurred_on"),
        )
        .select_from(je.join(tx, sa.and_(tx.c.client_id == je.c.client_id, tx.c.id == je.c.transaction_id)))
        .where(
            je.c.account.in_([a.value for a in TOTALLED_ACCOUNTS]),
            sa.or_(je.c.account != Account.SALES.value, je.c.credit_note_id.is_not(None)),
            *where,
            *one,
        )
        .subquery("per_entry")
    )
    key = [per_entry.c.client_id, *(per_entry.c[k] for k in KEY)]
    return sa.select(
        *key,
        sa.func.sum(per_entry.c.amount_minor).label("amount_minor"),
        sa.func.count().label("entries"),
        sa.func.max(per_entry.c.occurred_on).label("last_occurred_on"),
    ).group_by(*key)


def grouped_totals(*where: Any) -> Any:
    """The totals table grouped by client and key (as `keyed_journal` gives them)."""
    t = JournalMonthTotal.__table__
    columns = [t.c.client_id, *(t.c[k] for k in KEY)]
    return (
        sa.select(
            *columns,
            sa.func.sum(t.c.amount_minor).label("amount_minor"),
            sa.func.sum(t.c.entries).label("entries"),
            sa.func.max(t.c.last_occurred_on).label("last_occurred_on"),
        )
        .where(*where)
        .group_by(*columns)
    )


_COLUMNS = ["client_id", *KEY, "amount_minor", "entries", "last_occurred_on"]


def kept_by_trigger(session: Session) -> bool:
    """Whether the database's trigger keeps the totals as entries are inserted (SQLite and PostgreSQL). On Citus
    the trigger is dropped by `flask db distribute` (on a shard it cannot read the other tables it needs), and
    the posting statements add the totals themselves (`add_posted`)."""
    return not session.connection().connection.info.get("citus")


def add_posted(session: Session, client_id: int, *where: Any) -> None:
    """Add the totals of the client's entries just inserted (`where` picks them: by transaction or payment), as
    the trigger does: one row per key, folded later by `compact`. Only where the trigger does not
    (`kept_by_trigger`)."""
    t = JournalMonthTotal.__table__
    # read, then insert: Citus runs each on the client's shards, where an INSERT ... SELECT with these subqueries
    # would be pulled to the coordinator and copied back (refused under row-level security)
    rows = [dict(r._mapping) for r in session.execute(keyed_journal(session, *where, client_id=client_id))]
    if rows:
        session.execute(sa.insert(t), rows)


def rebuild(session: Session, client_ids: Iterable[int]) -> None:
    """Recompute these clients' totals from their journals (one compact row per key)."""
    t = JournalMonthTotal.__table__
    for client_id in client_ids:
        session.execute(sa.delete(t).where(t.c.client_id == client_id))
        session.execute(
            sa.insert(t).from_select(_COLUMNS, keyed_journal(session, JournalEntry.__table__.c.client_id == client_id))
        )


def compact(session: Session, client_id: int) -> None:
    """Fold the client's rows into one per key; the sums stay the same (see the module's docstring)."""
    t = JournalMonthTotal.__table__
    if _pg(session):
        rewriting(session, client_id)
        gone = sa.delete(t).where(t.c.client_id == client_id).returning(*(t.c[c] for c in _COLUMNS)).cte("gone")
        key = [gone.c.client_id, *(gone.c[k] for k in KEY)]
        folded = sa.select(
            *key, sa.func.sum(gone.c.amount_minor), sa.func.sum(gone.c.entries), sa.func.max(gone.c.last_occurred_on)
        ).group_by(*key)
        session.execute(sa.insert(t).from_select(_COLUMNS, folded))
        return
    # SQLite: one writer at a time, so the rows read here are the rows deleted
    last = session.scalar(sa.select(sa.func.max(t.c.id)).where(t.c.client_id == client_id))
    if last is None:
        return
    mine = sa.and_(t.c.client_id == client_id, t.c.id <= last)
    rows = [dict(r._mapping) for r in session.execute(grouped_totals(mine))]
    session.execute(sa.delete(t).where(mine))
    if rows:
        session.execute(sa.insert(t), rows)


def _normalised(rows: Iterable[Any]) -> dict[tuple[Any, ...], tuple[int, int, date]]:
    out = {}
    for r in rows:
        m = r._mapping
        key = (m["client_id"], *(as_date(m[k]) if k.endswith("month") else m[k] for k in KEY))
        if int(m["amount_minor"]) or int(m["entries"]):
            out[key] = (int(m["amount_minor"]), int(m["entries"]), as_date(m["last_occurred_on"]))
    return out


def as_date(value: Any) -> Any:
    """A date read back from the database (SQLite gives computed dates as text); None stays None."""
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def mismatches(session: Session, client_ids: Iterable[int] | None = None) -> list[str]:
    """Where the totals differ from the journal recomputed (empty when they agree), for these or all clients."""
    ids = None if client_ids is None else list(client_ids)
    je, t = JournalEntry.__table__, JournalMonthTotal.__table__
    journal = _normalised(session.execute(keyed_journal(session, *([] if ids is None else [je.c.client_id.in_(ids)]))))
    totals = _normalised(session.execute(grouped_totals(*([] if ids is None else [t.c.client_id.in_(ids)]))))
    out = []
    for key in sorted(set(journal) | set(totals), key=repr):
        if journal.get(key) != totals.get(key):
            out.append(f"{key}: journal {journal.get(key)} != totals {totals.get(key)}")
    return out


@job(queue="low", timeout=600, title="Journal totals upkeep")
def compact_month_totals_job(client_id: int) -> str:
    """Compact one client's totals (queued after bulk loads; the nightly snapshot compacts every client)."""
    with scoped(TenantScope.single(client_id), db.session):
        compact(db.session, client_id)
        db.session.flush()
    return "compacted"


def move_due_month(session: Session, client_id: int, currency: str, old_due: date, new_due: date) -> None:
    """An invoice's due date changed (already flushed) from `old_due` to `new_due`: its receivable entries now
    belong under another due month. The totals of the two due months (this client, currency, the receivable
    account) are recomputed from the journal: on PostgreSQL in one statement (the rows deleted and the journal
    read share one snapshot, so an entry a concurrent posting commits meanwhile is counted exactly once, by its
    own trigger's row or by this recomputation); on SQLite, one writer at a time, in two."""
    months = {_due_month(old_due), _due_month(new_due)}
    if len(months) == 1:
        return
    t, je, inv = JournalMonthTotal.__table__, JournalEntry.__table__, Invoice.__table__
    first, last = min(months), max(months)
    due_in_range = sa.select(inv.c.id).where(
        inv.c.client_id == client_id,
        inv.c.due_date >= first - timedelta(days=1),
        inv.c.due_date < _next_month(last) - timedelta(days=1),
    )
    keyed = keyed_journal(
        session,
        je.c.client_id == client_id,
        je.c.account == Account.RECEIVABLE.value,
        je.c.currency == currency,
        je.c.invoice_id.in_(due_in_range),
    ).subquery("keyed")
    recomputed = sa.select(*(keyed.c[c] for c in _COLUMNS)).where(keyed.c.due_month.in_(sorted(months)))
    stale = sa.and_(
        t.c.client_id == client_id,
        t.c.account == Account.RECEIVABLE.value,
        t.c.currency == currency,
        t.c.due_month.in_(sorted(months)),
    )
    if _pg(session):
        rewriting(session, client_id)
        gone = sa.delete(t).where(stale).returning(t.c.id).cte("gone")
        session.execute(sa.insert(t).from_select(_COLUMNS, recomputed).add_cte(gone))
        return
    session.execute(sa.delete(t).where(stale))
    session.execute(sa.insert(t).from_select(_COLUMNS, recomputed))


def _due_month(due: date) -> date:
    """The due month the totals key receivables by: the month of the day after the due date (see keyed_journal)."""
    return (due + timedelta(days=1)).replace(day=1)


def _next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


REWRITE_LOCK = 20251  # the advisory lock's namespace (provider.books.posting uses 20250)


def rewriting(session: Session, client_id: int) -> None:
    """PostgreSQL: serialise the statements that delete and re-insert a client's totals (`compact`,
    `move_due_month`) for the rest of the transaction. Without it, one that waited on rows the other deleted would
    not see the rows the other inserted and would count them again. Postings only insert, so they never wait."""
    session.execute(
        sa.text("SELECT pg_advisory_xact_lock(:ns, CAST(:c AS integer))"), {"ns": REWRITE_LOCK, "c": client_id}
    )
