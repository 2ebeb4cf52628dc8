"""Report pages: managers generate and re-issue, client users see only their own reports, 404 otherwise."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from flask.testing import FlaskClient

from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.reporting import reports
from provider.reporting.jobs import take_snapshot
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_user
from tests.reports.ledger_world import at, march_world


def _report(client: Any) -> Any:
    with frozen_time(at(date(2026, 4, 1), 12)), scoped(TenantScope.agency(), db.session):
        result = reports.generate_report(db.session, client, "2026-03")
        db.session.commit()
    return result.report


def test_portal_user_sees_own_report_and_pdf_and_not_another_clients(client: FlaskClient, db_session: Any) -> None:
    w = march_world(name="Harbour Freight Ltd")
    other = make_client(name="Other Co")
    mine = _report(w.client)
    user = make_user("client_viewer", client=w.client)
    assert login(client, user.email).status_code == 302
    listing = client.get("/portal/reports").get_data(as_text=True)
    assert "March 2026" in listing
    page = client.get(f"/portal/reports/{mine.id}")
    assert page.status_code == 200 and "43.92" in page.get_data(as_text=True)
    pdf = client.get(f"/portal/reports/{mine.id}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF-") and pdf.mimetype == "application/pdf"
    theirs = march_world(name="Other Freight")
    foreign = _report(theirs.client)
    assert client.get(f"/portal/reports/{foreign.id}").status_code == 404
    assert client.get(f"/reports/monthly/{mine.id}").status_code == 404  # staff pages are not for client users
    del other


def test_manager_dashboard_kpis_regenerate_and_reissue(client: FlaskClient, db_session: Any) -> None:
    w = march_world(name="Harbour Freight Ltd")
    with scoped(TenantScope.agency(), db.session):
        take_snapshot(w.client)
        db.session.commit()
    manager = make_user("manager")
    login(client, manager.email)
    board = client.get("/reports/dashboard?sort=dso&dir=desc")
    assert board.status_code == 200 and "Harbour Freight Ltd" in board.get_data(as_text=True)
    assert client.get("/reports", follow_redirects=True).request.path == "/reports/dashboard"
    kpis = client.get(f"/reports/clients/{w.client.id}?as_of=2026-03-31").get_data(as_text=True)
    assert "Aging at 31 Mar 2026" in kpis
    report = _report(w.client)
    token = fresh_csrf(client, f"/reports/monthly/{report.id}")
    again = client.post(
        f"/reports/clients/{w.client.id}/generate",
        data={"period": "2026-03", "csrf_token": token},
        follow_redirects=True,
    )
    assert "regenerating gives" in again.get_data(as_text=True), again.history
    reissued = client.post(
        f"/reports/monthly/{report.id}/reissue",
        data={"reason": "late bank file", "csrf_token": token},
        follow_redirects=True,
    )
    body = reissued.get_data(as_text=True)
    assert "Version 2 issued" in body and "version 1 (replaced)" in body


def test_collectors_cannot_reissue_or_follow_runs(client: FlaskClient, db_session: Any) -> None:
    from tests.factories import make_team

    w = march_world()
    report = _report(w.client)
    collector = make_user("collector", team=make_team(w.client))
    login(client, collector.email)
    assert client.get(f"/reports/monthly/{report.id}").status_code == 200
    token = fresh_csrf(client)
    assert (
        client.post(f"/reports/monthly/{report.id}/reissue", data={"reason": "x", "csrf_token": token}).status_code
        == 404
    )


def test_a_tile_without_a_figure_says_why_not_that_there_was_no_previous_month(
    client: FlaskClient, db_session: Any
) -> None:
    w = march_world()
    login(client, make_user("manager").email)
    with frozen_time(datetime(2026, 11, 2, 10, tzinfo=UTC)):
        page = client.get(f"/reports/clients/{w.client.id}?as_of=2026-11-01").get_data(as_text=True)
    # nothing was placed in November: DSO, best possible DSO and ADD are not defined, and the tiles say so
    assert page.count("nothing placed this month") == 3
    assert "no previous month" not in page


def test_the_dashboard_shows_the_last_full_months_dso_and_cei(client: FlaskClient, db_session: Any) -> None:
    w = march_world(name="Harbour Freight Ltd")
    with frozen_time(datetime(2026, 4, 2, 10, tzinfo=UTC)), scoped(TenantScope.agency(), db.session):
        snap = take_snapshot(w.client)  # 2 April: nothing placed in April yet, March is the last full month
        db.session.commit()
    march = snap.figures["currencies"]["EUR"]["previous"]
    assert march["month"] == "2026-03" and march["dso"] is not None
    assert snap.figures["currencies"]["EUR"]["current"]["dso"] is None
    login(client, make_user("manager").email)
    with frozen_time(datetime(2026, 4, 2, 11, tzinfo=UTC)):
        board = client.get("/reports/dashboard").get_data(as_text=True)
    row = board[board.index("Harbour Freight Ltd") :]
    row = row[: row.index("</tr>")]
    assert f">{march['dso']} days<" in row and f">{march['cei']}<" in row and "March 2026" in row


def test_a_month_that_does_not_exist_is_refused_once_saying_what_was_typed(
    client: FlaskClient, db_session: Any
) -> None:
    w = march_world()
    login(client, make_user("manager").email)
    token = fresh_csrf(client, f"/reports/clients/{w.client.id}")
    page = client.post(
        f"/reports/clients/{w.client.id}/generate",
        data={"period": "2026-13", "csrf_token": token},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert page.count("“2026-13” is not a month (YYYY-MM)") == 1
