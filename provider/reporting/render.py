"""A monthly report as HTML (page) and PDF (WeasyPrint), from its frozen figures.

WeasyPrint gets the report stylesheet (parsed once per version of the file), the thread's font configuration
(kept between PDFs) and a URL fetcher that serves only the `data:` images of our own charts (decoded here) and
refuses every other URL: no network, no files.
"""

from __future__ import annotations

import base64
import gc
import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from flask import current_app, render_template

from clients.models import Client
from provider.reporting import charts
from provider.reporting import figures as fig

STYLESHEET = "report.css"


def agency_name() -> str:
    return str(current_app.config.get("AGENCY_NAME", "AR Ops Collections"))


def report_context(client: Client, period: str, figures: dict[str, Any], summary: list[str]) -> dict[str, Any]:
    currency = fig.primary_currency(figures, client.base_currency)
    data = figures["currencies"].get(currency) if currency else None
    context: dict[str, Any] = {
        "agency": agency_name(),
        "client": client,
        "period": period,
        "figures": figures,
        "currency": currency,
        "data": data,
        "others": sorted(c for c in figures["currencies"] if c != currency),
        "summary": summary,
        "external": figures.get("external") or {},
        "formulas": fig.FORMULAS,
        # the KPI page as of a day inside its month: the month's figures are the month so far
        "month_to_date": str(figures.get("end", "")) < _month_end(period),
    }
    if data:
        context["aging_chart"] = charts.data_uri(charts.aging_chart(data["aging"], currency or ""))
        context["trend_chart"] = charts.data_uri(charts.trend_chart(data["trend"]))
        if data.get("stair"):
            heatmap = charts.recovery_heatmap(data["stair"], list(figures.get("months") or []))
            context["recovery_heatmap"] = charts.data_uri(heatmap)
        context["tiles"] = fig.tiles(data)
    return context


def _month_end(period: str) -> str:
    from provider.reporting import formulas as f

    try:
        return f.month_end(f.parse_month(period)).isoformat()
    except ValueError:
        return ""


def report_html(context: dict[str, Any]) -> str:
    """The standalone report document (for the PDF; the page wraps the same body in the app layout). Its dates
    are written the same way whoever's browser asked for it: the PDF is stored and sent."""
    from provider.formatting import fixed_locale

    with fixed_locale():
        return render_template("reports/report_pdf.html", ctx=context, **context)


def _stylesheet() -> Any:
    """The report stylesheet as a WeasyPrint `CSS`, parsed again only when the file changes."""
    path = Path(current_app.static_folder or "") / STYLESHEET
    return _parsed_stylesheet(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=4)
def _parsed_stylesheet(path: str, _mtime_ns: int) -> Any:
    from weasyprint import CSS

    return CSS(string=Path(path).read_text(encoding="utf-8"))


def _fetcher() -> Any:
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class OwnChartsOnly(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> Any:
            if url.startswith("data:image/svg+xml;base64,"):
                body = base64.b64decode(url.split(",", 1)[1])
            elif url.startswith("data:image/svg+xml,"):
                body = unquote_to_bytes(url.split(",", 1)[1])
            else:
                raise ValueError(f"reports load no external resources ({url[:80]})")
            return URLFetcherResponse(url, body=body, headers={"Content-Type": "image/svg+xml"})

    return OwnChartsOnly()


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_restore = False


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while PDFs are laid out; on again (if it was) when the last ends.

    WeasyPrint allocates a few hundred thousand boxes, styles and text fragments for a long report, alive
    until the PDF is written. Left on, the collector walks that growing heap again and again and frees little:
    about a third of a 30-page report's time. The render's cyclic garbage is freed by the first collection
    after it (one pass over it instead of dozens); a 30-page render peaks about 70 MB higher.
    """
    global _gc_pausers, _gc_restore
    with _gc_lock:
        if _gc_pausers == 0:
            _gc_restore = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_restore:
                gc.enable()


_fonts = threading.local()


def _font_config() -> Any:
    """This thread's WeasyPrint font configuration, kept from one PDF to the next: Pango's font map and the fonts
    it has loaded are reused instead of set up again for every report (font maps are not shared across threads)."""
    config = getattr(_fonts, "config", None)
    if config is None:
        from weasyprint.text.fonts import FontConfiguration

        config = _fonts.config = FontConfiguration()
    return config


# WeasyPrint's user-agent rules for footnote and note markers (one rule a line in its html5_ua.css)
NOTE_RULES = re.compile(r"^::(?:footnote|note)-[\w-]+\s*\{[^}]*\}\s*$", re.MULTILINE)


def user_agent_css() -> str:
    """WeasyPrint's HTML user-agent stylesheet without its `::footnote-*` and `::note-*` rules.

    Those selectors match every element, so WeasyPrint computes five more styles per element (and leaves them as
    cyclic garbage), for markers of footnotes and notes that a report never has: a tenth of a long report's time.
    Everything else (`::marker` of the formulas' list included) is WeasyPrint's own sheet, read from the
    installed package."""
    from weasyprint import html as wp_html

    return NOTE_RULES.sub("", wp_html.UA)


@lru_cache(maxsize=1)
def _report_html_class() -> Any:
    """WeasyPrint's `HTML` with the user-agent sheet of `user_agent_css`, or `HTML` itself where the installed
    WeasyPrint does not look as expected (its private hook or its five note rules changed): same PDF, slower."""
    from weasyprint import CSS, HTML
    from weasyprint import html as wp_html
    from weasyprint.css.counters import CounterStyle

    if not hasattr(HTML, "_ua_stylesheets") or len(NOTE_RULES.findall(getattr(wp_html, "UA", ""))) != 5:
        return HTML

    # its @counter-style rules are in WeasyPrint's UA_COUNTER_STYLE already (documents start from a copy of it)
    sheet = CSS(string=user_agent_css(), counter_style=CounterStyle())

    class ReportHTML(HTML):  # type: ignore[misc]
        def _ua_stylesheets(self, forms: bool = False) -> list[Any]:
            return [sheet]  # a report has no forms

    return ReportHTML


def layout_pdf(html: str) -> Any:
    """The report laid out in pages (a WeasyPrint `Document`), as `render_pdf` writes it."""
    return _report_html_class()(string=html, base_url=None, url_fetcher=_fetcher()).render(
        stylesheets=[_stylesheet()], font_config=_font_config()
    )


def _write_pdf(html: str) -> tuple[bytes, int]:
    document = layout_pdf(html)
    out = io.BytesIO()
    document.write_pdf(out)
    return out.getvalue(), len(document.pages)


def render_pdf(html: str) -> tuple[bytes, int]:
    """(PDF bytes, number of pages), A4, offline."""
    with cyclic_gc_paused():
        return _write_pdf(html)  # the document is dropped before the collector is back on
