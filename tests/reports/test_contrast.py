"""Text colours meet WCAG AA (4.5:1) on every background the stylesheets put them on: the grey subtitles
("muted", secondary text) included, on the page background, cards and tinted boxes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

STATIC = Path(__file__).resolve().parents[2] / "provider" / "static"
ROOT = re.search(r":root\s*\{(.*?)\}", (STATIC / "app.css").read_text(), re.DOTALL)
VARS = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", ROOT.group(1) if ROOT else ""))
TEXT = ("text", "text-2", "muted", "ok", "warn", "danger", "accent")
BACKGROUNDS = ("bg", "surface", "surface-2", "accent-soft", "ok-soft", "warn-soft", "danger-soft")


def luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    dark, light = sorted((luminance(a), luminance(b)))
    return (light + 0.05) / (dark + 0.05)


def test_the_worked_example() -> None:
    assert round(contrast("#6b7482", "#f5f6f8"), 2) == 4.37  # the grey the walk measured: below AA
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0


@pytest.mark.parametrize("text", TEXT)
def test_text_colours_meet_aa_on_every_background(text: str) -> None:
    assert set(TEXT) | set(BACKGROUNDS) <= set(VARS)
    for background in BACKGROUNDS:
        ratio = contrast(VARS[text], VARS[background])
        assert ratio >= 4.5, f"--{text} on --{background}: {ratio:.2f}:1"


def test_report_and_chart_greys_meet_aa_on_white_and_the_page() -> None:
    css = (STATIC / "report.css").read_text()
    greys = set(re.findall(r"color:\s*(#[0-9a-fA-F]{6})", css))
    from provider.reporting.charts import STYLE

    greys |= {STYLE.foreground_subtle, *STYLE.colors[-1:]}
    for grey in greys:
        for background in ("#ffffff", VARS["bg"]):
            assert contrast(grey, background) >= 4.5, f"{grey} on {background}"
