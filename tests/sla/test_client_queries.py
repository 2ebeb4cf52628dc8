"""Client queries: a client user asks from the portal, the agency answers in the back office; asking starts
the "query answered within 4 business hours" clock, the first answer stops it; the dashboard shows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from provider.core.clock import frozen_time
from provider.core.errors import ServiceError
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from sla.client_queries import answer_query, ask_query
from sla.models import ClientQuery, SlaClock
from sla.sweep import sweep
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_contract_terms, make_team, make_user

MONDAY_10 = datetime(2026, 5, 18, 8, 0, tzinfo=UTC)  # 10:00 in Berlin


@pytest.fixture
def setup(db_session: Any) -> dict[str, Any]:
    client = make_client(name="Elbe Fasteners GmbH")
    make_contract_terms(client)
    return {
        "client": client,
        "manager": make_user("manager"),
        "collector": make_user("collector", team=make_team(client)),
        "client_admin": make_user("client_admin", client=client),
        "client_viewer": make_user("client_viewer", client=client),
    }


def _post(client: FlaskClient, url: str, data: dict[str, Any], **kw: Any) -> Any:
    return client.post(url, data={"csrf_token": fresh_csrf(client), **data}, **kw)


def _clock(query_id: int) -> SlaClock:
    return db.session.scalar(select(SlaClock).where(SlaClock.subject_type == "query", SlaClock.subject_id == query_id))


def test_asking_starts_a_four_business_hour_clock_and_the_first_answer_stops_it(setup: dict[str, Any]) -> None:
    c = setup["client"]
    with scoped(TenantScope.agency(), db.session):
        with frozen_time(MONDAY_10 + timedelta(hours=6)):  # Monday 16:00 Berlin: 1 h today, 3 h on Tuesday
            query = ask_query(db.session, c, "Statement for ACME", "Can you send the latest statement?")
        clock = _clock(query.id)
        assert (clock.code, clock.state, clock.allowance_s) == ("query_answer", "running", 4 * 3600)
        assert clock.deadline_at == datetime(2026, 5, 19, 10, 0, tzinfo=UTC)  # Tuesday 12:00 Berlin
        with frozen_time(MONDAY_10 + timedelta(days=1)):
            answer_query(db.session, c, query, "Sent to your inbox.")
        db.session.commit()
        db.session.refresh(clock)
        assert (clock.state, clock.breached_at, query.status) == ("stopped", None, "answered")
        with pytest.raises(ServiceError, match="already been answered"):
            answer_query(db.session, c, query, "Again")


def test_an_unanswered_query_breaches_and_is_notified_once(setup: dict[str, Any]) -> None:
    with scoped(TenantScope.agency(), db.session):
        with frozen_time(MONDAY_10):
            query = ask_query(db.session, setup["client"], "Payment plan", "Can ACME pay in three instalments?")
        db.session.commit()
        assert sweep(db.session, MONDAY_10 + timedelta(hours=5))["notified"] == 1
        assert sweep(db.session, MONDAY_10 + timedelta(hours=6))["notified"] == 0
        db.session.commit()
        assert _clock(query.id).breached_at == MONDAY_10 + timedelta(hours=4)


@pytest.mark.parametrize(
    ("subject", "body", "field"),
    [("", "Why?", "subject"), ("Why", "   ", "body"), ("x" * 201, "Why?", "subject"), ("Why", "y" * 5001, "body")],
)
def test_a_query_needs_a_subject_and_a_message(setup: dict[str, Any], subject: str, body: str, field: str) -> None:
    with scoped(TenantScope.agency(), db.session), pytest.raises(ServiceError) as refused:
        ask_query(db.session, setup["client"], subject, body)
    assert refused.value.field == field


def test_client_asks_in_the_portal_and_the_agency_answers_in_the_back_office(
    client: FlaskClient, setup: dict[str, Any]
) -> None:
    login(client, setup["client_viewer"].email)
    assert "Questions" in client.get("/portal/queries").get_data(as_text=True)
    empty = _post(client, "/portal/queries", {"subject": "", "body": "What about ACME?"})
    html = empty.get_data(as_text=True)
    assert empty.status_code == 422 and 'id="f-subject-error"' in html and "What about ACME?" in html
    both = _post(client, "/portal/queries", {"subject": " ", "body": ""}).get_data(as_text=True)
    assert 'id="f-subject-error"' in both and 'id="f-body-error"' in both  # every field's error in one answer
    assert 'href="#f-subject"' in both and 'href="#f-body"' in both  # the summary links to each field
    with frozen_time(MONDAY_10):
        asked = _post(client, "/portal/queries", {"subject": "ACME balance", "body": "Why is ACME's balance higher?"})
    assert asked.status_code == 302
    query = db.session.scalar(select(ClientQuery).where(ClientQuery.client_id == setup["client"].id))
    assert query.asked_by_label == setup["client_viewer"].email
    listing = client.get("/portal/queries").get_data(as_text=True)
    assert "ACME balance" in listing and "awaiting the agency" in listing
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})

    login(client, setup["manager"].email)
    with frozen_time(MONDAY_10 + timedelta(hours=3, minutes=30)):  # 3.5 of 4 hours used: at risk
        dashboard = client.get("/slas").get_data(as_text=True)
        assert f'href="/slas/queries/{query.id}"' in dashboard and "at risk" in dashboard
        assert "ACME balance" in client.get("/slas/queries?status=open").get_data(as_text=True)
        assert "Send the answer" in client.get(f"/slas/queries/{query.id}").get_data(as_text=True)
        blank = _post(client, f"/slas/queries/{query.id}", {"answer": ""})
        assert blank.status_code == 422 and 'id="f-answer-error"' in blank.get_data(as_text=True)
        done = _post(client, f"/slas/queries/{query.id}", {"answer": "ACME took a new delivery on credit."})
    assert done.status_code == 302
    clock = _clock(query.id)
    assert clock.state == "stopped" and clock.breached_at is None
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})

    login(client, setup["client_viewer"].email)
    page = client.get(f"/portal/queries/{query.id}").get_data(as_text=True)
    assert "ACME took a new delivery on credit." in page and "answered" in page


def test_collectors_answer_queries_of_their_clients_only(client: FlaskClient, setup: dict[str, Any]) -> None:
    other = make_client(name="Other Client AG")
    with scoped(TenantScope.agency(), db.session):
        mine = ask_query(db.session, setup["client"], "Mine", "A question")
        theirs = ask_query(db.session, other, "Not yours", "Another question")
        db.session.commit()
    login(client, setup["collector"].email)
    listing = client.get("/slas/queries").get_data(as_text=True)
    assert "Mine" in listing and "Not yours" not in listing
    assert client.get(f"/slas/queries/{theirs.id}").status_code == 404
    assert _post(client, f"/slas/queries/{mine.id}", {"answer": "Here you go"}).status_code == 302
