"""Portal dispute pages: a client user sees their company's disputes, answers the ones awaiting them,
adds messages and evidence, and opens a dispute a debtor raised with them."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import case, select

from clients.journal import Invoice
from clients.models import Client, Debtor
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_for_client
from provider.extensions import db
from provider.ui import paginate
from sla import disputes
from sla.blueprints import portal_bp
from sla.evidence import add_evidence
from sla.models import Dispute, DisputeReason, DisputeStatus
from sla.pages import dispute_context, download, evidence_count, parse_amount, run
from sla.queries import monthly_compliance


def _my_client() -> Client:
    client = db.session.get(Client, current_user.client_id)
    if client is None:
        abort(404)
    return client


def _mine(dispute_id: int) -> Dispute:
    return get_for_client(db.session, Dispute, dispute_id, _my_client().id)


@portal_bp.get("/disputes", endpoint="index")
@require(Permission.PORTAL)
def portal_index() -> Any:
    client = _my_client()
    waiting_first = case((Dispute.status == DisputeStatus.AWAITING_CLIENT.value, 0), else_=1)
    stmt = (
        select(Dispute, Debtor.name.label("debtor_name"))
        .join(Debtor, (Debtor.client_id == Dispute.client_id) & (Debtor.id == Dispute.debtor_id))
        .where(Dispute.client_id == client.id)
        .order_by(waiting_first, Dispute.opened_at.desc(), Dispute.id.desc())
    )
    local_today = now_utc().astimezone(ZoneInfo(client.timezone)).date()
    figures = monthly_compliance(db.session, client, local_today.year, local_today.month)
    month = f"{local_today:%B %Y}"
    return render_template("sla/portal_disputes.html", client=client, page=paginate(stmt), figures=figures, month=month)


@portal_bp.get("/disputes/<int:dispute_id>", endpoint="dispute")
@require(Permission.PORTAL)
def portal_dispute(dispute_id: int) -> Any:
    return render_template("sla/portal_dispute.html", **dispute_context(_mine(dispute_id), staff=False))


@portal_bp.post("/disputes/<int:dispute_id>/answer", endpoint="answer")
@require(Permission.PORTAL_DISPUTES)
def portal_answer(dispute_id: int) -> Any:
    record = _mine(dispute_id)
    run(lambda: disputes.client_answers(db.session, record, request.form.get("body", "")), "Answer sent to the agency.")
    return redirect(url_for("sla_portal.dispute", dispute_id=record.id))


@portal_bp.post("/disputes/<int:dispute_id>/proposal", endpoint="proposal")
@require(Permission.PORTAL_DISPUTES)
def portal_proposal(dispute_id: int) -> Any:
    """Approve (posted at once) or reject (with a reason) the resolution the agency proposed."""
    record = _mine(dispute_id)
    decision = request.form.get("decision", "")
    if decision == "approve":
        client = _my_client()
        run(
            lambda: disputes.approve_proposal(db.session, client, record, request.form.get("note", "")),
            "Approved: the dispute is resolved.",
        )
    elif decision == "reject":
        run(
            lambda: disputes.reject_proposal(db.session, record, request.form.get("reason", "")),
            "Rejected: the agency investigates again.",
        )
    else:
        run(lambda: _refuse_decision(), "")
    return redirect(url_for("sla_portal.dispute", dispute_id=record.id))


def _refuse_decision() -> None:
    raise ServiceError("choose approve or reject", field="decision")


@portal_bp.post("/disputes/<int:dispute_id>/messages", endpoint="message")
@require(Permission.PORTAL_DISPUTES)
def portal_message(dispute_id: int) -> Any:
    record = _mine(dispute_id)
    run(
        lambda: disputes.add_message(db.session, record, request.form.get("body", ""), from_client=True),
        "Message sent.",
    )
    return redirect(url_for("sla_portal.dispute", dispute_id=record.id))


@portal_bp.post("/disputes/<int:dispute_id>/evidence", endpoint="evidence")
@require(Permission.PORTAL_DISPUTES)
def portal_evidence(dispute_id: int) -> Any:
    record = _mine(dispute_id)
    upload = request.files.get("file")
    name, content = (upload.filename or "", upload.read()) if upload else ("", b"")
    run(lambda: add_evidence(db.session, record, name, content, evidence_count(record)), "File added.")
    return redirect(url_for("sla_portal.dispute", dispute_id=record.id))


@portal_bp.get("/disputes/<int:dispute_id>/evidence/<int:evidence_id>", endpoint="evidence_file")
@require(Permission.PORTAL)
def portal_evidence_file(dispute_id: int, evidence_id: int) -> Any:
    return download(_mine(dispute_id), evidence_id)


FORM_FIELDS = ("numbers", "reason", "amount", "summary", "message")


@portal_bp.route("/disputes/new", methods=["GET", "POST"], endpoint="new_dispute")
@require(Permission.PORTAL_DISPUTES)
def portal_new_dispute() -> Any:
    """A debtor raised a dispute with the client: the client names the invoices by number."""
    client = _my_client()
    values: dict[str, Any] = (
        dict(request.form) if request.method == "POST" else {"numbers": request.args.get("invoice", "")}
    )
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        numbers = sorted(
            {n.strip() for n in request.form.get("numbers", "").replace(";", ",").split(",") if n.strip()}
        )[:50]
        invoices = db.session.scalars(
            select(Invoice).where(Invoice.client_id == client.id, Invoice.number.in_(numbers))
        ).all()

        def act() -> Dispute:
            found = {i.number for i in invoices}
            missing = [n for n in numbers if n not in found]
            if not numbers:
                raise ServiceError("write the number of at least one invoice", field="numbers")
            if missing:
                raise ServiceError(f"no invoice has the number {', '.join(missing)}", field="numbers")
            if len({i.debtor_id for i in invoices}) != 1:
                raise ServiceError("the invoices of one dispute must belong to one customer", field="numbers")
            debtor = db.session.get(Debtor, invoices[0].debtor_id)
            data = {
                "reason": request.form.get("reason"),
                "summary": request.form.get("summary", ""),
                "message": request.form.get("message", ""),
                "invoice_ids": [i.id for i in invoices],
                "amount_minor": parse_amount(request.form.get("amount", ""), invoices[0].currency)
                or sum(i.open_minor for i in invoices),
            }
            return disputes.open_dispute(db.session, client, debtor, data, via="portal")

        try:
            dispute = act()
            db.session.commit()
        except ServiceError as exc:  # shown beside its field (aria-describedby) and in the summary
            db.session.rollback()
            errors = {exc.field if exc.field in FORM_FIELDS else "_schema": [str(exc)]}
        else:
            flash("Dispute opened; the agency has been asked to acknowledge it.", "success")
            return redirect(url_for("sla_portal.dispute", dispute_id=dispute.id))
    html = render_template(
        "sla/portal_dispute_form.html", client=client, values=values, errors=errors, reasons=list(DisputeReason)
    )
    return (html, 422) if errors else html
