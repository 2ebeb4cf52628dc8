"""Late-payment charges in the pages: the invoice page with its waiver form, the debtor page, the statement and the
portal; waiving from the page; another client's invoice is a 404."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask.testing import FlaskClient

from tests.clients.test_interest import accrue, late_terms, owed
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_debtor, make_team, make_user
from tests.reports.ledger_world import place


def _world() -> tuple[Any, Any, Any]:
    client = make_client(name="Interest Client Ltd")
    debtor = make_debtor(client, name="Late Payer Ltd")
    late_terms(client, basis="contract", contract_rate="36.50", compensation="eu_flat")
    invoice = place(client, debtor, "INV-LATE-1", 100_000, date(2026, 1, 1), date(2026, 1, 31))
    accrue(client, date(2026, 2, 10))  # 10 days at 0.1% a day: EUR 10.00, and EUR 40.00 compensation
    return client, debtor, invoice


def test_staff_see_charges_apart_and_waive_them_with_a_reason(client: FlaskClient, db_session: Any) -> None:
    c, debtor, invoice = _world()
    manager = make_user("manager")
    login(client, manager.email)
    url = f"/clients/{c.id}/invoices/{invoice.id}"
    page = client.get(url).get_data(as_text=True)
    assert "Late-payment charges" in page and "€10.00" in page and "€40.00" in page and "Waive charges" in page
    token = fresh_csrf(client, url)
    refused = client.post(f"{url}/waive-charges", data={"csrf_token": token, "waive_reason": ""})
    assert refused.status_code == 422 and "say why the charges are waived" in refused.get_data(as_text=True)
    too_much = client.post(
        f"{url}/waive-charges", data={"csrf_token": token, "waive_reason": "x", "waive_amount": "51"}
    )
    assert too_much.status_code == 422 and "at most what the invoice owes" in too_much.get_data(as_text=True)
    assert owed(c, invoice) == 5_000
    done = client.post(
        f"{url}/waive-charges", data={"csrf_token": token, "waive_reason": "goodwill", "waive_amount": "10"}
    )
    assert done.status_code == 302
    assert owed(c, invoice) == 4_000
    debtor_page = client.get(f"/clients/{c.id}/debtors/{debtor.id}").get_data(as_text=True)
    assert "Charges owed" in debtor_page and "€40.00" in debtor_page
    statement = client.get(f"/clients/{c.id}/debtors/{debtor.id}/statement").get_data(as_text=True)
    assert "Late-payment charges" in statement and "€40.00" in statement
    assert "interest_charged" not in page  # kinds are shown in words


def test_the_waiver_is_refused_as_404_for_another_clients_invoice(client: FlaskClient, db_session: Any) -> None:
    c, _, invoice = _world()
    other = make_client()
    manager = make_user("manager")
    login(client, manager.email)
    token = fresh_csrf(client)
    wrong = client.post(
        f"/clients/{other.id}/invoices/{invoice.id}/waive-charges", data={"csrf_token": token, "waive_reason": "x"}
    )
    assert wrong.status_code == 404
    assert owed(c, invoice) == 5_000
    collector = make_user("collector", team=make_team(c))
    client.post("/logout", data={"csrf_token": token})
    login(client, collector.email)
    token = fresh_csrf(client)
    assert (
        client.post(
            f"/clients/{c.id}/invoices/{invoice.id}/waive-charges", data={"csrf_token": token, "waive_reason": "x"}
        ).status_code
        == 404
    )


def test_the_portal_shows_the_charges_but_no_waiver_form(client: FlaskClient, db_session: Any) -> None:
    c, debtor, invoice = _world()
    user = make_user("client_admin", client=c)
    login(client, user.email)
    page = client.get(f"/portal/debtors/{debtor.id}").get_data(as_text=True)
    assert "Late-payment charges" in page and "€50.00" in page
    inv = client.get(f"/portal/invoices/{invoice.id}").get_data(as_text=True)
    assert "Late-payment charges" in inv and "Waive charges" not in inv


def test_the_kpi_page_shows_the_charges_on_a_line_of_their_own(client: FlaskClient, db_session: Any) -> None:
    c, _, _ = _world()
    login(client, make_user("manager").email)
    page = client.get(f"/reports/clients/{c.id}?as_of=2026-02-10&live=1").get_data(as_text=True)
    section = page.split('id="charges-title"')[1]
    assert "Late-payment charges to 10 Feb 2026" in page and "DSO, CEI and aging above leave them out" in section
    assert "€10.00" in section and "€40.00" in section and "€50.00" in section
    before = client.get(f"/reports/clients/{c.id}?as_of=2026-01-31&live=1").get_data(as_text=True)
    assert 'id="charges-title"' not in before  # nothing was charged yet: no line
