"""What the dispute pages (back office and portal) load and do: bounded queries, one commit per request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, abort, flash
from sqlalchemy import func, select
from sqlalchemy.orm import defer

from clients.journal import Invoice
from clients.models import Client, Debtor
from provider.core.audit import history_of
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.money import Money, MoneyError
from provider.extensions import db
from sla import disputes
from sla.calendars import calendar_for
from sla.clocks import elapsed_at, status_at
from sla.models import Dispute, DisputeEvidence, DisputeInvoice, DisputeMessage, SlaClock, SlaClockEvent


def run(action: Callable[[], Any], success: str) -> bool:
    """Run a service, commit once; on refusal roll back and flash why. Returns whether it succeeded."""
    try:
        action()
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return False
    flash(success, "success")
    return True


def parse_amount(text: str, currency: str) -> int:
    if not (text or "").strip():
        return 0
    try:
        return Money.parse(text, currency).minor
    except MoneyError as exc:
        raise ServiceError(str(exc), field="amount") from None


def dispute_context(dispute: Dispute, *, staff: bool) -> dict[str, Any]:
    """Everything a dispute page shows (a fixed number of queries, each bounded)."""
    client = db.session.get(Client, dispute.client_id)
    debtor = db.session.get(Debtor, dispute.debtor_id)
    invoices = db.session.scalars(
        select(Invoice)
        .join(
            DisputeInvoice, (DisputeInvoice.client_id == Invoice.client_id) & (DisputeInvoice.invoice_id == Invoice.id)
        )
        .where(DisputeInvoice.client_id == dispute.client_id, DisputeInvoice.dispute_id == dispute.id)
        .order_by(Invoice.due_date, Invoice.id)
        .limit(200)
    ).all()
    clocks = db.session.scalars(
        select(SlaClock).where(SlaClock.client_id == dispute.client_id, SlaClock.dispute_id == dispute.id)
    ).all()
    cal = calendar_for(db.session, client)
    now = now_utc()
    clock_rows = [(c, status_at(c, cal, now), elapsed_at(c, cal, now)) for c in clocks]
    events = db.session.scalars(
        select(SlaClockEvent)
        .where(SlaClockEvent.client_id == dispute.client_id, SlaClockEvent.clock_id.in_([c.id for c in clocks]))
        .order_by(SlaClockEvent.at, SlaClockEvent.id)
        .limit(200)
    ).all()
    messages = db.session.scalars(
        select(DisputeMessage)
        .where(DisputeMessage.client_id == dispute.client_id, DisputeMessage.dispute_id == dispute.id)
        .order_by(DisputeMessage.created_at, DisputeMessage.id)
        .limit(500)
    ).all()
    evidence = db.session.scalars(
        select(DisputeEvidence)
        .options(defer(DisputeEvidence.content))
        .where(DisputeEvidence.client_id == dispute.client_id, DisputeEvidence.dispute_id == dispute.id)
        .order_by(DisputeEvidence.id)
    ).all()
    return {
        "dispute": dispute,
        "client": client,
        "debtor": debtor,
        "invoices": invoices,
        "clocks": clock_rows,
        "clock_codes": {c.id: c.code for c in clocks},
        "events": events,
        "messages": messages,
        "evidence": evidence,
        "history": history_of(db.session, dispute, client_id=dispute.client_id) if staff else [],
        "proposal": disputes.describe_proposal(dispute) if dispute.proposal_pending else None,
        "tz": cal.tz,
    }


def evidence_count(dispute: Dispute) -> int:
    return (
        db.session.scalar(
            select(func.count()).where(
                DisputeEvidence.client_id == dispute.client_id, DisputeEvidence.dispute_id == dispute.id
            )
        )
        or 0
    )


def download(dispute: Dispute, evidence_id: int) -> Response:
    """An evidence file, always as an attachment with a neutral type (never rendered by the browser)."""
    evidence = db.session.get(DisputeEvidence, evidence_id)
    if evidence is None or evidence.client_id != dispute.client_id or evidence.dispute_id != dispute.id:
        abort(404)
    response = Response(evidence.content, mimetype="application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="{evidence.filename}"'
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
