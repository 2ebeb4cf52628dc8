"""Disputes: open, acknowledge, investigate, ask the client, resolve or withdraw — an explicit state machine.

    open --acknowledge--> acknowledged --investigate--> investigating --resolve--> resolved
                                                          |   ^
                                            ask_client    v   |  client_answered
                                                        awaiting_client
    open / acknowledged / investigating / awaiting_client --withdraw--> withdrawn

    investigating --propose--> awaiting_client --approve--> resolved
                                               --reject---> investigating

A resolution that costs the client money (a credit note, a partial credit, a write-off) can be proposed to
the client instead of decided by the agency: the dispute waits for the client (resolution clock paused),
who approves it (it is posted exactly as `resolve` would, the clock stops) or rejects it with a reason
(back to investigating, the clock resumes). A plain answer cannot settle a pending proposal.

A refused move raises `DisputeTransitionRefused` (a `ServiceError`). While a dispute is active its invoices
are held (`invoices.on_hold`): out of the worklist score and dunning, and `ledger.allocate` refuses them.
The hold is lifted when no other active dispute covers the invoice. Clocks: `dispute_ack` runs from opening
to acknowledgement; `dispute_resolve` runs from opening to resolution and is paused while the client owns
the next step (awaiting_client). A resolution with a credit note posts it through `clients.ledger`.
Services flush, never commit.
"""

from __future__ import annotations

from typing import Any

from blinker import Namespace
from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from clients import ledger
from clients.journal import Invoice
from clients.ledger_dates import client_today
from clients.models import Client, Debtor
from provider.core import audit
from provider.core.audit import current_actor
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.money import format_money
from sla.calendars import calendar_for
from sla.clocks import pause_clock, resume_clock, start_clock, stop_clock
from sla.models import (
    ACTIVE_DISPUTE,
    ClockState,
    Dispute,
    DisputeInvoice,
    DisputeMessage,
    DisputeReason,
    DisputeStatus,
    Resolution,
    SlaClock,
    SlaCode,
)

S = DisputeStatus
dispute_changed = Namespace().signal("dispute-changed")  # send(session, dispute=...) opened or moved
TRANSITIONS: dict[str, dict[DisputeStatus, DisputeStatus]] = {
    "acknowledge": {S.OPEN: S.ACKNOWLEDGED},
    "investigate": {S.ACKNOWLEDGED: S.INVESTIGATING},
    "ask_client": {S.INVESTIGATING: S.AWAITING_CLIENT},
    "client_answered": {S.AWAITING_CLIENT: S.INVESTIGATING},
    "resolve": {S.INVESTIGATING: S.RESOLVED},
    "withdraw": {s: S.WITHDRAWN for s in ACTIVE_DISPUTE},
    "propose": {S.INVESTIGATING: S.AWAITING_CLIENT},
    "approve": {S.AWAITING_CLIENT: S.RESOLVED},
    "reject": {S.AWAITING_CLIENT: S.INVESTIGATING},
}
# outcomes the client is asked to approve: each gives up money the client is owed
PROPOSABLE = (Resolution.CREDIT_NOTE, Resolution.PARTIALLY_UPHELD, Resolution.WRITTEN_OFF)


class DisputeTransitionRefused(ServiceError):
    """The dispute cannot make that move from its current status."""

    def __init__(self, dispute: Dispute, action: str) -> None:
        super().__init__(
            f"a dispute that is {dispute.status.replace('_', ' ')} cannot be sent to {action}", kind="state-conflict"
        )
        self.action, self.status = action, dispute.status


def next_status(status: str, action: str) -> DisputeStatus | None:
    return TRANSITIONS.get(action, {}).get(DisputeStatus(status))


def open_dispute(session: Session, client: Client, debtor: Debtor, data: dict[str, Any], via: str = "staff") -> Dispute:
    """Open a dispute of a debtor against one or more of its open invoices (same currency) and hold them.

    Refuses an unknown reason, no invoices, invoices of another debtor or client, mixed currencies, and an
    amount that is not positive or exceeds what is open on the invoices."""
    if debtor.client_id != client.id:
        raise ServiceError("the debtor belongs to another client", field="debtor_id")
    if data.get("reason") not in set(DisputeReason):
        raise ServiceError("choose a reason", field="reason")
    ids = sorted({int(i) for i in data.get("invoice_ids") or []})
    invoices = list(
        session.scalars(
            select(Invoice).where(Invoice.client_id == client.id, Invoice.debtor_id == debtor.id, Invoice.id.in_(ids))
        )
    )
    if not ids or len(invoices) != len(ids):
        raise ServiceError("choose one or more invoices of this debtor", field="invoice_ids", kind="ledger-rule")
    currencies = {i.currency for i in invoices}
    if len(currencies) != 1:
        raise ServiceError(
            "the invoices of one dispute must share a currency", field="invoice_ids", kind="currency-mismatch"
        )
    amount = data.get("amount_minor")
    open_total = sum(i.open_minor for i in invoices)
    if not isinstance(amount, int) or amount <= 0:
        raise ServiceError("the amount in dispute must be positive", field="amount")
    if amount > open_total:
        currency = currencies.pop()
        raise ServiceError(f"only {format_money(open_total, currency)} is open on these invoices", field="amount")
    owner_id = data.get("owner_id")
    actor = current_actor()
    dispute = Dispute(
        client_id=client.id,
        debtor_id=debtor.id,
        reason=data["reason"],
        status=S.OPEN.value,
        summary=(data.get("summary") or "").strip()[:300] or data["reason"].replace("_", " "),
        currency=invoices[0].currency,
        amount_minor=amount,
        owner_id=owner_id if owner_id is not None else (None if via == "portal" else actor.user_id),
        opened_by_id=actor.user_id,
        opened_via=via,
        opened_at=now_utc(),
    )
    session.add(dispute)
    session.flush()
    session.add_all(DisputeInvoice(client_id=client.id, dispute_id=dispute.id, invoice_id=i) for i in ids)
    session.flush()
    _set_hold(session, client.id, ids, True)
    cal = calendar_for(session, client)
    for code in (SlaCode.DISPUTE_ACK, SlaCode.DISPUTE_RESOLVE):
        start_clock(session, cal, client.id, code, ("dispute", dispute.id), at=dispute.opened_at, dispute_id=dispute.id)
    if data.get("message"):
        add_message(session, dispute, data["message"], from_client=via == "portal")
    audit.record(
        session, "dispute.open", dispute, after=audit.snapshot(dispute, Dispute.AUDIT_FIELDS) | {"invoices": ids}
    )
    dispute_changed.send(session, dispute=dispute)
    return dispute


def acknowledge(session: Session, dispute: Dispute, note: str = "") -> None:
    _move(session, dispute, "acknowledge", note)


def investigate(session: Session, dispute: Dispute, note: str = "") -> None:
    _move(session, dispute, "investigate", note)


def ask_client(session: Session, dispute: Dispute, question: str) -> None:
    """Hand the next step to the client: the resolution clock pauses until they answer."""
    if not question.strip():
        raise ServiceError("write the question for the client", field="body")
    _move(session, dispute, "ask_client", question)
    add_message(session, dispute, question, from_client=False)


def client_answers(session: Session, dispute: Dispute, answer: str) -> None:
    """The client's answer hands the dispute back to the agency: the resolution clock resumes."""
    if not answer.strip():
        raise ServiceError("write an answer", field="body")
    if dispute.proposal_pending:
        raise ServiceError("approve or reject the proposed resolution", field="body", kind="state-conflict")
    _move(session, dispute, "client_answered", answer)
    add_message(session, dispute, answer, from_client=True)


def withdraw(session: Session, dispute: Dispute, note: str = "") -> None:
    _move(session, dispute, "withdraw", note)


def resolve(
    session: Session, client: Client, dispute: Dispute, outcome: str, amount_minor: int = 0, note: str = ""
) -> None:
    """Close the dispute with an outcome, lifting the hold first so the ledger can act on the invoices.

    credit_note / partially_upheld: a credit note of `amount_minor` (credit_note: the disputed amount when 0)
    is issued and allocated to the invoices, oldest due first, through `ledger.issue_credit_note`/`allocate`;
    written_off: the amount is written off through `ledger.write_off`; upheld: the invoices stand as billed."""
    if next_status(dispute.status, "resolve") is None:
        raise DisputeTransitionRefused(dispute, "resolve")
    amount = _checked_outcome(dispute, outcome, amount_minor)
    _settle(session, client, dispute, outcome, amount, note, "resolve")


def propose(session: Session, dispute: Dispute, outcome: str, amount_minor: int = 0, note: str = "") -> None:
    """Ask the client to approve a resolution that costs them money; the resolution clock pauses meanwhile.

    The outcome and amount are checked as `resolve` checks them; an upheld invoice needs no approval."""
    if next_status(dispute.status, "propose") is None:
        raise DisputeTransitionRefused(dispute, "propose")
    if outcome in set(Resolution) and outcome not in PROPOSABLE:
        raise ServiceError("an upheld invoice needs no approval: resolve the dispute instead", field="outcome")
    amount = _checked_outcome(dispute, outcome, amount_minor)
    explanation = _one_line(note)
    if not explanation:
        raise ServiceError("explain the proposal to the client", field="note")
    dispute.proposed_resolution, dispute.proposed_amount_minor = outcome, amount
    dispute.proposal_note, dispute.proposed_at = explanation, now_utc()
    dispute.proposed_by_label = current_actor().label[:254]
    _move(session, dispute, "propose", explanation)
    add_message(session, dispute, f"Proposed: {describe_proposal(dispute)}. {explanation}", from_client=False)


def describe_proposal(dispute: Dispute) -> str:
    """The pending proposal in words, e.g. "a credit note of €120.00"."""
    amount = format_money(dispute.proposed_amount_minor or 0, dispute.currency)
    return {
        Resolution.CREDIT_NOTE: f"a credit note of {amount}",
        Resolution.PARTIALLY_UPHELD: f"a partial credit note of {amount}",
        Resolution.WRITTEN_OFF: f"writing off {amount}",
    }.get(Resolution(dispute.proposed_resolution or Resolution.UPHELD), "no change")


def approve_proposal(session: Session, client: Client, dispute: Dispute, note: str = "") -> None:
    """The client accepts the proposal: it is posted exactly as the agency's `resolve` would post it."""
    if not dispute.proposal_pending:
        raise ServiceError("there is no proposed resolution to approve", kind="state-conflict")
    outcome, amount = dispute.proposed_resolution or "", dispute.proposed_amount_minor or 0
    text = _one_line(note)
    add_message(
        session, dispute, f"Approved {describe_proposal(dispute)}." + (f" {text}" if text else ""), from_client=True
    )
    _clear_proposal(dispute)
    _settle(session, client, dispute, outcome, amount, text or "approved by the client", "approve")


def reject_proposal(session: Session, dispute: Dispute, reason: str) -> None:
    """The client refuses the proposal (a reason is required): the agency investigates again, its clock resumes."""
    if not dispute.proposal_pending:
        raise ServiceError("there is no proposed resolution to reject", kind="state-conflict")
    text = _one_line(reason)
    if not text:
        raise ServiceError("say why you reject the proposal", field="reason", kind="field-combination")
    add_message(session, dispute, f"Rejected {describe_proposal(dispute)}: {text}", from_client=True)
    _clear_proposal(dispute)
    _move(session, dispute, "reject", text)


def _one_line(text: str) -> str:
    """A proposal's or decision's note: whitespace collapsed, at most 500 characters."""
    return " ".join(text.split())[:500]


def _clear_proposal(dispute: Dispute) -> None:
    dispute.proposed_resolution = dispute.proposed_amount_minor = dispute.proposed_at = None
    dispute.proposal_note = dispute.proposed_by_label = ""


def _checked_outcome(dispute: Dispute, outcome: str, amount_minor: int) -> int:
    """The amount an outcome moves (0 for upheld), or a `ServiceError` naming the field."""
    if outcome not in set(Resolution):
        raise ServiceError("choose an outcome", field="outcome")
    amount = amount_minor or (
        dispute.amount_minor if outcome in (Resolution.CREDIT_NOTE, Resolution.WRITTEN_OFF) else 0
    )
    if outcome == Resolution.UPHELD:
        return 0
    if not 0 < amount <= dispute.amount_minor:
        raise ServiceError(
            f"the amount must be between 0 and {format_money(dispute.amount_minor, dispute.currency)}", field="amount"
        )
    if outcome == Resolution.PARTIALLY_UPHELD and amount >= dispute.amount_minor:
        raise ServiceError("a partial outcome credits less than the disputed amount", field="amount")
    return amount


def _settle(
    session: Session, client: Client, dispute: Dispute, outcome: str, amount: int, note: str, action: str
) -> None:
    invoices = _invoices(session, dispute)
    _set_hold(session, dispute.client_id, [i.id for i in invoices], False, leaving=dispute.id)
    if outcome in (Resolution.CREDIT_NOTE, Resolution.PARTIALLY_UPHELD):
        _credit(session, client, dispute, invoices, amount)
    elif outcome == Resolution.WRITTEN_OFF:
        _write_off(session, client, dispute, invoices, amount)
    dispute.resolution, dispute.credited_minor = outcome, amount
    dispute.resolution_note = note[:500]
    _move(session, dispute, action, note)


def _move(session: Session, dispute: Dispute, action: str, note: str = "") -> None:
    target = next_status(dispute.status, action)
    if target is None:
        raise DisputeTransitionRefused(dispute, action)
    before = audit.snapshot(dispute, Dispute.AUDIT_FIELDS)
    dispute.status = target.value
    at = now_utc()
    if target in (S.RESOLVED, S.WITHDRAWN):
        dispute.closed_at = at
    session.flush()
    _drive_clocks(session, dispute, action, at, note)
    if target == S.WITHDRAWN:
        _clear_proposal(dispute)
    if target in (S.RESOLVED, S.WITHDRAWN):
        ids = [i.id for i in _invoices(session, dispute)]
        _set_hold(session, dispute.client_id, ids, False)
        if session.scalar(
            select(Debtor.recalled_at).where(Debtor.client_id == dispute.client_id, Debtor.id == dispute.debtor_id)
        ):
            _set_hold(session, dispute.client_id, ids, True)  # a recalled account stays with the client
    audit.record(
        session, f"dispute.{action}", dispute, before=before, after=audit.snapshot(dispute, Dispute.AUDIT_FIELDS)
    )
    dispute_changed.send(session, dispute=dispute)


def _drive_clocks(session: Session, dispute: Dispute, action: str, at: Any, note: str) -> None:
    clocks = {
        c.code: c
        for c in session.scalars(
            select(SlaClock).where(SlaClock.client_id == dispute.client_id, SlaClock.dispute_id == dispute.id)
        )
    }
    if not clocks:
        return
    client = session.get(Client, dispute.client_id)
    cal = calendar_for(session, client)
    ack, res = clocks.get(SlaCode.DISPUTE_ACK), clocks.get(SlaCode.DISPUTE_RESOLVE)
    if ack is not None and ack.state != ClockState.STOPPED and action in ("acknowledge", "withdraw"):
        stop_clock(session, ack, cal, at=at, note=action)
    if res is None or res.state == ClockState.STOPPED:
        return
    if action in ("ask_client", "propose"):
        pause_clock(session, res, cal, at=at, note="awaiting client" if action == "ask_client" else "proposal sent")
    elif action in ("client_answered", "reject"):
        resume_clock(session, res, cal, at=at, note="client answered" if action == "client_answered" else "rejected")
    elif action in ("resolve", "withdraw", "approve"):
        stop_clock(session, res, cal, at=at, note=action)


def _invoices(session: Session, dispute: Dispute) -> list[Invoice]:
    return list(
        session.scalars(
            select(Invoice)
            .join(
                DisputeInvoice,
                (DisputeInvoice.client_id == Invoice.client_id) & (DisputeInvoice.invoice_id == Invoice.id),
            )
            .where(DisputeInvoice.client_id == dispute.client_id, DisputeInvoice.dispute_id == dispute.id)
            .order_by(Invoice.due_date, Invoice.id)
        )
    )


def _set_hold(session: Session, client_id: int, invoice_ids: list[int], hold: bool, leaving: int | None = None) -> None:
    """Guarded UPDATE of `invoices.on_hold`; releasing keeps the hold of invoices another active dispute covers."""
    if not invoice_ids:
        return
    stmt = update(Invoice).where(Invoice.client_id == client_id, Invoice.id.in_(invoice_ids))
    if not hold:
        other = (
            select(DisputeInvoice.invoice_id)
            .join(Dispute, (Dispute.client_id == DisputeInvoice.client_id) & (Dispute.id == DisputeInvoice.dispute_id))
            .where(
                DisputeInvoice.client_id == client_id,
                DisputeInvoice.invoice_id == Invoice.id,
                Dispute.status.in_([s.value for s in ACTIVE_DISPUTE]),
                Dispute.id != (leaving or 0),
            )
        )
        stmt = stmt.where(~exists(other))
    session.execute(stmt.values(on_hold=hold).execution_options(synchronize_session="fetch"))


def _credit(session: Session, client: Client, dispute: Dispute, invoices: list[Invoice], amount: int) -> None:
    note = ledger.issue_credit_note(
        session,
        client,
        {
            "debtor_id": dispute.debtor_id,
            "number": f"CN-DSP-{dispute.id}",
            "issued_on": client_today(client),
            "currency": dispute.currency,
            "amount_minor": amount,
            "reason": f"dispute #{dispute.id}: {dispute.reason.replace('_', ' ')}",
        },
    )
    left = amount
    for invoice in invoices:
        session.refresh(invoice)
        part = min(left, invoice.open_minor)
        if part > 0 and not invoice.on_hold:
            ledger.allocate(session, client, note, invoice, part)
            left -= part
    dispute.credit_note_id = note.id


def _write_off(session: Session, client: Client, dispute: Dispute, invoices: list[Invoice], amount: int) -> None:
    left = amount
    for invoice in invoices:
        session.refresh(invoice)
        part = min(left, invoice.open_minor)
        if part > 0:
            ledger.write_off(session, client, invoice, part, reason=f"dispute #{dispute.id}")
            left -= part
    if left:
        raise ServiceError("the invoices no longer have that much open to write off", field="amount")


def add_message(session: Session, dispute: Dispute, body: str, *, from_client: bool) -> DisputeMessage:
    """Add to the dispute's conversation thread."""
    text = body.strip()
    if not text:
        raise ServiceError("write a message", field="body")
    if dispute.status in (S.RESOLVED, S.WITHDRAWN):
        raise ServiceError("the dispute is closed", field="body", kind="state-conflict")
    actor = current_actor()
    message = DisputeMessage(
        client_id=dispute.client_id,
        dispute_id=dispute.id,
        author_user_id=actor.user_id,
        author_label=actor.label,
        from_client=from_client,
        body=text[:5000],
    )
    session.add(message)
    session.flush()
    audit.record(session, "dispute.message", dispute, after={"message_id": message.id, "from_client": from_client})
    return message


def assign_owner(session: Session, dispute: Dispute, owner_id: int | None) -> None:
    before = audit.snapshot(dispute, ("owner_id",))
    dispute.owner_id = owner_id
    session.flush()
    audit.record(session, "dispute.assign", dispute, before=before, after={"owner_id": owner_id})
