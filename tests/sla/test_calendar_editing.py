"""Editing a client's business calendar: working week, holiday subdivision, closed days — the services (all
field errors at once, audit) and the back-office page (managers edit, collectors read), and the effect on
deadlines: a new closed day moves the deadline of clocks started afterwards, never of running ones."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from provider.core.audit import AuditEvent
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from sla.calendars import calendar_for
from sla.hooks import sla_started
from sla.models import BusinessCalendarRow, ClosedDay
from sla.services import CalendarInvalid, add_closed_day, remove_closed_day, set_business_calendar
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_contract_terms, make_team, make_user

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN).astimezone(UTC)


@pytest.fixture
def setup(db_session: Any) -> dict[str, Any]:
    client = make_client(name="Isar Tools GmbH")
    make_contract_terms(client)
    return {
        "client": client,
        "manager": make_user("manager"),
        "collector": make_user("collector", team=make_team(client)),
    }


def _post(client: FlaskClient, url: str, data: dict[str, Any], **kw: Any) -> Any:
    return client.post(url, data={"csrf_token": fresh_csrf(client), **data}, **kw)


def test_every_invalid_field_is_reported_at_once_and_nothing_is_written(setup: dict[str, Any]) -> None:
    with scoped(TenantScope.agency(), db.session), pytest.raises(CalendarInvalid) as refused:
        set_business_calendar(
            db.session,
            setup["client"],
            {"work_start_min": "25:00", "work_end_min": "eight", "workdays": [], "subdivision": "XX"},
        )
    assert set(refused.value.errors) == {"work_start_min", "work_end_min", "workdays", "subdivision"}
    with scoped(TenantScope.agency(), db.session):
        db.session.rollback()
        assert db.session.scalar(select(BusinessCalendarRow)) is None


def test_end_before_start_is_an_error_of_the_closing_time(setup: dict[str, Any]) -> None:
    with scoped(TenantScope.agency(), db.session), pytest.raises(CalendarInvalid) as refused:
        set_business_calendar(db.session, setup["client"], {"work_start_min": "17:00", "work_end_min": "09:00"})
    assert list(refused.value.errors) == ["work_end_min"]


def test_a_new_closed_day_moves_deadlines_of_clocks_started_afterwards_only(setup: dict[str, Any]) -> None:
    c = setup["client"]
    monday_10 = berlin(2026, 5, 18, 10)
    with scoped(TenantScope.agency(), db.session):
        before = sla_started(db.session, c, "placement_ack", ("placement", 1), at=monday_10)
        assert before.deadline_at == berlin(2026, 5, 19, 10)  # 1 business day: Tuesday 10:00
        add_closed_day(db.session, c, date(2026, 5, 19), "Company outing")
        after = sla_started(db.session, c, "placement_ack", ("placement", 2), at=monday_10)
        db.session.commit()
        assert after.deadline_at == berlin(2026, 5, 20, 10)  # Tuesday is closed now: Wednesday 10:00
        db.session.refresh(before)
        assert before.deadline_at == berlin(2026, 5, 19, 10)  # a running clock keeps its deadline


def test_working_week_and_subdivision_change_the_calendar(setup: dict[str, Any]) -> None:
    c = setup["client"]
    corpus_christi = date(2026, 6, 4)  # a public holiday in Bavaria, not in Berlin
    with scoped(TenantScope.agency(), db.session):
        assert calendar_for(db.session, c).is_business_day(corpus_christi)
        set_business_calendar(
            db.session,
            c,
            {"work_start_min": "08:30", "work_end_min": "16:00", "workdays": ["0", "1", "2", "3"], "subdivision": "by"},
        )
        db.session.commit()
        cal = calendar_for(db.session, c)
        assert (cal.work_start_min, cal.work_end_min, cal.subdivision) == (510, 960, "BY")
        assert not cal.is_business_day(corpus_christi)
        assert not cal.is_business_day(date(2026, 6, 5))  # Friday is no longer a working day
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "calendar.update"))
        assert event.client_id == c.id and event.changes["after"]["subdivision"] == "BY"


def test_removing_a_closed_day_is_audited(setup: dict[str, Any]) -> None:
    c = setup["client"]
    with scoped(TenantScope.agency(), db.session):
        closed = add_closed_day(db.session, c, date(2026, 12, 24), "Christmas Eve")
        remove_closed_day(db.session, closed)
        db.session.commit()
        assert db.session.scalar(select(ClosedDay)) is None
        actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.client_id == c.id)).all()
        assert {"calendar.closed_day", "calendar.reopen_day"} <= set(actions)


def test_manager_edits_the_calendar_with_errors_shown_per_field(client: FlaskClient, setup: dict[str, Any]) -> None:
    c = setup["client"]
    url = f"/slas/clients/{c.id}/calendar"
    login(client, setup["manager"].email)
    assert f'href="{url}"' in client.get("/slas/calendars").get_data(as_text=True)
    page = client.get(url).get_data(as_text=True)
    assert "Save the working week" in page and 'value="09:00"' in page
    bad = _post(client, url, {"work_start_min": "18:00", "work_end_min": "09:00", "subdivision": "ZZ"})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422
    assert 'id="f-work_end_min-error"' in html and "must end after it starts" in html
    assert 'id="f-subdivision-error"' in html and 'id="f-workdays-error"' in html
    assert 'value="18:00"' in html  # what the manager typed is kept
    ok = _post(
        client, url, {"work_start_min": "08:00", "work_end_min": "18:00", "workdays": ["0", "1", "2", "3", "4", "5"]}
    )
    assert ok.status_code == 302
    row = db.session.scalar(select(BusinessCalendarRow).where(BusinessCalendarRow.client_id == c.id))
    assert (row.work_start_min, row.work_end_min, row.workdays) == (480, 1080, "0,1,2,3,4,5")


def test_manager_adds_and_reopens_closed_days(client: FlaskClient, setup: dict[str, Any]) -> None:
    c = setup["client"]
    url = f"/slas/clients/{c.id}/calendar/closed-days"
    login(client, setup["manager"].email)
    assert _post(client, url, {"day": "2099-12-24", "reason": "Christmas Eve"}).status_code == 302
    again = _post(client, url, {"day": "2099-12-24"})
    assert again.status_code == 422 and "already a closed day" in again.get_data(as_text=True)
    missing = _post(client, url, {"day": "not a date"})
    assert missing.status_code == 422 and 'id="f-closed-day-error"' in missing.get_data(as_text=True)
    closed = db.session.scalar(select(ClosedDay).where(ClosedDay.client_id == c.id))
    assert "Christmas Eve" in client.get(f"/slas/clients/{c.id}/calendar").get_data(as_text=True)
    assert _post(client, f"{url}/{closed.id}/remove", {}).status_code == 302
    assert db.session.scalar(select(ClosedDay).where(ClosedDay.client_id == c.id)) is None


def test_collector_reads_the_calendar_but_cannot_change_it(client: FlaskClient, setup: dict[str, Any]) -> None:
    c = setup["client"]
    login(client, setup["collector"].email)
    page = client.get(f"/slas/clients/{c.id}/calendar")
    assert page.status_code == 200 and "Save the working week" not in page.get_data(as_text=True)
    assert _post(client, f"/slas/clients/{c.id}/calendar", {"work_start_min": "08:00"}).status_code == 404
    assert _post(client, f"/slas/clients/{c.id}/calendar/closed-days", {"day": "2099-01-02"}).status_code == 404
