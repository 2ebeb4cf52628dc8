"""The SLA dashboard's charts: compliance by client and month, breaches by week, disputes by age and reason,
each an SVG image with its figures in a table on the page; one colour per aging bucket everywhere."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.reporting import charts
from sla.sweep import sweep
from sla.trends import breaches_by_week, compliance_by_month
from tests.conftest import login
from tests.factories import make_client, make_contract_terms, make_debtor, make_dispute, make_invoice, make_user

MONDAY_10 = datetime(2026, 5, 18, 8, 0, tzinfo=UTC)


def _breached_dispute() -> Any:
    client = make_client(name="Rhein Widgets GmbH", timezone="Europe/Berlin", country="DE")
    make_contract_terms(client)
    debtor = make_debtor(client, name="Late Payer KG")
    inv = make_invoice(client, debtor, "RW-100", 500_00)
    with frozen_time(MONDAY_10):
        make_dispute(client, debtor, [inv], reason="damaged")
    with scoped(TenantScope.agency(), db.session):
        sweep(db.session, MONDAY_10 + timedelta(days=3))  # the acknowledgement SLA breached
        db.session.commit()
    return client


def test_trends_count_breaches_by_week_and_compliance_by_month(db_session: Any) -> None:
    client = _breached_dispute()
    with scoped(TenantScope.agency(), db.session):
        weeks = breaches_by_week(db.session, MONDAY_10 + timedelta(days=10))
        trend = compliance_by_month(db.session, [client], date(2026, 5, 31))
    assert [w.week for w in weeks][-2:] == [date(2026, 5, 18), date(2026, 5, 25)]
    may_week = weeks[-2]
    assert (may_week.started, may_week.breached, may_week.open_breached) == (2, 1, 1)
    assert weeks[-1].open_breached == 1 and weeks[-1].breached == 0  # still open a week later
    assert trend.months[-1] == "2026-05" and trend.by_client[client.id][-1] == 0.0
    assert trend.decided[client.id][-1] == 1 and trend.by_client[client.id][0] is None


def test_the_dashboard_shows_each_chart_with_its_table(client: FlaskClient, db_session: Any) -> None:
    _breached_dispute()
    login(client, make_user("manager").email)
    with frozen_time(MONDAY_10 + timedelta(days=4)):
        page = client.get("/slas?month=2026-05").get_data(as_text=True)
    images = re.findall(r'<img class="chart-img" src="data:image/svg\+xml;base64,[^"]+" alt="([^"]+)"', page)
    assert len(images) == 3 and all("table below" in alt for alt in images)
    for title in ("SLAs met by client, last 6 months", "Breaches by week", "Open disputes by age and reason"):
        section = page[page.index(title) :]
        assert section.index("<table") < section.index("</section>")  # the figures behind the chart
    assert "Rhein Widgets GmbH" in page and "May 2026" in page
    assert "Delivered damaged" in page


def test_aging_colours_are_the_same_in_the_stylesheet_and_the_charts() -> None:
    css = (Path(__file__).resolve().parents[2] / "provider" / "static" / "app.css").read_text()
    bars = [re.search(rf"\.aging-{i} {{ background: (#[0-9a-f]{{6}}); }}", css) for i in range(1, 7)]
    fills = [re.search(rf"\.aging-fill-{i} {{ fill: (#[0-9a-f]{{6}}); }}", css) for i in range(1, 7)]
    assert tuple(m.group(1) for m in bars if m) == charts.AGING_COLOURS
    assert tuple(m.group(1) for m in fills if m) == charts.AGING_COLOURS
    svg = charts.aging_chart({"amounts": dict.fromkeys(charts.BUCKETS, 100)}, "EUR")
    assert all(colour in svg for colour in charts.AGING_COLOURS)


def test_the_recovery_heatmap_prints_each_rate_in_a_shaded_cell() -> None:
    rows = [
        {"placed_month": "2026-01", "cells": [{"month": "2026-01", "rate": "10.0"}, {"month": "2026-02", "rate": "80"}]}
    ]
    svg = charts.recovery_heatmap(rows, ["2026-01", "2026-02"])
    assert ">10%<" in svg and ">80%<" in svg and "Jan \u201926" in svg and "2026-01" not in svg
    assert charts._heat(0) == "#ffffff" and charts._heat(100) == "#1f5fbf"
