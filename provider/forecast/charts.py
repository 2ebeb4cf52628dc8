"""The forecast chart: expected collections per week with the 80 % interval, as static SVG (pygal, the same look as
the KPI charts of provider.reporting.charts)."""

from __future__ import annotations

from typing import Any

import pygal

from provider.reporting.charts import _COMMON, _major, _svg, data_uri


def forecast_chart(weeks: list[dict[str, Any]], currency: str) -> str:
    """A data: URI of the chart (every figure is also printed in the table beside it)."""
    chart = pygal.Line(
        title=f"Expected collections per week ({currency}), with the 80 % interval",
        legend_at_bottom=True,
        x_label_rotation=30,
        **_COMMON,
    )
    chart.x_labels = [w["starts"] for w in weeks]
    chart.add("Expected", [_major(w["expected"], currency) for w in weeks])
    chart.add(
        "Low (80 %)", [_major(w["low"], currency) for w in weeks], show_dots=False, stroke_style={"dasharray": "4"}
    )
    chart.add(
        "High (80 %)", [_major(w["high"], currency) for w in weeks], show_dots=False, stroke_style={"dasharray": "4"}
    )
    return data_uri(_svg(chart))
