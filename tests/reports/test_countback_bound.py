"""Countback DSO that runs out of history: when open AR is more than all the sales of the 24 months counted back,
the figure is only a lower bound, and the page, the PDF and the API say so ("> 730.00 days"), never as the value."""

from __future__ import annotations

import calendar
import re
from datetime import date
from typing import Any

from flask.testing import FlaskClient

from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.reporting import formulas, reports
from tests.api.helpers import get
from tests.conftest import login
from tests.factories import make_api_token, make_client, make_debtor, make_user
from tests.reports.ledger_world import at, place
from tests.reports.test_reports import pdf_text


def test_the_formula_says_when_ar_outlasts_the_months_given() -> None:
    months = [(100_00, 31), (200_00, 30)]
    assert formulas.countback_runs_out(400_00, months) and formulas.countback_dso(400_00, months) == 61
    assert not formulas.countback_runs_out(250_00, months)  # covered: the value itself (31 + 150/200 x 30)
    assert not formulas.countback_runs_out(0, months) and not formulas.countback_runs_out(10, [])


def _days_of_24_months_to(end: date) -> int:
    total, year, month = 0, end.year, end.month
    for _ in range(24):
        total += calendar.monthrange(year, month)[1]
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return total


def test_a_bound_is_shown_as_more_than_in_the_page_the_pdf_and_the_api(client: FlaskClient, db_session: Any) -> None:
    acme = make_client(base_currency="EUR", name="Old Debts Ltd")
    debtor = make_debtor(acme)
    place(acme, debtor, "OLD", 1_000_00, date(2023, 6, 1), date(2023, 7, 1))  # 33 months before March 2026
    place(acme, debtor, "NEW", 100_00, date(2026, 2, 10), date(2026, 3, 12))
    with frozen_time(at(date(2026, 4, 1), 12)), scoped(TenantScope.agency(), db.session):
        report = reports.generate_report(db.session, acme, "2026-03").report
        db.session.info.pop("pending_jobs", None)
        db.session.commit()
    bound = f"{_days_of_24_months_to(date(2026, 3, 31))}.00"
    march = report.figures["currencies"]["EUR"]["current"]
    assert march["countback_dso"] == bound and march["countback_dso_is_lower_bound"] is True

    make_user("manager", email="m@example.test")
    login(client, "m@example.test")
    page = client.get(f"/reports/monthly/{report.id}").get_data(as_text=True)
    assert f"&gt;&nbsp;{bound} days" in page  # the tile
    assert f"&gt;&nbsp;{bound} d<" in page  # the trend table
    assert "at least this many days" in page

    _, texts = pdf_text(report.pdf)
    text = re.sub(r"\s+", " ", " ".join(texts))
    assert f"> {bound} days" in text

    token = make_api_token(acme)
    figures = get(client, token, f"/reports/{report.id}").get_json()["figures"]
    current = figures["currencies"]["EUR"]["current"]
    assert current["countback_dso"] == bound and current["countback_dso_is_lower_bound"] is True


def test_reports_made_before_the_flag_get_it_from_their_frozen_inputs(db_session: Any) -> None:
    from provider.reporting.figures import with_countback_bounds

    acme = make_client(base_currency="EUR")
    debtor = make_debtor(acme)
    place(acme, debtor, "OLD", 1_000_00, date(2023, 6, 1), date(2023, 7, 1))
    with frozen_time(at(date(2026, 4, 1), 12)), scoped(TenantScope.agency(), db.session):
        report = reports.generate_report(db.session, acme, "2026-03").report
        db.session.info.pop("pending_jobs", None)
        db.session.commit()
    old = {
        **report.figures,
        "currencies": {
            c: {
                **d,
                "trend": [{k: v for k, v in m.items() if k != "countback_dso_is_lower_bound"} for m in d["trend"]],
                "current": {k: v for k, v in d["current"].items() if k != "countback_dso_is_lower_bound"},
            }
            for c, d in report.figures["currencies"].items()
        },
    }
    again = with_countback_bounds(old, report.inputs)
    assert again["currencies"]["EUR"]["current"]["countback_dso_is_lower_bound"] is True
    assert (
        again["currencies"]["EUR"]["current"]["countback_dso"]
        == report.figures["currencies"]["EUR"]["current"]["countback_dso"]
    )
