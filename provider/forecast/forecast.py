"""The 13-week collections forecast per currency, its 80 % interval, and the standing backtest.

A forecast made at day T reads only what had happened by T (`History.as_of(T)` semantics: invoices issued, receivable
moves, payments, promises made and resolved, disputes opened, all dated on or before T), so a forecast as of a past
date is the same whatever is posted later with a later date. Week w covers days T+7(w-1)+1 .. T+7w.

Expected collections in a week are the sum of
  - each open invoice's open amount times the share of it the debtor's curve expects that week
    (provider.forecast.model), less what a promise of the same debtor already accounts for;
  - open promises (payment plans' instalments are promises too) times the debtor's promise-keeping rate (its own
    kept/broken record shrunk towards the client's), in the week they fall due;
  - invoices not issued yet: the invoicing expected on each day (the last 13 weeks' level, following last year's
    course when there is a year of history, else half the recent trend), due after the usual terms, paid on the
    book's curve.

The 80 % interval is calibrated on this client's own past errors: the forecasts made at earlier month-ends
whose weeks had ended by T give relative errors (actual - forecast) / forecast; their 7th and 93rd percentiles
(a finite-sample allowance for an 80 % interval; by horizon: weeks 1-2, 3-6, 7-13; at least eight errors, else all
horizons together) widen the expectation. For weeks 7-13 the interval reaches at least as far on each side as the
errors' size (their 86th percentile): far weeks' errors follow the business's cycle, so their sign does not repeat.
With too few past forecasts the interval comes from the spread of the open invoices' payments plus a quarter of the
expectation.

The backtest compares the forecast made at each past month-end with what was then collected, week by week, with two
naive forecasts made at the same dates: the last 13 weeks' average, and "every open invoice is paid on its due date"
(overdue ones in the first week).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from provider.forecast.model import OFFSET, Observations, fit, observations, rest_shares, weekly_shares
from provider.forecast.segments import Behaviour, behaviours

WEEKS = 13
HORIZONS = (1, 4, 13)
MAX_ORIGINS = 24
MIN_HISTORY_DAYS = 120
PROMISE_PRIOR = 3.0
Z80 = 1.2816
# the errors' 7th and 93rd percentiles: past errors are few and a forecast's own week is one more draw, so the
# plain 10th/90th cover less than 80 % (the finite-sample correction of split-conformal intervals, rounded up)
LOW_Q = 0.07


@dataclass
class History:
    """A client's ledger as frames (days are date ordinals)."""

    invoices: pd.DataFrame  # id, debtor_id, currency, issue, due, amount
    moves: pd.DataFrame  # invoice_id, day, cash, amount
    payments: pd.DataFrame  # debtor_id, currency, day, amount
    promises: pd.DataFrame  # debtor_id, currency, created, due, amount, status, resolved
    disputes: pd.DataFrame  # debtor_id, opened
    debtor_ids: list[int] = field(default_factory=list)


@dataclass
class Point:
    """What a forecast made at `as_of` expects per week, per currency (minor units, floats)."""

    as_of: int
    mean: dict[str, np.ndarray]
    var: dict[str, np.ndarray]
    naive_average: dict[str, np.ndarray]
    naive_due: dict[str, np.ndarray]
    behaviours: dict[int, Behaviour] = field(default_factory=dict)
    obs: Observations | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def empty_history() -> History:
    return History(
        pd.DataFrame(columns=["id", "debtor_id", "currency", "issue", "due", "amount"]),
        pd.DataFrame(columns=["invoice_id", "day", "cash", "amount"]),
        pd.DataFrame(columns=["debtor_id", "currency", "day", "amount"]),
        pd.DataFrame(columns=["debtor_id", "currency", "created", "due", "amount", "status", "resolved"]),
        pd.DataFrame(columns=["debtor_id", "opened"]),
    )


def currencies(h: History, t: int) -> list[str]:
    return sorted(set(h.invoices[h.invoices["issue"] <= t]["currency"]))


def point(h: History, t: int) -> Point:
    """The forecast made at day `t` (expectation and spread per week), with the naive forecasts of that day."""
    if not (h.invoices["issue"] <= t).any():
        return Point(t, {}, {}, {}, {})  # nothing invoiced yet: nothing to forecast
    obs = observations(h.invoices, h.moves, t)
    debtors = sorted(obs.invoices["debtor_id"].unique().tolist())
    beh = behaviours(obs, h.promises, h.disputes, debtors)
    model = fit(obs, {d: b.segment for d, b in beh.items()})
    inv = obs.invoices[obs.invoices["open"] > 0]
    shares = weekly_shares(model, inv["debtor_id"].to_numpy(), (t - inv["due"]).to_numpy(dtype=float), WEEKS)
    part_paid = inv["first_paid"].notna().to_numpy()
    if model.rest is not None and part_paid.any():
        shares[part_paid] = rest_shares(model, t - inv["first_paid"].to_numpy(dtype=float)[part_paid], WEEKS)
    opens = inv["open"].to_numpy(dtype=float)
    factor, promised = _promises(h, t, inv)
    expect = opens[:, None] * shares * factor[:, None]
    spread = (opens**2)[:, None] * shares * (1 - shares)
    out = Point(t, {}, {}, {}, {}, beh, obs, {"model": model.summary})
    for cur in currencies(h, t):
        mask = (inv["currency"] == cur).to_numpy()
        mean = expect[mask].sum(axis=0) + promised.get(cur, np.zeros(WEEKS)) + _future(h, obs, model, t, cur)
        out.mean[cur] = mean
        out.var[cur] = spread[mask].sum(axis=0)
        out.naive_average[cur] = np.full(WEEKS, _paid_between(h, cur, t - 91, t) / 13.0)
        out.naive_due[cur] = _due_naive(inv[mask], t)
    return out


def _promises(h: History, t: int, inv: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per open invoice the share left to the curve once the debtor's open promises are counted; the promised
    amounts times the keeping rate, per currency and week."""
    factor = np.ones(len(inv))
    weekly: dict[str, np.ndarray] = {}
    p = h.promises
    if p.empty:
        return factor, weekly
    resolved = p[p["resolved"].notna() & (p["resolved"] <= t)]
    kept = resolved[resolved["status"] == "kept"].groupby("debtor_id").size()
    total = resolved[resolved["status"].isin(["kept", "broken"])].groupby("debtor_id").size()
    book = (kept.sum() + 0.6 * PROMISE_PRIOR) / (total.sum() + PROMISE_PRIOR)
    live = p[(p["created"] <= t) & (p["resolved"].isna() | (p["resolved"] > t)) & (p["due"] > t - 14)]
    if live.empty:
        return factor, weekly
    rate = (kept.reindex(live["debtor_id"]).fillna(0).to_numpy() + PROMISE_PRIOR * book) / (
        total.reindex(live["debtor_id"]).fillna(0).to_numpy() + PROMISE_PRIOR
    )
    week = np.clip((live["due"].to_numpy() - t - 1) // 7, 0, WEEKS - 1)
    expected = live["amount"].to_numpy(dtype=float) * rate
    for cur in sorted(set(live["currency"])):
        mask = (live["currency"] == cur).to_numpy()
        weekly[cur] = np.bincount(week[mask].astype(np.int64), weights=expected[mask], minlength=WEEKS)
    owed = inv.groupby("debtor_id")["open"].sum()
    live = live.assign(rate=rate)
    cover = (live.groupby("debtor_id")["amount"].sum() / owed.reindex(live["debtor_id"].unique())).clip(upper=1.0)
    keep = live.groupby("debtor_id")["rate"].mean()
    reduce = (cover * keep).reindex(inv["debtor_id"]).fillna(0.0).to_numpy()
    return 1.0 - reduce, weekly


def _future(h: History, obs: Observations, model: Any, t: int, cur: str) -> np.ndarray:
    """Collections from invoices not issued yet: the invoicing expected on each day (`_invoicing`), the usual terms,
    the book's curve of lateness."""
    inv = obs.invoices[(obs.invoices["currency"] == cur)]
    recent = inv[inv["issue"] > t - 91]
    out = np.zeros(WEEKS)
    if recent.empty:
        return out
    rate = _invoicing(inv, t)
    terms = int(np.median((inv["due"] - inv["issue"]).to_numpy()))
    paid = 1.0 - model.book_raw  # share paid by (lateness + OFFSET)
    top = len(paid) - 1
    # an invoice issued on day t+s (s = 1..91) is due on t+s+terms; week w covers days t+7w+1 .. t+7w+7
    s_ = np.arange(1, 7 * WEEKS + 1)[:, None]
    w_ = np.arange(WEEKS)[None, :]
    hi = 7 * (w_ + 1) - s_ - terms + OFFSET  # the week's last day, as lateness + OFFSET
    lo = np.maximum(7 * w_, s_ - 1) - s_ - terms + OFFSET  # the day before the week (or the issue day)
    a = paid[np.clip(hi, 0, top)]
    b = np.where(lo >= 0, paid[np.clip(lo, 0, top)], 0.0)
    inside = 7 * (w_ + 1) >= s_  # the week ends on or after the issue day
    return (rate[:, None] * np.where(inside, np.maximum(a - b, 0.0), 0.0)).sum(axis=0)


YEAR = 364  # 52 weeks: the same weekdays a year earlier
TREND_DAMPING = 0.5


def _invoicing(inv: pd.DataFrame, t: int) -> np.ndarray:
    """Expected invoicing (minor units) on each day t+1 .. t+91, from invoices issued by `t` (`inv`: issue, base).

    The level is the last 13 weeks' invoicing per day. With more than a year and 13 weeks of history it follows last
    year's course: each day gets what was invoiced around the same day a year earlier (four weeks centred on it),
    scaled by how this year's last 13 weeks compare with the same 13 weeks of last year. With less, a damped trend:
    half the change from the 13 weeks before to the last 13, carried forward (at most +-30 %)."""
    issue = inv["issue"].to_numpy(dtype=np.int64)
    first = int(issue.min())
    daily = np.bincount(issue - first, weights=inv["base"].to_numpy(dtype=float), minlength=t - first + 1)
    running = np.concatenate([[0.0], np.cumsum(daily)])

    def total(start: int, end: int) -> float:
        """Invoiced on days (start, end]."""
        lo, hi = np.clip([start - first + 1, end - first + 1], 0, len(running) - 1)
        return float(running[hi] - running[lo])

    level = total(t - 91, t) / 91.0
    days = np.arange(1, 7 * WEEKS + 1)
    if t - YEAR - 91 >= first:
        before = total(t - YEAR - 91, t - YEAR) / 91.0
        if before > 0:
            around = np.array([total(t + d - YEAR - 14, t + d - YEAR + 14) / 28.0 for d in range(1, 7 * WEEKS + 1)])
            return around * (level / before)
    rate = np.full(len(days), level)
    if t - 182 >= first:
        earlier = total(t - 182, t - 91) / 91.0
        if earlier > 0:
            growth = np.clip(TREND_DAMPING * (level / earlier - 1.0), -0.3, 0.3)
            # the level is that of the last 13 weeks' middle (6.5 weeks ago): carried forward to each day
            rate = level * (1.0 + growth * (days + 45.5) / 91.0)
    return np.maximum(rate, 0.0)


def _paid_between(h: History, cur: str, start: int, end: int) -> int:
    """Money actually received in (start, end], in minor units (amounts are integers; only forecasts are not)."""
    pay = h.payments
    mask = (pay["currency"] == cur) & (pay["day"] > start) & (pay["day"] <= end)
    return int(pay[mask]["amount"].sum())


def _due_naive(inv: pd.DataFrame, t: int) -> np.ndarray:
    week = np.clip((inv["due"].to_numpy(dtype=np.int64) - t - 1) // 7, 0, None)
    inside = week < WEEKS
    return np.bincount(week[inside], weights=inv["open"].to_numpy(dtype=float)[inside], minlength=WEEKS)[:WEEKS]


def actual(h: History, cur: str, t: int) -> np.ndarray:
    """What was collected (payments received) in each of the 13 weeks after `t`."""
    return actuals(h, cur, [t])[0]


def actuals(h: History, cur: str, starts: list[int]) -> np.ndarray:
    """What was collected in each of the 13 weeks after each day of `starts` (rows: starts, columns: weeks), from
    the running total of the currency's payments by day (one sort, then binary searches)."""
    pay = h.payments[h.payments["currency"] == cur]
    days = pay["day"].to_numpy(dtype=np.int64)
    order = np.argsort(days, kind="stable")
    days, running = days[order], np.concatenate([[0.0], np.cumsum(pay["amount"].to_numpy(dtype=float)[order])])
    edges = np.asarray(starts, dtype=np.int64)[:, None] + 7 * np.arange(WEEKS + 1)[None, :]
    paid_by = running[np.searchsorted(days, edges, side="right")]  # paid on or before each edge day
    return np.diff(paid_by, axis=1)


def month_ends(h: History, t: int) -> list[int]:
    """The month-ends before `t` with enough history behind them (the last MAX_ORIGINS)."""
    if h.invoices.empty:
        return []
    first = int(h.invoices["issue"].min()) + MIN_HISTORY_DAYS
    day = date.fromordinal(t).replace(day=1) - timedelta(days=1)
    out: list[int] = []
    while day.toordinal() >= first and len(out) < MAX_ORIGINS:
        out.append(day.toordinal())
        day = day.replace(day=1) - timedelta(days=1)
    return sorted(out)


# --- intervals and the backtest ---------------------------------------------------------------------------


def _bucket(w: int) -> int:
    return 0 if w < 2 else (1 if w < 6 else 2)


def interval(point_: Point, cur: str, past: list[tuple[int, int, float, float]]) -> tuple[np.ndarray, np.ndarray, str]:
    """Low and high ends of the 80 % interval per week, from `past` errors (origin, week index, forecast, actual)
    whose week had ended by the forecast's day; and how it was calibrated, in words."""
    mean = point_.mean[cur]
    table = np.asarray(past, dtype=float).reshape(-1, 4)
    origin, week, made, got = table.T
    usable = (made > 0) & (origin + 7 * (week + 1) <= point_.as_of)
    rel = (got[usable] - made[usable]) / made[usable]
    bucket = np.select([week[usable] < 2, week[usable] < 6], [0, 1], 2)
    if len(rel) >= 8:
        low, high = np.zeros(WEEKS), np.zeros(WEEKS)
        for w in range(WEEKS):
            own = rel[bucket == _bucket(w)]
            pool = own if len(own) >= 8 else rel
            q10, q90 = np.quantile(pool, [LOW_Q, 1 - LOW_Q])
            if _bucket(w) == 2:
                # far weeks' errors follow the business's cycle (a season's upturn, then its downturn), so their
                # sign does not repeat: the interval is as wide on both sides as the errors' size
                size = float(np.quantile(np.abs(pool), 1 - 2 * LOW_Q))
                q10, q90 = min(q10, -size), max(q90, size)
            low[w], high[w] = mean[w] * (1 + q10), mean[w] * (1 + q90)
        how = f"from {len(rel)} weekly errors of this client's past forecasts"
        # the interval always holds the expectation itself (past errors all of one sign would leave it outside)
        return np.minimum(np.maximum(low, 0.0), mean), np.maximum(high, mean), how
    sd = np.sqrt(point_.var[cur] + (0.25 * mean) ** 2)
    return np.maximum(mean - Z80 * sd, 0.0), mean + Z80 * sd, "from the spread of the open invoices (little history)"


@dataclass
class Run:
    """A forecast made at `as_of` with its intervals, and the backtest of the month-ends before it."""

    as_of: int
    current: Point
    origins: list[Point]
    weeks: dict[str, list[dict[str, Any]]]
    backtest: dict[str, dict[str, Any]]
    calibration: dict[str, str]
    kept: list[Point] = field(default_factory=list)  # stored month-end forecasts older than the backtest's


def run(h: History, t: int, origins: list[Point] | None = None) -> Run:
    """Forecast at `t` and backtest at the month-ends before it. `origins` may bring forecasts already made at
    those month-ends (they never change: each read only what was known at its own date)."""
    if origins is None:
        origins = [point(h, o) for o in month_ends(h, t)]
    origins = [p for p in origins if p.as_of < t]
    current = point(h, t)
    weeks: dict[str, list[dict[str, Any]]] = {}
    backtest: dict[str, dict[str, Any]] = {}
    calibration: dict[str, str] = {}
    for cur in currencies(h, t):
        errors: list[tuple[int, int, float, float]] = []
        rows = []
        mine = [p for p in origins if cur in p.mean]
        acts = actuals(h, cur, [p.as_of for p in mine]) if mine else np.zeros((0, WEEKS))
        for p, act in zip(mine, acts, strict=True):
            low, high, _how = interval(p, cur, errors)
            for w in range(WEEKS):
                if p.as_of + 7 * (w + 1) <= t:
                    rows.append(
                        {
                            "origin": p.as_of,
                            "week": w + 1,
                            "forecast": float(p.mean[cur][w]),
                            "actual": float(act[w]),
                            "low": float(low[w]),
                            "high": float(high[w]),
                            "naive_average": float(p.naive_average[cur][w]),
                            "naive_due": float(p.naive_due[cur][w]),
                        }
                    )
            errors += [(p.as_of, w, float(p.mean[cur][w]), float(act[w])) for w in range(WEEKS)]
        low, high, how = interval(current, cur, errors)
        calibration[cur] = how
        weeks[cur] = [
            {
                "week": w + 1,
                "starts": date.fromordinal(t + 7 * w + 1).isoformat(),
                "ends": date.fromordinal(t + 7 * w + 7).isoformat(),
                "expected": round(float(current.mean[cur][w])),
                "low": round(float(low[w])),
                "high": round(float(high[w])),
            }
            for w in range(WEEKS)
        ]
        backtest[cur] = metrics(rows)
    return Run(t, current, origins, weeks, backtest, calibration)


def _wape(err: float, total: float) -> float | None:
    return round(err / total, 4) if total > 0 else None


def metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """WAPE and bias per horizon for the forecast and both naive forecasts; interval coverage over all weeks."""
    out: dict[str, Any] = {"origins": len({r["origin"] for r in rows}), "horizons": {}}
    for h in HORIZONS:
        sel = [r for r in rows if r["week"] == h]
        total = sum(r["actual"] for r in sel)
        entry: dict[str, Any] = {"weeks": len(sel)}
        for key in ("forecast", "naive_average", "naive_due"):
            entry[key] = {
                "wape": _wape(sum(abs(r[key] - r["actual"]) for r in sel), total),
                "bias": _wape(sum(r[key] - r["actual"] for r in sel), total),
            }
        out["horizons"][str(h)] = entry
    inside = [r["low"] <= r["actual"] <= r["high"] for r in rows]
    out["coverage"] = round(sum(inside) / len(inside), 4) if inside else None
    out["weeks_checked"] = len(inside)
    return out
