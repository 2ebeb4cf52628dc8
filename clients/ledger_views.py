"""Ledger pages of a client, in the back office and in the portal: the invoice list (and its CSV export),
one invoice with its journal history, and a debtor statement as HTML and PDF.

Both blueprints share the handlers below; they differ only in how the client is found (a staff user picks
one they may see, a client user has exactly one) and in the URLs the pages link to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from sqlalchemy import select

from clients import corrections_form, interest, ledger_list, ledger_queries
from clients.journal import Invoice, JournalTransaction
from clients.models import Client, ContactKind, Debtor
from provider.core.errors import ServiceError
from provider.core.money import Money, MoneyError, format_money
from provider.core.permissions import Permission, require
from provider.core.tenancy import TenantScope, get_for_client, get_visible_or_404, scoped
from provider.extensions import db

bp = Blueprint("ledger", __name__, template_folder="templates")
portal_bp = Blueprint("portal_ledger", __name__, url_prefix="/portal", template_folder="templates")

STATUS_LABELS = {s.value: s.value.replace("_", " ") for s in ledger_list.InvoiceStatus}


@dataclass(frozen=True)
class LedgerUrls:
    """Where the ledger pages link to, for one audience (back office or portal)."""

    prefix: str  # blueprint name of the ledger pages
    debtor_endpoint: str
    base: dict[str, Any] = field(default_factory=dict)  # {"client_id": ...} in the back office

    def ledger(self, **args: Any) -> str:
        return url_for(f"{self.prefix}.index", **self.base, **args)

    def csv(self, **args: Any) -> str:
        return url_for(f"{self.prefix}.export", **self.base, **args)

    def invoice(self, invoice_id: int) -> str:
        return url_for(f"{self.prefix}.invoice", invoice_id=invoice_id, **self.base)

    def debtor(self, debtor_id: int) -> str:
        return url_for(self.debtor_endpoint, debtor_id=debtor_id, **self.base)

    def statement(self, debtor_id: int, **args: Any) -> str:
        return url_for(f"{self.prefix}.statement", debtor_id=debtor_id, **self.base, **args)

    def statement_pdf(self, debtor_id: int, **args: Any) -> str:
        return url_for(f"{self.prefix}.statement_pdf", debtor_id=debtor_id, **self.base, **args)


def _back_office(client: Client) -> tuple[LedgerUrls, list[tuple[str, str | None]]]:
    urls = LedgerUrls("ledger", "worklists.account_view", {"client_id": client.id})  # the one account view
    return urls, [("Clients", url_for("clients.index")), (client.name, url_for("clients.detail", client_id=client.id))]


def _portal() -> tuple[Client, LedgerUrls, list[tuple[str, str | None]]]:
    client = db.session.get(Client, current_user.client_id)
    if client is None:  # scope and binding disagree: never show anything
        abort(404)
    return client, LedgerUrls("portal_ledger", "portal.debtor"), []


# --- handlers shared by both audiences -------------------------------------------------------------


def ledger_page(client: Client, urls: LedgerUrls, crumbs: list[Any]) -> Any:
    filters = ledger_list.parse_filters(request.args)
    as_of = ledger_list.client_today(client)
    page, totals = ledger_list.ledger_page(client.id, filters, as_of, request.args)
    return render_template(
        "clients/ledger.html",
        client=client,
        urls=urls,
        crumbs=crumbs,
        filters=filters,
        page=page,
        totals=totals,
        as_of=as_of,
        status_filters=ledger_list.STATUS_FILTERS,
        status_labels=STATUS_LABELS,
        filter_args=ledger_list.FILTER_ARGS,
    )


def _filename_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def ledger_csv(client: Client) -> Any:
    """The filtered ledger as a streamed CSV download (UTF-8 with BOM, so Excel reads the accents)."""
    filters = ledger_list.parse_filters(request.args)
    as_of = ledger_list.client_today(client)
    client_id, sort, direction = client.id, request.args.get("sort", ""), request.args.get("dir", "asc")

    def generate() -> Any:
        # The request's tenant scope ends when the view returns; the rows are read afterwards, while the
        # response streams, so the scope (already checked above) is set again for exactly this client.
        with scoped(TenantScope.single(client_id), db.session):
            yield from ledger_list.export_rows(client_id, filters, as_of, sort, direction)

    filename = f"ledger-{_filename_part(client.code)}-{as_of.isoformat()}.csv"
    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def invoice_page(
    client: Client,
    invoice_id: int,
    urls: LedgerUrls,
    crumbs: list[Any],
    *,
    errors: dict[str, list[str]] | None = None,
    form: dict[str, str] | None = None,
    failed: str = "",
) -> Any:
    """The invoice with its allocations and journal history. In the back office, for a user who may correct
    the ledger, with the write-off form and a reversal form under each allocation and write-off still standing;
    `errors`/`form`/`failed` (which form) re-show a refused one (status 422)."""
    invoice = get_for_client(db.session, Invoice, invoice_id, client.id)
    debtor = get_for_client(db.session, Debtor, invoice.debtor_id, client.id)
    as_of = ledger_list.client_today(client)
    status = db.session.scalar(select(ledger_list.status_expression(as_of)).where(Invoice.id == invoice.id))
    return render_template(
        "clients/invoice.html",
        client=client,
        invoice=invoice,
        debtor=debtor,
        urls=urls,
        crumbs=[*crumbs, ("Ledger", urls.ledger()), (f"Invoice {invoice.number}", None)],
        as_of=as_of,
        status=status,
        status_labels=STATUS_LABELS,
        days_overdue=max((as_of - invoice.due_date).days, 0) if invoice.open_minor > 0 else 0,
        bucket=ledger_queries.bucket_of(invoice.due_date, as_of) if invoice.open_minor > 0 else None,
        history=ledger_queries.invoice_history(client.id, invoice.id),
        allocations=ledger_queries.invoice_allocations(client.id, invoice.id),
        charges=interest.charge_totals(db.session, client.id, invoice_id=invoice.id),
        waivers=interest.waivers_of(db.session, client.id, invoice.id),
        correct=urls.prefix == "ledger" and current_user.can(Permission.LEDGER_CORRECT),
        today=as_of,
        errors=errors or {},
        form=form or {},
        failed=failed,
    ), (422 if errors else 200)


def _statement_date(client: Client) -> tuple[date, date | None, list[str]]:
    """(statement date, journal cut-off or None for everything posted, problems with ?as_of)."""
    today = ledger_list.client_today(client)
    raw = (request.args.get("as_of") or "").strip()
    if not raw:
        return today, None, []
    try:
        as_of = date.fromisoformat(raw)
    except ValueError:
        return today, None, [f"Statement date: “{raw}” is not a date; use YYYY-MM-DD. Showing today instead."]
    if as_of > today:
        return today, None, [f"Statement date: {as_of} is in the future. Showing today instead."]
    return as_of, (None if as_of == today else as_of), []


def _statement_context(client: Client, debtor_id: int, urls: LedgerUrls, crumbs: list[Any]) -> dict[str, Any]:
    debtor = get_for_client(db.session, Debtor, debtor_id, client.id)
    as_of, through, errors = _statement_date(client)
    address = next((c.value for c in debtor.contacts if c.kind == ContactKind.POSTAL.value), None)
    return {
        "client": client,
        "debtor": debtor,
        "address": address,
        "statement": ledger_queries.debtor_statement(client.id, debtor.id, as_of, through),
        "charges": interest.charge_totals(db.session, client.id, debtor_id=debtor.id, through=through),
        "errors": errors,
        "urls": urls,
        "crumbs": [*crumbs, (debtor.name, urls.debtor(debtor.id)), ("Statement", None)],
    }


def statement_page(client: Client, debtor_id: int, urls: LedgerUrls, crumbs: list[Any]) -> Any:
    return render_template("clients/statement.html", **_statement_context(client, debtor_id, urls, crumbs))


def statement_pdf(client: Client, debtor_id: int, urls: LedgerUrls, crumbs: list[Any]) -> Any:
    context = _statement_context(client, debtor_id, urls, crumbs)
    pdf = render_pdf(render_template("clients/statement_pdf.html", **context))
    debtor, as_of = context["debtor"], context["statement"].as_of
    name = f"statement-{_filename_part(client.code)}-{_filename_part(debtor.external_ref)}-{as_of.isoformat()}.pdf"
    return Response(pdf, mimetype="application/pdf", headers={"Content-Disposition": f'attachment; filename="{name}"'})


def render_pdf(html: str) -> bytes:
    """HTML to an A4 PDF with WeasyPrint, offline: the stylesheet is passed in, every URL fetch is refused."""
    from weasyprint import CSS, HTML

    css = (Path(current_app.static_folder or "") / "statement.css").read_text(encoding="utf-8")
    document = HTML(string=html, base_url=None, url_fetcher=_refusing_fetcher())
    return bytes(document.write_pdf(stylesheets=[CSS(string=css)]))


def _refusing_fetcher() -> Any:
    """A WeasyPrint URL fetcher that fetches nothing (no network, no files): the PDF is built from the
    template and the stylesheet alone. WeasyPrint >= 66 wants a URLFetcher object, older ones a function."""

    def refuse(url: str, *_args: Any, **_kwargs: Any) -> Any:
        raise ValueError(f"statements load no external resources ({url[:80]})")

    try:
        from weasyprint.urls import URLFetcher
    except ImportError:  # pragma: no cover - WeasyPrint before 66
        return refuse

    class NoFetching(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> Any:
            return refuse(url)

    return NoFetching()


# --- back office ------------------------------------------------------------------------------------


@bp.get("/clients/<int:client_id>/ledger")
@require(Permission.DEBTORS_READ)
def index(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    urls, crumbs = _back_office(client)
    return ledger_page(client, urls, crumbs)


@bp.get("/clients/<int:client_id>/ledger.csv")
@require(Permission.DEBTORS_READ)
def export(client_id: int) -> Any:
    return ledger_csv(get_visible_or_404(db.session, Client, client_id))


@bp.get("/clients/<int:client_id>/invoices/<int:invoice_id>")
@require(Permission.DEBTORS_READ)
def invoice(client_id: int, invoice_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    urls, crumbs = _back_office(client)
    return invoice_page(client, invoice_id, urls, crumbs)


@bp.get("/clients/<int:client_id>/debtors/<int:debtor_id>/statement")
@require(Permission.DEBTORS_READ)
def statement(client_id: int, debtor_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    urls, crumbs = _back_office(client)
    return statement_page(client, debtor_id, urls, crumbs)


@bp.get("/clients/<int:client_id>/debtors/<int:debtor_id>/statement.pdf", endpoint="statement_pdf")
@require(Permission.DEBTORS_READ)
def statement_pdf_view(client_id: int, debtor_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    urls, crumbs = _back_office(client)
    return statement_pdf(client, debtor_id, urls, crumbs)


@bp.post("/clients/<int:client_id>/invoices/<int:invoice_id>/write-off")
@require(Permission.LEDGER_CORRECT)
def write_off(client_id: int, invoice_id: int) -> Any:
    """Write off the invoice's open balance (or the amount typed), dated as typed (default today), with a reason."""
    client = get_visible_or_404(db.session, Client, client_id)
    invoice = get_for_client(db.session, Invoice, invoice_id, client.id)
    urls, crumbs = _back_office(client)
    form = {k: request.form.get(k, "") for k in ("amount", "written_off_on", "reason", "confirm")}
    errors = corrections_form.write_off(db.session, client, invoice, form)
    if errors:
        db.session.rollback()
        return invoice_page(client, invoice_id, urls, crumbs, errors=errors, form=form, failed="write-off")
    db.session.commit()
    flash(
        f"Invoice {invoice.number}: written off; {format_money(invoice.open_minor, invoice.currency)} open.", "success"
    )
    return redirect(urls.invoice(invoice.id))


@bp.post("/clients/<int:client_id>/invoices/<int:invoice_id>/waive-charges")
@require(Permission.LEDGER_CORRECT)
def waive_charges(client_id: int, invoice_id: int) -> Any:
    """Waive the invoice's late-payment charges (all, or the amount typed) with a reason; audited."""
    client = get_visible_or_404(db.session, Client, client_id)
    invoice = get_for_client(db.session, Invoice, invoice_id, client.id)
    urls, crumbs = _back_office(client)
    form = {k: request.form.get(k, "") for k in ("waive_amount", "waive_reason", "stops_accrual")}
    errors: dict[str, list[str]] = {}
    amount = None
    if form["waive_amount"].strip():
        try:
            amount = Money.parse(form["waive_amount"], invoice.currency).minor
        except (MoneyError, ValueError) as exc:
            errors["waive_amount"] = [str(exc)]
    if not errors:
        try:
            interest.waive(
                db.session, client, invoice, form["waive_reason"], amount, stops_accrual=bool(form["stops_accrual"])
            )
        except ServiceError as exc:
            errors[{"amount": "waive_amount", "reason": "waive_reason"}.get(exc.field or "", "waive_amount")] = [
                str(exc)
            ]
    if errors:
        db.session.rollback()
        return invoice_page(client, invoice_id, urls, crumbs, errors=errors, form=form, failed="waive")
    db.session.commit()
    flash(f"Invoice {invoice.number}: late-payment charges waived.", "success")
    return redirect(urls.invoice(invoice.id))


@bp.post("/clients/<int:client_id>/invoices/<int:invoice_id>/transactions/<int:transaction_id>/reverse")
@require(Permission.LEDGER_CORRECT)
def reverse(client_id: int, invoice_id: int, transaction_id: int) -> Any:
    """Reverse one allocation or write-off of this invoice, dated as typed (default today), with a reason."""
    client = get_visible_or_404(db.session, Client, client_id)
    invoice = get_for_client(db.session, Invoice, invoice_id, client.id)
    tx = get_for_client(db.session, JournalTransaction, transaction_id, client.id)
    urls, crumbs = _back_office(client)
    form = {k: request.form.get(k, "") for k in ("reversed_on", "reason", "confirm")}
    errors = corrections_form.reverse_on_invoice(db.session, client, invoice, tx, form)
    if errors:
        db.session.rollback()
        return invoice_page(client, invoice_id, urls, crumbs, errors=errors, form=form, failed=f"reverse-{tx.id}")
    db.session.commit()
    flash(
        f"Reversed; invoice {invoice.number} has {format_money(invoice.open_minor, invoice.currency)} open.",
        "success",
    )
    return redirect(urls.invoice(invoice.id))


# --- portal -----------------------------------------------------------------------------------------


@portal_bp.get("/ledger", endpoint="index")
@require(Permission.PORTAL)
def portal_index() -> Any:
    client, urls, crumbs = _portal()
    return ledger_page(client, urls, crumbs)


@portal_bp.get("/ledger.csv", endpoint="export")
@require(Permission.PORTAL)
def portal_export() -> Any:
    client, _, _ = _portal()
    return ledger_csv(client)


@portal_bp.get("/invoices/<int:invoice_id>", endpoint="invoice")
@require(Permission.PORTAL)
def portal_invoice(invoice_id: int) -> Any:
    client, urls, crumbs = _portal()
    return invoice_page(client, invoice_id, urls, crumbs)


@portal_bp.get("/debtors/<int:debtor_id>/statement", endpoint="statement")
@require(Permission.PORTAL)
def portal_statement(debtor_id: int) -> Any:
    client, urls, crumbs = _portal()
    return statement_page(client, debtor_id, urls, crumbs)


@portal_bp.get("/debtors/<int:debtor_id>/statement.pdf", endpoint="statement_pdf")
@require(Permission.PORTAL)
def portal_statement_pdf(debtor_id: int) -> Any:
    client, urls, crumbs = _portal()
    return statement_pdf(client, debtor_id, urls, crumbs)
