"""The worklist pages through HTTP: my queue (bounded queries), next account, the account screen, actions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, func, select

from provider.core.audit import AuditEvent
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.conftest import fresh_csrf, login
from tests.factories import make_team, make_user
from tests.worklists.helpers import commercial_client, item_of, overdue_account, rebuild, working_day
from worklists.models import ItemState, Promise, WorkAction


@contextmanager
def count_queries() -> Iterator[list[str]]:
    statements: list[str] = []

    def listen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", listen)


@pytest.fixture
def desk(db_session: Any) -> dict[str, Any]:
    client = commercial_client(name="Desk Client GmbH")
    team = make_team(client)
    collector = make_user("collector", team=team)
    manager = make_user("manager")
    return {"client": client, "team": team, "collector": collector, "manager": manager}


def _queue_queries(client: FlaskClient) -> int:
    client.get("/worklists")  # warm: the test session's identity map and savepoints settle
    with count_queries() as statements:
        response = client.get("/worklists")
    assert response.status_code == 200
    return len(statements)


def test_queue_page_runs_the_same_number_of_queries_for_3_and_60_accounts(client: FlaskClient, desk: dict) -> None:
    with working_day():
        for _ in range(3):
            overdue_account(desk["client"])
        rebuild(desk["client"])
        login(client, desk["collector"].email)
        small = _queue_queries(client)
        for _ in range(57):
            overdue_account(desk["client"])
        rebuild(desk["client"])
        large = _queue_queries(client)
    assert small == large
    assert large <= 12


def test_next_account_opens_the_account_screen_and_actions_reach_history_and_audit(
    client: FlaskClient, desk: dict
) -> None:
    with working_day():
        top = overdue_account(desk["client"], 20_000_00, name="Top Priority AG")
        overdue_account(desk["client"], 10_00, name="Small Fry KG")
        rebuild(desk["client"])
        login(client, desk["collector"].email)
        token = fresh_csrf(client, "/worklists")
        response = client.post("/worklists/next", data={"csrf_token": token})
        item = item_of(top)
        assert response.status_code == 302 and response.headers["Location"].endswith(f"/worklists/items/{item.id}")
        page = client.get(f"/worklists/items/{item.id}").get_data(as_text=True)
        assert "Top Priority AG" in page and "Why it is here" in page and 'data-claim="mine"' in page
        url = f"/worklists/items/{item.id}/actions"
        ok = client.post(url, data={"csrf_token": token, "action": "call", "outcome": "right_party", "note": "spoke"})
        assert ok.status_code == 302
        ok = client.post(
            url, data={"csrf_token": token, "action": "promise", "amount": "250.00", "due_on": "2026-03-20"}
        )
        assert ok.status_code == 302
        bad = client.post(
            url, data={"csrf_token": token, "action": "promise", "amount": "1.234", "due_on": "2026-03-20"}
        )
        assert bad.status_code == 422 and "decimal places" in bad.get_data(as_text=True)
        with scoped(TenantScope.agency(), db.session):
            kinds = db.session.scalars(select(WorkAction.kind).where(WorkAction.work_item_id == item.id)).all()
            assert {"call", "promise", "state"} <= set(kinds)
            promise = db.session.scalar(select(Promise).where(Promise.work_item_id == item.id))
            assert promise.amount_minor == 250_00 and promise.due_on == date(2026, 3, 20)
            actions = set(
                db.session.scalars(select(AuditEvent.action).where(AuditEvent.actor_user_id == desk["collector"].id))
            )
            assert {"worklist.claim", "worklist.call", "promise.record"} <= actions
        assert item_of(top).state == ItemState.PROMISED.value
        # "& next": the promised account left the queue, the next one is the small one
        response = client.post(url, data={"csrf_token": token, "action": "note", "note": "done", "then": "next"})
        assert response.status_code == 302 and f"/worklists/items/{item.id}" not in response.headers["Location"]


def test_a_collector_cannot_act_on_an_account_another_collector_holds(client: FlaskClient, desk: dict) -> None:
    with working_day():
        debtor = overdue_account(desk["client"])
        rebuild(desk["client"])
        other = make_user("collector", team=desk["team"])
        login(client, other.email)
        client.post("/worklists/next", data={"csrf_token": fresh_csrf(client, "/worklists")})
        client.post("/logout", data={"csrf_token": fresh_csrf(client)})
        login(client, desk["collector"].email)
        item = item_of(debtor)
        page = client.get(f"/worklists/items/{item.id}").get_data(as_text=True)
        assert 'data-claim="other"' in page
        token = fresh_csrf(client, "/worklists")
        refused = client.post(
            f"/worklists/items/{item.id}/actions", data={"csrf_token": token, "action": "note", "note": "x"}
        )
        assert refused.status_code == 422 and "another collector" in refused.get_data(as_text=True)


def test_manager_view_shows_sizes_orphans_and_actions(client: FlaskClient, desk: dict) -> None:
    with working_day():
        overdue_account(desk["client"])
        rebuild(desk["client"])
        login(client, desk["manager"].email)
        page = client.get("/worklists/manage").get_data(as_text=True)
        assert "Desk Client GmbH" in page and 'data-orphans="1"' in page
        token = fresh_csrf(client, "/worklists/manage")
        client.post("/worklists/manage/balance", data={"csrf_token": token, "team_id": desk["team"].id})
        page = client.get("/worklists/manage").get_data(as_text=True)
        assert 'data-orphans="0"' in page
        client.post("/logout", data={"csrf_token": fresh_csrf(client)})
        login(client, desk["collector"].email)
        assert client.get("/worklists/manage").status_code == 404
        with scoped(TenantScope.agency(), db.session):
            assert (
                db.session.scalar(
                    select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "worklist.balance")
                )
                == 1
            )
