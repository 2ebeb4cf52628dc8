"""Disputes: the state machine as a table, holds on disputed invoices, resolution through the ledger."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from clients import ledger
from clients.journal import CreditNote, Invoice
from clients.models import Client
from provider.core.audit import AuditEvent
from provider.core.clock import frozen_time
from provider.core.errors import ServiceError
from provider.extensions import db
from sla import disputes
from sla.evidence import MAX_BYTES, add_evidence
from sla.models import ClockState, Dispute, SlaClock
from sla.queries import debtor_has_open_disputes, debtors_with_open_disputes
from tests.factories import make_client, make_contract_terms, make_debtor, make_dispute, make_invoice, make_payment

MONDAY_10 = datetime(2026, 5, 18, 8, 0, tzinfo=UTC)  # 10:00 in Berlin

PATHS = {
    "open": [],
    "acknowledged": ["acknowledge"],
    "investigating": ["acknowledge", "investigate"],
    "awaiting_client": ["acknowledge", "investigate", "ask_client"],
    "resolved": ["acknowledge", "investigate", "resolve"],
    "withdrawn": ["withdraw"],
}


def _do(dispute: Dispute, action: str) -> None:
    client = db.session.get(Client, dispute.client_id)
    {
        "acknowledge": lambda: disputes.acknowledge(db.session, dispute),
        "investigate": lambda: disputes.investigate(db.session, dispute),
        "ask_client": lambda: disputes.ask_client(db.session, dispute, "Please send the delivery note"),
        "client_answered": lambda: disputes.client_answers(db.session, dispute, "Attached"),
        "resolve": lambda: disputes.resolve(db.session, client, dispute, "upheld"),
        "withdraw": lambda: disputes.withdraw(db.session, dispute),
    }[action]()


@pytest.fixture
def account(db_session: Any) -> Any:
    client = make_client()
    make_contract_terms(client)
    debtor = make_debtor(client)
    inv1 = make_invoice(client, debtor, "INV-1", 600_00)
    inv2 = make_invoice(client, debtor, "INV-2", 400_00, due_date=date(2026, 2, 20))
    return client, debtor, inv1, inv2


@pytest.mark.parametrize(
    ("start", "action", "expected"),
    [
        ("open", "acknowledge", "acknowledged"),
        ("open", "investigate", None),
        ("open", "resolve", None),
        ("open", "withdraw", "withdrawn"),
        ("acknowledged", "investigate", "investigating"),
        ("acknowledged", "acknowledge", None),
        ("acknowledged", "resolve", None),
        ("acknowledged", "withdraw", "withdrawn"),
        ("investigating", "ask_client", "awaiting_client"),
        ("investigating", "resolve", "resolved"),
        ("investigating", "client_answered", None),
        ("investigating", "withdraw", "withdrawn"),
        ("awaiting_client", "client_answered", "investigating"),
        ("awaiting_client", "resolve", None),
        ("awaiting_client", "ask_client", None),
        ("awaiting_client", "withdraw", "withdrawn"),
        ("resolved", "withdraw", None),
        ("resolved", "investigate", None),
        ("resolved", "resolve", None),
        ("withdrawn", "acknowledge", None),
        ("withdrawn", "withdraw", None),
    ],
)
def test_dispute_state_machine(account: Any, start: str, action: str, expected: str | None) -> None:
    client, debtor, inv1, _ = account
    dispute = make_dispute(client, debtor, [inv1])
    for step in PATHS[start]:
        _do(dispute, step)
    assert dispute.status == start
    if expected is None:
        with pytest.raises(disputes.DisputeTransitionRefused) as err:
            _do(dispute, action)
        assert (err.value.action, err.value.status) == (action, start)
        assert dispute.status == start
    else:
        _do(dispute, action)
        assert dispute.status == expected
        last = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
        assert last.action in (f"dispute.{action}", "dispute.message")


def test_a_disputed_invoice_is_held_out_of_allocation_and_the_worklist(account: Any) -> None:
    from worklists import scoring

    client, debtor, inv1, inv2 = account
    payment = make_payment(client, debtor, "PAY-1", 100_00)
    today = date(2026, 3, 10)
    rows = lambda: db.session.execute(  # noqa: E731
        select(scoring.scored_rows(db.session, [client.id], [debtor.id], today, MONDAY_10).subquery())
    ).all()
    assert len(rows()) == 1
    dispute = make_dispute(client, debtor, [inv1, inv2])
    db.session.refresh(inv1)
    assert inv1.on_hold and inv2.on_hold
    assert debtor_has_open_disputes(db.session, client.id, debtor.id)
    assert (client.id, debtor.id) in set(db.session.execute(debtors_with_open_disputes([client.id])).all())
    assert rows() == []  # nothing collectable left: out of the worklist
    with pytest.raises(ServiceError, match="on hold"):
        ledger.allocate(db.session, client, payment, inv1, 50_00)
    assert ledger.auto_allocate(db.session, client, payment) == []
    disputes.withdraw(db.session, dispute)
    db.session.refresh(inv1)
    assert not inv1.on_hold
    assert not debtor_has_open_disputes(db.session, client.id, debtor.id)
    assert len(rows()) == 1
    assert len(ledger.auto_allocate(db.session, client, payment)) == 1


def test_the_hold_stays_while_another_dispute_covers_the_invoice(account: Any) -> None:
    client, debtor, inv1, inv2 = account
    first = make_dispute(client, debtor, [inv1, inv2], amount_minor=100_00)
    second = make_dispute(client, debtor, [inv1], reason="damaged", amount_minor=50_00)
    for d in (first,):
        disputes.withdraw(db.session, d)
    db.session.refresh(inv1)
    db.session.refresh(inv2)
    assert (inv1.on_hold, inv2.on_hold) == (True, False)
    disputes.withdraw(db.session, second)
    db.session.refresh(inv1)
    assert not inv1.on_hold


@pytest.mark.parametrize(
    ("outcome", "amount", "open_after", "credited"),
    [
        ("credit_note", 0, (0, 400_00), 600_00),
        ("partially_upheld", 250_00, (350_00, 400_00), 250_00),
        ("upheld", 0, (600_00, 400_00), 0),
        ("written_off", 0, (0, 400_00), 600_00),
    ],
)
def test_resolution_posts_through_the_ledger(
    account: Any, outcome: str, amount: int, open_after: tuple[int, int], credited: int
) -> None:
    client, debtor, inv1, inv2 = account
    dispute = make_dispute(client, debtor, [inv1], amount_minor=600_00)
    _do(dispute, "acknowledge")
    _do(dispute, "investigate")
    disputes.resolve(db.session, client, dispute, outcome, amount, note="agreed with the client")
    db.session.refresh(inv1)
    db.session.refresh(inv2)
    assert (inv1.open_minor, inv2.open_minor) == open_after
    assert not inv1.on_hold
    assert (dispute.status, dispute.resolution, dispute.credited_minor) == ("resolved", outcome, credited)
    notes = db.session.scalars(select(CreditNote).where(CreditNote.client_id == client.id)).all()
    assert [n.amount_minor for n in notes] == ([credited] if outcome in ("credit_note", "partially_upheld") else [])


def test_refused_resolutions_change_nothing(account: Any) -> None:
    client, debtor, inv1, _ = account
    dispute = make_dispute(client, debtor, [inv1], amount_minor=100_00)
    _do(dispute, "acknowledge")
    _do(dispute, "investigate")
    for outcome, amount in (("credit_note", 100_01), ("partially_upheld", 100_00), ("nonsense", 1)):
        with pytest.raises(ServiceError):
            disputes.resolve(db.session, client, dispute, outcome, amount)
    assert dispute.status == "investigating"
    db.session.refresh(inv1)
    assert inv1.on_hold and inv1.open_minor == 600_00


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"reason": "bogus"}, "reason"),
        ({"invoice_ids": []}, "invoice_ids"),
        ({"amount_minor": 0}, "amount"),
        ({"amount_minor": 1_000_01}, "amount"),
    ],
)
def test_opening_validates(account: Any, data: dict[str, Any], field: str) -> None:
    client, debtor, inv1, inv2 = account
    with pytest.raises(ServiceError) as err:
        make_dispute(client, debtor, [inv1, inv2], **data)
    assert err.value.field == field


def test_invoices_of_another_debtor_cannot_be_disputed(account: Any) -> None:
    client, _, inv1, _ = account
    other = make_debtor(client)
    with pytest.raises(ServiceError, match="invoices of this debtor"):
        make_dispute(client, other, [inv1])


def test_dispute_clocks_pause_while_awaiting_the_client(account: Any) -> None:
    client, debtor, inv1, _ = account
    with frozen_time(MONDAY_10):
        dispute = make_dispute(client, debtor, [inv1])
    clocks = {c.code: c for c in db.session.scalars(select(SlaClock).where(SlaClock.dispute_id == dispute.id))}
    assert set(clocks) == {"dispute_ack", "dispute_resolve"}
    with frozen_time(MONDAY_10 + timedelta(hours=2)):
        _do(dispute, "acknowledge")
        _do(dispute, "investigate")
    with frozen_time(MONDAY_10 + timedelta(hours=3)):
        _do(dispute, "ask_client")
    assert clocks["dispute_ack"].state == ClockState.STOPPED and clocks["dispute_ack"].breached_at is None
    assert clocks["dispute_resolve"].state == ClockState.PAUSED
    assert clocks["dispute_resolve"].elapsed_s == 3 * 3600
    with frozen_time(MONDAY_10 + timedelta(days=8)):
        _do(dispute, "client_answered")
    assert clocks["dispute_resolve"].state == ClockState.RUNNING
    assert clocks["dispute_resolve"].elapsed_s == 3 * 3600


@pytest.mark.parametrize(
    ("name", "content", "ok"),
    [
        ("note.pdf", b"%PDF-1.7 ...", True),
        ("photo.png", b"\x89PNG\r\n\x1a\n....", True),
        ("list.csv", b"a,b\n1,2\n", True),
        ("evil.pdf", b"<html><script>alert(1)</script>", False),
        ("page.html", b"<html></html>", False),
        ("empty.txt", b"", False),
        ("big.txt", b"a" * (MAX_BYTES + 1), False),
        ("../../etc/passwd.txt", b"root", True),
    ],
)
def test_evidence_limits(account: Any, name: str, content: bytes, ok: bool) -> None:
    client, debtor, inv1, _ = account
    dispute = make_dispute(client, debtor, [inv1])
    if ok:
        evidence = add_evidence(db.session, dispute, name, content)
        assert "/" not in evidence.filename and evidence.size == len(content)
    else:
        with pytest.raises(ServiceError):
            add_evidence(db.session, dispute, name, content)
        assert db.session.scalar(select(func.count()).select_from(Invoice)) >= 1
