"""Pages of the agency's books: per client (agency) and the client's own (portal). Thin: load through the
tenant, check a permission, call a service, render. Another client's object is a 404."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from clients.models import Client
from provider.books import documents
from provider.books import overview as overview_q
from provider.books.invoices import invoice_lines, invoice_payments, paid_on_invoices, record_fee_payment
from provider.books.models import AgencyEntry, AgencyTransaction, FeeInvoice, FeeSchedule, PaymentFee, RemittanceRun
from provider.books.posting import held_in_trust
from provider.books.remittance import STATUS_LABELS, statement_csv, statement_lines
from provider.books.services import ScheduleInvalid, TierInput, add_fee_schedule
from provider.core.clock import today_utc
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_for_client, get_visible_or_404
from provider.extensions import db
from provider.reporting import charts
from provider.ui import apply_sort, paginate
from sla.pages import run

bp = Blueprint("books", __name__, template_folder="templates")
portal_bp = Blueprint("books_portal", __name__, url_prefix="/portal", template_folder="templates")


def _overview(client_id: int) -> dict[str, Any]:
    t, e = AgencyTransaction, AgencyEntry
    month = func.substr(func.cast(t.occurred_on, db.String), 1, 7)
    fees = db.session.execute(
        select(month, e.currency, -func.sum(e.amount_minor))
        .join(t, (t.client_id == e.client_id) & (t.id == e.transaction_id))
        .where(e.client_id == client_id, e.account == "fees_earned")
        .group_by(month, e.currency)
        .order_by(month.desc())
        .limit(24)
    ).all()
    runs = db.session.scalars(
        select(RemittanceRun).where(RemittanceRun.client_id == client_id).order_by(RemittanceRun.id.desc()).limit(50)
    ).all()
    invoices = db.session.scalars(
        select(FeeInvoice).where(FeeInvoice.client_id == client_id).order_by(FeeInvoice.number.desc()).limit(50)
    ).all()
    return {
        "held": held_in_trust(db.session, client_id),
        "fees": fees,
        "runs": runs,
        "invoices": invoices,
        "invoice_paid": paid_on_invoices(db.session, client_id, [i.id for i in invoices]),
        "status_labels": STATUS_LABELS,
    }


@bp.get("/books")
@require(Permission.BOOKS_READ)
def overview() -> Any:
    months = overview_q.last_months(today_utc())
    rows = overview_q.fees_by_client_and_month(db.session, months)
    currencies = overview_q.currencies(rows)
    wanted = (request.args.get("currency") or "").upper()
    currency = wanted if wanted in currencies else (currencies[0] if currencies else None)
    rows = [r for r in rows if r.currency == currency]
    series = overview_q.chart_series(rows, months, currency) if currency else []
    labels = [overview_q.month_label(m) for m in months]
    chart = charts.data_uri(charts.fees_chart(labels, series, currency)) if currency and series else None
    page = paginate(apply_sort(select(Client), {"name": Client.name, "code": Client.code}, "name", Client.id))
    lines = overview_q.client_lines(db.session, [c.id for c in page.items], months[-1])
    return render_template(
        "books/overview.html",
        months=months,
        labels=labels,
        rows=rows,
        currency=currency,
        currencies=currencies,
        chart=chart,
        page=page,
        lines=lines,
        status_labels=STATUS_LABELS,
    )


@bp.get("/books/clients/<int:client_id>")
@require(Permission.BOOKS_READ)
def client_books(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    schedules = db.session.scalars(
        select(FeeSchedule).where(FeeSchedule.client_id == client.id).order_by(FeeSchedule.effective_from.desc())
    ).all()
    unpriced = db.session.scalars(
        select(PaymentFee)
        .where(PaymentFee.client_id == client.id, PaymentFee.status == "unpriced")
        .order_by(PaymentFee.payment_id)
        .limit(100)
    ).all()
    return render_template(
        "books/client.html", client=client, schedules=schedules, unpriced=unpriced, **_overview(client.id)
    )


def _int(name: str, default: int = 0) -> int:
    raw = (request.form.get(name) or "").strip()
    if not raw:
        return default
    try:
        return round(float(raw) * 100) if name.endswith("_pct") else int(raw)
    except ValueError:
        raise ServiceError(f"{name.replace('_', ' ')} must be a number", field=name) from None


def _tiers() -> list[TierInput]:
    tiers = []
    for n in range(1, 5):
        rate = (request.form.get(f"rate_pct_{n}") or "").strip()
        if not rate:
            continue
        max_age = (request.form.get(f"max_age_{n}") or "").strip()
        tiers.append(
            TierInput(
                _int(f"min_age_{n}"),
                int(max_age) if max_age.isdigit() else None,
                _int(f"rate_pct_{n}"),
                _int(f"direct_pct_{n}"),
            )
        )
    return tiers


@bp.post("/books/clients/<int:client_id>/schedules")
@require(Permission.BOOKS_MANAGE)
def add_schedule(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)

    def act() -> None:
        try:
            starts = date.fromisoformat(request.form.get("effective_from", ""))
        except ValueError:
            raise ServiceError("give the first day of the new fee schedule", field="effective_from") from None
        try:
            add_fee_schedule(
                db.session,
                client,
                effective_from=starts,
                currency=request.form.get("currency", client.base_currency),
                tiers=_tiers(),
                tax_rate_bp=_int("tax_pct"),
                per_placement_minor=_int("per_placement_minor"),
                per_letter_minor=_int("per_letter_minor"),
                monthly_minimum_minor=_int("monthly_minimum_minor"),
                remittance_cycle=request.form.get("remittance_cycle", "monthly"),
                note=request.form.get("note", ""),
                bill_to=request.form.get("bill_to", ""),
            )
        except ScheduleInvalid as exc:
            raise ServiceError(
                "The fee schedule was not saved: " + "; ".join(m for ms in exc.errors.values() for m in ms)
            ) from None

    run(act, "New fee schedule recorded; payments waiting for a fee are priced shortly.")
    return redirect(url_for("books.client_books", client_id=client.id))


def _csv(run_row: RemittanceRun) -> Response:
    response = Response(statement_csv(db.session, run_row), mimetype="text/csv")
    name = f"remittance-{run_row.period_end.isoformat()}-{run_row.currency}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _statement_page(run_row: RemittanceRun, client: Client, portal: bool) -> Any:
    lines = statement_lines(db.session, client.id, run_row.currency, run_row.from_tx_id, run_row.upto_tx_id)
    page = max(int(request.args.get("page", "1") or 1), 1) if request.args.get("page", "1").isdigit() else 1
    shown = lines[(page - 1) * 200 : page * 200]
    return render_template(
        "books/statement.html",
        run=run_row,
        client=client,
        lines=shown,
        page=page,
        pages=max((len(lines) + 199) // 200, 1),
        portal=portal,
        status_labels=STATUS_LABELS,
    )


@bp.get("/books/remittances/<int:remittance_id>")
@require(Permission.BOOKS_READ)
def remittance(remittance_id: int) -> Any:
    run_row = get_visible_or_404(db.session, RemittanceRun, remittance_id)
    return _statement_page(run_row, db.session.get_one(Client, run_row.client_id), portal=False)


@bp.get("/books/remittances/<int:remittance_id>/statement.csv")
@require(Permission.BOOKS_READ)
def remittance_csv(remittance_id: int) -> Any:
    return _csv(get_visible_or_404(db.session, RemittanceRun, remittance_id))


def _statement_pdf(run_row: RemittanceRun, client: Client) -> Response:
    pdf = documents.render_pdf(documents.statement_html(db.session, run_row, client))
    name = documents.statement_filename(run_row, client)
    return Response(pdf, mimetype="application/pdf", headers=documents.pdf_response_headers(name))


def _invoice_pdf(invoice: FeeInvoice, client: Client) -> Response:
    pdf = documents.render_pdf(documents.invoice_html(db.session, invoice, client))
    name = documents.invoice_filename(invoice, client)
    return Response(pdf, mimetype="application/pdf", headers=documents.pdf_response_headers(name))


@bp.get("/books/remittances/<int:remittance_id>/statement.pdf")
@require(Permission.BOOKS_READ)
def remittance_pdf(remittance_id: int) -> Any:
    run_row = get_visible_or_404(db.session, RemittanceRun, remittance_id)
    return _statement_pdf(run_row, db.session.get_one(Client, run_row.client_id))


def _invoice_page(
    invoice: FeeInvoice,
    client: Client,
    portal: bool,
    form: dict[str, str] | None = None,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
) -> Any:
    lines = invoice_lines(db.session, client.id, invoice.currency, invoice.from_tx_id, invoice.upto_tx_id)
    payments = invoice_payments(db.session, invoice)
    paid = sum(p.amount_minor for p in payments)
    return (
        render_template(
            "books/invoice.html",
            invoice=invoice,
            client=client,
            lines=lines,
            portal=portal,
            payments=payments,
            paid=paid,
            outstanding=invoice.total_minor - paid,
            form=form or {"paid_on": today_utc().isoformat()},
            errors=errors or {},
            can_record=not portal and current_user.can(Permission.BOOKS_MANAGE),
        ),
        status,
    )


@bp.post("/books/fee-invoices/<int:fee_invoice_id>/payments")
@require(Permission.BOOKS_MANAGE)
def record_fee_invoice_payment(fee_invoice_id: int) -> Any:
    invoice = get_visible_or_404(db.session, FeeInvoice, fee_invoice_id)
    client = db.session.get_one(Client, invoice.client_id)
    form = {k: request.form.get(k, "").strip() for k in ("amount", "paid_on", "reference")}
    try:
        row = record_fee_payment(db.session, invoice, form["amount"], form["paid_on"], form["reference"])
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        return _invoice_page(invoice, client, False, form, {exc.field or "_schema": [str(exc)]}, 422)
    flash(f"Payment {row.reference} recorded against fee invoice {invoice.number}.", "success")
    return redirect(url_for("books.fee_invoice", fee_invoice_id=invoice.id))


@bp.get("/books/fee-invoices/<int:fee_invoice_id>")
@require(Permission.BOOKS_READ)
def fee_invoice(fee_invoice_id: int) -> Any:
    invoice = get_visible_or_404(db.session, FeeInvoice, fee_invoice_id)
    return _invoice_page(invoice, db.session.get_one(Client, invoice.client_id), portal=False)


@bp.get("/books/fee-invoices/<int:fee_invoice_id>/invoice.pdf")
@require(Permission.BOOKS_READ)
def fee_invoice_pdf(fee_invoice_id: int) -> Any:
    invoice = get_visible_or_404(db.session, FeeInvoice, fee_invoice_id)
    return _invoice_pdf(invoice, db.session.get_one(Client, invoice.client_id))


# --- portal --------------------------------------------------------------------------------------------


def _my_client() -> Client:
    client = db.session.get(Client, current_user.client_id)
    if client is None:
        abort(404)
    return client


@portal_bp.get("/remittances", endpoint="index")
@require(Permission.PORTAL)
def portal_index() -> Any:
    client = _my_client()
    overview = _overview(client.id)
    overview["runs"] = [r for r in overview["runs"] if r.status in ("approved", "paid")]
    return render_template("books/portal.html", client=client, **overview)


def _my_run(remittance_id: int) -> RemittanceRun:
    run_row = get_for_client(db.session, RemittanceRun, remittance_id, _my_client().id)
    if run_row.status not in ("approved", "paid"):
        abort(404)  # a draft is the agency's work in progress
    return run_row


@portal_bp.get("/remittances/<int:remittance_id>", endpoint="remittance")
@require(Permission.PORTAL)
def portal_remittance(remittance_id: int) -> Any:
    return _statement_page(_my_run(remittance_id), _my_client(), portal=True)


@portal_bp.get("/remittances/<int:remittance_id>/statement.csv", endpoint="remittance_csv")
@require(Permission.PORTAL)
def portal_remittance_csv(remittance_id: int) -> Any:
    return _csv(_my_run(remittance_id))


@portal_bp.get("/fee-invoices/<int:fee_invoice_id>", endpoint="fee_invoice")
@require(Permission.PORTAL)
def portal_fee_invoice(fee_invoice_id: int) -> Any:
    client = _my_client()
    return _invoice_page(get_for_client(db.session, FeeInvoice, fee_invoice_id, client.id), client, portal=True)


@portal_bp.get("/remittances/<int:remittance_id>/statement.pdf", endpoint="remittance_pdf")
@require(Permission.PORTAL)
def portal_remittance_pdf(remittance_id: int) -> Any:
    return _statement_pdf(_my_run(remittance_id), _my_client())


@portal_bp.get("/fee-invoices/<int:fee_invoice_id>/invoice.pdf", endpoint="fee_invoice_pdf")
@require(Permission.PORTAL)
def portal_fee_invoice_pdf(fee_invoice_id: int) -> Any:
    client = _my_client()
    return _invoice_pdf(get_for_client(db.session, FeeInvoice, fee_invoice_id, client.id), client)
