"""The Mail pages: what was sent (as rendered, with its delivery), what came back, and each client's sending identity;
and in the portal, the messages sent to the client's own debtors.

Every object is loaded through the tenant (`get_visible_or_404`): another client's message is a 404. A message's
HTML part is served on its own URL with a sandboxing Content-Security-Policy, shown in a sandboxed frame.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from clients.models import Client, Debtor
from provider.comms import queries
from provider.comms.models import (
    INBOUND_LABELS,
    EventKind,
    InboundMail,
    Message,
    MessageAttachment,
    MessageStatus,
    SendingIdentity,
)
from provider.comms.services import _enqueue_sending, add_event, address_problem
from provider.core import audit
from provider.core.permissions import Permission, require
from provider.core.tenancy import current_scope, get_for_client, get_visible_or_404
from provider.extensions import db
from provider.ui import paginate

bp = Blueprint("comms", __name__, template_folder="templates")
portal_bp = Blueprint("comms_portal", __name__, url_prefix="/portal", template_folder="templates")

HTML_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; sandbox; frame-ancestors 'self'"


def _arg(name: str, allowed: set[str]) -> str | None:
    value = request.args.get(name) or None
    return value if value in allowed else None


def _list_context() -> dict[str, Any]:
    statuses = queries.status_choices()
    purposes = queries.purpose_choices()
    return {
        "status": _arg("status", {s for s, _ in statuses}),
        "purpose": _arg("purpose", {p for p, _ in purposes}),
        "channel": _arg("channel", {"email", "letter"}),
        "statuses": statuses,
        "purposes": purposes,
    }


def _debtor_names(rows: list[Message]) -> dict[tuple[int, int], str]:
    keys = {(m.client_id, m.debtor_id) for m in rows if m.debtor_id is not None}
    if not keys:
        return {}
    found = db.session.execute(
        select(Debtor.client_id, Debtor.id, Debtor.name).where(Debtor.id.in_([d for _c, d in keys]))
    )
    return {(c, d): name for c, d, name in found}


# --- agency ---------------------------------------------------------------------------------------------------


@bp.get("/mail")
@require(Permission.DEBTORS_READ)
def index() -> Any:
    """Sent and queued mail of every client the user may see, filtered by status, client, purpose, channel."""
    ctx = _list_context()
    client_id = request.args.get("client", type=int)
    if client_id:
        client_id = get_visible_or_404(db.session, Client, client_id).id
    page = paginate(
        queries.messages(client_id=client_id, status=ctx["status"], purpose=ctx["purpose"], channel=ctx["channel"])
    )
    clients = {c.id: c for c in db.session.scalars(select(Client).order_by(Client.name))}
    unmatched = None
    if current_user.can(Permission.MAIL_MANAGE):
        from sqlalchemy import func

        unmatched = db.session.scalar(
            select(func.count()).select_from(InboundMail).where(InboundMail.kind == "unmatched")
        )
    return render_template(
        "comms/index.html",
        page=page,
        clients=clients,
        client_id=client_id,
        debtors=_debtor_names(page.items),
        unmatched=unmatched,
        demo_dir=queries.demo_capture_dir(),
        **ctx,
    )


def _message_page(message: Message, portal: bool) -> str:
    client = db.session.get(Client, message.client_id)
    debtor = db.session.get(Debtor, message.debtor_id) if message.debtor_id else None
    return render_template(
        "comms/message.html",
        message=message,
        client=client,
        debtor=debtor,
        events=queries.history(message),
        files=queries.attachments(message),
        portal=portal,
        demo_received=queries.received_by_demo_server(message),
        can_resend=(
            not portal
            and current_user.can(Permission.MAIL_MANAGE)
            and message.channel == "email"
            and message.status == MessageStatus.FAILED.value
            and address_problem(message.to_address) is None
        ),
    )


def _html(message: Message) -> Response:
    if not message.html_body:
        abort(404)
    response = Response(message.html_body, mimetype="text/html")
    response.headers["Content-Security-Policy"] = HTML_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _attachment(message: Message, attachment_id: int) -> Response:
    file = get_for_client(db.session, MessageAttachment, attachment_id, message.client_id)
    if file.message_id != message.id:
        abort(404)
    return Response(
        file.content,
        mimetype=file.mimetype,
        headers={"Content-Disposition": f'attachment; filename="{file.filename.replace(chr(34), "")}"'},
    )


@bp.get("/mail/messages/<int:message_id>")
@require(Permission.DEBTORS_READ)
def message(message_id: int) -> Any:
    return _message_page(get_visible_or_404(db.session, Message, message_id), portal=False)


@bp.get("/mail/messages/<int:message_id>/html")
@require(Permission.DEBTORS_READ)
def message_html(message_id: int) -> Any:
    return _html(get_visible_or_404(db.session, Message, message_id))


@bp.get("/mail/messages/<int:message_id>/attachments/<int:attachment_id>")
@require(Permission.DEBTORS_READ)
def attachment(message_id: int, attachment_id: int) -> Any:
    return _attachment(get_visible_or_404(db.session, Message, message_id), attachment_id)


@bp.post("/mail/messages/<int:message_id>/resend")
@require(Permission.MAIL_MANAGE)
def resend(message_id: int) -> Any:
    """Queue a failed e-mail again, as it was (same content, same Message-ID); refused for a suppressed address."""
    message = get_visible_or_404(db.session, Message, message_id)
    from provider.comms.services import suppression_of, suppression_reason

    suppressed = suppression_of(db.session, message.client_id, message.to_address)
    if message.channel != "email" or message.status != MessageStatus.FAILED.value:
        flash("Only an e-mail that was not sent can be sent again.", "error")
    elif suppressed is not None:
        flash(suppression_reason(suppressed), "error")
    elif address_problem(message.to_address):
        flash(address_problem(message.to_address) or "", "error")
    else:
        message.status, message.last_error, message.next_attempt_at = MessageStatus.QUEUED.value, "", None
        add_event(db.session, message, EventKind.QUEUED.value, "Sent again by hand")
        audit.record(db.session, "mail.resend", message, after={"to": message.to_address})
        _enqueue_sending(db.session, message.client_id)
        db.session.commit()
        flash("The message is queued to be sent again.", "success")
    return redirect(url_for("comms.message", message_id=message.id))


@bp.get("/mail/inbound")
@require(Permission.MAIL_MANAGE)
def inbound() -> Any:
    """Mail received by the listener: replies, bounces and the mail that matched nothing, with the reason."""
    kind = _arg("kind", set(INBOUND_LABELS))
    page = paginate(queries.inbound(kind))
    clients = {c.id: c for c in db.session.scalars(select(Client).order_by(Client.name))}
    return render_template("comms/inbound.html", page=page, kind=kind, kinds=INBOUND_LABELS, clients=clients)


@bp.get("/mail/inbound/<int:inbound_id>")
@require(Permission.MAIL_MANAGE)
def inbound_mail(inbound_id: int) -> Any:
    row = db.session.get(InboundMail, inbound_id)
    if row is None or (row.client_id is not None and not current_scope().allows(row.client_id)):
        abort(404)
    import email
    import email.policy

    from provider.comms.inbound import reply_excerpt

    parsed = email.message_from_bytes(row.raw, policy=email.policy.default)
    text = reply_excerpt(parsed, limit=5000) if isinstance(parsed, email.message.EmailMessage) else ""
    headers = [(k, str(v)) for k, v in parsed.items()][:40]
    client = db.session.get(Client, row.client_id) if row.client_id else None
    return render_template("comms/inbound_mail.html", row=row, text=text, headers=headers, client=client)


@bp.route("/mail/identity/<int:client_id>", methods=["GET", "POST"])
@require(Permission.MAIL_MANAGE)
def identity(client_id: int) -> Any:
    """The client's sending identity: From name and address, and an optional fixed Reply-To."""
    client = get_visible_or_404(db.session, Client, client_id)
    row = db.session.scalar(select(SendingIdentity).where(SendingIdentity.client_id == client.id))
    values = {
        "from_name": row.from_name if row else "",
        "from_address": row.from_address if row else "",
        "reply_to": row.reply_to if row else "",
    }
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values = {k: (request.form.get(k) or "").strip() for k in values}
        if len(values["from_name"]) > 200:
            errors["from_name"] = ["At most 200 characters."]
        for field in ("from_address", "reply_to"):
            if values[field] and address_problem(values[field]):
                errors[field] = [address_problem(values[field]) or ""]
        if not errors:
            before = audit.snapshot(row, SendingIdentity.AUDIT_FIELDS) if row else None
            if row is None:
                row = SendingIdentity(client_id=client.id)
                db.session.add(row)
            row.from_name, row.from_address, row.reply_to = (
                values["from_name"],
                values["from_address"],
                values["reply_to"],
            )
            db.session.flush()
            audit.record(
                db.session, "mail.identity", row, before=before, after=audit.snapshot(row, SendingIdentity.AUDIT_FIELDS)
            )
            db.session.commit()
            flash(f"Sending identity of {client.name} saved.", "success")
            return redirect(url_for("comms.identity", client_id=client.id))
    from flask import current_app

    return render_template(
        "comms/identity.html",
        client=client,
        values=values,
        errors=errors,
        default_from=current_app.config.get("MAIL_DEFAULT_FROM", ""),
        default_name=current_app.config.get("MAIL_DEFAULT_FROM_NAME", ""),
    ), (422 if errors else 200)


# --- portal ---------------------------------------------------------------------------------------------------


def _portal_message(message_id: int) -> Message:
    message = get_for_client(db.session, Message, message_id, current_user.client_id)
    if message.debtor_id is None:  # notices to the client's own users are not "messages to debtors"
        abort(404)
    return message


@portal_bp.get("/messages")
@require(Permission.PORTAL)
def portal_index() -> Any:
    ctx = _list_context()
    client = db.session.get(Client, current_user.client_id) or abort(404)
    page = paginate(
        queries.messages(
            client_id=client.id,
            status=ctx["status"],
            purpose=ctx["purpose"],
            channel=ctx["channel"],
            debtor_ids_only=True,
        )
    )
    return render_template(
        "comms/portal_index.html", page=page, client=client, debtors=_debtor_names(page.items), **ctx
    )


@portal_bp.get("/messages/<int:message_id>")
@require(Permission.PORTAL)
def portal_message(message_id: int) -> Any:
    return _message_page(_portal_message(message_id), portal=True)


@portal_bp.get("/messages/<int:message_id>/html")
@require(Permission.PORTAL)
def portal_message_html(message_id: int) -> Any:
    return _html(_portal_message(message_id))


@portal_bp.get("/messages/<int:message_id>/attachments/<int:attachment_id>")
@require(Permission.PORTAL)
def portal_attachment(message_id: int, attachment_id: int) -> Any:
    return _attachment(_portal_message(message_id), attachment_id)
