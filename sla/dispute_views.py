"""Back-office dispute pages: the list, one dispute (thread, evidence, clocks, actions), opening one."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from sqlalchemy import select

from clients.journal import Invoice
from clients.models import Client, Debtor
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_for_client, get_visible_or_404
from provider.extensions import db
from provider.models import User
from provider.ui import apply_sort, paginate
from sla import disputes
from sla.blueprints import bp
from sla.evidence import add_evidence
from sla.models import ACTIVE_DISPUTE, Dispute, DisputeReason, DisputeStatus, Resolution
from sla.pages import dispute_context, download, evidence_count, parse_amount, run

SORTS = {"opened": Dispute.opened_at, "amount": Dispute.amount_minor, "client": Client.name, "status": Dispute.status}
ACTIONS = {
    "acknowledge": (disputes.acknowledge, "Dispute acknowledged."),
    "investigate": (disputes.investigate, "Investigation started."),
    "withdraw": (disputes.withdraw, "Dispute withdrawn; the invoices are released."),
}


@bp.get("/slas/disputes")
@require(Permission.SLAS_READ)
def dispute_list() -> Any:
    status = request.args.get("status", "active")
    reason = request.args.get("reason", "")
    stmt = (
        select(Dispute, Client.name.label("client_name"), Debtor.name.label("debtor_name"))
        .join(Client, Client.id == Dispute.client_id)
        .join(Debtor, (Debtor.client_id == Dispute.client_id) & (Debtor.id == Dispute.debtor_id))
    )
    if status == "active":
        stmt = stmt.where(Dispute.status.in_([s.value for s in ACTIVE_DISPUTE]))
    elif status in set(DisputeStatus):
        stmt = stmt.where(Dispute.status == status)
    if reason in set(DisputeReason):
        stmt = stmt.where(Dispute.reason == reason)
    page = paginate(apply_sort(stmt, SORTS, "opened", tiebreak=Dispute.id))
    return render_template(
        "sla/disputes.html",
        page=page,
        status=status,
        reason=reason,
        statuses=list(DisputeStatus),
        reasons=list(DisputeReason),
        now=now_utc(),
    )


def _staff() -> list[User]:
    """Who may own a dispute: active agency staff (a few hundred people at most)."""
    return list(
        db.session.scalars(
            select(User).where(User.client_id.is_(None), User.active.is_(True)).order_by(User.name).limit(500)
        )
    )


@bp.get("/slas/disputes/<int:dispute_id>")
@require(Permission.SLAS_READ)
def dispute(dispute_id: int) -> Any:
    record = get_visible_or_404(db.session, Dispute, dispute_id)
    return render_template(
        "sla/dispute.html", **dispute_context(record, staff=True), outcomes=list(Resolution), staff=_staff()
    )


@bp.post("/slas/disputes/<int:dispute_id>/owner")
@require(Permission.DISPUTES_WORK)
def dispute_owner(dispute_id: int) -> Any:
    record = get_visible_or_404(db.session, Dispute, dispute_id)

    def act() -> None:
        owner_id = request.form.get("owner_id", type=int)
        if owner_id is not None and owner_id not in {u.id for u in _staff()}:
            raise ServiceError("choose a member of the agency staff", field="owner_id")
        disputes.assign_owner(db.session, record, owner_id)

    run(act, "Owner saved.")
    return _back(record)


def _back(record: Dispute) -> Any:
    return redirect(url_for("sla.dispute", dispute_id=record.id))


@bp.post("/slas/disputes/<int:dispute_id>/action")
@require(Permission.DISPUTES_WORK)
def dispute_action(dispute_id: int) -> Any:
    record = get_visible_or_404(db.session, Dispute, dispute_id)
    action = request.form.get("action", "")
    note = request.form.get("note", "")
    if action == "ask_client":
        run(lambda: disputes.ask_client(db.session, record, note), "Question sent; the resolution clock is paused.")
    elif action in ACTIONS:
        service, done = ACTIONS[action]
        run(lambda: service(db.session, record, note), done)
    else:
        run(lambda: _refuse("unknown action"), "")
    return _back(record)


def _refuse(message: str) -> None:
    raise ServiceError(message)


@bp.post("/slas/disputes/<int:dispute_id>/resolve")
@require(Permission.DISPUTES_RESOLVE)
def resolve_dispute(dispute_id: int) -> Any:
    record = get_visible_or_404(db.session, Dispute, dispute_id)
    client = db.session.get(Client, record.client_id)

    def act() -> None:
        amount = parse_amount(request.form.get("amount", ""), record.currency)
        disputes.resolve(
            db.session, client, record, request.form.get("outcome", ""), amount, request.form.get("note", "")
        )

    run(act, "Dispute resolved.")
    return _back(record)


@bp.post("/slas/disputes/<int:dispute_id>/propose")
@require(Permission.DISPUTES_RESOLVE)
def propose_resolution(dispute_id: int) -> Any:
    """Send a resolution that costs the client money (credit note, partial credit, write-off) for approval."""
    record = get_visible_or_404(db.session, Dispute, dispute_id)

    def act() -> None:
        amount = parse_amount(request.form.get("amount", ""), record.currency)
        disputes.propose(db.session, record, request.form.get("outcome", ""), amount, request.form.get("note", ""))

    run(act, "Proposal sent to the client; the resolution clock is paused until they answer.")
    return _back(record)


@bp.post("/slas/disputes/<int:dispute_id>/messages")
@require(Permission.DISPUTES_WORK)
def dispute_message(dispute_id: int) -> Any:
    record = get_visible_or_404(db.session, Dispute, dispute_id)
    run(
        lambda: disputes.add_message(db.session, record, request.form.get("body", ""), from_client=False),
        "Message added.",
    )
    return _back(record)


@bp.post("/slas/disputes/<int:dispute_id>/evidence")
@require(Permission.DISPUTES_WORK)
def dispute_evidence(dispute_id: int) -> Any:
    record = get_visible_or_404(db.session, Dispute, dispute_id)
    upload = request.files.get("file")
    name, content = (upload.filename or "", upload.read()) if upload else ("", b"")
    run(lambda: add_evidence(db.session, record, name, content, evidence_count(record)), "File added.")
    return _back(record)


@bp.get("/slas/disputes/<int:dispute_id>/evidence/<int:evidence_id>")
@require(Permission.SLAS_READ)
def dispute_evidence_file(dispute_id: int, evidence_id: int) -> Any:
    return download(get_visible_or_404(db.session, Dispute, dispute_id), evidence_id)


@bp.route("/clients/<int:client_id>/debtors/<int:debtor_id>/disputes/new", methods=["GET", "POST"])
@require(Permission.DISPUTES_WORK)
def new_dispute(client_id: int, debtor_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    debtor = get_for_client(db.session, Debtor, debtor_id, client.id)
    invoices = db.session.scalars(
        select(Invoice)
        .where(Invoice.client_id == client.id, Invoice.debtor_id == debtor.id, Invoice.open_minor > 0)
        .order_by(Invoice.due_date, Invoice.id)
        .limit(200)
    ).all()
    values: dict[str, Any] = {"invoice_ids": [request.args.get("invoice", type=int)]}
    if request.method == "POST":
        values = dict(request.form) | {"invoice_ids": request.form.getlist("invoice_ids", type=int)}
        chosen = [i for i in invoices if i.id in values["invoice_ids"]]
        currency = chosen[0].currency if chosen else client.base_currency

        def act() -> Dispute:
            data = {
                "reason": request.form.get("reason"),
                "summary": request.form.get("summary", ""),
                "message": request.form.get("message", ""),
                "invoice_ids": values["invoice_ids"],
                "amount_minor": parse_amount(request.form.get("amount", ""), currency)
                or sum(i.open_minor for i in chosen),
            }
            return disputes.open_dispute(db.session, client, debtor, data)

        created: list[Dispute] = []
        if run(lambda: created.append(act()), "Dispute opened; its invoices are on hold."):
            return redirect(url_for("sla.dispute", dispute_id=created[0].id))
    return render_template(
        "sla/dispute_form.html",
        client=client,
        debtor=debtor,
        invoices=invoices,
        values=values,
        reasons=list(DisputeReason),
    )
