"""A monthly report as HTML (page) and PDF (WeasyPrint), from its frozen figures.

WeasyPrint gets the report stylesheet as a string and a URL fetcher that serves only the `data:` images
of our own charts (decoded here) and refuses every other URL: no network, no files.
"""

from __future__ import annotations

import base64
import io
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
    }
    if data:
        context["aging_chart"] = charts.data_uri(charts.aging_chart(data["aging"], currency or ""))
        context["trend_chart"] = charts.data_uri(charts.trend_chart(data["trend"]))
        context["tiles"] = fig.tiles(data)
    return context


def report_html(context: dict[str, Any]) -> str:
    """The standalone report document (for the PDF; the page wraps the same body in the app layout)."""
    return render_template("reports/report_pdf.html", ctx=context, **context)


def _stylesheet() -> str:
    return (Path(current_app.static_folder or "") / STYLESHEET).read_text(encoding="utf-8")


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


def render_pdf(html: str) -> tuple[bytes, int]:
    """(PDF bytes, number of pages), A4, offline."""
    from weasyprint import CSS, HTML

    document = HTML(string=html, base_url=None, url_fetcher=_fetcher()).render(stylesheets=[CSS(string=_stylesheet())])
    out = io.BytesIO()
    document.write_pdf(out)
    return out.getvalue(), len(document.pages)
