"""Posting to the agency's books: the one writer of `agency_transactions` / `agency_entries`.

Guarantees:
- every transaction balances per currency (`check_balanced` before any write; the property tests re-check);
- posting is idempotent: (client, source, source_id, kind) is unique, and `bring_up_to_date` posts only what
  is missing (payments without a fee row, payment reversals without a books reversal, unpriced fees that a
  schedule now prices), under a per-client lock (`lock_books`), so a job that runs twice posts once;
- trust held for a client (the credit balance of TRUST_LIABILITY, per currency) never goes below zero: what a
  reversal or a late-priced fee would take beyond it is owed by the client (DUE_FROM_CLIENT) and netted on the
  next remittance run;
- a payment always posts: one without a schedule in force, or outside every tier, is *unpriced* (its row in
  `payment_fees` says why) and is priced by a later `bring_up_to_date` once a schedule covers it.

Per payment (P amount, F fee, T tax, R = P - F - T), debit +, credit -:

    to the agency       COLLECTION  trust_bank +P, trust_liability -R, fees_earned -F, tax_payable -T
    direct to client    DIRECT_FEE  fees_receivable +(F+T), fees_earned -F, tax_payable -T
    priced later        FEE         trust_liability +min(F+T, held), due_from_client +rest, fees -F, tax -T
                        (direct:    DIRECT_FEE as above)
    reversed (agency)   REVERSAL    trust_bank -P, fees_earned +F, tax_payable +T,
                                    trust_liability +min(R, held), due_from_client +rest
    reversed (direct)   REVERSAL    fees_earned +F, tax_payable +T, fees_receivable -(F+T)

Why a job and not the payment's own transaction: the single-payment path is one statement on PostgreSQL;
pricing needs the schedule and the debtor's placement and would triple it. The ledger's `payments_posted`
signal (sent in the payment's transaction) enqueues `post_books_job(client_id)` through the outbox, so the work
commits with the payment and runs exactly once in effect (at-least-once delivery, idempotent posting); a
periodic catch-up and every remittance run call `bring_up_to_date` first, so nothing is ever left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import CursorResult, Date, and_, bindparam, func, insert, literal_column, select, text
from sqlalchemy.orm import Session, aliased

from clients.journal import Account, Invoice, JournalEntry, JournalTransaction, Payment, ReceivedBy, TxKind
from provider.books import pricing
from provider.books.models import (
    AgencyAccount,
    AgencyEntry,
    AgencyTransaction,
    BooksKind,
    FeeSchedule,
    FeeStatus,
    PaymentFee,
    Source,
)
from provider.core import audit
from provider.core.clock import now_utc, today_utc
from provider.core.db import UTCDateTime
from provider.core.errors import ServiceError
from provider.core.statistics import GrowthWatch

A = AgencyAccount


class UnbalancedBooks(ServiceError):
    """The legs of an agency transaction do not sum to zero."""


@dataclass(frozen=True)
class Leg:
    account: AgencyAccount
    amount_minor: int


@dataclass
class Posting:
    kind: BooksKind
    source: Source
    source_id: int
    currency: str
    occurred_on: date
    legs: list[Leg]
    payment_id: int | None = None
    memo: str = ""


def check_balanced(legs: Iterable[Leg]) -> list[Leg]:
    """The legs without zeros; refused unless they sum to zero and at least two remain."""
    kept = [leg for leg in legs if leg.amount_minor != 0]
    if sum(leg.amount_minor for leg in kept) != 0:
        raise UnbalancedBooks(f"agency transaction does not balance: {kept}")
    return kept


_INSERT_TX = insert(AgencyTransaction.__table__).returning(
    AgencyTransaction.__table__.c.id, sort_by_parameter_order=True
)
_INSERT_ENTRY = insert(AgencyEntry.__table__)

# PostgreSQL: one statement per table whatever the number of rows, each column one array parameter (`unnest`).
# A multi-row VALUES list (SQLAlchemy's insertmanyvalues) sends a new SQL text of thousands of placeholders for
# every batch, which the driver parses again each time: most of the books' posting time before this.
_PG_TX = text(
    """
    INSERT INTO agency_transactions
        (client_id, kind, source, source_id, payment_id, currency, occurred_on, memo, posted_at, actor_label)
    SELECT :client_id, u.kind, u.source, u.source_id, u.payment_id, u.currency, u.occurred_on, u.memo,
           :posted_at, :actor_label
    FROM unnest(CAST(:kind AS text[]), CAST(:source AS text[]), CAST(:source_id AS bigint[]),
                CAST(:payment_id AS bigint[]), CAST(:currency AS text[]), CAST(:occurred_on AS date[]),
                CAST(:memo AS text[]))
         AS u(kind, source, source_id, payment_id, currency, occurred_on, memo)
    RETURNING id, source, source_id, kind
    """
)
_PG_ENTRIES = text(
    """
    INSERT INTO agency_entries (client_id, transaction_id, account, currency, amount_minor, payment_id)
    SELECT :client_id, u.transaction_id, u.account, u.currency, u.amount_minor, u.payment_id
    FROM unnest(CAST(:transaction_id AS bigint[]), CAST(:account AS text[]), CAST(:currency AS text[]),
                CAST(:amount_minor AS bigint[]), CAST(:payment_id AS bigint[]))
         AS u(transaction_id, account, currency, amount_minor, payment_id)
    """
)
_PG_FEES = text(
    """
    INSERT INTO payment_fees (client_id, payment_id, status, reason, direct, currency, amount_minor, schedule_id,
        tier_id, age_days, placed_minor, rate_bp, tax_rate_bp, fee_minor, tax_minor, updated_at)
    SELECT :client_id, u.payment_id, u.status, u.reason, u.direct, u.currency, u.amount_minor, u.schedule_id,
        u.tier_id, u.age_days, u.placed_minor, u.rate_bp, u.tax_rate_bp, u.fee_minor, u.tax_minor, :updated_at
    FROM unnest(CAST(:payment_id AS bigint[]), CAST(:status AS text[]), CAST(:reason AS text[]),
                CAST(:direct AS boolean[]), CAST(:currency AS text[]), CAST(:amount_minor AS bigint[]),
                CAST(:schedule_id AS bigint[]), CAST(:tier_id AS bigint[]), CAST(:age_days AS integer[]),
                CAST(:placed_minor AS bigint[]), CAST(:rate_bp AS integer[]), CAST(:tax_rate_bp AS integer[]),
                CAST(:fee_minor AS bigint[]), CAST(:tax_minor AS bigint[]))
         AS u(payment_id, status, reason, direct, currency, amount_minor, schedule_id, tier_id, age_days,
              placed_minor, rate_bp, tax_rate_bp, fee_minor, tax_minor)
    """
)
_FEE_COLUMNS = (
    "payment_id",
    "status",
    "reason",
    "direct",
    "currency",
    "amount_minor",
    "schedule_id",
    "tier_id",
    "age_days",
    "placed_minor",
    "rate_bp",
    "tax_rate_bp",
    "fee_minor",
    "tax_minor",
)


def _postgresql(session: Session) -> bool:
    return session.connection().dialect.name == "postgresql"


def _columns(rows: list[dict[str, Any]], names: Iterable[str]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in names}


def insert_fee_rows(session: Session, client_id: int, rows: list[dict[str, Any]]) -> None:
    """`payment_fees` rows (as `_fee_row` makes them): one array INSERT on PostgreSQL, executemany on SQLite."""
    if not rows:
        return
    if _postgresql(session):
        params = {"client_id": client_id, "updated_at": rows[0]["updated_at"]} | _columns(rows, _FEE_COLUMNS)
        session.execute(_PG_FEES, params)
    else:
        session.execute(insert(PaymentFee.__table__), rows)


def post(session: Session, client_id: int, postings: list[Posting]) -> list[int]:
    """Post balanced transactions in bulk (one INSERT for headers, one for entries); returns their ids.

    A posting whose legs are all zero is skipped (nothing to record). The caller holds `lock_books` and has
    checked that none was posted before (a repeat violates the unique key and fails the whole call)."""
    kept = [(p, legs) for p in postings if len(legs := check_balanced(p.legs)) >= 2]
    if not kept:
        return []
    actor, now = audit.current_actor().label[:254], now_utc()
    if _postgresql(session):
        return _post_pg(session, client_id, kept, actor, now)
    headers = [
        {
            "client_id": client_id,
            "kind": p.kind.value,
            "source": p.source.value,
            "source_id": p.source_id,
            "payment_id": p.payment_id,
            "currency": p.currency,
            "occurred_on": p.occurred_on,
            "posted_at": now,
            "actor_label": actor,
            "memo": p.memo[:300],
        }
        for p, _ in kept
    ]
    ids = list(session.scalars(_INSERT_TX, headers))
    rows = [
        {
            "client_id": client_id,
            "transaction_id": tx_id,
            "account": leg.account.value,
            "currency": p.currency,
            "amount_minor": leg.amount_minor,
            "payment_id": p.payment_id,
        }
        for tx_id, (p, legs) in zip(ids, kept, strict=True)
        for leg in legs
    ]
    session.execute(_INSERT_ENTRY, rows)
    return ids


def _post_pg(
    session: Session, client_id: int, kept: list[tuple[Posting, list[Leg]]], actor: str, now: datetime
) -> list[int]:
    """`post` on PostgreSQL: two array INSERTs. The new ids come back keyed by (source, source_id, kind), unique per
    client, so the entries find their transaction whatever order RETURNING gives."""
    returned = session.execute(
        _PG_TX,
        {
            "client_id": client_id,
            "posted_at": now,
            "actor_label": actor,
            "kind": [p.kind.value for p, _ in kept],
            "source": [p.source.value for p, _ in kept],
            "source_id": [p.source_id for p, _ in kept],
            "payment_id": [p.payment_id for p, _ in kept],
            "currency": [p.currency for p, _ in kept],
            "occurred_on": [p.occurred_on for p, _ in kept],
            "memo": [p.memo[:300] for p, _ in kept],
        },
    ).all()
    by_key = {(source, source_id, kind): tx_id for tx_id, source, source_id, kind in returned}
    ids = [by_key[(p.source.value, p.source_id, p.kind.value)] for p, _ in kept]
    entries: dict[str, list[Any]] = {
        "transaction_id": [],
        "account": [],
        "currency": [],
        "amount_minor": [],
        "payment_id": [],
    }
    for tx_id, (p, legs) in zip(ids, kept, strict=True):
        for leg in legs:
            entries["transaction_id"].append(tx_id)
            entries["account"].append(leg.account.value)
            entries["currency"].append(p.currency)
            entries["amount_minor"].append(leg.amount_minor)
            entries["payment_id"].append(p.payment_id)
    session.execute(_PG_ENTRIES, {"client_id": client_id} | entries)
    return ids


def lock_books(session: Session, client_id: int) -> None:
    """Serialise every writer of one client's books (and the run that reads a watermark of them) until commit.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: writers already hold the database's write lock from
    BEGIN IMMEDIATE (provider.core.db), which serialises them."""
    if session.connection().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(20250, CAST(:c AS integer))"), {"c": client_id})


def balances(session: Session, client_id: int, upto_tx_id: int | None = None) -> dict[tuple[str, str], int]:
    """{(account, currency): balance} of one client's books (optionally up to a transaction id)."""
    e = AgencyEntry
    stmt = select(e.account, e.currency, func.sum(e.amount_minor)).where(e.client_id == client_id)
    if upto_tx_id is not None:
        stmt = stmt.where(e.transaction_id <= upto_tx_id)
    return {(a, c): int(s) for a, c, s in session.execute(stmt.group_by(e.account, e.currency))}


def held_in_trust(session: Session, client_id: int) -> dict[str, int]:
    """Trust held for the client per currency (what it is owed out of the trust account)."""
    return {c: -v for (a, c), v in balances(session, client_id).items() if a == A.TRUST_LIABILITY.value}


# --- loading what pricing needs ------------------------------------------------------------------------


def load_schedules(session: Session, client_id: int) -> list[pricing.Schedule]:
    rows = session.scalars(select(FeeSchedule).where(FeeSchedule.client_id == client_id))
    return [
        pricing.Schedule(
            s.id, s.version, s.effective_from, s.currency, s.tax_rate_bp, tuple(pricing.Tier.of(t) for t in s.tiers)
        )
        for s in rows
    ]


def placement_accounts(
    session: Session, client_id: int, debtor_ids: set[int]
) -> dict[int, dict[str, pricing.Account] | None]:
    """Per debtor: {currency: Account} of its first placement day (see provider.books.pricing)."""
    i = Invoice
    stmt = select(i.debtor_id, i.placed_at, i.due_date, i.currency, i.amount_minor).where(i.client_id == client_id)
    rows: list[Any] = []
    if len(debtor_ids) > 2000:  # most of the client: one scan beats thousands of IN lists
        rows = [r for r in session.execute(stmt) if r[0] in debtor_ids]
    else:
        wanted = sorted(debtor_ids)
        for n in range(0, len(wanted), 1000):
            rows += session.execute(stmt.where(i.debtor_id.in_(wanted[n : n + 1000]))).all()
    by_debtor: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        by_debtor[row[0]].append(row)
    out: dict[int, dict[str, pricing.Account] | None] = {}
    for debtor_id in debtor_ids:
        invoices = by_debtor.get(debtor_id)
        if not invoices:
            out[debtor_id] = None
            continue
        first = min(_utc_day(r[1]) for r in invoices)
        placed = [r for r in invoices if _utc_day(r[1]) == first]
        age = max(0, max((first - r[2]).days for r in placed))
        amounts: dict[str, int] = defaultdict(int)
        for r in placed:
            amounts[r[3]] += r[4]
        currencies = {r[3] for r in invoices}
        out[debtor_id] = {c: pricing.Account(age, amounts.get(c, 0)) for c in currencies}
    return out


def _utc_day(value: datetime) -> date:
    return value.date()  # placed_at is UTC (UTCDateTime)


def _account_for(
    accounts: dict[int, dict[str, pricing.Account] | None], debtor_id: int, currency: str
) -> pricing.Account | None:
    per_currency = accounts.get(debtor_id)
    if per_currency is None:
        return None
    return per_currency.get(currency) or pricing.Account(next(iter(per_currency.values())).age_days, 0)


# --- bringing the books up to date ---------------------------------------------------------------------


@dataclass
class CatchUp:
    """What one `bring_up_to_date` posted."""

    payments: int = 0
    unpriced: int = 0
    repriced: int = 0
    reversals: int = 0
    transactions: int = 0
    held: dict[str, int] = field(default_factory=dict)


CHUNK = 5_000  # payments priced and posted per round: memory stays flat however many are new


def _new_payments(
    session: Session, client_id: int, after: int = 0, limit: int | None = None, until: date | None = None
) -> list[Any]:
    """Payments without a `payment_fees` row, by id, after the payment id `after` (received by `until`)."""
    p, pf = Payment, PaymentFee
    return session.execute(
        select(p.id, p.debtor_id, p.received_on, p.currency, p.amount_minor, p.received_by)
        .outerjoin(pf, and_(pf.client_id == p.client_id, pf.payment_id == p.id))
        .where(p.client_id == client_id, pf.id.is_(None), p.id > after, *([p.received_on <= until] if until else []))
        .order_by(p.id)
        .limit(limit)
    ).all()


def _post_new_payments(
    session: Session, client_id: int, schedules: list[pricing.Schedule], done: CatchUp, until: date | None
) -> None:
    """Price and post every payment the books lack: those the SQL can price all at once
    (`_post_new_payments_in_sql`), then the rest (unpriced: the reason said in words), `CHUNK` at a time."""
    if schedules and _post_new_payments_in_sql(session, client_id, done, until):
        return
    after = 0
    watch = GrowthWatch(session, "payment_fees", "agency_transactions", "agency_entries")
    while payments := _new_payments(session, client_id, after, CHUNK, until):
        after = payments[-1].id
        debtors = {r.debtor_id for r in payments}
        accounts = placement_accounts(session, client_id, debtors) if schedules else {}
        postings: list[Posting] = []
        fee_rows: list[dict[str, Any]] = []
        now = now_utc()
        for p in payments:
            direct = p.received_by == ReceivedBy.CLIENT.value
            account = _account_for(accounts, p.debtor_id, p.currency) if accounts else None
            quote = pricing.price(schedules, account, p.received_on, p.currency, p.amount_minor, direct)
            fee_rows.append(_fee_row(client_id, p.id, p.currency, p.amount_minor, direct, quote, account, now))
            postings += _payment_postings(p, direct, quote, {})  # trust held is read after they are posted
            done.payments += 1
            done.unpriced += 0 if quote.priced else 1
        insert_fee_rows(session, client_id, fee_rows)
        done.transactions += len(post(session, client_id, postings))
        watch.wrote("payment_fees", len(fee_rows))
        watch.wrote("agency_transactions", len(postings))
        watch.wrote("agency_entries", sum(len(p.legs) for p in postings))


# --- the set-based path: pricing and posting new payments in the database ---------------------------------

# The pricing rules of `provider.books.pricing`, as SQL over every new payment of one client at once: the schedule
# in force (greatest effective_from on or before the day received), the debtor's placement (the invoices placed on
# its first placement day: their greatest age, never below 0, and their amount in the payment's currency), the
# first tier by (min age, min amount) that holds the account, fee = amount x rate and tax = fee x tax rate, both
# rounded half to even in integers. Payments it cannot price (no schedule, no placement, no tier) are left
# without a `payment_fees` row for the Python path, which records why; `tests/books/test_posting.py` checks
# that both paths agree payment by payment.
_DAY = {"postgresql": "CAST(timezone('UTC', i.placed_at) AS date)", "sqlite": "date(i.placed_at)"}
_DAYS = {
    "postgresql": "(n.first_day - i.due_date)",
    "sqlite": "CAST(julianday(n.first_day) - julianday(i.due_date) AS INTEGER)",
}


def _half_even(x: str) -> str:
    """`x` / 10,000 rounded half to even, for x >= 0 (integer arithmetic on both databases)."""
    q, r = f"(({x}) / 10000)", f"(({x}) % 10000)"
    return f"({q} + CASE WHEN 2 * {r} > 10000 OR (2 * {r} = 10000 AND {q} % 2 = 1) THEN 1 ELSE 0 END)"


def _pricing_ctes(dialect: str, until: bool) -> str:
    """WITH ... `priced`: one row per new payment the rules price (payment id, day received, currency, amount,
    direct, schedule, tier, age, placed amount, rates, fee, tax).

    A straight pipeline over the new payments: every lookup (first placement day, age, placed amount, schedule,
    tier, rate) is a scalar subquery through an index, never a join between two intermediate sets, so the plan
    stays linear in the number of new payments whatever the statistics think of them (a join of two CTEs is
    estimated at one row and planned as a nested loop: quadratic)."""
    received = "AND p.received_on <= :until" if until else ""
    day, days = _DAY[dialect], _DAYS[dialect]
    debtor_invoices = "FROM invoices i WHERE i.client_id = :client_id AND i.debtor_id = n.debtor_id"
    return f"""
    WITH new AS (
        SELECT p.id, p.debtor_id, p.received_on, p.currency, p.amount_minor, p.received_by = 'client' AS direct,
            (SELECT s.id FROM fee_schedules s
             WHERE s.client_id = :client_id AND s.effective_from <= p.received_on
             ORDER BY s.effective_from DESC LIMIT 1) AS schedule_id
        FROM payments p
        WHERE p.client_id = :client_id {received}
          AND NOT EXISTS (SELECT 1 FROM payment_fees pf WHERE pf.client_id = p.client_id AND pf.payment_id = p.id)
    ),
    placed AS MATERIALIZED (
        SELECT n.*, (SELECT min({day}) {debtor_invoices}) AS first_day FROM new n WHERE n.schedule_id IS NOT NULL
    ),
    accounted AS MATERIALIZED (
        SELECT n.*,
            (SELECT max({days}) {debtor_invoices} AND {day} = n.first_day) AS age,
            coalesce((SELECT sum(i.amount_minor) {debtor_invoices} AND {day} = n.first_day
                      AND i.currency = n.currency), 0) AS placed_minor,
            (SELECT s.currency FROM fee_schedules s WHERE s.client_id = :client_id AND s.id = n.schedule_id)
                AS schedule_currency,
            (SELECT s.tax_rate_bp FROM fee_schedules s WHERE s.client_id = :client_id AND s.id = n.schedule_id)
                AS tax_rate_bp
        FROM placed n
        WHERE n.first_day IS NOT NULL
    ),
    aged AS (SELECT a.*, CASE WHEN a.age < 0 THEN 0 ELSE a.age END AS age_days FROM accounted a),
    tiered AS MATERIALIZED (
        SELECT x.*,
            (SELECT t.id FROM fee_tiers t
             WHERE t.client_id = :client_id AND t.schedule_id = x.schedule_id
               AND x.age_days >= t.min_age_days AND (t.max_age_days IS NULL OR x.age_days <= t.max_age_days)
               AND ((t.min_amount_minor = 0 AND t.max_amount_minor IS NULL)
                    OR (x.currency = x.schedule_currency AND x.placed_minor >= t.min_amount_minor
                        AND (t.max_amount_minor IS NULL OR x.placed_minor <= t.max_amount_minor)))
             ORDER BY t.min_age_days, t.min_amount_minor LIMIT 1) AS tier_id
        FROM aged x
    ),
    rated AS MATERIALIZED (
        SELECT x.*,
            (SELECT CASE WHEN x.direct THEN t.direct_rate_bp ELSE t.rate_bp END
             FROM fee_tiers t WHERE t.client_id = :client_id AND t.id = x.tier_id) AS rate_bp
        FROM tiered x
        WHERE x.tier_id IS NOT NULL
    ),
    feed AS (SELECT r.*, {_half_even("r.amount_minor * r.rate_bp")} AS fee_minor FROM rated r),
    priced AS MATERIALIZED (SELECT x.*, {_half_even("x.fee_minor * x.tax_rate_bp")} AS tax_minor FROM feed x)
    """  # noqa: S608 - our own fragments, no input


_FEES_INTO = """
    INSERT INTO payment_fees (client_id, payment_id, status, reason, direct, currency, amount_minor, schedule_id,
        tier_id, age_days, placed_minor, rate_bp, tax_rate_bp, fee_minor, tax_minor, updated_at)
"""
_FEES_SELECT = """
    SELECT :client_id, x.id, 'priced', '', x.direct, x.currency, x.amount_minor, x.schedule_id, x.tier_id,
        x.age_days, x.placed_minor, x.rate_bp, x.tax_rate_bp, x.fee_minor, x.tax_minor, :now
    FROM priced x
    ORDER BY x.id
"""
# The postings of the fee rows: COLLECTION for a payment to the agency, DIRECT_FEE (when not zero) for one made
# directly to the client, then their legs from the fee row, zero legs left out, exactly as `_payment_postings`
# builds them.
_TX_SQL = """
    INSERT INTO agency_transactions
        (client_id, kind, source, source_id, payment_id, currency, occurred_on, memo, posted_at, actor_label)
    SELECT :client_id, CASE WHEN x.direct THEN 'direct_fee' ELSE 'collection' END, 'payment', x.id, x.id,
        x.currency, x.received_on, '', :now, :actor
    FROM {source}
    WHERE (NOT x.direct OR x.fee_minor + x.tax_minor <> 0) {where}
    ORDER BY x.id
"""
_LEGS = " UNION ALL ".join(
    f"SELECT '{kind}' AS kind, '{account.value}' AS account, '{amount}' AS leg"
    for kind, account, amount in (
        ("collection", A.TRUST_BANK, "p"),
        ("collection", A.TRUST_LIABILITY, "-r"),
        ("collection", A.FEES_EARNED, "-f"),
        ("collection", A.TAX_PAYABLE, "-t"),
        ("direct_fee", A.FEES_RECEIVABLE, "f+t"),
        ("direct_fee", A.FEES_EARNED, "-f"),
        ("direct_fee", A.TAX_PAYABLE, "-t"),
    )
)
_ENTRIES_SQL = f"""
    INSERT INTO agency_entries (client_id, transaction_id, account, currency, amount_minor, payment_id)
    SELECT :client_id, transaction_id, account, currency, amount_minor, payment_id FROM (
        SELECT t.id AS transaction_id, l.account, t.currency, t.payment_id,
            CASE l.leg
                WHEN 'p' THEN x.amount_minor
                WHEN '-r' THEN x.fee_minor + x.tax_minor - x.amount_minor
                WHEN '-f' THEN -x.fee_minor
                WHEN '-t' THEN -x.tax_minor
                ELSE x.fee_minor + x.tax_minor
            END AS amount_minor
        FROM {{transactions}}
        JOIN {{fees}} ON {{joined}}
        JOIN ({_LEGS}) l ON l.kind = t.kind
        {{where}}
    ) legs
    WHERE amount_minor <> 0
    ORDER BY transaction_id
"""  # noqa: S608 - our own fragments, no input
_UNBALANCED_SQL = """
    SELECT transaction_id FROM agency_entries
    WHERE client_id = :client_id AND transaction_id > :tx_after
    GROUP BY transaction_id HAVING sum(amount_minor) <> 0 OR count(*) < 2
    LIMIT 1
"""


def _pg_posting_sql(until: bool) -> str:
    """PostgreSQL: pricing, fee rows, transactions and entries in ONE statement (data-modifying CTEs). Each
    transaction's id is taken from its sequence beside its priced payment (`numbered`), so the transactions and
    their legs are both written straight from those rows: no step joins two sets or re-reads the books' tables,
    whose statistics cannot yet know the rows this transaction writes (a join planned on them estimated one row
    and looped: quadratic)."""
    transactions = _TX_SQL.format(source="numbered x", where="AND x.tx_id IS NOT NULL")
    transactions = transactions.replace("(client_id, kind,", "(id, client_id, kind,").replace(
        "SELECT :client_id, CASE", "SELECT x.tx_id, :client_id, CASE"
    )
    entries = (
        _ENTRIES_SQL.format(
            transactions="numbered x",
            fees="(SELECT x.tx_id AS id, x.currency, x.id AS payment_id, CASE WHEN x.direct THEN 'direct_fee'"
            " ELSE 'collection' END AS kind) t",
            joined="true",
            where="WHERE x.tx_id IS NOT NULL",
        )
        .replace("JOIN (SELECT x.tx_id", "CROSS JOIN LATERAL (SELECT x.tx_id")
        .replace(" ON true", "")
    )
    return f"""
    {_pricing_ctes("postgresql", until)},
    numbered AS MATERIALIZED (
        SELECT x.*, CASE WHEN NOT x.direct OR x.fee_minor + x.tax_minor <> 0
                         THEN nextval(pg_get_serial_sequence('agency_transactions', 'id')) END AS tx_id
        FROM (SELECT * FROM priced ORDER BY id) x
    ),
    fees AS ({_FEES_INTO} {_FEES_SELECT.replace("FROM priced x", "FROM numbered x")} RETURNING 1),
    tx AS ({transactions} RETURNING 1),
    ent AS ({entries} RETURNING 1)
    SELECT (SELECT count(*) FROM fees), (SELECT count(*) FROM tx), (SELECT count(*) FROM ent),
        (SELECT count(*) FROM new)
    """  # noqa: S608 - our own fragments, no input


_SQLITE_TX = _TX_SQL.format(source="payment_fees x", where="AND x.client_id = :client_id AND x.id > :fees_after")
_SQLITE_TX = _SQLITE_TX.replace(
    "x.received_on", "(SELECT p.received_on FROM payments p WHERE p.client_id = x.client_id AND p.id = x.payment_id)"
)
_SQLITE_TX = _SQLITE_TX.replace("'payment', x.id, x.id,", "'payment', x.payment_id, x.payment_id,")
_SQLITE_TX = _SQLITE_TX.replace("ORDER BY x.id", "ORDER BY x.payment_id")
_SQLITE_ENTRIES = _ENTRIES_SQL.format(
    transactions="agency_transactions t",
    fees="payment_fees x",
    joined="x.client_id = t.client_id AND x.payment_id = t.payment_id",
    where="WHERE t.client_id = :client_id AND t.id > :tx_after AND t.source = 'payment'"
    " AND t.kind IN ('collection', 'direct_fee')",
)


def _rowcount(session: Session, statement: Any, params: dict[str, Any]) -> int:
    result: CursorResult[Any] = session.execute(statement, params)  # type: ignore[assignment]
    return int(result.rowcount)


def _post_new_payments_in_sql(session: Session, client_id: int, done: CatchUp, until: date | None) -> bool:
    """Price every new payment the SQL can price and post it, whatever their number: one statement on PostgreSQL
    (`_pg_posting_sql`), three INSERT ... SELECT on SQLite (fee rows, transactions, entries; the rows of this round
    found above the watermarks taken under `lock_books`). Balanced by construction, and checked: a transaction of
    this round whose legs do not sum to zero (or that has fewer than two) refuses the whole call.

    True when every new payment was priced here (PostgreSQL counts them), so the Python path has nothing to do."""
    pf, t = PaymentFee, AgencyTransaction
    watch = GrowthWatch(session, "payment_fees", "agency_transactions", "agency_entries")
    tx_after = session.scalar(select(func.coalesce(func.max(t.id), 0)).where(t.client_id == client_id))
    binds: list[Any] = [bindparam("now", now_utc(), type_=UTCDateTime())]
    if until is not None:
        binds.append(bindparam("until", until, type_=Date()))
    params = {"client_id": client_id, "actor": audit.current_actor().label[:254], "tx_after": tx_after}
    if session.connection().dialect.name == "postgresql":
        row = session.execute(text(_pg_posting_sql(until is not None)).bindparams(*binds), params).one()
        priced, posted, entries, seen = (int(v) for v in row)
    else:
        params["fees_after"] = session.scalar(
            select(func.coalesce(func.max(pf.id), 0)).where(pf.client_id == client_id)
        )
        fees_sql = _FEES_INTO + _pricing_ctes("sqlite", until is not None) + _FEES_SELECT
        priced, seen = _rowcount(session, text(fees_sql).bindparams(*binds), params), -1
        if not priced:
            return False
        tx_binds = [b for b in binds if f":{b.key}" in _SQLITE_TX]  # a text() may bind only what it names
        posted = _rowcount(session, text(_SQLITE_TX).bindparams(*tx_binds), params)
        entries = _rowcount(session, text(_SQLITE_ENTRIES), params)
    if not priced:
        return seen == 0
    bad = session.scalar(text(_UNBALANCED_SQL), params)
    if bad is not None:
        raise UnbalancedBooks(f"agency transaction {bad} does not balance")
    done.payments += priced
    done.transactions += posted
    watch.wrote("payment_fees", priced)
    watch.wrote("agency_transactions", posted)
    watch.wrote("agency_entries", entries)
    return seen == priced


def _new_reversals(session: Session, client_id: int, until: date | None = None) -> list[Any]:
    """(payment id, date reversed) of payment reversals the books have not posted."""
    rev, orig = aliased(JournalTransaction), aliased(JournalTransaction)
    je, at = JournalEntry, AgencyTransaction
    return session.execute(
        select(je.payment_id, rev.occurred_on)
        .select_from(rev)
        .join(orig, and_(orig.client_id == rev.client_id, orig.id == rev.reverses_id))
        .join(je, and_(je.client_id == orig.client_id, je.transaction_id == orig.id))
        .outerjoin(
            at,
            and_(
                at.client_id == rev.client_id,
                at.source == Source.PAYMENT.value,
                at.source_id == je.payment_id,
                at.kind == BooksKind.REVERSAL.value,
            ),
        )
        .where(
            rev.client_id == client_id,
            rev.kind == literal_column(f"'{TxKind.REVERSAL.value}'"),  # written out: the partial index (0036)
            orig.kind == TxKind.PAYMENT.value,
            je.account.in_([Account.CASH_AGENCY.value, Account.CASH_CLIENT.value]),
            at.id.is_(None),
            *([rev.occurred_on <= until] if until else []),
        )
        .order_by(rev.id)
    ).all()


def bring_up_to_date(session: Session, client_id: int, received_until: date | None = None) -> CatchUp:
    """Post to the agency's books everything the client's ledger holds that they lack: new payments (priced or
    unpriced), fees a schedule now prices, payment reversals. Idempotent; takes `lock_books`.

    `received_until` (default: everything) leaves out payments received, and reversals dated, after that day:
    for replaying history month by month (the demo); the jobs never pass it."""
    lock_books(session, client_id)
    done = CatchUp()
    schedules = load_schedules(session, client_id)
    unpriced = list(  # those left unpriced before: a schedule may price them now (new ones were just tried)
        session.scalars(
            select(PaymentFee)
            .where(PaymentFee.client_id == client_id, PaymentFee.status == FeeStatus.UNPRICED.value)
            .order_by(PaymentFee.payment_id)
        )
    )
    _post_new_payments(session, client_id, schedules, done, received_until)
    reversals = _new_reversals(session, client_id, received_until)
    if not (unpriced or reversals):
        return done
    done.held = held_in_trust(session, client_id)  # after the new payments: what a reversal or late fee takes from
    waiting: dict[int, Any] = {}
    wanted = [u.payment_id for u in unpriced]
    for n in range(0, len(wanted), 1000):
        p = Payment
        stmt = select(p.id, p.debtor_id, p.received_on, p.currency, p.amount_minor).where(
            p.client_id == client_id, p.id.in_(wanted[n : n + 1000])
        )
        waiting.update((r.id, r) for r in session.execute(stmt))
    debtors = {r.debtor_id for r in waiting.values()}
    accounts = placement_accounts(session, client_id, debtors) if debtors and schedules else {}
    postings: list[Posting] = []
    now = now_utc()
    fees = {}  # payment id -> PaymentFee (repriced ones, and those a reversal needs)
    reversed_now = {r.payment_id for r in reversals}
    for row in unpriced:
        fees[row.payment_id] = row
        if row.payment_id in reversed_now:
            continue  # reversed before it was priced: voided below, no fee is due
        payment = waiting[row.payment_id]
        account = _account_for(accounts, payment.debtor_id, payment.currency) if accounts else None
        quote = pricing.price(
            schedules, account, payment.received_on, payment.currency, payment.amount_minor, row.direct
        )
        if not quote.priced:
            if quote.reason != row.reason:
                row.reason, row.updated_at = quote.reason, now
            continue
        _apply_quote(row, quote, account, now)
        postings.append(_late_fee_posting(row, quote, done.held))
        done.repriced += 1
    if reversals:
        reversed_ids = [r.payment_id for r in reversals if r.payment_id not in fees]
        for n in range(0, len(reversed_ids), 1000):
            for row in session.scalars(
                select(PaymentFee).where(
                    PaymentFee.client_id == client_id, PaymentFee.payment_id.in_(reversed_ids[n : n + 1000])
                )
            ):
                fees[row.payment_id] = row
    for payment_id, reversed_on in reversals:
        row = fees[payment_id]
        postings.append(_reversal_posting(row, reversed_on, done.held))
        if row.status == FeeStatus.UNPRICED.value:
            row.status, row.reason, row.updated_at = (
                FeeStatus.VOID.value,
                "the payment was reversed before its fee could be priced",
                now,
            )
        done.reversals += 1
    session.flush()
    done.transactions += len(post(session, client_id, postings))
    return done


def _fee_row(
    client_id: int,
    payment_id: int,
    currency: str,
    amount: int,
    direct: bool,
    quote: pricing.Price,
    account: pricing.Account | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "payment_id": payment_id,
        "status": FeeStatus.PRICED.value if quote.priced else FeeStatus.UNPRICED.value,
        "reason": quote.reason[:300],
        "direct": direct,
        "currency": currency,
        "amount_minor": amount,
        "schedule_id": quote.schedule_id,
        "tier_id": quote.tier_id,
        "age_days": account.age_days if account else None,
        "placed_minor": account.amount_minor if account else None,
        "rate_bp": quote.rate_bp,
        "tax_rate_bp": quote.tax_rate_bp,
        "fee_minor": quote.fee_minor,
        "tax_minor": quote.tax_minor,
        "updated_at": now,
    }


def _apply_quote(row: PaymentFee, quote: pricing.Price, account: pricing.Account | None, now: datetime) -> None:
    row.status, row.reason = FeeStatus.PRICED.value, ""
    row.schedule_id, row.tier_id, row.rate_bp, row.tax_rate_bp = (
        quote.schedule_id,
        quote.tier_id,
        quote.rate_bp,
        quote.tax_rate_bp,
    )
    row.age_days = account.age_days if account else None
    row.placed_minor = account.amount_minor if account else None
    row.fee_minor, row.tax_minor, row.updated_at = quote.fee_minor, quote.tax_minor, now


def _take(held: dict[str, int], currency: str, wanted: int) -> tuple[int, int]:
    """Take up to `wanted` from trust held: (taken from trust, owed by the client beyond it)."""
    have = held.get(currency, 0)
    taken = min(wanted, max(have, 0))
    held[currency] = have - taken
    return taken, wanted - taken


def _payment_postings(p: Any, direct: bool, quote: pricing.Price, held: dict[str, int]) -> list[Posting]:
    fee, tax = quote.fee_minor, quote.tax_minor
    if direct:
        if not quote.priced:
            return []
        legs = [Leg(A.FEES_RECEIVABLE, fee + tax), Leg(A.FEES_EARNED, -fee), Leg(A.TAX_PAYABLE, -tax)]
        return [Posting(BooksKind.DIRECT_FEE, Source.PAYMENT, p.id, p.currency, p.received_on, legs, p.id)]
    share = p.amount_minor - fee - tax
    held[p.currency] = held.get(p.currency, 0) + share
    legs = [
        Leg(A.TRUST_BANK, p.amount_minor),
        Leg(A.TRUST_LIABILITY, -share),
        Leg(A.FEES_EARNED, -fee),
        Leg(A.TAX_PAYABLE, -tax),
    ]
    return [Posting(BooksKind.COLLECTION, Source.PAYMENT, p.id, p.currency, p.received_on, legs, p.id)]


def _late_fee_posting(row: PaymentFee, quote: pricing.Price, held: dict[str, int]) -> Posting:
    fee, tax = quote.fee_minor, quote.tax_minor
    charged = [Leg(A.FEES_EARNED, -fee), Leg(A.TAX_PAYABLE, -tax)]
    if row.direct:
        legs = [Leg(A.FEES_RECEIVABLE, fee + tax), *charged]
        kind = BooksKind.DIRECT_FEE
    else:
        taken, owed = _take(held, row.currency, fee + tax)
        legs = [Leg(A.TRUST_LIABILITY, taken), Leg(A.DUE_FROM_CLIENT, owed), *charged]
        kind = BooksKind.FEE
    return Posting(
        kind, Source.PAYMENT, row.payment_id, row.currency, today_utc(), legs, row.payment_id, "fee priced later"
    )


def _reversal_posting(row: PaymentFee, reversed_on: date, held: dict[str, int]) -> Posting:
    fee, tax = (row.fee_minor, row.tax_minor) if row.status == FeeStatus.PRICED.value else (0, 0)
    undone = [Leg(A.FEES_EARNED, fee), Leg(A.TAX_PAYABLE, tax)]
    if row.direct:
        legs = [*undone, Leg(A.FEES_RECEIVABLE, -(fee + tax))]
    else:
        taken, owed = _take(held, row.currency, row.amount_minor - fee - tax)
        legs = [
            Leg(A.TRUST_BANK, -row.amount_minor),
            *undone,
            Leg(A.TRUST_LIABILITY, taken),
            Leg(A.DUE_FROM_CLIENT, owed),
        ]
    return Posting(
        BooksKind.REVERSAL, Source.PAYMENT, row.payment_id, row.currency, reversed_on, legs, row.payment_id, "reversed"
    )
