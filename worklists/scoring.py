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
- behaviour: points for the debtor's payment-behaviour segment, learned by the nightly forecast refit
  (`debtor_behaviours`, provider.forecast): BEHAVIOUR_POINTS, 0 before the first refit. An account whose
  debtor has gone silent or breaks its promises needs a person sooner than one that pays on time anyway.

Invoices on hold are out of the score (and out of "overdue"); disputes will hold invoices the same way
(`_collectable()` is the one place to extend).

The main currency of an account owing in several currencies is the one with the largest normalised amount
(ties: by code); `overdue_minor` is that currency's amount, `overdue_norm` the normalised total.
Queue ties (equal scores are frequent: the terms are banded) are broken by `worklists.queue.queue_order`:
the larger overdue amount, then the older debt, then the id.

A rescoring is three statements whatever the number of clients (see `rescore`): an UPDATE ... FROM of the
per-debtor aggregates (one GROUP BY pass over the invoices joined to their debtors, written only where a
column changed), an INSERT of the accounts new to the worklist, and an UPDATE closing the settled ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, Date, and_, bindparam, case, cast, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by, array_agg
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from clients.journal import Invoice
from clients.models import Client, Debtor
from provider.core import jobs
from provider.core.clock import now_utc
from provider.core.db import UTCDateTime
from provider.core.money import exponent
from provider.core.tenancy import TenantScope, current_scope, scoped
from provider.forecast.models import DebtorBehaviour
from worklists.models import ItemState, Promise, PromiseStatus, SegmentWeight, Strategy, WorkItem

# Points per payment-behaviour segment (provider.forecast.labels.SEGMENTS); a debtor without one gets 0.
BEHAVIOUR_POINTS: dict[str, int] = {
    "pays_on_time": -5,
    "new": 0,
    "pays_late": 5,
    "slow_and_partial": 10,
    "promises_and_breaks": 10,
    "silent": 15,
}

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


def _collectable(invoices: Any = None) -> Any:
    """Invoices that count: open, and not held. The disputes issue holds disputed invoices (`on_hold`)."""
    inv = Invoice.__table__.c if invoices is None else invoices.c
    return and_(inv.open_minor > 0, inv.on_hold.is_(False))


# The rescoring statements are built once per shape (dialect, which filters, the clients' rate overrides)
# and then only executed with bound values: building them is far dearer than running them for one client.
_P_CLIENTS = "client_ids"
_P_DEBTORS = "debtor_ids"
Overrides = tuple[tuple[int, str, int], ...]  # (client_id, currency, ppm per minor unit)


def _overrides(session: Session, client_ids: list[int] | None) -> Overrides:
    """The clients' overrides of their base currency's reference rate (one small query)."""
    rows = session.execute(
        select(Strategy.client_id, Client.base_currency, Strategy.ref_rate_ppm)
        .join(Client, Client.id == Strategy.client_id)
        .where(Strategy.ref_rate_ppm.is_not(None), *([Strategy.client_id.in_(client_ids)] if client_ids else []))
        .order_by(Strategy.client_id)
    ).all()
    return tuple((cid, cur, ppm_per_minor(cur, ppm / 1_000_000)) for cid, cur, ppm in rows)


def _rate_case(client_id: Any, currency: Any, overrides: Overrides) -> Any:
    """CASE currency → ppm per minor unit, with the clients' overrides of their base currency's rate."""
    whens = [(and_(client_id == cid, currency == cur), literal(ppm, BigInteger)) for cid, cur, ppm in overrides]
    whens += [(currency == cur, literal(ppm_per_minor(cur), BigInteger)) for cur in sorted(REFERENCE_RATES)]
    return case(*whens, else_=literal(1_000_000 // 100, BigInteger))  # unknown: 2 decimals at UNKNOWN_RATE


def _in_scope(client_ids: list[int] | None) -> list[int] | None:
    """`None` (every visible client) made explicit outside the agency scope: the statements run in Core,
    below the ORM's tenant guard (row-level security remains the backstop on PostgreSQL)."""
    if client_ids is not None:
        return client_ids
    scope = current_scope()
    if scope.client_id is not None:
        return [scope.client_id]
    return None if scope.client_ids is None else sorted(scope.client_ids)


def _params(client_ids: list[int] | None, debtor_ids: list[int] | None, today: date, now: datetime) -> dict[str, Any]:
    """The values of a rescoring statement's parameters (dates are precomputed: no date arithmetic in SQL)."""
    values: dict[str, Any] = {
        "today": today,
        "now": now,
        "sla_near": now + SLA_NEAR,
        "broken_since": today - timedelta(days=BROKEN_LOOKBACK_DAYS),
        **{f"older_{b}": today - timedelta(days=b) for b in DAY_BANDS},
    }
    if client_ids is not None:
        values[_P_CLIENTS] = list(client_ids)
    if debtor_ids is not None:
        values[_P_DEBTORS] = list(debtor_ids)
    return values


def _scope(columns: Any, by_client: bool, by_debtor: bool) -> list[Any]:
    conds = []
    if by_client:
        conds.append(columns.client_id.in_(bindparam(_P_CLIENTS, expanding=True)))
    if by_debtor:
        conds.append(columns.debtor_id.in_(bindparam(_P_DEBTORS, expanding=True)))
    return conds


def _overdue(dialect: str, by_client: bool, by_debtor: bool, overrides: Overrides, only_new: bool = False) -> Any:
    """Per debtor: the main currency's overdue amount, the normalised total (ppm), the oldest due date, and the
    debtor's segment and contact zone.

    The debtor and its client are joined *before* grouping, so the planner estimates the join from the base
    tables' statistics (a grouped subquery has none, and PostgreSQL then picks nested loops over every
    account). With `only_new`, only accounts without a work item are read (the anti-join comes first, so the
    insert of new items does not aggregate every invoice again)."""
    inv, debtor, client = Invoice.__table__.c, Debtor.__table__, Client.__table__
    contact_tz = func.coalesce(debtor.c.timezone, client.c.timezone)
    joined = Invoice.__table__.join(
        debtor, and_(debtor.c.client_id == inv.client_id, debtor.c.id == inv.debtor_id)
    ).join(client, client.c.id == inv.client_id)
    where = [_collectable(), inv.due_date < bindparam("today", type_=Date()), *_scope(inv, by_client, by_debtor)]
    if only_new:
        item = WorkItem.__table__.c
        where.append(~select(item.id).where(item.client_id == inv.client_id, item.debtor_id == inv.debtor_id).exists())
    keys = (inv.client_id, inv.debtor_id, debtor.c.segment, contact_tz)
    if dialect == "postgresql":
        return _overdue_pg(joined, where, keys, overrides)
    per_currency = (
        select(
            *keys[:3],
            contact_tz.label("contact_tz"),
            inv.currency,
            cast(func.sum(inv.open_minor), BigInteger).label("amount"),
            func.min(inv.due_date).label("oldest"),
        )
        .select_from(joined)
        .where(*where)
        .group_by(*keys, inv.currency)
        .subquery("per_currency")
    )
    pc = per_currency.c
    normed = select(*pc, (pc.amount * _rate_case(pc.client_id, pc.currency, overrides)).label("norm_ppm")).subquery(
        "normed"
    )
    n = normed.c
    window = {"partition_by": (n.client_id, n.debtor_id)}
    ranked = select(
        n.client_id,
        n.debtor_id,
        n.segment,
        n.contact_tz,
        n.currency,
        n.amount,
        cast(func.sum(n.norm_ppm).over(**window), BigInteger).label("norm_ppm"),
        func.min(n.oldest).over(**window).label("oldest"),
        func.row_number().over(**window, order_by=(n.norm_ppm.desc(), n.currency)).label("rn"),
    ).subquery("ranked")
    return select(*(c for c in ranked.c if c.name != "rn")).where(ranked.c.rn == 1).subquery("due")


def _overdue_pg(joined: Any, where: list[Any], keys: tuple[Any, ...], overrides: Overrides) -> Any:
    """PostgreSQL: one GROUP BY pass per debtor, on the debtor's and the client's primary keys (their other
    columns depend on them), estimated at one row per debtor, so everything above it is joined by hash.
    Most accounts owe in one currency; the main currency of the others (the largest normalised amount, ties
    by code) comes from a per-currency grouping of those accounts only (the per-debtor rows are a CTE, read
    twice)."""
    inv, debtor, client = Invoice.__table__.c, Debtor.__table__.c, Client.__table__.c
    per_debtor = (
        select(
            debtor.client_id,
            debtor.id.label("debtor_id"),
            debtor.segment,
            keys[3].label("contact_tz"),
            func.min(inv.currency).label("cmin"),
            func.max(inv.currency).label("cmax"),
            cast(func.sum(inv.open_minor), BigInteger).label("amount"),
            cast(func.sum(inv.open_minor * _rate_case(inv.client_id, inv.currency, overrides)), BigInteger).label(
                "norm_ppm"
            ),
            func.min(inv.due_date).label("oldest"),
        )
        .select_from(joined)
        .where(*where)
        .group_by(debtor.client_id, debtor.id, client.id)  # (client_id, id) is the key (0040)
        .cte("per_debtor")
    )
    pd = per_debtor.c
    several = select(pd.client_id, pd.debtor_id).where(pd.cmin != pd.cmax).subquery("several")
    per_currency = (
        select(
            inv.client_id,
            inv.debtor_id,
            inv.currency,
            cast(func.sum(inv.open_minor), BigInteger).label("amount"),
            (cast(func.sum(inv.open_minor), BigInteger) * _rate_case(inv.client_id, inv.currency, overrides)).label(
                "norm_ppm"
            ),
        )
        .join(several, and_(several.c.client_id == inv.client_id, several.c.debtor_id == inv.debtor_id))
        .where(*where[:2])  # collectable and overdue (the accounts are those of `several`)
        .group_by(inv.client_id, inv.debtor_id, inv.currency)
        .subquery("per_currency")
    )
    pc = per_currency.c
    first = aggregate_order_by  # the main currency: the largest normalised amount (ties: by code)
    mixed = (
        select(
            pc.client_id,
            pc.debtor_id,
            array_agg(first(pc.currency, pc.norm_ppm.desc(), pc.currency))[1].label("currency"),
            array_agg(first(pc.amount, pc.norm_ppm.desc(), pc.currency))[1].label("amount"),
        )
        .group_by(pc.client_id, pc.debtor_id)
        .subquery("mixed")
    )
    one = pd.cmin == pd.cmax
    return (
        select(
            pd.client_id,
            pd.debtor_id,
            pd.segment,
            pd.contact_tz,
            case((one, pd.cmin), else_=mixed.c.currency).label("currency"),
            case((one, pd.amount), else_=mixed.c.amount).label("amount"),
            pd.norm_ppm,
            pd.oldest,
        )
        .select_from(
            per_debtor.outerjoin(mixed, and_(mixed.c.client_id == pd.client_id, mixed.c.debtor_id == pd.debtor_id))
        )
        .subquery("due")
    )


def _broken_counts(by_client: bool, by_debtor: bool) -> Any:
    p = Promise.__table__.c
    return (
        select(p.client_id, p.debtor_id, func.count().label("broken"))
        .where(
            p.status == PromiseStatus.BROKEN.value,
            p.due_on >= bindparam("broken_since", type_=Date()),
            *_scope(p, by_client, by_debtor),
        )
        .group_by(p.client_id, p.debtor_id)
        .subquery("broken")
    )


def _due_today(by_client: bool, by_debtor: bool) -> Any:
    p = Promise.__table__.c
    return (
        select(p.client_id, p.debtor_id)
        .where(
            p.status == PromiseStatus.OPEN.value,
            p.due_on == bindparam("today", type_=Date()),
            *_scope(p, by_client, by_debtor),
        )
        .group_by(p.client_id, p.debtor_id)
        .subquery("promised")
    )


# The columns a rescoring writes (term_sla and score also depend on the item's own `sla_due_at`).
_SCORED = (
    "currency",
    "overdue_minor",
    "overdue_norm",
    "oldest_due_on",
    "broken_promises",
    "contact_tz",
    "behaviour_segment",
    *(f"term_{t}" for t in WorkItem.TERMS),
    "score",
)
_BASE_TERMS = tuple(t for t in WorkItem.TERMS if t != "sla")


def _terms(dialect: str, by_client: bool, by_debtor: bool, overrides: Overrides, only_new: bool = False) -> Any:
    """Per overdue account: every scored column but the SLA term, with `weight_sla` (the SLA term needs the
    item's deadline) and `base` (the sum of the other terms). Only left joins above the grouping: they keep
    its row estimate."""
    due = _overdue(dialect, by_client, by_debtor, overrides, only_new)
    broken = _broken_counts(by_client, by_debtor)
    promised = _due_today(by_client, by_debtor)
    strategy, segment = Strategy.__table__, SegmentWeight.__table__
    behaviour = DebtorBehaviour.__table__

    def weight(name: str) -> Any:
        return func.coalesce(strategy.c[name], DEFAULT_WEIGHTS[name])

    n_broken = func.coalesce(broken.c.broken, 0)
    older = [due.c.oldest < bindparam(f"older_{b}", type_=Date()) for b in DAY_BANDS]  # days past due > b
    terms = {
        "term_amount": weight("weight_amount")
        * _band(due.c.norm_ppm, [literal(b * 1_000_000, BigInteger) for b in AMOUNT_BANDS]),
        "term_days": weight("weight_days") * _band(None, older, start=1),
        "term_broken": weight("weight_broken") * case((n_broken > BROKEN_CAP, BROKEN_CAP), else_=n_broken),
        "term_promise_due": case((promised.c.debtor_id.is_not(None), weight("weight_promise_due")), else_=0),
        "term_segment": func.coalesce(segment.c.points, 0),
        "term_client": weight("client_boost"),
        "term_behaviour": case(
            *((behaviour.c.segment == name, points) for name, points in BEHAVIOUR_POINTS.items()), else_=0
        ),
    }
    inner = (
        select(
            due.c.client_id,
            due.c.debtor_id,
            due.c.contact_tz,
            due.c.currency,
            due.c.amount.label("overdue_minor"),
            (due.c.norm_ppm // 1_000_000).label("overdue_norm"),
            due.c.oldest.label("oldest_due_on"),
            n_broken.label("broken_promises"),
            func.coalesce(behaviour.c.segment, "").label("behaviour_segment"),
            *(expr.label(name) for name, expr in terms.items()),
            weight("weight_sla").label("weight_sla"),
        )
        .select_from(due)
        .outerjoin(strategy, strategy.c.client_id == due.c.client_id)
        .outerjoin(segment, and_(segment.c.client_id == due.c.client_id, segment.c.segment == due.c.segment))
        .outerjoin(broken, and_(broken.c.client_id == due.c.client_id, broken.c.debtor_id == due.c.debtor_id))
        .outerjoin(promised, and_(promised.c.client_id == due.c.client_id, promised.c.debtor_id == due.c.debtor_id))
        .outerjoin(behaviour, and_(behaviour.c.client_id == due.c.client_id, behaviour.c.debtor_id == due.c.debtor_id))
        .subquery("terms")
    )
    t = inner.c
    return select(*t, sum((t[f"term_{name}"] for name in _BASE_TERMS), start=literal(0)).label("base")).subquery(
        "scored"
    )


def _band(value: Any, bounds: Iterable[Any], *, start: int = 0) -> Any:
    """The number of `bounds` reached: `value >= b` for each (or, with value None, each bound is a condition)."""
    return sum(
        (case(((value >= b) if value is not None else b, 1), else_=0) for b in bounds),
        start=literal(start),
    )


def _sla_term(scored: Any, sla_due_at: Any) -> Any:
    return case((sla_due_at <= bindparam("sla_near", type_=UTCDateTime()), scored.c.weight_sla), else_=0)


def _new_values(scored: Any, sla_due_at: Any) -> dict[str, Any]:
    """The scored columns of a work item, from a `_terms` row and the item's SLA deadline (None: a new item,
    which has none yet)."""
    s = scored.c
    sla = literal(0) if sla_due_at is None else _sla_term(scored, sla_due_at)
    values = {name: s[name] for name in _SCORED if name not in ("term_sla", "score")}
    return {**values, "term_sla": sla, "score": s.base + sla}


def _scored_select(dialect: str, by_client: bool, by_debtor: bool, overrides: Overrides) -> Any:
    """The SELECT of every column a work item gets from a rescoring, with the current item's (`cur_*`)."""
    scored = _terms(dialect, by_client, by_debtor, overrides)
    current = WorkItem.__table__.alias("cur")
    new = _new_values(scored, current.c.sla_due_at)
    now = bindparam("now", type_=UTCDateTime())
    return (
        select(
            scored.c.client_id,
            scored.c.debtor_id,
            literal(ItemState.NEW.value).label("state"),
            *(expr.label(name) for name, expr in new.items()),
            now.label("scored_at"),
            current.c.id.label("cur_id"),
            current.c.state.label("cur_state"),
            *(current.c[name].label(f"cur_{name}") for name in _SCORED),
        )
        .select_from(scored)
        .outerjoin(current, and_(current.c.client_id == scored.c.client_id, current.c.debtor_id == scored.c.debtor_id))
    )


@dataclass(frozen=True)
class _Statements:
    scored: Any
    update: Any
    insert: Any
    close: Any


@lru_cache(maxsize=256)
def _statements(dialect: str, by_client: bool, by_debtor: bool, overrides: Overrides) -> _Statements:
    table = WorkItem.__table__
    target = table.c
    now = bindparam("now", type_=UTCDateTime())

    # 1. existing items: UPDATE ... FROM the scored accounts, only where something changed (or it reopens)
    scored = _terms(dialect, by_client, by_debtor, overrides)
    new = _new_values(scored, target.sla_due_at)
    reopened = target.state == ItemState.CLOSED.value
    rescored = (
        update(table)
        .where(
            target.client_id == scored.c.client_id,
            target.debtor_id == scored.c.debtor_id,
            or_(reopened, *(target[name].is_distinct_from(expr) for name, expr in new.items())),
        )
        .values(
            **new,
            scored_at=now,
            updated_at=now,
            state=case((reopened, ItemState.NEW.value), else_=target.state),
            closed_at=case((reopened, None), else_=target.closed_at),
        )
        .execution_options(preserve_rowcount=True, synchronize_session=False)
    )

    # 2. accounts without an item yet (read through an anti-join before grouping)
    fresh = _terms(dialect, by_client, by_debtor, overrides, only_new=True)
    values = _new_values(fresh, None)
    rows = select(
        fresh.c.client_id,
        fresh.c.debtor_id,
        literal(ItemState.NEW.value).label("state"),
        literal("").label("next_action_note"),
        literal(0).label("contact_attempts"),
        *(expr.label(name) for name, expr in values.items()),
        now.label("scored_at"),
        now.label("created_at"),
        now.label("updated_at"),
    ).where(fresh.c.client_id.is_not(None))  # SQLite parses INSERT ... SELECT ... ON CONFLICT only after a WHERE
    ins = (pg_insert if dialect == "postgresql" else sqlite_insert)(table).from_select(
        [c.name for c in rows.selected_columns], rows
    )
    created = ins.on_conflict_do_nothing(index_elements=["client_id", "debtor_id"]).execution_options(
        preserve_rowcount=True
    )

    # 3. items with nothing collectable overdue any more
    inv = Invoice.__table__.c
    still_due = (
        select(inv.id)
        .where(
            inv.client_id == target.client_id,
            inv.debtor_id == target.debtor_id,
            inv.due_date < bindparam("today", type_=Date()),
            _collectable(),
        )
        .exists()
    )
    close = (
        update(table)
        .where(
            target.state.not_in([ItemState.CLOSED.value, ItemState.DISPUTED.value]),
            ~still_due,
            *_scope(target, by_client, by_debtor),
        )
        .values(state=ItemState.CLOSED.value, closed_at=now, claimed_by=None, claim_expires_at=None, updated_at=now)
        .execution_options(preserve_rowcount=True, synchronize_session=False)
    )
    return _Statements(_scored_select(dialect, by_client, by_debtor, overrides), rescored, created, close)


def scored_rows(
    session: Session, client_ids: list[int] | None, debtor_ids: list[int] | None, today: date, now: datetime
) -> Any:
    """The SELECT of every column a work item gets from a rescoring (one row per overdue account), with the
    current item's values as `cur_*` columns, its parameters bound."""
    built = _statements(
        session.get_bind().dialect.name, client_ids is not None, debtor_ids is not None, _overrides(session, client_ids)
    )
    return built.scored.params(_params(client_ids, debtor_ids, today, now))


# A bulk rescoring hashes and sorts every overdue account at once: more than the default work_mem (4 MB).
BULK_WORK_MEM = "64MB"


def rescore(
    session: Session,
    client_ids: list[int] | None = None,
    debtor_ids: list[int] | None = None,
    *,
    today: date | None = None,
) -> dict[str, int]:
    """Create, rescore, reopen and close work items of the given clients (all visible ones when None),
    optionally only for some debtors. Set-based, whatever the number of accounts or clients: one
    UPDATE ... FROM for the existing items (only the rows whose score inputs changed are written), one
    INSERT ... SELECT for the accounts new to the worklist, one UPDATE closing the settled ones.
    The statements are built once per shape and executed with bound values.
    Returns counts {"written", "closed"}. The caller commits.
    """
    now = now_utc()
    today = today or now.date()
    client_ids = _in_scope(client_ids)
    dialect = session.get_bind().dialect.name
    built = _statements(dialect, client_ids is not None, debtor_ids is not None, _overrides(session, client_ids))
    params = _params(client_ids, debtor_ids, today, now)
    conn = session.connection()
    if dialect == "postgresql" and debtor_ids is None:
        conn.execute(select(func.set_config("work_mem", BULK_WORK_MEM, True))).all()  # this transaction only
    written = conn.execute(built.update, params).rowcount or 0
    written += conn.execute(built.insert, params).rowcount or 0
    closed = conn.execute(built.close, params).rowcount or 0
    return {"written": written, "closed": closed}


def close_settled(
    session: Session, client_ids: list[int] | None, debtor_ids: list[int] | None, *, today: date, now: datetime
) -> int:
    """Close items whose account has nothing collectable overdue any more (paid, credited, written off,
    or held). Disputed items stay as they are until the dispute is resolved."""
    client_ids = _in_scope(client_ids)
    built = _statements(session.get_bind().dialect.name, client_ids is not None, debtor_ids is not None, ())
    return session.connection().execute(built.close, _params(client_ids, debtor_ids, today, now)).rowcount or 0


@jobs.job(queue="low", timeout=3600, title="Worklist rescoring")
def rescore_client_job(client_id: int) -> dict[str, int]:
    """Rescore one client's accounts after ledger events (queued with the id `worklist-rescore:{client}`,
    so a burst of payments queues it once while it waits)."""
    from provider.extensions import db

    with scoped(TenantScope.single(client_id), db.session):
        counts = rescore(db.session, [client_id])
        db.session.flush()
    return counts
