"""Inline SVG geometry for the overview (aging bars, KPI trend lines), drawn by the templates.

Inline SVG with presentation attributes only: no script, no style attributes (the CSP forbids inline
styles), no extra request, and fast enough to build on every page view. Each chart has a text
equivalent next to it (the aging table, the KPI figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from clients.ledger_queries import BUCKETS, Aging


@dataclass(frozen=True)
class Bar:
    label: str
    minor: int
    x: float
    width: float
    y: float
    index: int


def aging_bars(aging: Aging, width: float = 100.0, row: float = 22.0) -> list[Bar]:
    """One horizontal bar per bucket, scaled to the largest bucket (widths in % of the plot)."""
    top = max(aging.buckets.values()) or 1
    return [
        Bar(
            label=b,
            minor=aging.buckets[b],
            x=0.0,
            width=round(width * aging.buckets[b] / top, 2),
            y=i * row,
            index=i + 1,
        )
        for i, b in enumerate(BUCKETS)
    ]


@dataclass(frozen=True)
class Trend:
    points: str  # polyline "x,y x,y ..." in a 0..100 x 0..40 box
    first: str
    last: str
    low: str
    high: str
    count: int


def trend_line(trend: list[dict[str, Any]], key: str, w: float = 100.0, h: float = 40.0) -> Trend | None:
    """The monthly values of one KPI as a polyline (months without a value are skipped)."""
    values = [(i, Decimal(str(m[key]))) for i, m in enumerate(trend) if m.get(key) is not None]
    if len(values) < 2:
        return None
    low, high = min(v for _, v in values), max(v for _, v in values)
    span = (high - low) or Decimal(1)
    last_index = max(len(trend) - 1, 1)
    points = " ".join(
        f"{round(w * i / last_index, 2)},{round(float(h - 4 - (h - 8) * float((v - low) / span)), 2)}"
        for i, v in values
    )
    return Trend(points, trend[values[0][0]]["month"], trend[values[-1][0]]["month"], str(low), str(high), len(values))
