"""Pages of money operations: a remittance's payout (four eyes, the payout file, marking it paid), a client's
bank details, and the agency's trust reconciliation. Thin: load through the tenant, check a permission, call a
service, render. Another client's object is a 404."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from clients import payouts, trust
from clients.bank_details import InvalidBankDetails, bank_accounts, save_bank_account
from clients.models import Client
from clients.trust_models import TrustAccount, TrustReconciliation
from provider.books.models import RemittanceRun
from provider.books.remittance import STATUS_LABELS
from provider.core.audit import AuditEvent
from provider.core.clock import today_utc
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.core.tenancy import current_scope, get_visible_or_404
from provider.extensions import db
from sla.pages import run

bp = Blueprint("payouts", __name__, template_folder="templates")

KIND_LABELS = {"sepa": "SEPA credit transfer (pain.001)", "nacha": "NACHA (ACH) file", "csv": "CSV", "none": "none"}
STATUS_WORDS = {"agrees": "Agrees", "differs": "Differs", "no_statement": "No bank statement"}


def _run(remittance_id: int) -> RemittanceRun:
    return get_visible_or_404(db.session, RemittanceRun, remittance_id)


def _downloads(run_row: RemittanceRun) -> list[AuditEvent]:
    return list(
        db.session.scalars(
            sa.select(AuditEvent)
            .where(
                AuditEvent.client_id == run_row.client_id,
                AuditEvent.object_type == "RemittanceRun",
                AuditEvent.object_id == str(run_row.id),
                AuditEvent.action.in_(["payout.downloaded", "payout.redownloaded"]),
            )
            .order_by(AuditEvent.id)
            .limit(200)
        )
    )


@bp.get("/books/remittances/<int:remittance_id>/payout")
@require(Permission.BOOKS_READ)
def payout(remittance_id: int) -> Any:
    run_row = _run(remittance_id)
    client = db.session.get_one(Client, run_row.client_id)
    row = payouts.payout_of(db.session, run_row)
    payee_problem = ""
    if run_row.remit_minor > 0 and run_row.status == "draft":
        try:
            payouts.payee_for(db.session, run_row)
        except ServiceError as exc:
            payee_problem = str(exc)
    return render_template(
        "payouts/run.html",
        run=run_row,
        client=client,
        payout=row,
        fees_reference=payouts.fees_reference(run_row),
        payee_problem=payee_problem,
        downloads=_downloads(run_row),
        status_labels=STATUS_LABELS,
        kind_labels=KIND_LABELS,
        is_preparer=row is not None and row.prepared_by_id == current_user.id,
        manage=current_user.can(Permission.BOOKS_MANAGE),
        today=today_utc(),
        errors={},
        form={},
    )


@bp.post("/books/remittances/<int:remittance_id>/payout/prepare")
@require(Permission.BOOKS_MANAGE)
def prepare(remittance_id: int) -> Any:
    run_row = _run(remittance_id)
    run(lambda: payouts.prepare(db.session, run_row), "Prepared: a second person can now approve this remittance.")
    return redirect(url_for("payouts.payout", remittance_id=run_row.id))


@bp.post("/books/remittances/<int:remittance_id>/payout/approve")
@require(Permission.BOOKS_MANAGE)
def approve(remittance_id: int) -> Any:
    run_row = _run(remittance_id)
    run(lambda: payouts.approve(db.session, run_row), "Approved: the payout file can be downloaded.")
    return redirect(url_for("payouts.payout", remittance_id=run_row.id))


@bp.get("/books/remittances/<int:remittance_id>/payout/file")
@require(Permission.BOOKS_MANAGE)
def payout_file(remittance_id: int) -> Any:
    run_row = _run(remittance_id)
    try:
        got = payouts.download(db.session, run_row)
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("payouts.payout", remittance_id=run_row.id))
    response = Response(got.content, mimetype=got.mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{got.filename}"'
    response.headers["X-Payout-Download"] = (
        f"re-download {got.number}: the same file, not a new payment" if got.again else "first download"
    )
    return response


@bp.post("/books/remittances/<int:remittance_id>/payout/paid")
@require(Permission.BOOKS_MANAGE)
def mark_paid(remittance_id: int) -> Any:
    run_row = _run(remittance_id)
    form = {k: request.form.get(k, "").strip() for k in ("paid_on", "bank_reference")}
    errors: dict[str, list[str]] = {}
    try:
        paid_on = date.fromisoformat(form["paid_on"]) if form["paid_on"] else today_utc()
    except ValueError:
        errors["paid_on"] = ["give the day the bank paid it, like 2026-12-31"]
        paid_on = today_utc()
    if not form["bank_reference"]:
        errors["bank_reference"] = ["give the bank's reference of the payment"]
    if not errors:
        try:
            payouts.mark_paid_manually(db.session, run_row, paid_on, form["bank_reference"])
            db.session.commit()
            flash("Marked paid.", "success")
            return redirect(url_for("payouts.payout", remittance_id=run_row.id))
        except ServiceError as exc:
            db.session.rollback()
            errors[exc.field or "_schema"] = [str(exc)]
    client = db.session.get_one(Client, run_row.client_id)
    row = payouts.payout_of(db.session, run_row)
    return render_template(
        "payouts/run.html",
        run=run_row,
        client=client,
        payout=row,
        fees_reference=payouts.fees_reference(run_row),
        payee_problem="",
        downloads=_downloads(run_row),
        status_labels=STATUS_LABELS,
        kind_labels=KIND_LABELS,
        is_preparer=row is not None and row.prepared_by_id == current_user.id,
        manage=True,
        today=today_utc(),
        errors=errors,
        form=form,
    ), 422


# --- bank details --------------------------------------------------------------------------------------------

BANK_FIELDS = ("currency", "holder", "iban", "bic", "routing_number", "account_number", "account_type")


def _bank_page(client: Client, form: dict[str, str], errors: dict[str, list[str]], status: int = 200) -> Any:
    return (
        render_template(
            "payouts/bank_details.html",
            client=client,
            accounts=bank_accounts(db.session, client.id),
            form=form,
            errors=errors,
            edit=current_user.can(Permission.BANK_DETAILS_MANAGE),
        ),
        status,
    )


@bp.get("/clients/<int:client_id>/bank-details")
@require(Permission.BOOKS_READ)
def bank_details(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    currency = request.args.get("currency", client.base_currency)
    existing = next((a for a in bank_accounts(db.session, client.id) if a.currency == currency), None)
    form = {k: str(getattr(existing, k, "") or "") for k in BANK_FIELDS} if existing else {"currency": currency}
    return _bank_page(client, form, {})


@bp.post("/clients/<int:client_id>/bank-details")
@require(Permission.BANK_DETAILS_MANAGE)
def save_bank_details(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    form = {k: request.form.get(k, "").strip() for k in BANK_FIELDS}
    try:
        save_bank_account(db.session, client, form)
        db.session.commit()
    except InvalidBankDetails as exc:
        db.session.rollback()
        return _bank_page(client, form, exc.errors, 422)
    flash(f"Bank account for {form['currency'].upper()} saved.", "success")
    return redirect(url_for("payouts.bank_details", client_id=client.id, currency=form["currency"].upper()))


# --- trust reconciliation ------------------------------------------------------------------------------------


def _agency_only() -> None:
    if current_scope().client_ids is not None or current_scope().client_id is not None:
        abort(404)  # the reconciliation sums every client's trust money: the agency's scope only


def _day() -> date:
    raw = request.values.get("date", "")
    try:
        return date.fromisoformat(raw) if raw else today_utc() - timedelta(days=1)
    except ValueError:
        abort(404)


@bp.get("/books/trust")
@require(Permission.BOOKS_MANAGE)
def trust_page() -> Any:
    _agency_only()
    day = _day()
    results = list(
        db.session.scalars(
            sa.select(TrustReconciliation)
            .where(TrustReconciliation.on_day == day)
            .order_by(TrustReconciliation.currency)
        )
    )
    history = list(
        db.session.scalars(
            sa.select(TrustReconciliation)
            .order_by(TrustReconciliation.on_day.desc(), TrustReconciliation.currency)
            .limit(60)
        )
    )
    return render_template(
        "payouts/trust.html",
        day=day,
        results=results,
        history=history,
        accounts=list(db.session.scalars(sa.select(TrustAccount).order_by(TrustAccount.currency))),
        status_words=STATUS_WORDS,
        admin=current_user.can(Permission.BANK_DETAILS_MANAGE),
        errors={},
        form={},
    )


@bp.post("/books/trust/reconcile")
@require(Permission.BOOKS_MANAGE)
def trust_reconcile() -> Any:
    _agency_only()
    day = _day()
    run(lambda: trust.reconcile_all(db.session, day), f"Trust reconciled for {day}.")
    return redirect(url_for("payouts.trust_page", date=day.isoformat()))


@bp.post("/books/trust/statements")
@require(Permission.BOOKS_MANAGE)
def trust_statement() -> Any:
    _agency_only()
    upload = request.files.get("file")
    content = upload.read() if upload else b""

    def act() -> None:
        if not content:
            raise ServiceError("choose the trust account's statement file (CAMT.053)", field="file")
        got = trust.import_trust_statement(db.session, content, upload.filename or "" if upload else "")
        flash(
            f"{got.balances} closing balance(s) and {got.lines} new line(s) recorded; "
            f"{len(got.remittances_paid)} remittance(s) marked paid"
            + (f"; {got.repeated} line(s) were imported before" if got.repeated else ""),
            "info",
        )

    run(act, "Statement imported.")
    return redirect(url_for("payouts.trust_page", date=request.form.get("date", "")))


@bp.post("/books/trust/accounts")
@require(Permission.BANK_DETAILS_MANAGE)
def trust_account() -> Any:
    _agency_only()
    data = {k: request.form.get(k, "") for k in ("currency", "name", "account", "bic", "routing_number")}
    run(lambda: trust.save_trust_account(db.session, data), "Trust account saved.")
    return redirect(url_for("payouts.trust_page"))
