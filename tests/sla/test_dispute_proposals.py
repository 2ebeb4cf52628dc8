"""A resolution the agency proposes and the client approves or rejects: the state machine, what approval posts
(exactly what the agency's own resolution would), the clock while the client decides, the pages on both
sides, and recalled accounts that stay held when their dispute closes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from clients.journal import CreditNote, Invoice
from clients.models import Client
from portal.services import recall_account
from provider.core.audit import AuditEvent
from provider.core.clock import frozen_time
from provider.core.errors import ServiceError
from provider.extensions import db
from sla import disputes
from sla.models import ClockState, Dispute, DisputeMessage, SlaClock
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_contract_terms, make_debtor, make_dispute, make_invoice, make_user

MONDAY_10 = datetime(2026, 5, 18, 8, 0, tzinfo=UTC)  # 10:00 in Berlin


@pytest.fixture
def account(db_session: Any) -> Any:
    client = make_client()
    make_contract_terms(client)
    debtor = make_debtor(client)
    inv1 = make_invoice(client, debtor, "INV-1", 600_00)
    inv2 = make_invoice(client, debtor, "INV-2", 400_00, due_date=date(2026, 2, 20))
    return client, debtor, inv1, inv2


def _investigating(client: Any, debtor: Any, invoices: list[Any], amount: int = 600_00) -> Dispute:
    dispute = make_dispute(client, debtor, invoices, amount_minor=amount)
    disputes.acknowledge(db.session, dispute)
    disputes.investigate(db.session, dispute)
    return dispute


def _client(dispute: Dispute) -> Client:
    return db.session.get(Client, dispute.client_id)


def _snapshot(client: Any) -> tuple[Any, ...]:
    """Everything a settled dispute moves in the ledger: open amounts, holds and credit notes."""
    invoices = db.session.execute(
        select(Invoice.number, Invoice.open_minor, Invoice.on_hold)
        .where(Invoice.client_id == client.id)
        .order_by(Invoice.number)
    ).all()
    notes = db.session.execute(
        select(CreditNote.amount_minor, CreditNote.unapplied_minor).where(CreditNote.client_id == client.id)
    ).all()
    return tuple(invoices), tuple(notes)


@pytest.mark.parametrize(
    ("start", "action", "expected"),
    [
        ("investigating", "propose", "awaiting_client"),
        ("open", "propose", None),
        ("acknowledged", "propose", None),
        ("awaiting_client", "propose", None),
        ("proposed", "propose", None),
        ("proposed", "approve", "resolved"),
        ("proposed", "reject", "investigating"),
        ("proposed", "resolve", None),
        ("proposed", "withdraw", "withdrawn"),
    ],
)
def test_proposal_state_machine(account: Any, start: str, action: str, expected: str | None) -> None:
    client, debtor, inv1, _ = account
    dispute = make_dispute(client, debtor, [inv1])
    steps = {
        "open": [],
        "acknowledged": ["acknowledge"],
        "investigating": ["acknowledge", "investigate"],
        "awaiting_client": ["acknowledge", "investigate", "ask_client"],
        "proposed": ["acknowledge", "investigate", "propose"],
    }[start]
    run = {
        "acknowledge": lambda: disputes.acknowledge(db.session, dispute),
        "investigate": lambda: disputes.investigate(db.session, dispute),
        "ask_client": lambda: disputes.ask_client(db.session, dispute, "Which quote?"),
        "propose": lambda: disputes.propose(db.session, dispute, "credit_note", 0, "The quote was lower"),
        "approve": lambda: disputes.approve_proposal(db.session, client, dispute),
        "reject": lambda: disputes.reject_proposal(db.session, dispute, "The quote stands"),
        "resolve": lambda: disputes.resolve(db.session, client, dispute, "upheld"),
        "withdraw": lambda: disputes.withdraw(db.session, dispute),
    }
    for step in steps:
        run[step]()
    before = dispute.status
    if expected is None:
        with pytest.raises(ServiceError):
            run[action]()
        assert dispute.status == before
    else:
        run[action]()
        assert dispute.status == expected
        assert dispute.proposal_pending == (dispute.proposed_resolution is not None) == (action == "propose")


@pytest.mark.parametrize(
    ("outcome", "amount"), [("credit_note", 0), ("partially_upheld", 250_00), ("written_off", 150_00)]
)
def test_approval_posts_exactly_what_the_agencys_resolution_posts(account: Any, outcome: str, amount: int) -> None:
    client, debtor, inv1, inv2 = account
    proposed = _investigating(client, debtor, [inv1, inv2], amount=700_00)
    disputes.propose(db.session, proposed, outcome, amount, "Agreed on the phone with the debtor")
    assert proposed.proposal_pending and proposed.status == "awaiting_client"
    assert _snapshot(client)[1] == ()  # nothing is posted before the client approves
    disputes.approve_proposal(db.session, client, proposed, note="fine by us")
    approved = _snapshot(client)

    twin = make_client()
    make_contract_terms(twin)
    twin_debtor = make_debtor(twin)
    t1 = make_invoice(twin, twin_debtor, "INV-1", 600_00)
    t2 = make_invoice(twin, twin_debtor, "INV-2", 400_00, due_date=date(2026, 2, 20))
    direct = _investigating(twin, twin_debtor, [t1, t2], amount=700_00)
    disputes.resolve(db.session, twin, direct, outcome, amount, note="decided by the agency")

    assert approved == _snapshot(twin)
    assert (proposed.status, proposed.resolution, proposed.credited_minor) == (
        "resolved",
        direct.resolution,
        direct.credited_minor,
    )
    assert proposed.resolution_note == "fine by us"
    assert proposed.proposed_resolution is None and not proposed.proposal_pending
    actions = db.session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.object_type == "Dispute", AuditEvent.object_id == str(proposed.id))
        .order_by(AuditEvent.id)
    ).all()
    assert "dispute.propose" in actions and "dispute.approve" in actions


def test_the_clock_is_paused_while_the_client_decides_and_stops_on_approval(account: Any) -> None:
    client, debtor, inv1, _ = account
    with frozen_time(MONDAY_10):
        dispute = _investigating(client, debtor, [inv1])
    clock = db.session.scalar(
        select(SlaClock).where(SlaClock.dispute_id == dispute.id, SlaClock.code == "dispute_resolve")
    )
    with frozen_time(MONDAY_10 + timedelta(hours=2)):
        disputes.propose(db.session, dispute, "credit_note", 0, "Price was wrong")
    assert clock.state == ClockState.PAUSED and clock.elapsed_s == 2 * 3600
    with frozen_time(MONDAY_10 + timedelta(days=3)):
        disputes.reject_proposal(db.session, dispute, "We quoted that price")
    assert clock.state == ClockState.RUNNING and clock.elapsed_s == 2 * 3600
    with frozen_time(MONDAY_10 + timedelta(days=3, hours=1)):
        disputes.propose(db.session, dispute, "partially_upheld", 100_00, "Half of the freight, then")
    assert clock.elapsed_s == 3 * 3600
    with frozen_time(MONDAY_10 + timedelta(days=9)):
        disputes.approve_proposal(db.session, client, dispute)
    assert clock.state == ClockState.STOPPED and clock.elapsed_s == 3 * 3600 and clock.breached_at is None
    thread = db.session.scalars(
        select(DisputeMessage.body).where(DisputeMessage.dispute_id == dispute.id).order_by(DisputeMessage.id)
    ).all()
    assert [body.split(" ")[0] for body in thread] == ["Proposed:", "Rejected", "Proposed:", "Approved"]
    assert "We quoted that price" in thread[1]


@pytest.mark.parametrize(
    ("outcome", "amount", "note", "field"),
    [
        ("upheld", 0, "stands", "outcome"),
        ("nonsense", 0, "x", "outcome"),
        ("credit_note", 600_01, "too much", "amount"),
        ("partially_upheld", 600_00, "not partial", "amount"),
        ("credit_note", 0, "   ", "note"),
    ],
)
def test_a_refused_proposal_changes_nothing(account: Any, outcome: str, amount: int, note: str, field: str) -> None:
    client, debtor, inv1, _ = account
    dispute = _investigating(client, debtor, [inv1])
    with pytest.raises(ServiceError) as err:
        disputes.propose(db.session, dispute, outcome, amount, note)
    assert err.value.field == field
    assert dispute.status == "investigating" and dispute.proposed_resolution is None


def test_a_pending_proposal_needs_a_decision_not_an_answer(account: Any) -> None:
    client, debtor, inv1, _ = account
    dispute = _investigating(client, debtor, [inv1])
    disputes.propose(db.session, dispute, "written_off", 0, "Not worth pursuing")
    with pytest.raises(ServiceError, match="approve or reject"):
        disputes.client_answers(db.session, dispute, "ok")
    with pytest.raises(ServiceError, match="say why"):
        disputes.reject_proposal(db.session, dispute, "  ")
    assert dispute.proposal_pending
    disputes.withdraw(db.session, dispute)
    assert dispute.proposed_resolution is None
    with pytest.raises(ServiceError, match="no proposed resolution"):
        disputes.approve_proposal(db.session, client, dispute)
    asked = _investigating(client, debtor, [inv1], amount=100_00)
    disputes.ask_client(db.session, asked, "Send the delivery note")
    with pytest.raises(ServiceError, match="no proposed resolution"):
        disputes.approve_proposal(db.session, client, asked)  # a question is not a proposal


def test_closing_a_dispute_keeps_a_recalled_account_held(account: Any) -> None:
    client, debtor, inv1, inv2 = account
    dispute = _investigating(client, debtor, [inv1], amount=100_00)
    admin = make_user("client_admin", client=client)
    recall_account(db.session, debtor, "we collect it ourselves", admin)
    assert debtor.recalled_at is not None
    disputes.propose(db.session, dispute, "credit_note", 0, "Price was wrong")
    disputes.approve_proposal(db.session, client, dispute)
    for invoice in (inv1, inv2):
        db.session.refresh(invoice)
    assert (inv1.on_hold, inv2.on_hold) == (True, True)
    assert inv1.open_minor == 500_00  # the credit note was applied before the account went back on hold


def _post(http: FlaskClient, url: str, data: dict[str, Any], **kw: Any) -> Any:
    return http.post(url, data={"csrf_token": fresh_csrf(http), **data}, **kw)


def test_manager_proposes_and_the_client_admin_approves_in_the_portal(client: FlaskClient, account: Any) -> None:
    c, debtor, inv1, _ = account
    dispute = _investigating(c, debtor, [inv1], amount=120_00)
    db.session.commit()
    admin = make_user("client_admin", client=c)
    viewer = make_user("client_viewer", client=c)
    login(client, make_user("manager").email)
    base = f"/slas/disputes/{dispute.id}"
    refused = _post(client, f"{base}/propose", {"outcome": "upheld", "note": "x"}, follow_redirects=True)
    assert "needs no approval" in refused.get_data(as_text=True)
    _post(client, f"{base}/propose", {"outcome": "credit_note", "amount": "120.00", "note": "Quote was EUR 9.80"})
    db.session.refresh(dispute)
    assert dispute.proposal_pending
    staff_page = client.get(base).get_data(as_text=True)
    assert "Waiting for the client to approve a credit note of" in staff_page
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})

    login(client, viewer.email)
    page = client.get(f"/portal/disputes/{dispute.id}").get_data(as_text=True)
    assert "The agency proposes a credit note of" in page and "Quote was EUR 9.80" in page
    assert "can approve or reject it" in page
    assert _post(client, f"/portal/disputes/{dispute.id}/proposal", {"decision": "approve"}).status_code == 404
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})

    login(client, admin.email)
    page = client.get(f"/portal/disputes/{dispute.id}").get_data(as_text=True)
    assert 'value="approve"' in page and 'value="reject"' in page
    empty = _post(client, f"/portal/disputes/{dispute.id}/proposal", {"decision": "reject"}, follow_redirects=True)
    assert "say why you reject the proposal" in empty.get_data(as_text=True)
    done = _post(client, f"/portal/disputes/{dispute.id}/proposal", {"decision": "approve"}, follow_redirects=True)
    assert "Approved: the dispute is resolved." in done.get_data(as_text=True)
    db.session.refresh(dispute)
    db.session.refresh(inv1)
    assert (dispute.status, dispute.resolution, dispute.credited_minor) == ("resolved", "credit_note", 120_00)
    assert (inv1.open_minor, inv1.on_hold) == (480_00, False)


def test_the_client_admin_rejects_in_the_portal_and_the_agency_investigates_again(
    client: FlaskClient, account: Any
) -> None:
    c, debtor, inv1, _ = account
    dispute = _investigating(c, debtor, [inv1], amount=120_00)
    disputes.propose(db.session, dispute, "written_off", 0, "Small amount, not worth a fight")
    db.session.commit()
    other = make_client(name="Other Co")
    other_admin = make_user("client_admin", client=other)
    login(client, other_admin.email)
    assert client.get(f"/portal/disputes/{dispute.id}").status_code == 404
    assert _post(client, f"/portal/disputes/{dispute.id}/proposal", {"decision": "approve"}).status_code == 404
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})
    login(client, make_user("client_admin", client=c).email)
    _post(client, f"/portal/disputes/{dispute.id}/proposal", {"decision": "reject", "reason": "Collect it in full"})
    db.session.refresh(dispute)
    db.session.refresh(inv1)
    assert (dispute.status, dispute.proposed_resolution) == ("investigating", None)
    assert (inv1.open_minor, inv1.on_hold) == (600_00, True)
    assert "Collect it in full" in client.get(f"/portal/disputes/{dispute.id}").get_data(as_text=True)
