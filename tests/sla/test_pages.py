"""SLA and dispute pages: dashboard drill-down, the dispute flow in the back office and the portal,
evidence served only as a download, bounded queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import event, select

from clients.journal import Invoice
from provider.core.clock import frozen_time
from provider.extensions import db
from sla.models import Dispute, DisputeEvidence, SlaNotification
from sla.sweep import sweep
from tests.conftest import fresh_csrf, login
from tests.factories import (
    make_client,
    make_contract_terms,
    make_debtor,
    make_dispute,
    make_invoice,
    make_team,
    make_user,
)

MONDAY_10 = datetime(2026, 5, 18, 8, 0, tzinfo=UTC)


@pytest.fixture
def setup(db_session: Any) -> dict[str, Any]:
    client = make_client(name="Rhein Widgets GmbH")
    make_contract_terms(client)
    debtor = make_debtor(client, name="Late Payer KG")
    inv = make_invoice(client, debtor, "RW-100", 500_00)
    team = make_team(client)
    return {
        "client": client,
        "debtor": debtor,
        "invoice": inv,
        "manager": make_user("manager"),
        "collector": make_user("collector", team=team),
        "client_admin": make_user("client_admin", client=client),
        "client_viewer": make_user("client_viewer", client=client),
    }


def _post(client: FlaskClient, url: str, data: dict[str, Any], **kw: Any) -> Any:
    return client.post(url, data={"csrf_token": fresh_csrf(client), **data}, **kw)


def test_manager_dashboard_shows_a_breached_dispute_and_drills_into_it(
    client: FlaskClient, setup: dict[str, Any]
) -> None:
    with frozen_time(MONDAY_10):
        dispute = make_dispute(setup["client"], setup["debtor"], [setup["invoice"]])
    sweep(db.session, MONDAY_10 + timedelta(days=2))
    db.session.commit()
    assert db.session.scalar(select(SlaNotification.message)).startswith(
        "Dispute acknowledged: SLA breached (dispute no. "
    )
    login(client, setup["manager"].email)
    with frozen_time(MONDAY_10 + timedelta(days=2)):
        page = client.get("/slas?sort=time_left").get_data(as_text=True)
    assert "Rhein Widgets GmbH" in page and "breached" in page
    link = f"/slas/disputes/{dispute.id}"
    assert link in page
    detail = client.get(link).get_data(as_text=True)
    assert "Late Payer KG" in detail and "RW-100" in detail and ">Breached<" in detail


def test_breach_notices_link_first_contact_and_placement_clocks_to_their_pages(
    client: FlaskClient, setup: dict[str, Any]
) -> None:
    from sla.hooks import sla_started

    acme, debtor = setup["client"], setup["debtor"]
    with frozen_time(MONDAY_10):
        sla_started(db.session, acme, "first_contact", ("debtor", debtor.id), at=MONDAY_10)
        sla_started(db.session, acme, "placement_ack", ("placement", 4242), at=MONDAY_10)
    sweep(db.session, MONDAY_10 + timedelta(days=5))
    db.session.commit()
    login(client, setup["manager"].email)
    with frozen_time(MONDAY_10 + timedelta(days=5)):
        page = client.get("/slas").get_data(as_text=True)
    notices = page[page.index('id="notices-title"') :]
    assert f'href="/clients/{acme.id}/debtors/{debtor.id}"' in notices
    assert f'href="/clients/{acme.id}/imports/4242"' in notices


def test_collector_opens_acknowledges_and_asks_the_client_who_answers(
    client: FlaskClient, setup: dict[str, Any]
) -> None:
    c, d, inv = setup["client"], setup["debtor"], setup["invoice"]
    login(client, setup["collector"].email)
    assert "Open a dispute" in client.get(f"/clients/{c.id}/debtors/{d.id}").get_data(as_text=True)
    url = f"/clients/{c.id}/debtors/{d.id}/disputes/new"
    assert "RW-100" in client.get(url).get_data(as_text=True)
    bad = _post(
        client, url, {"reason": "pricing", "amount": "600.00", "invoice_ids": str(inv.id)}, follow_redirects=True
    )
    assert "is open on these invoices" in bad.get_data(as_text=True)
    done = _post(
        client,
        url,
        {"reason": "pricing", "amount": "120.50", "invoice_ids": str(inv.id), "summary": "Wrong unit price"},
    )
    assert done.status_code == 302
    dispute = db.session.scalar(select(Dispute).where(Dispute.client_id == c.id))
    assert (dispute.amount_minor, dispute.status) == (120_50, "open")
    assert db.session.get(Invoice, inv.id).on_hold
    base = f"/slas/disputes/{dispute.id}"
    _post(client, f"{base}/action", {"action": "acknowledge"})
    _post(client, f"{base}/action", {"action": "investigate"})
    _post(client, f"{base}/action", {"action": "ask_client", "note": "Which price was quoted?"})
    db.session.refresh(dispute)
    assert dispute.status == "awaiting_client"
    _post(client, f"{base}/owner", {"owner_id": str(setup["manager"].id)})
    _post(client, f"{base}/owner", {"owner_id": str(setup["client_admin"].id)})  # refused: not staff
    db.session.refresh(dispute)
    assert dispute.owner_id == setup["manager"].id
    # a collector may not resolve (a resolution posts money)
    assert _post(client, f"{base}/resolve", {"outcome": "upheld"}).status_code == 404

    client.post("/logout", data={"csrf_token": fresh_csrf(client)})
    login(client, setup["client_admin"].email)
    listing = client.get("/portal/disputes").get_data(as_text=True)
    assert "Waiting for your answer" in listing
    page = client.get(f"/portal/disputes/{dispute.id}").get_data(as_text=True)
    assert "Which price was quoted?" in page
    _post(client, f"/portal/disputes/{dispute.id}/answer", {"body": "EUR 9.80 per unit, see the quote"})
    db.session.refresh(dispute)
    assert dispute.status == "investigating"


def test_manager_resolves_with_a_credit_note(client: FlaskClient, setup: dict[str, Any]) -> None:
    c, d, inv = setup["client"], setup["debtor"], setup["invoice"]
    dispute = make_dispute(c, d, [inv], amount_minor=100_00)
    login(client, setup["manager"].email)
    base = f"/slas/disputes/{dispute.id}"
    refused = _post(client, f"{base}/resolve", {"outcome": "credit_note"}, follow_redirects=True)
    assert "cannot be sent to resolve" in refused.get_data(as_text=True)
    _post(client, f"{base}/action", {"action": "acknowledge"})
    _post(client, f"{base}/action", {"action": "investigate"})
    _post(client, f"{base}/resolve", {"outcome": "credit_note", "amount": "100.00", "note": "price corrected"})
    db.session.refresh(dispute)
    invoice = db.session.get(Invoice, inv.id)
    db.session.refresh(invoice)
    assert (dispute.status, dispute.credit_note_id is not None) == ("resolved", True)
    assert (invoice.open_minor, invoice.on_hold) == (400_00, False)


def test_client_records_a_dispute_and_uploads_evidence_served_only_as_download(
    client: FlaskClient, setup: dict[str, Any]
) -> None:
    login(client, setup["client_admin"].email)
    unknown = _post(
        client, "/portal/disputes/new", {"numbers": "RW-100, NOPE-1", "reason": "damaged"}, follow_redirects=True
    )
    assert unknown.status_code == 422  # the server checks the form (no browser pop-up) and ties the error to it
    page = unknown.get_data(as_text=True)
    assert "no invoice has the number NOPE-1" in page
    assert 'aria-describedby="f-numbers-hint f-numbers-error"' in page and 'aria-invalid="true"' in page
    made = _post(
        client, "/portal/disputes/new", {"numbers": "RW-100", "reason": "damaged", "summary": "Broken on arrival"}
    )
    assert made.status_code == 302
    dispute = db.session.scalar(select(Dispute).where(Dispute.client_id == setup["client"].id))
    assert dispute.opened_via == "portal" and dispute.amount_minor == 500_00
    from io import BytesIO

    url = f"/portal/disputes/{dispute.id}/evidence"
    token = fresh_csrf(client)
    html = client.post(
        url,
        data={"csrf_token": token, "file": (BytesIO(b"<script>x</script>"), "photo.png")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert "not a valid .png file" in html.get_data(as_text=True)
    token = fresh_csrf(client)
    client.post(
        url,
        data={"csrf_token": token, "file": (BytesIO(b"delivery note text"), "note.txt")},
        content_type="multipart/form-data",
    )
    evidence = db.session.scalar(select(DisputeEvidence).where(DisputeEvidence.dispute_id == dispute.id))
    got = client.get(f"/portal/disputes/{dispute.id}/evidence/{evidence.id}")
    assert got.status_code == 200 and got.data == b"delivery note text"
    assert got.headers["Content-Disposition"].startswith("attachment")
    assert got.mimetype == "application/octet-stream"
    assert got.headers["X-Content-Type-Options"] == "nosniff"


def test_a_client_viewer_sees_disputes_but_cannot_answer(client: FlaskClient, setup: dict[str, Any]) -> None:
    dispute = make_dispute(setup["client"], setup["debtor"], [setup["invoice"]])
    login(client, setup["client_viewer"].email)
    assert client.get(f"/portal/disputes/{dispute.id}").status_code == 200
    assert _post(client, f"/portal/disputes/{dispute.id}/messages", {"body": "hi"}).status_code == 404
    assert client.get("/portal/disputes/new").status_code == 404


def test_dashboard_queries_are_bounded(client: FlaskClient, setup: dict[str, Any]) -> None:
    login(client, setup["manager"].email)

    def count(path: str) -> int:
        seen = []
        listener = lambda *a: seen.append(1)  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listener)
        try:
            assert client.get(path).status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", listener)
        return len(seen)

    with frozen_time(MONDAY_10):
        make_dispute(setup["client"], setup["debtor"], [setup["invoice"]])
    sweep(db.session, MONDAY_10 + timedelta(days=2))
    db.session.commit()
    few = count("/slas"), count("/slas/disputes")
    for i in range(15):
        extra_client = make_client()
        make_contract_terms(extra_client)
        debtor = make_debtor(extra_client)
        with frozen_time(MONDAY_10):
            make_dispute(extra_client, debtor, [make_invoice(extra_client, debtor, f"X-{i}", 10_00)])
    sweep(db.session, MONDAY_10 + timedelta(days=2))
    db.session.commit()
    assert (count("/slas"), count("/slas/disputes")) == few


def test_a_manager_records_a_new_version_of_the_contract_terms(client: FlaskClient, setup: dict[str, Any]) -> None:
    from sla.models import ContractTerms

    c = setup["client"]
    login(client, setup["collector"].email)
    assert client.get(f"/slas/clients/{c.id}/terms").status_code == 200
    assert _post(client, f"/slas/clients/{c.id}/terms", {"effective_from": "2030-01-01"}).status_code == 404
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})
    login(client, setup["manager"].email)
    form = {
        "effective_from": "2030-01-01",
        "at_risk_pct": "80",
        "target_dispute_ack": "4",
        "unit_dispute_ack": "business_hours",
    }
    past = _post(client, f"/slas/clients/{c.id}/terms", form | {"effective_from": "2020-01-01"}, follow_redirects=True)
    assert "cannot start in the past" in past.get_data(as_text=True)
    page = _post(client, f"/slas/clients/{c.id}/terms", form, follow_redirects=True).get_data(as_text=True)
    assert "New contract terms recorded." in page
    newest = db.session.scalar(
        select(ContractTerms).where(ContractTerms.client_id == c.id).order_by(ContractTerms.version.desc()).limit(1)
    )
    assert (newest.version, newest.at_risk_pct, [(t.code, t.unit, t.target) for t in newest.targets]) == (
        2,
        80,
        [("dispute_ack", "business_hours", 4)],
    )
