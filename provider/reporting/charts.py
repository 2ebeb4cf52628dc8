"""SVG charts for reports and dashboards (pygal), the same code for the page and the PDF.

Charts are self-contained SVG (pygal's tooltips script is switched off: no remote JavaScript) and are
embedded as `data:` images, which the page's CSP (`img-src 'self' data:`) and the PDF's fetcher allow.
"""

from __future__ import annotations

import base64
import sys
from decimal import Decimal
from typing import Any

import pygal
from pygal.style import Style

# pygal appends a legacy `sys.meta_path` finder (for its map plugins, unused here) that has no
# `find_spec`, so every later import in the process raises an ImportWarning (an error under pytest).
sys.meta_path[:] = [finder for finder in sys.meta_path if type(finder).__name__ != "PluginImportFixer"]

from clients.ledger_queries import BUCKETS  # noqa: E402 - after the meta_path fix above
from provider.core.money import exponent  # noqa: E402

STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#1d2430",
    foreground_strong="#1d2430",
    foreground_subtle="#6b7482",
    colors=("#2f6fb3", "#d9822b", "#3c9a5f", "#b33c3c", "#7b5ea7", "#6b7482"),
    font_family="DejaVu Sans, Liberation Sans, Arial, sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=11,
    title_font_size=13,
    value_font_size=10,
)
_COMMON = {
    "style": STYLE,
    "js": [],
    "disable_xml_declaration": True,
    "width": 720,
    "height": 300,
    "margin": 10,
    "explicit_size": True,
}


def _major(minor: int, currency: str) -> float:
    """Axis scale only (a chart is a picture; every figure is printed exactly in the tables)."""
    return float(Decimal(minor).scaleb(-exponent(currency)))


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def aging_chart(aging: dict[str, Any], currency: str) -> str:
    chart = pygal.Bar(title=f"Open receivables by days past due ({currency})", show_legend=False, **_COMMON)
    chart.x_labels = list(BUCKETS)
    chart.add(currency, [_major(aging["amounts"][b], currency) for b in BUCKETS])
    return chart.render(is_unicode=True)


def trend_chart(trend: list[dict[str, Any]]) -> str:
    """DSO (days) and CEI (%) over the last months."""
    chart = pygal.Line(title="DSO (days) and CEI (%) by month", legend_at_bottom=True, **_COMMON)
    chart.x_labels = [m["month"] for m in trend]

    def series(key: str) -> list[float | None]:
        return [float(m[key]) if m[key] is not None else None for m in trend]

    # pygal cannot scale a series with no value at all (e.g. CEI with no credit sales): leave it out
    for label, key, secondary in (("DSO", "dso", False), ("Best possible DSO", "bpdso", False), ("CEI %", "cei", True)):
        values = series(key)
        if any(v is not None for v in values):
            chart.add(label, values, secondary=secondary)
    return chart.render(is_unicode=True)


def sparkline(values: list[float | None]) -> str:
    chart = pygal.Line(
        style=STYLE,
        js=[],
        disable_xml_declaration=True,
        width=160,
        height=40,
        show_legend=False,
        show_x_labels=False,
        show_y_labels=False,
        show_dots=False,
        margin=2,
        explicit_size=True,
    )
    chart.add("", values)
    return chart.render(is_unicode=True)
