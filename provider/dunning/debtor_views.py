"""The debtor's own page, reached from every dunning message through a signed, expiring link (no account).

    /d/<token>                   open invoices, statement, promise to pay, dispute, stop e-mails
    /d/<token>/statement.pdf     the consolidated statement
    /d/unsubscribe/<token>       the List-Unsubscribe target of every e-mail (provider.comms.unsubscribe):
                                 GET a confirmation page, POST one-click (RFC 8058, no CSRF, no cookie)

A token binds one client and one debtor; a wrong, tampered or expired one is a plain 404, the same page as a
path that does not exist. Every action acts as the debtor (audited as "debtor via self-service link") inside
that client's tenant scope only. Rate-limited per address.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from clients.journal import Invoice
from clients.models import Client, ContactKind, Debtor, DebtorContact
from provider.core.audit import Actor, acting_as
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.money import Money, MoneyError, format_money
from provider.core.tenancy import TenantScope, scoped
from provider.dunning import outbound, templating
from provider.dunning.links import make_token, public_url, read_link
from provider.dunning.run import client_today
from provider.extensions import csrf, db, limiter

bp = Blueprint("debtor_pages", __name__, template_folder="templates")
LIMIT = "30/minute"


def _load(token: str) -> tuple[Client, Debtor]:
    bound = read_link(token)
    if bound is None:
        abort(404)
    client_id, debtor_id = bound
    with scoped(TenantScope.single(client_id), db.session):
        client = db.session.get(Client, client_id)
        debtor = db.session.get(Debtor, debtor_id)
    if client is None or debtor is None or debtor.client_id != client.id:
        abort(404)
    return client, debtor


def _open_invoices(client: Client, debtor: Debtor) -> list[Invoice]:
    return list(
        db.session.scalars(
            select(Invoice)
            .where(Invoice.client_id == client.id, Invoice.debtor_id == debtor.id, Invoice.open_minor > 0)
            .order_by(Invoice.due_date, Invoice.id)
            .limit(500)
        )
    )


def _context(client: Client, debtor: Debtor, token: str) -> dict[str, Any]:
    today = client_today(client, now_utc())
    lines = [(i.number, i.due_date, i.currency, i.open_minor) for i in _open_invoices(client, debtor)]
    return templating.build_context(
        debtor_name=debtor.name, reference=debtor.external_ref, client_name=client.name,
        agency_name=outbound.agency_name(), stage_name="", invoices=lines, today=today,
        locale=templating.locale_for(debtor.language, client.country), link=public_url(token),
    )  # fmt: skip


def _as_debtor(debtor: Debtor) -> Actor:
    return Actor.system(f"debtor {debtor.external_ref} via self-service link")


@bp.get("/d/<token>")
@limiter.limit(LIMIT)
def page(token: str) -> Any:
    client, debtor = _load(token)
    with scoped(TenantScope.single(client.id), db.session):
        invoices = _open_invoices(client, debtor)
        locale = templating.locale_for(debtor.language, client.country)
        rows = [
            (i, format_money(i.open_minor, i.currency, locale), templating.day(i.due_date, locale)) for i in invoices
        ]
        email = db.session.scalar(
            select(DebtorContact.value).where(
                DebtorContact.client_id == client.id, DebtorContact.debtor_id == debtor.id,
                DebtorContact.kind == ContactKind.EMAIL.value,
            ).limit(1)
        )  # fmt: skip
        return render_template(
            "dunning/debtor.html", client=client, debtor=debtor, rows=rows, token=token, email=email,
            today=client_today(client, now_utc()), agency=outbound.agency_name(),
        )  # fmt: skip


@bp.get("/d/<token>/statement.pdf")
@limiter.limit(LIMIT)
def statement(token: str) -> Any:
    client, debtor = _load(token)
    with scoped(TenantScope.single(client.id), db.session):
        pdf = outbound.statement_pdf(
            client, debtor.name, debtor.external_ref, _context(client, debtor, token), debtor.language
        )
    disposition = f"attachment; filename=statement-{debtor.external_ref}.pdf"
    return Response(pdf, mimetype="application/pdf", headers={"Content-Disposition": disposition})


def _act(client: Client, debtor: Debtor, action: Any, success: str) -> None:
    with scoped(TenantScope.single(client.id), db.session), acting_as(_as_debtor(debtor)):
        try:
            action()
            db.session.commit()
        except ServiceError as exc:
            db.session.rollback()
            flash(str(exc), "error")
            return
    flash(success, "success")


@bp.post("/d/<token>/promise")
@limiter.limit("10/minute")
def promise(token: str) -> Any:
    client, debtor = _load(token)

    def act() -> None:
        from worklists.models import WorkItem
        from worklists.promises import record_promise
        from worklists.scoring import rescore

        try:
            due_on = date.fromisoformat(request.form.get("due_on", ""))
        except ValueError:
            raise ServiceError("choose the day you will pay", field="due_on") from None
        item = db.session.scalar(
            select(WorkItem).where(WorkItem.client_id == client.id, WorkItem.debtor_id == debtor.id)
        )
        if item is None:
            rescore(db.session, [client.id], [debtor.id])
            item = db.session.scalar(
                select(WorkItem).where(WorkItem.client_id == client.id, WorkItem.debtor_id == debtor.id)
            )
        if item is None:
            raise ServiceError("nothing is overdue on your account, so there is nothing to promise", field="amount")
        try:
            amount = Money.parse(request.form.get("amount", ""), item.currency).minor
        except MoneyError as exc:
            raise ServiceError(f"the amount: {exc}", field="amount") from None
        record_promise(db.session, item, None, amount, due_on, "made by the debtor on the self-service page")

    _act(client, debtor, act, "Thank you: your promise to pay is recorded.")
    return redirect(url_for("debtor_pages.page", token=token))


@bp.post("/d/<token>/dispute")
@limiter.limit("10/minute")
def dispute(token: str) -> Any:
    client, debtor = _load(token)

    def act() -> None:
        from sla.disputes import open_dispute
        from sla.evidence import add_evidence

        ids = [int(i) for i in request.form.getlist("invoice_ids") if i.isdigit()]
        invoices = [i for i in _open_invoices(client, debtor) if i.id in ids]
        reason = request.form.get("reason", "")
        summary = request.form.get("summary", "").strip()
        if not summary:
            raise ServiceError("tell us what is wrong", field="summary")
        opened = open_dispute(
            db.session, client, debtor,
            {"reason": reason, "summary": summary, "invoice_ids": [i.id for i in invoices],
             "amount_minor": sum(i.open_minor for i in invoices), "message": summary},
            via="portal",
        )  # fmt: skip
        upload = request.files.get("file")
        if upload is not None and upload.filename:
            add_evidence(db.session, opened, upload.filename, upload.read(5 * 1024 * 1024 + 1))

    _act(client, debtor, act, "Your dispute is recorded; we pause reminders for these invoices while we look at it.")
    return redirect(url_for("debtor_pages.page", token=token))


@bp.post("/d/<token>/stop-email")
@limiter.limit("10/minute")
def stop_email(token: str) -> Any:
    client, debtor = _load(token)

    def act() -> None:
        from provider.comms.services import suppress_address

        addresses = db.session.scalars(
            select(DebtorContact.value).where(
                DebtorContact.client_id == client.id, DebtorContact.debtor_id == debtor.id,
                DebtorContact.kind == ContactKind.EMAIL.value,
            )
        )  # fmt: skip
        for address in addresses:
            suppress_address(db.session, client_id=client.id, address=address, kind="unsubscribed",
                             reason="The debtor asked on the self-service page")  # fmt: skip

    _act(client, debtor, act, "You will get no more e-mail from us about this account.")
    return redirect(url_for("debtor_pages.page", token=token))


@bp.route("/d/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt
@limiter.limit(LIMIT)
def unsubscribe(token: str) -> Any:
    from provider.comms.unsubscribe import read_unsubscribe_token

    bound = read_unsubscribe_token(token)
    if bound is None:
        abort(404)
    client_id, debtor_id, message_id = bound
    with scoped(TenantScope.single(client_id), db.session):
        debtor = db.session.get(Debtor, debtor_id)
        client = db.session.get(Client, client_id)
        if debtor is None or client is None or debtor.client_id != client_id:
            abort(404)
        if request.method == "POST":
            from provider.comms import unsubscribe_message

            with acting_as(_as_debtor(debtor)):
                unsubscribe_message(db.session, client_id, message_id)
                db.session.commit()
            return render_template("dunning/unsubscribed.html", client=client, done=True, token=token,
                                   page_token=make_token(client_id, debtor_id))  # fmt: skip
        return render_template("dunning/unsubscribed.html", client=client, done=False, token=token,
                               page_token=make_token(client_id, debtor_id))  # fmt: skip
