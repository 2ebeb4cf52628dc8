"""The refit: learn each client's payment behaviour, store segments, grades, limits and the forecast with its backtest.

`refit_client` is what the nightly job runs for one client. It reads the client's history once, reuses the point
forecasts already made at past month-ends (each read only what was known at its own date, so it never changes) and
fits the rest, then replaces the client's behaviour rows in one bulk statement, records segment moves and writes the
day's forecast per currency. Idempotent: a second run the same day writes the same rows. Flushes, never commits.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.orm import Session

from clients.ledger_dates import client_today
from clients.models import Client
from provider.core import audit
from provider.core.clock import now_utc
from provider.forecast.data import day_ordinal, load_history, read_frame
from provider.forecast.forecast import Point, Run, month_ends, point, run
from provider.forecast.models import CashForecast, CreditPolicy, DebtorBehaviour, SegmentMove
from provider.forecast.segments import RANK, credit_limit, grade


def _stored_origins(session: Session, client_id: int) -> dict[int, Point]:
    """The month-end point forecasts kept with the client's latest forecast of each currency."""
    latest: dict[str, CashForecast] = {}
    for row in session.scalars(
        select(CashForecast).where(CashForecast.client_id == client_id).order_by(CashForecast.as_of)
    ):
        latest[row.currency] = row
    points: dict[int, Point] = {}
    for cur, row in latest.items():
        for o in row.origins or []:
            p = points.setdefault(int(o["as_of"]), Point(int(o["as_of"]), {}, {}, {}, {}))
            p.mean[cur] = np.array(o["mean"], dtype=float)
            p.var[cur] = np.array(o["var"], dtype=float)
            p.naive_average[cur] = np.array(o["naive_average"], dtype=float)
            p.naive_due[cur] = np.array(o["naive_due"], dtype=float)
    return points


LIVE_ORIGINS = 2  # month-ends a view of a past day may fit on the spot when no stored forecast has them


def forecast_client(
    session: Session, client_id: int, as_of: date, reuse: bool = True, max_live: int | None = None
) -> Run:
    """The forecast made at `as_of` with its backtest, reading only what was dated by then.

    The month-ends before `as_of` come from stored forecasts where they can (`reuse`); of the others, the newest
    `max_live` are fitted now (all of them when None, as the nightly refit and the CLI do) and the rest are left
    out of the backtest, so a page or API call about a past day fits at most `max_live` + 1 models."""
    history = load_history(session, client_id)
    t = as_of.toordinal()
    stored = _stored_origins(session, client_id) if reuse else {}
    ends = month_ends(history, t)
    missing = [o for o in ends if o not in stored]
    if max_live is not None:
        missing = missing[len(missing) - max_live :] if max_live else []
    fitted = {o: point(history, o) for o in missing}
    origins = [stored[o] if o in stored else fitted[o] for o in ends if o in stored or o in fitted]
    result = run(history, t, origins)
    for backtest in result.backtest.values():
        backtest["month_ends_left_out"] = len(ends) - len(origins)
    result.kept = [p for o, p in sorted(stored.items()) if o not in set(ends) and o < t]
    return result


def refit_client(session: Session, client_id: int, as_of: date | None = None) -> dict[str, Any]:
    """Refit one client (as of its today unless told), store everything; returns counts for the job's result."""
    client = session.get_one(Client, client_id)
    day = as_of or client_today(client)
    result = forecast_client(session, client_id, day)
    _store_forecasts(session, client_id, day, result)
    moved = _store_behaviours(session, client_id, day, result)
    counts = {"debtors": len(result.current.behaviours), "moves": moved, "currencies": len(result.weeks)}
    audit.record(session, "forecast.refit", "Client", client_id=client_id, object_id=client_id,
                 after={**counts, "as_of": day.isoformat()})  # fmt: skip
    session.flush()
    return counts


def _store_forecasts(session: Session, client_id: int, day: date, result: Run) -> None:
    session.execute(delete(CashForecast).where(CashForecast.client_id == client_id, CashForecast.as_of == day))
    for cur, weeks in result.weeks.items():
        # every month-end forecast known, older ones too: a view of a past day reuses them instead of fitting
        origins = [
            {
                "as_of": p.as_of,
                "mean": [round(float(v), 2) for v in p.mean[cur]],
                "var": [round(float(v), 2) for v in p.var[cur]],
                "naive_average": [round(float(v), 2) for v in p.naive_average[cur]],
                "naive_due": [round(float(v), 2) for v in p.naive_due[cur]],
            }
            for p in sorted([*result.kept, *result.origins], key=lambda p: p.as_of)
            if cur in p.mean
        ]
        session.add(
            CashForecast(
                client_id=client_id,
                currency=cur,
                as_of=day,
                weeks=weeks,
                backtest=result.backtest[cur],
                calibration=result.calibration[cur][:200],
                origins=origins,
                computed_at=now_utc(),
            )
        )
    session.flush()


def _store_behaviours(session: Session, client_id: int, day: date, result: Run) -> int:
    """Replace the client's behaviour rows; record a move for each debtor whose segment changed."""
    obs = result.current.obs
    if obs is None:
        return 0
    t = day.toordinal()
    inv = obs.invoices
    open_ = inv[inv["open"] > 0]
    exposure = open_.groupby(["debtor_id", "currency"])["open"].sum()
    old90 = open_[open_["due"] <= t - 90].groupby("debtor_id")["open"].sum()
    recent = inv[inv["issue"] > t - 182].groupby(["debtor_id", "currency"])["base"].sum()
    # each debtor's main currency: the one it has most invoices in (ties: the first in alphabetical order)
    counts = inv.groupby(["debtor_id", "currency"]).size().reset_index(name="n")
    counts = counts.sort_values(["debtor_id", "n", "currency"], ascending=[True, False, True], kind="stable")
    currency_of = counts.drop_duplicates("debtor_id").set_index("debtor_id")["currency"]
    policies = {
        p.currency: {"months": p.months, "cap_minor": p.cap_minor}
        for p in session.scalars(select(CreditPolicy).where(CreditPolicy.client_id == client_id))
    }
    dialect = session.connection().dialect.name
    old_rows = read_frame(
        session,
        select(DebtorBehaviour.debtor_id, DebtorBehaviour.segment, day_ordinal(dialect, DebtorBehaviour.segment_since))
        .where(DebtorBehaviour.client_id == client_id),
        ["debtor_id", "segment", "since"],
        {"debtor_id": "int64", "segment": "object", "since": "int64"},
    )  # fmt: skip
    before = {
        int(d): (str(seg), date.fromordinal(int(since)))
        for d, seg, since in zip(old_rows["debtor_id"], old_rows["segment"], old_rows["since"], strict=True)
    }
    rows, moves = [], []
    now = now_utc()
    exposure_, old90_, recent_, currency_ = exposure.to_dict(), old90.to_dict(), recent.to_dict(), currency_of.to_dict()
    for d, b in result.current.behaviours.items():
        cur = str(currency_.get(d, ""))
        owed = int(exposure_.get((d, cur), 0))
        grade_, why = grade(b, float(old90_.get(d, 0)) / owed if owed else 0.0)
        monthly = int(recent_.get((d, cur), 0)) // 6
        old = before.get(d)
        since = day if old is None or old[0] != b.segment else old[1]
        if old is not None and old[0] != b.segment:
            moves.append({"client_id": client_id, "debtor_id": d, "on_day": day, "from_segment": old[0],
                          "to_segment": b.segment})  # fmt: skip
        rows.append(
            {
                "client_id": client_id,
                "debtor_id": d,
                "as_of": day,
                "segment": b.segment,
                "segment_since": since,
                "reasons": b.reasons,
                "due_invoices": b.due_invoices,
                "paid_share_bp": round(b.paid_share * 10_000),
                "mean_late_days": None if b.mean_late is None else round(b.mean_late),
                "promises_kept": b.kept,
                "promises_broken": b.broken,
                "disputes": b.disputes,
                "risk_grade": grade_,
                "grade_reasons": why,
                "currency": cur,
                "exposure_minor": owed,
                "monthly_minor": monthly,
                "credit_limit_minor": credit_limit(monthly, grade_, policies.get(cur)),
                "worsened": old is not None and RANK[b.segment] > RANK[old[0]],
                "fitted_at": now,
            }
        )
    session.execute(delete(DebtorBehaviour).where(DebtorBehaviour.client_id == client_id))
    if moves:
        session.execute(delete(SegmentMove).where(SegmentMove.client_id == client_id, SegmentMove.on_day == day))
        session.execute(insert(SegmentMove), moves)
    _bulk_insert(session, DebtorBehaviour, rows)
    return len(moves)


def _bulk_insert(session: Session, model: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows: on PostgreSQL as one statement reading them from a JSON array (`jsonb_to_recordset`; COPY
    FROM is refused under row-level security), elsewhere with one executemany per 5,000 rows."""
    if not rows:
        return
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        for start in range(0, len(rows), 5_000):
            session.execute(insert(model), rows[start : start + 5_000])
        return
    table = model.__table__
    columns = list(rows[0])
    types = ", ".join(f"{c} {table.c[c].type.compile(dialect=conn.dialect)}" for c in columns)
    names = ", ".join(columns)
    # table and column names come from the model; the rows travel as one bound parameter
    sql = (
        f"INSERT INTO {table.name} ({names}) SELECT {names} "  # noqa: S608
        f"FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r({types})"
    )
    for start in range(0, len(rows), 20_000):
        payload = json.dumps(rows[start : start + 20_000], default=lambda v: v.isoformat(), separators=(",", ":"))
        session.execute(text(sql), {"rows": payload})


def credit_policy_from_text(currency: str, months: dict[str, str], cap: str) -> tuple[str, dict[str, float], int]:
    """A limit policy typed into a form or the CLI: the currency's code, the months of average invoicing per grade
    ('' keeps the default for that grade) and the cap as an amount in that currency ('' or 0: no cap). Refuses,
    in plain words and naming the field, anything it cannot read."""
    from provider.core.errors import ServiceError
    from provider.core.money import Money, MoneyError, validate_currency
    from provider.forecast.segments import GRADES

    try:
        code = validate_currency((currency or "").strip().upper())
    except MoneyError as exc:
        raise ServiceError(f"Currency: {exc}", field="currency") from exc
    parsed: dict[str, float] = {}
    for grade_ in GRADES:
        text_ = (months.get(grade_) or "").strip()
        if not text_:
            continue
        field_ = f"months_{grade_}"
        try:
            value = float(text_.replace(",", "."))
        except ValueError:
            raise ServiceError(f"Months for grade {grade_}: “{text_[:20]}” is not a number", field=field_) from None
        if not 0 <= value <= 24:  # also refuses NaN and infinity
            raise ServiceError(f"Months for grade {grade_} must be from 0 to 24, not {text_[:20]}", field=field_)
        parsed[grade_] = value
    cap_text = (cap or "").strip()
    try:
        cap_minor = Money.parse(cap_text, code).minor if cap_text else 0
    except MoneyError as exc:
        raise ServiceError(f"Cap: {exc}", field="cap") from exc
    if cap_minor < 0:
        raise ServiceError("Cap: it cannot be negative (leave it empty for no cap)", field="cap")
    return code, parsed, cap_minor


def set_credit_policy(
    session: Session, client_id: int, currency: str, months: dict[str, float], cap_minor: int
) -> CreditPolicy:
    """Save the client's limit policy for a currency and apply it at once to the suggested limits of its debtors in
    that currency (the next refit would do the same). Refuses unknown grades, months outside 0-24 and a negative
    cap, changing nothing."""
    from provider.core.errors import ServiceError
    from provider.core.money import MoneyError, validate_currency
    from provider.forecast.segments import GRADES

    try:
        validate_currency(currency)
    except MoneyError as exc:
        raise ServiceError(f"Currency: {exc}", field="currency") from exc
    for key, value in months.items():
        if key not in GRADES:
            raise ServiceError(f"Grade {key!r} does not exist; grades are A to E", field="months")
        if not 0 <= float(value) <= 24:
            raise ServiceError(f"Months for grade {key} must be from 0 to 24", field="months")
    if cap_minor < 0:
        raise ServiceError("Cap: it cannot be negative", field="cap_minor")
    policy = session.scalar(
        select(CreditPolicy).where(CreditPolicy.client_id == client_id, CreditPolicy.currency == currency)
    )
    before = {"months": policy.months, "cap_minor": policy.cap_minor} if policy else None
    if policy is None:
        policy = CreditPolicy(client_id=client_id, currency=currency)
        session.add(policy)
    policy.months, policy.cap_minor = {k: float(v) for k, v in months.items()}, cap_minor
    audit.record(session, "credit_policy.save", policy, client_id=client_id, before=before,
                 after={"currency": currency, "months": policy.months, "cap_minor": cap_minor})  # fmt: skip
    session.flush()
    rule = {"months": policy.months, "cap_minor": cap_minor}
    changes = [
        {"client_id": client_id, "id": b_id, "credit_limit_minor": credit_limit(monthly, grade_, rule)}
        for b_id, monthly, grade_ in session.execute(
            select(DebtorBehaviour.id, DebtorBehaviour.monthly_minor, DebtorBehaviour.risk_grade).where(
                DebtorBehaviour.client_id == client_id, DebtorBehaviour.currency == currency
            )
        )
    ]
    if changes:
        session.execute(update(DebtorBehaviour), changes)
    return policy
