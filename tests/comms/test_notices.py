"""Report-ready notices and SLA breach alerts go out through the mail, once each."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select

from provider.comms import Message
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.reporting import reports
from tests.factories import make_user
from tests.reports.ledger_world import at, march_world


def _messages(purpose: str) -> list[Message]:
    with scoped(TenantScope.agency(), db.session):
        return list(db.session.scalars(select(Message).where(Message.purpose == purpose).order_by(Message.id)))


def test_a_report_ready_notice_is_queued_once_per_opted_in_contact(db_session: Any, app: Any) -> None:
    from portal.services import set_receives_reports

    w = march_world(name="Notice Freight Ltd")
    boss = make_user("client_admin", client=w.client, email="boss@notice.test")
    with scoped(TenantScope.agency(), db.session):
        set_receives_reports(db.session, db.session.merge(boss), True)
        db.session.commit()
    for day in (1, 2):  # generating again changes nothing
        with frozen_time(at(date(2026, 4, day), 12)), scoped(TenantScope.agency(), db.session):
            reports.generate_report(db.session, w.client, "2026-03")
            db.session.commit()
    [notice] = _messages("report_ready")
    assert notice.to_address == "boss@notice.test" and notice.client_id == w.client.id
    assert "2026-03" in notice.subject and "/portal/reports/" in notice.text_body
    assert notice.status == "queued" and notice.debtor_id is None


def test_an_sla_breach_alerts_each_manager_once_through_the_sweep(db_session: Any) -> None:
    from datetime import UTC, datetime, timedelta

    from sla.calendars import Calendar
    from sla.clocks import start_clock
    from sla.sweep import sweep
    from tests.factories import make_client, make_contract_terms, make_team

    client = make_client(name="Breach Co")
    make_contract_terms(client, targets={"dispute_ack": ("business_days", 1)})
    first, second = make_user("manager", email="m1@agency.test"), make_user("admin", email="m2@agency.test")
    make_user("collector", team=make_team(client), email="c@agency.test")
    make_user("manager", email="gone@agency.test", active=False)
    monday = datetime(2026, 5, 18, 7, 0, tzinfo=UTC)
    with scoped(TenantScope.agency(), db.session):
        start_clock(db.session, Calendar("Europe/Berlin", "DE"), client.id, "dispute_ack", ("dispute", 1), at=monday)
        assert sweep(db.session, monday + timedelta(days=1))["notified"] == 1
        assert sweep(db.session, monday + timedelta(days=2))["notified"] == 0  # the next sweep: nothing twice
        db.session.commit()
    alerts = _messages("sla_alert")
    assert sorted(a.to_address for a in alerts) == [first.email, second.email]
    assert all(a.client_id == client.id and "SLA breached for Breach Co" in a.subject for a in alerts)
    assert all("/slas" in a.text_body and "dispute" in a.text_body for a in alerts)
