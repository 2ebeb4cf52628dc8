"""One convention for words and times on the SLA pages: a dispute state has one name per audience in lists and
on its page, SLA targets read "1 business day", times name their zone, dates are not ISO."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask.testing import FlaskClient

from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from sla import disputes as dispute_service
from sla.models import Dispute
from tests.conftest import login
from tests.factories import make_client, make_contract_terms, make_debtor, make_dispute, make_invoice, make_user

MONDAY_10 = datetime(2026, 5, 18, 8, 0, tzinfo=UTC)


def _awaiting_client() -> tuple[Any, Dispute]:
    client = make_client(name="Rhein Widgets GmbH", timezone="Europe/Berlin", country="DE")
    make_contract_terms(client)
    debtor = make_debtor(client, name="Late Payer KG")
    inv = make_invoice(client, debtor, "RW-100", 500_00)
    with frozen_time(MONDAY_10):
        opened = make_dispute(client, debtor, [inv])
    with scoped(TenantScope.agency(), db.session):
        record = db.session.get(Dispute, opened.id)
        dispute_service.acknowledge(db.session, record)
        dispute_service.investigate(db.session, record)
        dispute_service.ask_client(db.session, record, "Which quote do you mean?")
        db.session.commit()
    return client, opened


def _badges(page: str) -> set[str]:
    return {re.sub(r"\s+", " ", b).strip() for b in re.findall(r'<span class="badge[^"]*">([^<]+)</span>', page)}


def test_a_dispute_state_has_one_name_in_the_list_and_on_its_page(client: FlaskClient, db_session: Any) -> None:
    acme, dispute = _awaiting_client()
    login(client, make_user("client_admin", client=acme).email)
    listing = client.get("/portal/disputes").get_data(as_text=True)
    page = client.get(f"/portal/disputes/{dispute.id}").get_data(as_text=True)
    assert "Waiting for your answer" in _badges(listing) and "Waiting for your answer" in _badges(page)
    assert "awaiting client" not in (listing + page).lower() and "awaiting your answer" not in (listing + page).lower()
    staff = client.application.test_client()
    login(staff, make_user("manager").email)
    staff_list = staff.get("/slas/disputes").get_data(as_text=True)
    staff_page = staff.get(f"/slas/disputes/{dispute.id}").get_data(as_text=True)
    assert "Waiting for the client" in _badges(staff_list) and "Waiting for the client" in _badges(staff_page)


def test_terms_read_in_words_and_times_name_their_zone(client: FlaskClient, db_session: Any) -> None:
    acme, dispute = _awaiting_client()
    login(client, make_user("manager").email)
    terms = client.get(f"/slas/clients/{acme.id}/terms").get_data(as_text=True)
    assert "Dispute acknowledged: 1 business day" in terms and "1 business days" not in terms
    assert "Dispute ack" not in terms.replace("Dispute acknowledged", "")
    page = client.get(f"/slas/disputes/{dispute.id}").get_data(as_text=True)
    assert "18 May 2026, 08:00 UTC" in page  # staff read the agency's zone (UTC here), named
    assert not re.search(r"\d{2}:\d{2}</time>", page)  # no time without its zone
