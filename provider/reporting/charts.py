"""SVG charts for reports and dashboards (pygal), the same code for the page and the PDF.

Charts are self-contained SVG (pygal's tooltips script is switched off: no remote JavaScript) and are
embedded as `data:` images, which the page's CSP (`img-src 'self' data:`) and the PDF's fetcher allow.
"""

from __future__ import annotations

import base64
import re
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
from provider.formatting import format_month_column  # noqa: E402


def _axis_label(value: float) -> str:
    """Axis labels: 60,000 and 78 (not 60000 and 78.33333333), and 8.5 where a small range has half steps
    (whole numbers only would print 8, 9, 9, 10)."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#1d2430",
    foreground_strong="#1d2430",
    foreground_subtle="#5b6472",
    colors=("#2f6fb3", "#d9822b", "#3c9a5f", "#b33c3c", "#7b5ea7", "#4f5866"),
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
    # rules without the per-chart `#chart-<uuid>` prefix: the same look (each chart is its own image), and
    # WeasyPrint renders the SVG about a third faster, which is most of a report page's cost beyond the text
    "no_prefix": True,
    "value_formatter": _axis_label,
}


# One colour per aging bucket, the same on every chart and bar of the product (the stylesheet's .aging-N and
# .aging-fill-N use these, in this order; tests/reports/test_charts_more.py holds them equal).
AGING_COLOURS = ("#3b82f6", "#22c55e", "#eab308", "#f97316", "#ef4444", "#991b1b")
AGING_COLOUR = dict(zip(BUCKETS, AGING_COLOURS, strict=True))


def _major(minor: int, currency: str) -> float:
    """Axis scale only (a chart is a picture; every figure is printed exactly in the tables)."""
    return float(Decimal(minor).scaleb(-exponent(currency)))


# Without the prefix, the first rule of each of pygal's stylesheets (the root's font, then its background) has
# an empty selector. pygal joins its stylesheets with newlines in one <style>, so the rules begin the <style>
# or a line. WeasyPrint stops reading an SVG stylesheet at the first selector it cannot parse: with the second
# one left empty, none of the fills and strokes after it applied and every chart in the PDF was a black box.
_EMPTY_SELECTOR = re.compile(r'(<style type="text/css">|\n)\{')
# What only an interactive chart uses: the tooltips' <desc> and <title> texts of every point and guide, and the
# config script of pygal's JavaScript (switched off). A chart here is an image (<img>, the PDF), which shows
# none of them; WeasyPrint still parses and styles each, about a quarter of a chart's cost.
_INTERACTIVE = re.compile(r"<desc\b[^>]*>.*?</desc>|<title>.*?</title>|<script\b[^>]*>.*?</script>", re.DOTALL)


def _svg(chart: Any) -> str:
    """The chart as static SVG text, each rule with a selector (the root rules get `svg`)."""
    return _INTERACTIVE.sub("", _EMPTY_SELECTOR.sub(r"\1svg{", chart.render(is_unicode=True)))


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def aging_chart(aging: dict[str, Any], currency: str) -> str:
    chart = pygal.Bar(title=f"Open receivables by days past due ({currency})", show_legend=False, **_COMMON)
    chart.x_labels = list(BUCKETS)
    chart.add(currency, [{"value": _major(aging["amounts"][b], currency), "color": AGING_COLOUR[b]} for b in BUCKETS])
    return _svg(chart)


def trend_chart(trend: list[dict[str, Any]]) -> str:
    """DSO (days) and CEI (%) over the last months."""
    chart = pygal.Line(title="DSO (days) and CEI (%) by month", legend_at_bottom=True, **_COMMON)
    chart.x_labels = [format_month_column(m["month"]) for m in trend]

    def series(key: str) -> list[float | None]:
        return [float(m[key]) if m[key] is not None else None for m in trend]

    # pygal cannot scale a series with no value at all (e.g. CEI with no credit sales): leave it out
    for label, key, secondary in (("DSO", "dso", False), ("Best possible DSO", "bpdso", False), ("CEI %", "cei", True)):
        values = series(key)
        if any(v is not None for v in values):
            chart.add(label, values, secondary=secondary)
    return _svg(chart)


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
    return _svg(chart)


def fees_chart(months: list[str], series: list[tuple[str, list[int]]], currency: str) -> str:
    """Fees earned per month, one stacked series per client (the page prints every figure in its table)."""
    chart = pygal.StackedBar(
        title=f"Fees earned per month ({currency})",
        legend_at_bottom=True,
        truncate_label=-1,
        x_label_rotation=30,
        **_COMMON,
    )
    chart.x_labels = months
    for name, values in series:
        chart.add(name, [_major(v, currency) for v in values])
    return _svg(chart)


def percent_lines(title: str, x_labels: list[str], series: list[tuple[str, list[float | None]]]) -> str:
    """Percentages over months, one line per series (SLA compliance by client and month)."""
    chart = pygal.Line(title=title, legend_at_bottom=True, range=(0, 100), truncate_legend=-1, **_COMMON)
    chart.x_labels = x_labels
    for name, values in series:
        if any(v is not None for v in values):
            chart.add(name, values)
    return _svg(chart)


def count_lines(title: str, x_labels: list[str], series: list[tuple[str, list[int | None]]]) -> str:
    """Counts over days, one line per series (SLA clocks at risk and breached at each day's end)."""
    chart = pygal.Line(
        title=title,
        legend_at_bottom=True,
        truncate_legend=-1,
        truncate_label=-1,
        show_minor_x_labels=False,
        x_label_rotation=0,
        **_COMMON,
    )
    chart.x_labels = x_labels
    chart.x_labels_major = x_labels[:: max(1, len(x_labels) // 6)]
    for name, values in series:
        chart.add(name, values)
    return _svg(chart)


def count_bars(title: str, x_labels: list[str], series: list[tuple[str, list[int]]], stacked: bool = False) -> str:
    """Counts per category (breaches per week; disputes by age, one stacked series per reason)."""
    kind = pygal.StackedBar if stacked else pygal.Bar
    chart = kind(title=title, legend_at_bottom=True, truncate_legend=-1, x_label_rotation=0, **_COMMON)
    chart.x_labels = x_labels
    for name, values in series:
        chart.add(name, values)
    return _svg(chart)


def _heat(rate: float | None) -> str:
    """White (0 %) to the report blue (100 %), by share of the placed amount collected."""
    if rate is None:
        return "#ffffff"
    share = max(0.0, min(rate, 100.0)) / 100
    low, high = (255, 255, 255), (31, 95, 191)
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in zip(low, high, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def recovery_heatmap(rows: list[dict[str, Any]], months: list[str]) -> str:
    """The stair-step as a heat-map: a row per placement month, a column per month since, the cell's colour the
    share collected by then (the number printed in the cell; the table beside it has every figure)."""
    from markupsafe import escape

    cell_w, cell_h, left, top = 44, 20, 70, 24
    width, height = left + cell_w * max(len(months), 1) + 4, top + cell_h * max(len(rows), 1) + 4
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="10">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for j, month in enumerate(months):
        x = left + j * cell_w + cell_w / 2
        out.append(
            f'<text x="{x}" y="{top - 8}" text-anchor="middle" fill="#1d2430">'
            f"{escape(format_month_column(month))}</text>"
        )
    for i, row in enumerate(rows):
        y = top + i * cell_h
        out.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" fill="#1d2430">'
            f"{escape(format_month_column(row['placed_month']))}</text>"
        )
        cells = {c["month"]: c for c in row.get("cells", [])}
        for j, month in enumerate(months):
            cell = cells.get(month)
            if cell is None or cell.get("rate") is None:
                continue
            rate = float(cell["rate"])
            x = left + j * cell_w
            ink = "#ffffff" if rate >= 55 else "#1d2430"
            out.append(
                f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" fill="{_heat(rate)}"'
                ' stroke="#dfe3e8" stroke-width="0.5"/>'
                f'<text x="{x + cell_w / 2 - 1}" y="{y + 13}" text-anchor="middle" fill="{ink}">{rate:.0f}%</text>'
            )
    out.append("</svg>")
    return "".join(out)


WORK_STATES = {
    "new": "New",
    "in_progress": "Being worked",
    "promised": "Promise to pay",
    "plan": "Payment plan",
    "disputed": "On hold (dispute)",
    "escalated": "With a manager",
}


def queue_chart(ageing: dict[str, dict[str, int]], buckets: list[str]) -> str:
    """Open work by state (bar) and time since the last contact (stacked): the queues' volume and age."""
    states = [s for s in WORK_STATES if s in ageing] + sorted(s for s in ageing if s not in WORK_STATES)
    chart = pygal.StackedBar(
        title="Open accounts by state and time since last contact", legend_at_bottom=True, truncate_label=-1, **_COMMON
    )
    chart.x_labels = [WORK_STATES.get(s, s.replace("_", " ").capitalize()) for s in states]
    for bucket in buckets:
        chart.add(bucket.capitalize(), [ageing[s].get(bucket, 0) for s in states])
    return _svg(chart)
