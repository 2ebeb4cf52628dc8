"""A new report notifies the client's opted-in contacts once per (report, recipient); the portal shows whom."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from portal.services import set_receives_reports
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.reporting import reports
from provider.reporting.models import ReportNotification
from provider.reporting.notifications import notify_report_ready
from tests.conftest import login
from tests.factories import make_user
from tests.reports.ledger_world import at, march_world


def _opt_in(*users: Any, receives: bool = True) -> None:
    with scoped(TenantScope.agency(), db.session):
        for user in users:
            set_receives_reports(db.session, db.session.merge(user), receives)
        db.session.commit()


def _notifications(client_id: int) -> list[tuple[int, str, str]]:
    with scoped(TenantScope.agency(), db.session):
        rows = db.session.execute(
            select(ReportNotification.report_id, ReportNotification.recipient, ReportNotification.status)
            .where(ReportNotification.client_id == client_id)
            .order_by(ReportNotification.report_id, ReportNotification.recipient)
        ).all()
    return [tuple(r) for r in rows]


def test_a_generated_report_notifies_each_opted_in_contact_once(client: FlaskClient, db_session: Any) -> None:
    w = march_world(name="Harbour Freight Ltd")
    boss = make_user("client_admin", client=w.client, email="boss@harbour.test")
    clerk = make_user("client_viewer", client=w.client, email="clerk@harbour.test")
    make_user("client_viewer", client=w.client, email="quiet@harbour.test")  # never opted in
    other = march_world(name="Other Freight")
    outsider = make_user("client_admin", client=other.client, email="them@other.test")
    _opt_in(boss, clerk, outsider)
    _opt_in(clerk, receives=False)  # changed their mind: the latest choice counts

    with frozen_time(at(date(2026, 4, 1), 12)), scoped(TenantScope.agency(), db.session):
        report = reports.generate_report(db.session, w.client, "2026-03").report
        db.session.commit()
        report_id = report.id
    assert _notifications(w.client.id) == [(report_id, "boss@harbour.test", "recorded")]

    # idempotent: generating again, a retried job or a second call records nobody twice
    with frozen_time(at(date(2026, 4, 2), 12)), scoped(TenantScope.agency(), db.session):
        again = reports.generate_report(db.session, w.client, "2026-03")
        assert not again.created
        assert notify_report_ready(db.session, w.client, again.report) == []
        db.session.commit()
    assert _notifications(w.client.id) == [(report_id, "boss@harbour.test", "recorded")]

    # someone opting in later is added to the same report by the next call, the others are not repeated
    _opt_in(clerk)
    with scoped(TenantScope.agency(), db.session):
        stored = db.session.get_one(type(report), report_id)
        assert notify_report_ready(db.session, db.session.merge(w.client), stored) == ["clerk@harbour.test"]
        db.session.commit()
    assert [r[1] for r in _notifications(w.client.id)] == ["boss@harbour.test", "clerk@harbour.test"]

    # a re-issued version is a new report: its recipients are told again, once
    with frozen_time(at(date(2026, 4, 12))), scoped(TenantScope.agency(), db.session):
        v2 = reports.reissue_report(db.session, w.client, "2026-03", "late bank file").report
        db.session.commit()
        v2_id = v2.id
    assert [r for r in _notifications(w.client.id) if r[0] == v2_id] == [
        (v2_id, "boss@harbour.test", "recorded"),
        (v2_id, "clerk@harbour.test", "recorded"),
    ]
    assert _notifications(other.client.id) == []  # nothing leaks to another client

    assert login(client, boss.email).status_code == 302
    listing = client.get("/portal/reports").get_data(as_text=True)
    assert "sent to boss@harbour.test, clerk@harbour.test" in listing
    assert "them@other.test" not in listing


def test_a_report_with_no_opted_in_contact_records_nothing_and_says_so(client: FlaskClient, db_session: Any) -> None:
    w = march_world()
    viewer = make_user("client_viewer", client=w.client)
    with frozen_time(at(date(2026, 4, 1), 12)), scoped(TenantScope.agency(), db.session):
        reports.generate_report(db.session, w.client, "2026-03")
        db.session.commit()
    assert _notifications(w.client.id) == []
    assert login(client, viewer.email).status_code == 302
    assert "no contact opted in" in client.get("/portal/reports").get_data(as_text=True)
