"""From journal sums to report figures: `collect_inputs` runs the queries, `derive` is pure.

A report stores both: the inputs (every sum it used, with the as-of date and the posting cut-off) and
the figures derived from them. `derive(inputs)` always gives the same figures, so a frozen report can be
proven reproducible without touching the journal again.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from provider.reporting import formulas as f
from provider.reporting import kpi

TREND_MONTHS = 12
FORMULAS = {
    "dso": f.DSO_FORMULA,
    "countback": f.COUNTBACK_FORMULA,
    "bpdso": f.BPDSO_FORMULA,
    "cei": f.CEI_FORMULA + "; monthly report: N = 1",
}
COUNTBACK_MONTHS = 24


def periods(end: date, months: int) -> list[tuple[date, date]]:
    """The `months` periods ending with the one that contains `end` (that last one ends at `end`)."""
    out = []
    for back in range(months - 1, -1, -1):
        start = f.add_months(end, -back)
        out.append((start, end if back == 0 else f.month_end(start)))
    return out


def collect_inputs(
    client_id: int,
    end: date,
    posted_by: datetime | None = None,
    months: int = TREND_MONTHS,
    top: int = 10,
    *,
    totals: bool = True,
) -> dict[str, Any]:
    """Every journal sum a report (or a KPI page, or a snapshot) needs, per currency, as JSON.

    Flows, AR series and recovery stair come from the client's monthly totals (`kpi.totals_pass`), or, with
    `totals` false, from one grouped statement over its journal (`kpi.journal_pass`, which the tests hold equal).
    Aging and top debtors come from the cached invoice balances when the pass proves them equal to the
    journal's as of `end` (no receivable entry after `end` or posted after `posted_by`), else from those
    balances less what came after (`kpi.aging_then`), or with `totals` false from the journal. Gives exactly
    what `collect_inputs_by_queries` gives.
    """
    spans = periods(end, months)
    first_start = spans[0][0]
    ends = [f.previous_day(first_start)] + [e for _, e in spans]
    flows_from = f.add_months(first_start, -COUNTBACK_MONTHS)
    if totals:
        journal = kpi.totals_pass(client_id, ends, first_start, flows_from, posted_by)
    else:
        journal = kpi.journal_pass(client_id, ends, first_start, flows_from, posted_by)
    if journal.stale and totals:
        aging = kpi.aging_then(client_id, end, posted_by)
        debtors = kpi.top_debtors_then(client_id, end, posted_by, limit=top)
    elif journal.stale:
        aging = kpi.aging_at(client_id, end, posted_by)
        debtors = kpi.top_debtors(client_id, end, posted_by, limit=top)
    else:
        aging = kpi.aging_cached(client_id, end)
        debtors = kpi.top_debtors_cached(client_id, end, limit=top)
    series = journal.series
    if totals and end != f.month_end(end):  # the totals know due dates to the month: current AR from the aging
        series = {
            c: [*points[:-1], (points[-1][0], aging[c].current if c in aging else 0)] for c, points in series.items()
        }
    return _inputs(client_id, end, posted_by, spans, ends, journal.flows, series, aging, journal.stair, debtors)


def collect_inputs_by_queries(
    client_id: int, end: date, posted_by: datetime | None = None, months: int = TREND_MONTHS, top: int = 10
) -> dict[str, Any]:
    """`collect_inputs` the former way, one query per figure over the journal (the reference of the tests)."""
    spans = periods(end, months)
    first_start = spans[0][0]
    ends = [f.previous_day(first_start)] + [e for _, e in spans]
    flows = kpi.flows_by_month(client_id, f.add_months(first_start, -COUNTBACK_MONTHS), end, posted_by)
    series = kpi.ar_series(client_id, ends, posted_by)
    aging = kpi.aging_at(client_id, end, posted_by)
    stair = kpi.recovery_stair(client_id, first_start, end, posted_by)
    debtors = kpi.top_debtors(client_id, end, posted_by, limit=top)
    return _inputs(client_id, end, posted_by, spans, ends, flows, series, aging, stair, debtors)


def _inputs(
    client_id: int,
    end: date,
    posted_by: datetime | None,
    spans: list[tuple[date, date]],
    ends: list[date],
    flows: dict[str, Any],
    series: dict[str, list[tuple[int, int]]],
    aging: dict[str, kpi.AgingFigures],
    stair: dict[str, Any],
    debtors: list[dict[str, Any]],
) -> dict[str, Any]:
    currencies = sorted(set(flows) | set(series) | set(aging))
    return {
        "client_id": client_id,
        "end": end.isoformat(),
        "posted_by": posted_by.isoformat() if posted_by else None,
        "periods": [[s.isoformat(), e.isoformat()] for s, e in spans],
        "ends": [e.isoformat() for e in ends],
        "currencies": {
            c: {
                "ar": [list(pair) for pair in series.get(c, [(0, 0)] * len(ends))],
                "flows": flows.get(c, {}),
                "aging": (aging.get(c) or kpi.AgingFigures(c)).to_json(),
                "stair": stair.get(c, {}),
                "top_debtors": [d for d in debtors if d["currency"] == c],
            }
            for c in currencies
        },
    }


_EMPTY_FLOW = {"sales": 0, "agency": 0, "client": 0, "written_off": 0, "credited": 0}


def _month_figures(data: dict[str, Any], index: int, start: date, end: date) -> dict[str, Any]:
    (ar_begin, _), (ar_end, current_end) = data["ar"][index], data["ar"][index + 1]
    flow = data["flows"].get(f.month_key(start), _EMPTY_FLOW)
    sales, days = flow["sales"], f.days_between(start, end)
    back = []
    for i in range(COUNTBACK_MONTHS):
        month = f.add_months(start, -i)
        span_days = days if i == 0 else f.days_between(month, f.month_end(month))
        back.append((data["flows"].get(f.month_key(month), _EMPTY_FLOW)["sales"], span_days))
    return {
        "month": f.month_key(start),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "days": days,
        "ar_begin": ar_begin,
        "ar_end": ar_end,
        "current_end": current_end,
        "sales": sales,
        "collected_agency": flow["agency"],
        "collected_client": flow["client"],
        "collected": flow["agency"] + flow["client"],
        "written_off": flow["written_off"],
        "credited": flow["credited"],
        "dso": f.rounded(f.dso(ar_end, sales, days)),
        "countback_dso": f.rounded(f.countback_dso(ar_end, back)),
        # AR is more than the sales of all the months counted back: countback_dso is a lower bound ("> 730")
        "countback_dso_is_lower_bound": f.countback_runs_out(ar_end, back),
        "bpdso": f.rounded(f.best_possible_dso(current_end, sales, days)),
        "add": f.rounded(f.average_days_delinquent(ar_end, current_end, sales, days)),
        "cei": f.rounded(f.cei(ar_begin, sales, ar_end, current_end, months=1)),
    }


def _stair_rows(stair: dict[str, Any], months: list[str]) -> list[dict[str, Any]]:
    rows = []
    for key in sorted(stair):
        placed = stair[key]["placed"]
        cumulative, cells = 0, []
        for month in months:
            if month < key:
                continue
            cumulative += stair[key]["collected"].get(month, 0)
            cells.append({"month": month, "collected": cumulative, "rate": f.rounded(f.percent(cumulative, placed), 1)})
        rows.append({"placed_month": key, "placed": placed, "collected": cumulative, "cells": cells})
    return rows


def derive(inputs: dict[str, Any]) -> dict[str, Any]:
    """The figures of a report from its inputs (pure: no database)."""
    spans = [(date.fromisoformat(s), date.fromisoformat(e)) for s, e in inputs["periods"]]
    months = [f.month_key(s) for s, _ in spans]
    out: dict[str, Any] = {"end": inputs["end"], "months": months, "currencies": {}}
    for currency, data in inputs["currencies"].items():
        trend = [_month_figures(data, i, s, e) for i, (s, e) in enumerate(spans)]
        aging = kpi.AgingFigures.from_json(data["aging"])
        out["currencies"][currency] = {
            "trend": trend,
            "current": trend[-1],
            "previous": trend[-2] if len(trend) > 1 else None,
            "aging": aging.to_json(),
            "aging_total": aging.total,
            "overdue": aging.overdue,
            "open_invoices": aging.open_count,
            "overdue_share": f.rounded(f.percent(aging.overdue, aging.total), 1),
            "stair": _stair_rows(data["stair"], months),
            "top_debtors": data["top_debtors"],
        }
    return out


def primary_currency(figures: dict[str, Any], preferred: str) -> str | None:
    """The client's base currency when it has figures, else the one with the most open AR."""
    currencies = figures.get("currencies", {})
    if preferred in currencies:
        return preferred
    if not currencies:
        return None
    return max(currencies, key=lambda c: (currencies[c]["aging_total"], c))


def change(current: str | int | None, previous: str | int | None) -> Decimal | None:
    """current - previous for tiles (None when either is not defined)."""
    if current is None or previous is None:
        return None
    return Decimal(str(current)) - Decimal(str(previous))


TILES = (
    ("Collected", "collected", "money", True),
    ("Open AR", "ar_end", "money", False),
    ("Placed", "sales", "money", True),
    ("DSO", "dso", "days", False),
    ("Countback DSO", "countback_dso", "days", False),
    ("Best possible DSO", "bpdso", "days", False),
    ("ADD", "add", "days", False),
    ("CEI", "cei", "percent", True),
)


def tiles(data: dict[str, Any]) -> list[dict[str, Any]]:
    """KPI tiles with the change against the previous month; `better` says whether the change is good news."""
    now, before = data["current"], data["previous"] or {}
    out = []
    for label, key, kind, higher_is_better in TILES:
        delta = change(now.get(key), before.get(key))
        bound = bool(now.get(f"{key}_is_lower_bound"))
        if bound or before.get(f"{key}_is_lower_bound"):
            delta = None  # a change against a bound says nothing
        better = None if not delta else (delta > 0) == higher_is_better
        out.append(
            {
                "label": label,
                "key": key,
                "kind": kind,
                "value": now.get(key),
                "delta": delta,
                "better": better,
                "bound": bound,
            }
        )
    return out


def with_countback_bounds(figures: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """A stored report's figures with `countback_dso_is_lower_bound` on every month, derived again from its
    frozen inputs for reports made before the field existed (the stored figures are otherwise kept as they are)."""
    months = [m for c in figures.get("currencies", {}).values() for m in c.get("trend", [])]
    if all("countback_dso_is_lower_bound" in m for m in months):
        return figures
    fresh = derive(inputs)["currencies"]
    out = {**figures, "currencies": {}}
    for currency, data in figures.get("currencies", {}).items():
        flags = {m["month"]: m["countback_dso_is_lower_bound"] for m in fresh.get(currency, {}).get("trend", [])}

        def flagged(month: dict[str, Any] | None, flags: dict[str, bool] = flags) -> dict[str, Any] | None:
            if month is None:
                return None
            return {**month, "countback_dso_is_lower_bound": flags.get(month.get("month", ""), False)}

        out["currencies"][currency] = {
            **data,
            "trend": [flagged(m) for m in data.get("trend", [])],
            "current": flagged(data.get("current")),
            "previous": flagged(data.get("previous")),
        }
    return out
