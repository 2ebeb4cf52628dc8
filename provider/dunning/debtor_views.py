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

from babel.numbers import get_decimal_symbol
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
from provider.dunning.debtor_i18n import gettext_for
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
            today=client_today(client, now_utc()), agency=outbound.agency_name(), _=gettext_for(debtor.language),
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


class DebtorRefused(ServiceError):
    """A refusal already written in the debtor's language."""


def _act(client: Client, debtor: Debtor, action: Any, success: str) -> None:
    _ = gettext_for(debtor.language)
    with scoped(TenantScope.single(client.id), db.session), acting_as(_as_debtor(debtor)):
        try:
            action()
            db.session.commit()
        except DebtorRefused as exc:
            db.session.rollback()
            flash(str(exc), "error")
            return
        except ServiceError as exc:  # a rule of the service behind the page, in English
            db.session.rollback()
            flash(_("We could not record this: %(reason)s", reason=str(exc)), "error")
            return
    flash(_(success), "success")


def _amount(text: str, currency: str, locale: str) -> int | None:
    """The amount as the debtor wrote it: read with the locale's decimal mark ("1.250,50" in German), else, when
    that cannot read it, with the other one ("250.00" typed by habit); None when neither can."""
    mark = get_decimal_symbol(locale) if get_decimal_symbol(locale) in (".", ",") else "."
    for decimal_mark in (mark, "," if mark == "." else "."):
        try:
            return Money.parse(text.strip(), currency, decimal_mark=decimal_mark).minor
        except MoneyError:
            continue
    return None


@bp.post("/d/<token>/promise")
@limiter.limit("10/minute")
def promise(token: str) -> Any:
    client, debtor = _load(token)
    _ = gettext_for(debtor.language)

    def act() -> None:
        from worklists.models import WorkItem
        from worklists.promises import record_promise
        from worklists.scoring import rescore

        try:
            due_on = date.fromisoformat(request.form.get("due_on", ""))
        except ValueError:
            raise DebtorRefused(_("Choose the day you will pay."), field="due_on") from None
        if due_on < client_today(client, now_utc()):
            raise DebtorRefused(_("The day you will pay cannot be in the past."), field="due_on")
        item = db.session.scalar(
            select(WorkItem).where(WorkItem.client_id == client.id, WorkItem.debtor_id == debtor.id)
        )
        if item is None:
            rescore(db.session, [client.id], [debtor.id])
            item = db.session.scalar(
                select(WorkItem).where(WorkItem.client_id == client.id, WorkItem.debtor_id == debtor.id)
            )
        if item is None:
            raise DebtorRefused(_("Nothing is overdue on your account, so there is nothing to promise."), "amount")
        locale = templating.locale_for(debtor.language, client.country)
        amount = _amount(request.form.get("amount", ""), item.currency, locale)
        if amount is None or amount <= 0:
            example = format_money(12_050, item.currency, locale)
            raise DebtorRefused(_("Give the amount as a number, for example %(example)s.", example=example))
        record_promise(db.session, item, None, amount, due_on, "made by the debtor on the self-service page")

    _act(client, debtor, act, "Thank you: your promise to pay is recorded.")
    return redirect(url_for("debtor_pages.page", token=token))


@bp.post("/d/<token>/dispute")
@limiter.limit("10/minute")
def dispute(token: str) -> Any:
    client, debtor = _load(token)
    _ = gettext_for(debtor.language)

    def act() -> None:
        from sla.disputes import open_dispute
        from sla.evidence import add_evidence

        ids = [int(i) for i in request.form.getlist("invoice_ids") if i.isdigit()]
        invoices = [i for i in _open_invoices(client, debtor) if i.id in ids and not i.on_hold]
        reason = request.form.get("reason", "")
        summary = request.form.get("summary", "").strip()
        if not invoices:
            raise DebtorRefused(_("Choose the invoices concerned."), field="invoice_ids")
        if not summary:
            raise DebtorRefused(_("Tell us what is wrong."), field="summary")
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
                                   page_token=make_token(client_id, debtor_id), lang=debtor.language,
                                   _=gettext_for(debtor.language))  # fmt: skip
        return render_template("dunning/unsubscribed.html", client=client, done=False, token=token,
                               page_token=make_token(client_id, debtor_id), lang=debtor.language,
                               _=gettext_for(debtor.language))  # fmt: skip
