"""The one account view: true date order of the account's history (back office, portal, account view), what
each audience sees, the links that lead to it, and the 404 for another client's account."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.conftest import fresh_csrf, login
from tests.factories import make_dispute, make_invoice, make_payment, make_team, make_user
from tests.worklists.helpers import commercial_client, item_of, overdue_account, rebuild, working_day
from worklists.account import Event, ordered

DATES = re.compile(r'data-on="(\d{4}-\d{2}-\d{2})"')


def _dates(page: str, section: str) -> list[str]:
    """The business dates of the rows of one section of a page (the section opens with `section`)."""
    start = page.index(section)
    end = page.find("</table>", start)
    return DATES.findall(page[start:end])


@pytest.fixture
def account(db_session: Any) -> dict[str, Any]:
    """An account whose events were posted out of date order: a payment received on 1 March is posted
    before an invoice issued on 1 February, and a call is logged on 10 March."""
    client = commercial_client(name="Order Client GmbH")
    team = make_team(client)
    collector = make_user("collector", team=team, name="Cara Collector")
    with working_day():
        debtor = overdue_account(client, 900_00, name="Out Of Order KG")  # invoice issued 2026-01-05
        make_payment(client, debtor, "PAY-MARCH", 100_00, received_on=date(2026, 3, 1))
        late = make_invoice(client, debtor, "FEB-INV", 300_00, issue_date=date(2026, 2, 1), due_date=date(2026, 2, 15))
        rebuild(client)
        item = item_of(debtor)
    return {"client": client, "team": team, "collector": collector, "debtor": debtor, "item": item, "late": late}


def test_the_debtor_pages_show_the_account_history_in_date_order(client: FlaskClient, account: dict) -> None:
    """Posted order is payment (1 Mar), then invoice (1 Feb): the pages must still list 1 Mar, 1 Feb, 5 Jan."""
    c, d = account["client"], account["debtor"]
    login(client, make_user("manager").email)
    page = client.get(f"/clients/{c.id}/debtors/{d.id}").get_data(as_text=True)
    assert _dates(page, 'id="journal-title"') == ["2026-03-01", "2026-02-01", "2026-01-05"]
    view = client.get(f"/clients/{c.id}/debtors/{d.id}/account").get_data(as_text=True)
    ledger_dates = [on for on in _dates(view, 'id="timeline-title"')]
    assert ledger_dates == sorted(ledger_dates, reverse=True) and "2026-02-01" in ledger_dates

    client.post("/logout", data={"csrf_token": fresh_csrf(client)})
    login(client, make_user("client_viewer", client=c).email)
    portal = client.get(f"/portal/debtors/{d.id}").get_data(as_text=True)
    dates = _dates(portal, 'id="timeline-title"')
    assert dates[:3] == ["2026-03-01", "2026-02-01", "2026-01-05"]


def test_the_account_view_shows_the_whole_account_and_the_portal_copy_hides_internal_work(
    client: FlaskClient, account: dict
) -> None:
    c, d, item = account["client"], account["debtor"], account["item"]
    with working_day(datetime(2026, 3, 10, 9, 0, tzinfo=UTC)):
        login(client, account["collector"].email)
        token = fresh_csrf(client, "/worklists")
        url = f"/worklists/items/{item.id}/actions"
        client.post(
            url, data={"csrf_token": token, "action": "call", "outcome": "right_party", "note": "INTERNAL-CALL"}
        )
        client.post(url, data={"csrf_token": token, "action": "note", "note": "INTERNAL-NOTE"})
        client.post(url, data={"csrf_token": token, "action": "promise", "amount": "250.00", "due_on": "2026-03-20"})
        make_dispute(c, d, [account["late"]], summary="Price differs from the quote")
        view = client.get(f"/clients/{c.id}/debtors/{d.id}/account").get_data(as_text=True)
        expected = ["Out Of Order KG", "Call: spoke to the debtor", "INTERNAL-NOTE", "Cara Collector", "Promise to pay"]
        expected += ["€250.00", "Price differs from the quote", "Payment received", "FEB-INV", "Work this account"]
        for text in expected:
            assert text in view, text
        assert "right_party" not in view and "right party" not in view
        sources = re.findall(r'data-source="(\w+)"', view)
        assert {"ledger", "work", "dispute"} <= set(sources)
        dates = _dates(view, 'id="timeline-title"')
        assert dates == sorted(dates, reverse=True)

        client.post("/logout", data={"csrf_token": fresh_csrf(client)})
        login(client, make_user("client_viewer", client=c).email)
        portal = client.get(f"/portal/debtors/{d.id}").get_data(as_text=True)
        assert "Call: spoke to the debtor" in portal and "Price differs from the quote" in portal
        for secret in ("INTERNAL-NOTE", "INTERNAL-CALL", "Cara Collector"):
            assert secret not in portal, secret


def test_the_worklist_debtor_ledger_and_dispute_pages_link_to_the_account_view(
    client: FlaskClient, account: dict
) -> None:
    c, d, item = account["client"], account["debtor"], account["item"]
    dispute = make_dispute(c, d, [account["late"]])
    target = f"/clients/{c.id}/debtors/{d.id}/account"
    login(client, make_user("manager").email)
    for page in (
        f"/worklists/items/{item.id}",
        f"/clients/{c.id}/debtors/{d.id}",
        f"/clients/{c.id}/ledger",
        f"/slas/disputes/{dispute.id}",
    ):
        assert target in client.get(page).get_data(as_text=True), page


def test_another_clients_account_is_a_404_like_a_missing_one(client: FlaskClient, account: dict) -> None:
    other = commercial_client(name="Other Client SA")
    with working_day():
        stranger = overdue_account(other, name="Stranger SARL")
    login(client, account["collector"].email)  # the collector's team works only the first client
    assert client.get(f"/clients/{account['client'].id}/debtors/{account['debtor'].id}/account").status_code == 200
    foreign = client.get(f"/clients/{other.id}/debtors/{stranger.id}/account")
    missing = client.get(f"/clients/{other.id}/debtors/987654321/account")
    assert foreign.status_code == missing.status_code == 404
    wrong_client = client.get(f"/clients/{account['client'].id}/debtors/{stranger.id}/account")
    assert wrong_client.status_code == 404
    with scoped(TenantScope.agency(), db.session):
        assert db.session.get(type(stranger), stranger.id) is not None


_day = st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31))


@st.composite
def _events(draw: Any) -> Event:
    on = draw(_day)
    at = draw(st.one_of(st.none(), st.integers(-3, 3)))
    moment = None if at is None else datetime.combine(on, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12 * at)
    return Event(on=on, at=moment, source=draw(st.sampled_from(["ledger", "work"])), title="x", seq=draw(st.integers()))


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=60)
@given(st.lists(_events(), max_size=25), st.integers(1, 30))
def test_the_merged_timeline_is_newest_date_first_and_keeps_the_newest_events(events: list[Event], limit: int) -> None:
    shown = ordered(events, limit)
    assert [e.on for e in shown] == sorted((e.on for e in shown), reverse=True)
    assert len(shown) == min(limit, len(events))
    if len(events) > limit:  # nothing left out is newer than the oldest event shown
        left_out = sorted(events, key=Event.sort_key, reverse=True)[limit:]
        assert all(e.sort_key() <= shown[-1].sort_key() for e in left_out)


def test_the_timeline_shows_one_kind_of_event_on_request(client: FlaskClient, account: dict) -> None:
    c, d = account["client"], account["debtor"]
    login(client, make_user("manager").email)
    money = client.get(f"/clients/{c.id}/debtors/{d.id}/account?show=ledger").get_data(as_text=True)
    assert set(re.findall(r'data-source="(\w+)"', money)) == {"ledger"}
    assert 'aria-current="true">Money<' in money
    nothing = client.get(f"/clients/{c.id}/debtors/{d.id}/account?show=dispute").get_data(as_text=True)
    assert re.findall(r'data-source="(\w+)"', nothing) == [] and "Nothing has happened" in nothing
    everything = client.get(f"/clients/{c.id}/debtors/{d.id}/account?show=bogus").get_data(as_text=True)
    assert 'aria-current="true">Everything<' in everything


def test_a_recalled_account_no_longer_offers_the_recall(client: FlaskClient, account: dict) -> None:
    c, d = account["client"], account["debtor"]
    login(client, make_user("client_admin", client=c).email)
    page = client.get(f"/portal/debtors/{d.id}").get_data(as_text=True)
    assert "Recall account" in page
    done = client.post(
        f"/portal/debtors/{d.id}/recall",
        data={"csrf_token": fresh_csrf(client), "reason": "Settled with us directly", "confirm": "1"},
    )
    assert done.status_code == 302
    page = client.get(f"/portal/debtors/{d.id}").get_data(as_text=True)
    assert "recalled" in page and "Recall account" not in page


def test_the_account_lists_its_documents_and_each_downloads_within_its_client(
    client: FlaskClient, account: dict
) -> None:
    """Dispute evidence and the files sent with messages are listed on the account view and on the client's copy,
    each downloads, and another client's account neither lists nor serves them."""
    from provider.comms.services import queue_email
    from sla.evidence import add_evidence

    c, d = account["client"], account["debtor"]
    dispute = make_dispute(c, d, [account["late"]])
    with scoped(TenantScope.agency(), db.session):
        evidence = add_evidence(db.session, dispute, "delivery-note.pdf", b"%PDF-1.4 delivery note")
        message = queue_email(
            db.session,
            client_id=c.id,
            debtor_id=d.id,
            to="ap@out-of-order.example",
            subject="Your statement",
            text="Please find your statement attached.",
            purpose="statement",
            dedupe_key="statement:test",
            attachments=[("statement-march.pdf", b"%PDF-1.4 statement", "application/pdf")],
        )
        db.session.commit()
        evidence_id, message_id = evidence.id, message.id
    login(client, account["collector"].email)
    view = client.get(f"/clients/{c.id}/debtors/{d.id}/account").get_data(as_text=True)
    docs = view.split("data-documents")[1].split("</section>")[0]
    assert "delivery-note.pdf" in docs and "statement-march.pdf" in docs and "Your statement" in docs
    links = dict(re.findall(r'href="([^"]+)" download>([^<]+)<', docs))
    assert {v: k for k, v in links.items()}.keys() == {"delivery-note.pdf", "statement-march.pdf"}
    for url, name in links.items():
        got = client.get(url)
        assert got.status_code == 200 and name in got.headers["Content-Disposition"]
    assert f"/clients/{c.id}/debtors/{d.id}/statement" in docs

    client.post("/logout", data={"csrf_token": fresh_csrf(client)})
    login(client, make_user("client_viewer", client=c).email)
    portal = client.get(f"/portal/debtors/{d.id}").get_data(as_text=True)
    pdocs = portal.split("data-documents")[1].split("</section>")[0]
    plinks = re.findall(r'href="([^"]+)" download>', pdocs)
    assert len(plinks) == 2 and all(url.startswith("/portal/") for url in plinks)
    assert all(client.get(url).status_code == 200 for url in plinks)
    assert "Cara Collector" not in pdocs  # who uploaded is the agency's business

    other = commercial_client(name="Elsewhere AG")
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})
    login(client, make_user("client_viewer", client=other).email)
    assert all(client.get(url).status_code == 404 for url in plinks)
    assert client.get(f"/portal/disputes/{dispute.id}/evidence/{evidence_id}").status_code == 404
    assert client.get(f"/portal/messages/{message_id}/attachments/1").status_code == 404
