"""The priority score of a work item, explainable term by term, recomputed set-based in SQL.

    score = amount + days + broken + promise_due + sla + segment + client

Every term is a whole number of points stored in its own column (`term_*`), so the account screen can
say why an item is where it is. Per client, `Strategy` weights the terms (defaults in DEFAULT_WEIGHTS).

- amount: weight_amount * band of the overdue amount in *reference units*, so that amounts in different
  currencies compare. Normalisation: an amount of `m` minor units in currency C is
  m / 10**exponent(C) * REFERENCE_RATES[C] reference units (1 reference unit ≈ 1 EUR; rates are coarse,
  fixed and meant for ranking only, never for accounting; a client may override its base currency's rate
  with `Strategy.ref_rate_ppm`). Bands: <100, 100, 500, 2,000, 10,000, 50,000+ → 0..5.
- days: weight_days * band of the days past due of the oldest overdue invoice: 1-30 → 1, 31-60 → 2,
  61-90 → 3, 91-180 → 4, 181-365 → 5, 366+ → 6.
- broken: weight_broken * broken promises of the last 180 days (at most 3).
- promise_due: weight_promise_due when an open promise or instalment falls due today.
- sla: weight_sla when the item's SLA deadline (`sla_due_at`, set by the SLA issue) is within 2 days.
- segment: the client's points for the debtor's segment (`SegmentWeight`), 0 when none.
- client: the client's boost (`Strategy.client_boost`), the same for all its accounts.

Invoices on hold are out of the score (and out of "overdue"); disputes will hold invoices the same way
(`_collectable()` is the one place to extend).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, and_, case, cast, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from clients.journal import Invoice
from clients.models import Client, Debtor
from provider.core import jobs
from provider.core.clock import now_utc
from provider.core.db import UTCDateTime
from provider.core.money import exponent
from provider.core.tenancy import TenantScope, scoped
from worklists.models import ItemState, Promise, PromiseStatus, SegmentWeight, Strategy, WorkItem

# Reference units (≈ EUR) per major unit. Coarse on purpose: the score ranks, it never converts money.
REFERENCE_RATES: dict[str, float] = {
    "EUR": 1.0,
    "USD": 0.92,
    "GBP": 1.17,
    "CHF": 1.04,
    "JPY": 0.0062,
    "AUD": 0.60,
    "CAD": 0.68,
    "NZD": 0.55,
    "SEK": 0.088,
    "NOK": 0.086,
    "DKK": 0.134,
    "PLN": 0.23,
    "CZK": 0.040,
    "HUF": 0.0025,
    "KWD": 3.0,
    "CNY": 0.13,
    "INR": 0.011,
    "SGD": 0.69,
    "HKD": 0.12,
    "ZAR": 0.050,
    "MXN": 0.050,
    "BRL": 0.17,
}
UNKNOWN_RATE = 1.0
AMOUNT_BANDS = (100, 500, 2_000, 10_000, 50_000)  # reference units
DAY_BANDS = (30, 60, 90, 180, 365)
BROKEN_LOOKBACK_DAYS = 180
BROKEN_CAP = 3
SLA_NEAR = timedelta(days=2)
DEFAULT_WEIGHTS = {
    "weight_amount": 10,
    "weight_days": 10,
    "weight_broken": 15,
    "weight_promise_due": 25,
    "weight_sla": 20,
    "client_boost": 0,
}


def ppm_per_minor(currency: str, rate: float | None = None) -> int:
    """Reference micro-units per minor unit of `currency` (an integer, so SQL sums stay exact)."""
    rate = REFERENCE_RATES.get(currency, UNKNOWN_RATE) if rate is None else rate
    return max(round(rate * 1_000_000 / 10 ** exponent(currency)), 1)


def amount_band(norm_units: int) -> int:
    return sum(norm_units >= b for b in AMOUNT_BANDS)


def day_band(days: int) -> int:
    return 0 if days <= 0 else 1 + sum(days > b for b in DAY_BANDS)


def _collectable() -> Any:
    """Invoices that count: open, and not held. The disputes issue holds disputed invoices (`on_hold`)."""
    return and_(Invoice.open_minor > 0, Invoice.on_hold.is_(False))


def _rate_expr(client_ids: list[int] | None, session: Session) -> Any:
    """CASE currency → ppm per minor unit, with the clients' overrides of their base currency's rate."""
    currencies = set(REFERENCE_RATES)
    overrides = session.execute(
        select(Strategy.client_id, Client.base_currency, Strategy.ref_rate_ppm)
        .join(Client, Client.id == Strategy.client_id)
        .where(Strategy.ref_rate_ppm.is_not(None), *([Strategy.client_id.in_(client_ids)] if client_ids else []))
    ).all()
    whens = [
        (and_(Invoice.client_id == cid, Invoice.currency == cur), ppm_per_minor(cur, ppm / 1_000_000))
        for cid, cur, ppm in overrides
    ]
    whens += [(Invoice.currency == cur, ppm_per_minor(cur)) for cur in sorted(currencies)]
    return case(*whens, else_=literal(1_000_000 // 100))  # unknown: 2 decimals at UNKNOWN_RATE


def _days_since(session: Session, day: Any, today: date) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return literal(today) - day
    return cast(func.julianday(literal(today.isoformat())) - func.julianday(day), Integer)


def _band(value: Any, bounds: Iterable[Any], *, inclusive: bool) -> Any:
    return sum(
        (case(((value >= b) if inclusive else (value > b), 1), else_=0) for b in bounds),
        start=literal(0),
    )


def _overdue(session: Session, client_ids: list[int] | None, debtor_ids: list[int] | None, today: date) -> Any:
    """Per debtor: the main currency's overdue amount, the normalised total and the oldest due date."""
    conds = [_collectable(), Invoice.due_date < today]
    if client_ids is not None:
        conds.append(Invoice.client_id.in_(client_ids))
    if debtor_ids is not None:
        conds.append(Invoice.debtor_id.in_(debtor_ids))
    per_currency = (
        select(
            Invoice.client_id,
            Invoice.debtor_id,
            Invoice.currency,
            func.sum(Invoice.open_minor).label("amount"),
            func.sum(Invoice.open_minor * _rate_expr(client_ids, session)).label("norm_ppm"),
            func.min(Invoice.due_date).label("oldest"),
        )
        .where(*conds)
        .group_by(Invoice.client_id, Invoice.debtor_id, Invoice.currency)
        .subquery()
    )
    window = {"partition_by": (per_currency.c.client_id, per_currency.c.debtor_id)}
    ranked = select(
        per_currency.c.client_id,
        per_currency.c.debtor_id,
        per_currency.c.currency,
        per_currency.c.amount,
        func.sum(per_currency.c.norm_ppm).over(**window).label("norm_ppm"),
        func.min(per_currency.c.oldest).over(**window).label("oldest"),
        func.row_number()
        .over(**window, order_by=(per_currency.c.norm_ppm.desc(), per_currency.c.currency))
        .label("rn"),
    ).subquery()
    return select(ranked).where(ranked.c.rn == 1).subquery()


def _broken_counts(client_ids: list[int] | None, today: date) -> Any:
    stmt = select(Promise.client_id, Promise.debtor_id, func.count().label("broken")).where(
        Promise.status == PromiseStatus.BROKEN.value, Promise.due_on >= today - timedelta(days=BROKEN_LOOKBACK_DAYS)
    )
    if client_ids is not None:
        stmt = stmt.where(Promise.client_id.in_(client_ids))
    return stmt.group_by(Promise.client_id, Promise.debtor_id).subquery()


def _due_today(client_ids: list[int] | None, today: date) -> Any:
    stmt = select(Promise.client_id, Promise.debtor_id).where(
        Promise.status == PromiseStatus.OPEN.value, Promise.due_on == today
    )
    if client_ids is not None:
        stmt = stmt.where(Promise.client_id.in_(client_ids))
    return stmt.group_by(Promise.client_id, Promise.debtor_id).subquery()


_SCORED = (
    "currency",
    "overdue_minor",
    "overdue_norm",
    "oldest_due_on",
    "broken_promises",
    "contact_tz",
    *(f"term_{t}" for t in WorkItem.TERMS),
    "score",
)


def scored_rows(
    session: Session, client_ids: list[int] | None, debtor_ids: list[int] | None, today: date, now: datetime
) -> Any:
    """The SELECT of every column a work item gets from a rescoring (one row per overdue account)."""
    due = _overdue(session, client_ids, debtor_ids, today)
    broken = _broken_counts(client_ids, today)
    promised = _due_today(client_ids, today)
    current = aliased(WorkItem)

    def weight(name: str) -> Any:
        return func.coalesce(getattr(Strategy, name), DEFAULT_WEIGHTS[name])

    days = _days_since(session, due.c.oldest, today)
    n_broken = func.coalesce(broken.c.broken, 0)
    terms = {
        "term_amount": weight("weight_amount")
        * _band(due.c.norm_ppm, [b * 1_000_000 for b in AMOUNT_BANDS], inclusive=True),
        "term_days": weight("weight_days") * (literal(1) + _band(days, DAY_BANDS, inclusive=False)),
        "term_broken": weight("weight_broken") * case((n_broken > BROKEN_CAP, BROKEN_CAP), else_=n_broken),
        "term_promise_due": case((promised.c.debtor_id.is_not(None), weight("weight_promise_due")), else_=0),
        "term_sla": case((current.sla_due_at <= now + SLA_NEAR, weight("weight_sla")), else_=0),
        "term_segment": func.coalesce(SegmentWeight.points, 0),
        "term_client": weight("client_boost"),
    }
    return (
        select(
            due.c.client_id,
            due.c.debtor_id,
            literal(ItemState.NEW.value).label("state"),
            literal("").label("next_action_note"),
            literal(0).label("contact_attempts"),
            func.coalesce(Debtor.timezone, Client.timezone).label("contact_tz"),
            due.c.currency,
            due.c.amount.label("overdue_minor"),
            (due.c.norm_ppm / 1_000_000).label("overdue_norm"),
            due.c.oldest.label("oldest_due_on"),
            n_broken.label("broken_promises"),
            *(expr.label(name) for name, expr in terms.items()),
            sum(terms.values(), start=literal(0)).label("score"),
            literal(now, UTCDateTime()).label("scored_at"),
            literal(now, UTCDateTime()).label("created_at"),
            literal(now, UTCDateTime()).label("updated_at"),
        )
        .select_from(due)
        .join(Debtor, and_(Debtor.client_id == due.c.client_id, Debtor.id == due.c.debtor_id))
        .join(Client, Client.id == due.c.client_id)
        .outerjoin(Strategy, Strategy.client_id == due.c.client_id)
        .outerjoin(
            SegmentWeight, and_(SegmentWeight.client_id == due.c.client_id, SegmentWeight.segment == Debtor.segment)
        )
        .outerjoin(broken, and_(broken.c.client_id == due.c.client_id, broken.c.debtor_id == due.c.debtor_id))
        .outerjoin(promised, and_(promised.c.client_id == due.c.client_id, promised.c.debtor_id == due.c.debtor_id))
        .outerjoin(current, and_(current.client_id == due.c.client_id, current.debtor_id == due.c.debtor_id))
        .add_columns(
            current.id.label("cur_id"),
            current.state.label("cur_state"),
            *(getattr(current, name).label(f"cur_{name}") for name in _SCORED),
        )
    )


def changed_rows(scored: Any) -> Any:
    """Only the accounts whose item is new, closed, or has a different score input: the others are not
    rewritten (on a typical night most scores do not move)."""
    rows = scored.subquery()
    columns = [c for c in rows.c if not c.name.startswith("cur_")]
    return select(*columns).where(
        or_(
            rows.c.cur_id.is_(None),
            rows.c.cur_state == ItemState.CLOSED.value,
            *(rows.c[name] != rows.c[f"cur_{name}"] for name in _SCORED),
        )
    )


def rescore(
    session: Session,
    client_ids: list[int] | None = None,
    debtor_ids: list[int] | None = None,
    *,
    today: date | None = None,
) -> dict[str, int]:
    """Create, rescore, reopen and close work items of the given clients (all visible ones when None),
    optionally only for some debtors. Set-based: one INSERT ... SELECT ... ON CONFLICT DO UPDATE and one
    UPDATE, whatever the number of accounts; rows whose score inputs did not change are not rewritten.
    Returns counts {"written", "closed"}. The caller commits.
    """
    now = now_utc()
    today = today or now.date()
    rows = changed_rows(scored_rows(session, client_ids, debtor_ids, today, now))
    columns = [c.name for c in rows.selected_columns]
    dialect = session.get_bind().dialect.name
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(WorkItem).from_select(columns, rows)
    target = WorkItem.__table__.c
    new = ins.excluded
    reopened = target.state == ItemState.CLOSED.value
    stmt = ins.on_conflict_do_update(
        index_elements=["client_id", "debtor_id"],
        set_={
            **{name: new[name] for name in _SCORED},
            "scored_at": now,
            "updated_at": now,
            "state": case((reopened, ItemState.NEW.value), else_=target.state),
            "closed_at": case((reopened, None), else_=target.closed_at),
        },
        where=or_(reopened, *(target[name] != new[name] for name in _SCORED)),
    )
    written = session.connection().execute(stmt.execution_options(preserve_rowcount=True)).rowcount or 0
    closed = close_settled(session, client_ids, debtor_ids, today=today, now=now)
    return {"written": written, "closed": closed}


def close_settled(
    session: Session, client_ids: list[int] | None, debtor_ids: list[int] | None, *, today: date, now: datetime
) -> int:
    """Close items whose account has nothing collectable overdue any more (paid, credited, written off,
    or held). Disputed items stay as they are until the dispute is resolved."""
    still_due = (
        select(Invoice.id)
        .where(
            Invoice.client_id == WorkItem.client_id,
            Invoice.debtor_id == WorkItem.debtor_id,
            Invoice.due_date < today,
            _collectable(),
        )
        .exists()
    )
    stmt = update(WorkItem).where(WorkItem.state.not_in([ItemState.CLOSED.value, ItemState.DISPUTED.value]), ~still_due)
    if client_ids is not None:
        stmt = stmt.where(WorkItem.client_id.in_(client_ids))
    if debtor_ids is not None:
        stmt = stmt.where(WorkItem.debtor_id.in_(debtor_ids))
    result = session.execute(
        stmt.values(
            state=ItemState.CLOSED.value, closed_at=now, claimed_by=None, claim_expires_at=None, updated_at=now
        ).execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


@jobs.job(queue="low", timeout=3600)
def rescore_client_job(client_id: int) -> dict[str, int]:
    """Rescore one client's accounts after ledger events (queued with the id `worklist-rescore:{client}`,
    so a burst of payments queues it once while it waits)."""
    from provider.extensions import db

    with scoped(TenantScope.single(client_id), db.session):
        counts = rescore(db.session, [client_id])
        db.session.flush()
    return counts
