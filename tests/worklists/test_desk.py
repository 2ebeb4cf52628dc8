"""The outcome-driven collector screen over HTTP (no JavaScript): the outcome is picked first (a link with
?outcome=...), only its form shows, each outcome records what it implies, and a refused outcome keeps the
other forms as they were. Every code on the page is shown in words."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.conftest import fresh_csrf, login
from tests.factories import make_team, make_user
from tests.worklists.helpers import commercial_client, item_of, overdue_account, rebuild, working_day
from worklists.labels import outcome_label
from worklists.models import ItemState, Promise, WorkAction
from worklists.outcomes import OUTCOMES

VISIBLE_FORM = re.compile(r'<form[^>]*data-outcome-form="(\w+)"(?![^>]*\shidden)[^>]*>')


@pytest.fixture
def desk(db_session: Any) -> dict[str, Any]:
    client = commercial_client(name="Outcome Client GmbH")
    team = make_team(client)
    collector = make_user("collector", team=team)
    return {"client": client, "collector": collector}


def _open(client: FlaskClient, desk: dict, amount: int = 1_234_00) -> tuple[Any, str, str]:
    debtor = overdue_account(desk["client"], amount, name="Outcome Debtor AG")
    rebuild(desk["client"])
    login(client, desk["collector"].email)
    item = item_of(debtor)
    return item, f"/worklists/items/{item.id}", fresh_csrf(client, "/worklists")


def test_the_outcome_is_picked_first_and_only_its_form_shows(client: FlaskClient, desk: dict) -> None:
    with working_day():
        item, url, _ = _open(client, desk)
        page = client.get(url).get_data(as_text=True)
        assert VISIBLE_FORM.findall(page) == []  # nothing until an outcome is chosen
        for o in OUTCOMES:
            assert f'data-outcome-key="{o.key}"' in page and o.label in page
            chosen = client.get(f"{url}?outcome={o.code}").get_data(as_text=True)
            assert VISIBLE_FORM.findall(chosen) == [o.code], o.code
        assert "ref. units" not in page and "once it exists" not in page
        assert "€1,234.00" in page
        assert f"/clients/{item.client_id}/debtors/{item.debtor_id}/disputes/new" in page
        assert "<kbd>1</kbd></td><td>Outcome: No answer" in page  # the ? help lists the outcome keys


def test_a_refused_promise_keeps_the_plan_form_and_its_defaults(client: FlaskClient, desk: dict) -> None:
    with working_day():
        _, url, token = _open(client, desk)
        bad = client.post(
            f"{url}/actions",
            data={"csrf_token": token, "action": "outcome", "result": "promise", "amount": "1.234", "due_on": ""},
        )
        page = bad.get_data(as_text=True)
        assert bad.status_code == 422 and "decimal places" in page
        assert VISIBLE_FORM.findall(page) == ["promise"]
        assert 'id="promise-amount" name="amount" value="1.234"' in page
        assert 'id="plan-amount" name="amount" value=""' in page  # the plan form is not filled with it
        assert 'id="plan-instalments" name="instalments" value="3"' in page
        assert 'id="plan-every" name="every_days" value="30"' in page


@pytest.mark.parametrize(
    ("result", "extra", "call_outcome", "state"),
    [
        ("no_answer", {"outcome": "voicemail"}, "voicemail", ItemState.IN_PROGRESS),
        ("right_party", {"note": "will pay soon"}, "right_party", ItemState.IN_PROGRESS),
        ("promise", {"amount": "100", "due_on": "2026-03-20"}, "promise_made", ItemState.PROMISED),
        ("plan", {"amount": "900", "instalments": "3", "first_due_on": "2026-03-20"}, "promise_made", ItemState.PLAN),
        ("wrong_number", {}, "wrong_number", ItemState.IN_PROGRESS),
        ("callback", {"next_action_on": "2026-03-12", "note": "after 3pm"}, "callback", ItemState.IN_PROGRESS),
        ("cease", {"note": "asked us to stop"}, "right_party", ItemState.IN_PROGRESS),
    ],
)
def test_each_outcome_logs_the_call_and_what_it_implies(
    client: FlaskClient, desk: dict, result: str, extra: dict, call_outcome: str, state: ItemState
) -> None:
    with working_day():
        item, url, token = _open(client, desk)
        done = client.post(f"{url}/actions", data={"csrf_token": token, "action": "outcome", "result": result, **extra})
        assert done.status_code == 302, done.get_data(as_text=True)[:3000]
        with scoped(TenantScope.agency(), db.session):
            calls = db.session.scalars(
                select(WorkAction.outcome).where(WorkAction.work_item_id == item.id, WorkAction.kind == "call")
            ).all()
            assert calls == [call_outcome]
            after = item_of_id(item)
            assert after.state == state.value
            if result == "callback":
                assert after.next_action_on == date(2026, 3, 12)
            if result == "cease":
                assert after.ceased_at is not None
            if result == "promise":
                assert db.session.scalar(select(Promise.amount_minor).where(Promise.work_item_id == item.id)) == 100_00
        page = client.get(url).get_data(as_text=True)
        history = re.sub(r'value="[^"]*"|data-[\w-]+="[^"]*"', "", page.split('id="history-h"')[1])
        assert outcome_label(call_outcome) in history
        assert call_outcome not in history or "_" not in call_outcome  # words, not codes


def item_of_id(item: Any) -> Any:
    db.session.expire_all()
    return db.session.get(type(item), item.id)


def test_the_dispute_outcome_logs_the_call_and_opens_the_dispute_form(client: FlaskClient, desk: dict) -> None:
    with working_day():
        item, url, token = _open(client, desk)
        done = client.post(
            f"{url}/actions", data={"csrf_token": token, "action": "outcome", "result": "dispute", "note": "price"}
        )
        assert done.status_code == 302
        assert done.headers["Location"].endswith(f"/clients/{item.client_id}/debtors/{item.debtor_id}/disputes/new")


def test_and_next_takes_the_next_account(client: FlaskClient, desk: dict) -> None:
    with working_day():
        item, url, token = _open(client, desk)
        overdue_account(desk["client"], 10_00, name="Second In Line KG")
        rebuild(desk["client"])
        done = client.post(
            f"{url}/actions", data={"csrf_token": token, "action": "outcome", "result": "no_answer", "then": "next"}
        )
        assert done.status_code == 302 and f"/worklists/items/{item.id}" not in done.headers["Location"]
