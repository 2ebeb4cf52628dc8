"""The report charts as WeasyPrint reads them: every stylesheet rule applies, no interactive leftovers."""

from __future__ import annotations

import re

import pytest
import tinycss2

from clients.ledger_queries import BUCKETS
from provider.reporting import charts

AGING = {"amounts": dict(zip(BUCKETS, (1_000_00, 2_500_00, 0, 75_00, 0, 9_999_00), strict=True))}
TREND = [
    {"month": f"2026-{m:02d}", "dso": 40 + m * 1.37, "bpdso": 8 + m * 0.25, "cei": 70 + (m % 3) * 2.5}
    for m in range(1, 13)
]


def _charts() -> list[str]:
    return [charts.aging_chart(AGING, "EUR"), charts.trend_chart(TREND), charts.sparkline([1.0, None, 3.5, 2.0])]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["aging", "trend", "sparkline"])
def test_every_svg_style_rule_has_a_selector(index: int) -> None:
    """WeasyPrint stops reading an SVG stylesheet at the first rule it cannot parse: one empty selector left
    every fill and stroke after it unapplied, and the chart came out of the PDF as a black box."""
    svg = _charts()[index]
    sheets = re.findall(r"<style[^>]*>(.*?)</style>", svg, re.DOTALL)
    assert sheets, "pygal's stylesheet is inline"
    rules = [r for sheet in sheets for r in tinycss2.parse_stylesheet(sheet, skip_comments=True, skip_whitespace=True)]
    assert len(rules) > 10
    for rule in rules:
        assert rule.type == "qualified-rule", rule
        assert tinycss2.serialize(rule.prelude).strip(), (
            f"a rule without a selector: {{{tinycss2.serialize(rule.content)}}}"
        )


def test_charts_carry_no_script_or_tooltips() -> None:
    for svg in _charts():
        assert "<script" not in svg
        assert "<desc" not in svg and "<title>" not in svg


def test_axis_labels_are_whole_numbers_unless_the_step_is_not() -> None:
    assert charts._axis_label(60000.0) == "60,000"
    assert charts._axis_label(78.0) == "78"
    assert charts._axis_label(8.5) == "8.5"
    assert charts._axis_label(78.33333333) == "78.3"
