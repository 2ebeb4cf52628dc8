"""SLA clocks follow the events of other areas: a placement file starts and acknowledges its clock, the
accounts it places start first-contact clocks, and the collector's first call stops them."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from clients.imports import ImportBatch, start_placement_import
from clients.models import Debtor
from provider.core import jobs
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from sla.models import SlaClock, SlaClockEvent
from tests.factories import make_contract_terms, make_team, make_user
from tests.worklists.helpers import NOON, commercial_client, item_of, rebuild, working_day
from worklists import services
from worklists.models import CallOutcome

HEADER = "invoice_number,debtor_ref,debtor_name,issue_date,due_date,amount,currency\n"
FILE = (
    HEADER
    + "W-1,D-1,Acme,2026-01-05,2026-02-04,10.00,EUR\n"
    + "W-2,D-1,Acme,2026-01-06,2026-02-05,20.00,EUR\n"
    + "W-3,D-2,Bolt,2026-01-07,2026-02-06,30.00,EUR\n"
)


@pytest.fixture
def client_(db_session: Any) -> Any:
    with working_day():
        client = commercial_client()
        make_contract_terms(client)
    return client


def _upload(client: Any, content: str) -> ImportBatch:
    with working_day(), scoped(TenantScope.single(client.id), db.session):
        batch_id = start_placement_import(db.session, client, "w.csv", content.encode()).id
        db.session.commit()
        jobs.drain()
        db.session.expire_all()
        return db.session.get_one(ImportBatch, batch_id)


def _clocks(client: Any, code: str) -> dict[tuple[str, int], str]:
    with scoped(TenantScope.agency(), db.session):
        rows = db.session.execute(
            select(SlaClock.subject_type, SlaClock.subject_id, SlaClock.state).where(
                SlaClock.client_id == client.id, SlaClock.code == code
            )
        )
        return {(t, i): s for t, i, s in rows}


def _debtor_ids(client: Any) -> dict[str, int]:
    with scoped(TenantScope.agency(), db.session):
        rows = db.session.execute(select(Debtor.external_ref, Debtor.id).where(Debtor.client_id == client.id))
        return {ref: debtor_id for ref, debtor_id in rows}


def test_a_placement_file_is_acknowledged_and_its_accounts_start_first_contact(client_: Any) -> None:
    batch = _upload(client_, FILE)
    assert batch.status == "posted"
    assert _clocks(client_, "placement_ack") == {("placement", batch.id): "stopped"}
    debtors = _debtor_ids(client_)
    assert _clocks(client_, "first_contact") == {
        ("debtor", debtors["D-1"]): "running",
        ("debtor", debtors["D-2"]): "running",
    }
    with scoped(TenantScope.agency(), db.session):
        started = db.session.scalar(
            select(func.count())
            .select_from(SlaClockEvent)
            .join(SlaClock, SlaClock.id == SlaClockEvent.clock_id)
            .where(SlaClock.code == "first_contact", SlaClockEvent.event == "start")
        )
        deadlines = set(db.session.scalars(select(SlaClock.deadline_at).where(SlaClock.code == "first_contact")))
    assert started == 2 and len(deadlines) == 1
    (deadline,) = deadlines
    assert NOON < deadline <= NOON + timedelta(days=4)  # two business days in Berlin, after a Tuesday 15:00

    again = _upload(client_, FILE)  # the same file again: nothing posted, no second first-contact clock
    assert again.skipped_rows == 3
    assert len(_clocks(client_, "first_contact")) == 2
    assert _clocks(client_, "placement_ack")[("placement", again.id)] == "stopped"


def test_a_rejected_file_is_acknowledged_but_starts_no_first_contact(client_: Any) -> None:
    batch = _upload(client_, HEADER + "X-1,D-9,Acme,2026-13-45,2026-02-04,10.00,EUR\n")
    assert batch.status == "rejected"
    assert _clocks(client_, "placement_ack") == {("placement", batch.id): "stopped"}
    assert _clocks(client_, "first_contact") == {}


def test_the_first_call_stops_the_first_contact_clock(client_: Any) -> None:
    _upload(client_, FILE)
    debtors = _debtor_ids(client_)
    with working_day():
        rebuild(client_)
    ana = make_user("collector", team=make_team(client_))
    with working_day(NOON + timedelta(hours=1)), scoped(TenantScope.agency(), db.session):
        acme = db.session.get_one(Debtor, debtors["D-1"])
        services.log_call(db.session, item_of(acme), ana, CallOutcome.NO_ANSWER.value)
        db.session.commit()
    clocks = _clocks(client_, "first_contact")
    assert clocks[("debtor", debtors["D-1"])] == "stopped"
    assert clocks[("debtor", debtors["D-2"])] == "running"
    assert date(2026, 3, 10) == NOON.date()


def test_the_monthly_report_clock_runs_from_the_first_of_the_month_until_the_report_exists(client_: Any) -> None:
    from zoneinfo import ZoneInfo

    from provider.reporting.jobs import start_report_clock
    from provider.reporting.reports import generate_report

    april_2 = NOON.replace(month=4, day=2)
    with working_day(april_2), scoped(TenantScope.agency(), db.session):
        start_report_clock(db.session, client_, april_2)
        start_report_clock(db.session, client_, april_2)  # hourly: never a second clock
        db.session.commit()
        clock = db.session.scalar(select(SlaClock).where(SlaClock.code == "monthly_report"))
        assert (clock.subject_type, clock.subject_id, clock.state) == ("report", 202603, "running")
        started = clock.started_at.astimezone(ZoneInfo("Europe/Berlin"))
        assert (started.month, started.day, started.hour) == (4, 1, 0)
        # 5th business day of April 2026 in Germany: Good Friday (3rd) and Easter Monday (6th) are holidays
        assert clock.deadline_at.astimezone(ZoneInfo("Europe/Berlin")).date() == date(2026, 4, 9)
        generate_report(db.session, client_, "2026-03")
        db.session.commit()
    assert _clocks(client_, "monthly_report") == {("report", 202603): "stopped"}
