"""Payment pages: payment files (upload, result), the payments list, unmatched payments and cash application by
hand. The back office works per client (`payments` blueprint); the portal shows a client user their own
payments and lets a client admin report direct payments (`portal_payments` blueprint). Client users do not
allocate: applying cash is the agency's job, so one set of hands keeps each ledger consistent.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate
from sqlalchemy import Select, func, or_, select

from clients import bank_files, corrections, corrections_form
from clients.file_formats import DATE_FORMATS, DEFAULT_FORMATS, FORMAT_KEYS, format_from_form
from clients.imports import BatchStatus, ImportBatch
from clients.journal import Account, Invoice, JournalEntry, JournalTransaction, Payment, ReceivedBy
from clients.ledger_dates import check_day, client_today
from clients.models import Client, Debtor
from clients.payment_imports import (
    DEFAULT_MAPPING,
    FIELDS,
    KIND,
    REQUIRED,
    AllocationRejected,
    allocatable_invoices,
    allocate_by_hand,
    allocation_problems,
    assign_debtor,
    batch_summary,
    start_payment_import,
    suggested_split,
    unidentified_lines,
    waiting_lines,
)
from provider.background import job_state_for
from provider.core.errors import ServiceError
from provider.core.money import DECIMAL_MARKS, Money, MoneyError, format_money
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_for_client, get_visible_or_404
from provider.extensions import db
from provider.ui import apply_sort, paginate

bp = Blueprint("payments", __name__, template_folder="templates")
portal_bp = Blueprint("portal_payments", __name__, url_prefix="/portal/payments", template_folder="templates")

ALLOWED = (".csv", ".txt", ".xlsx", *bank_files.EXTENSIONS)  # CSV/XLSX, or a CAMT.053/MT940/BAI2 statement


def _is_statement(upload: Any) -> bool:
    """Whether an upload whose name says nothing is a bank statement (banks name their files as they like)."""
    head = upload.stream.read(65536)
    upload.stream.seek(0)
    return bank_files.sniff(head) is not None


LABELS = {
    "payment_ref": "Payment reference",
    "debtor_ref": "Debtor reference",
    "received_on": "Received on",
    "amount": "Amount",
    "currency": "Currency",
    "method": "Method",
    "received_by": "Received by (agency / client)",
    "reference": "Reference quoted by the debtor",
}
PAYMENT_SORTS = {
    "received_on": Payment.received_on,
    "ref": Payment.external_ref,
    "debtor": Debtor.name,
    "amount": Payment.amount_minor,
    "unapplied": Payment.unapplied_minor,
}


# --- parsing forms ----------------------------------------------------------------------------------


def _upload_schema() -> Schema:
    """Options of the upload form: where each field is in the file, the default receiver, post-valid."""
    columns = {f"map_{f}": fields.String(load_default=f, validate=validate.Length(max=80)) for f in FIELDS}
    return Schema.from_dict(
        {
            **columns,
            "received_by": fields.String(
                load_default=ReceivedBy.AGENCY.value, validate=validate.OneOf([r.value for r in ReceivedBy])
            ),
            "post_valid": fields.Boolean(load_default=False),
        }
    )(unknown=EXCLUDE)


class _MinorUnits(fields.String):
    """An amount typed in major units ('1,250.00'), read in the currency's minor units; blank is 0."""

    def __init__(self, currency: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.currency = currency

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:  # type: ignore[override]
        typed = super()._deserialize(value, attr, data, **kwargs).strip()
        if not typed:
            return 0
        try:
            minor = Money.parse(typed, self.currency).minor
        except MoneyError as exc:
            raise ValidationError(str(exc)) from None
        if minor < 0:
            raise ValidationError("must be a positive amount")
        return minor


def _allocation_schema(invoices: list[Invoice], currency: str) -> Schema:
    return Schema.from_dict({f"amount_{inv.id}": _MinorUnits(currency, load_default="") for inv in invoices})(
        unknown=EXCLUDE
    )


def _major(minor: int, currency: str) -> str:
    """Minor units as the plain number a person types ('1250.00'), for prefilled amount fields."""
    return str(Money(minor, currency).amount)


# --- pages shared by the back office and the portal -------------------------------------------------


def saved_mapping(client_id: int) -> dict[str, str]:
    """The client's payment file columns and format: those of its latest payments import that posted, else the
    defaults."""
    last = db.session.scalar(
        select(ImportBatch.mapping)
        .where(
            ImportBatch.client_id == client_id,
            ImportBatch.kind == KIND,
            ImportBatch.status.in_((BatchStatus.POSTED.value, BatchStatus.PARTIAL.value)),
        )
        .order_by(ImportBatch.created_at.desc(), ImportBatch.id.desc())
        .limit(1)
    )
    return {f: (last or {}).get(f) or DEFAULT_MAPPING[f] for f in FIELDS} | {
        k: (last or {}).get(k) or DEFAULT_FORMATS[k] for k in FORMAT_KEYS
    }


def _uploads_page(client: Client, urls: dict[str, Any], channel: str) -> Any:
    """GET: upload form + earlier payment files. POST: store the file and queue the import."""
    errors: list[str] = []
    mapping = saved_mapping(client.id)
    received_by = ReceivedBy.CLIENT.value if channel == "portal" else ReceivedBy.AGENCY.value
    post_valid = False
    if request.method == "POST":
        upload = request.files.get("file")
        try:
            form = _upload_schema().load({k: v for k, v in request.form.items() if v.strip()})
        except ValidationError as exc:
            form = None
            errors += [f"{k.removeprefix('map_')}: {' '.join(v)}" for k, v in exc.normalized_messages().items()]
        file_format, format_errors = format_from_form(request.form)
        errors += format_errors
        if form is not None:
            mapping = {f: form[f"map_{f}"].strip() or f for f in FIELDS} | file_format.as_mapping()
            received_by = ReceivedBy.CLIENT.value if channel == "portal" else form["received_by"]
            post_valid = form["post_valid"]
        if upload is None or not upload.filename:
            errors.append("Choose a CSV or XLSX payments file, or a CAMT.053, MT940 or BAI2 bank statement, to upload.")
        elif not upload.filename.lower().endswith(ALLOWED) and not _is_statement(upload):
            errors.append(
                f"{upload.filename}: import a .csv or .xlsx payments file, or a CAMT.053 (.xml), MT940 (.sta, .940)"
                " or BAI2 (.bai) bank statement."
            )
        elif not errors:
            content = upload.read()
            if not content:
                errors.append(f"{upload.filename} is empty.")
            else:
                batch = start_payment_import(
                    db.session,
                    client,
                    upload.filename,
                    content,
                    mapping=mapping,
                    post_valid=post_valid,
                    received_by=received_by,
                    channel=channel,
                    user_id=current_user.id,
                )
                db.session.commit()
                flash(f"{upload.filename} received; the import is running.", "info")
                return redirect(urls["batch"](batch.id))
    stmt = (
        select(ImportBatch)
        .where(ImportBatch.client_id == client.id, ImportBatch.kind == KIND)
        .order_by(ImportBatch.created_at.desc(), ImportBatch.id.desc())
    )
    return render_template(
        "clients/payment_imports.html",
        client=client,
        page=paginate(stmt, default_per_page=25),
        mapping=mapping,
        fields=FIELDS,
        required=REQUIRED,
        labels=LABELS,
        date_formats=DATE_FORMATS,
        decimal_marks=DECIMAL_MARKS,
        errors=errors,
        urls=urls,
        portal=channel == "portal",
        received_by=received_by,
        post_valid=post_valid,
    ), (422 if errors else 200)


def _batch_page(client: Client, batch_id: int, urls: dict[str, Any]) -> Any:
    batch = get_for_client(db.session, ImportBatch, batch_id, client.id)
    if batch.kind != KIND:  # a placement file has its own page
        abort(404)
    return render_template(
        "clients/payment_batch.html",
        client=client,
        batch=batch,
        urls=urls,
        summary=batch_summary(db.session, batch),
        unidentified=unidentified_lines(db.session, batch) if urls.get("assign") else {},
        job=job_state_for(f"import:{client.id}:{batch.id}"),
    )


def _payments_stmt(client: Client) -> Select[Any]:
    return (
        select(Payment, Debtor.name, Debtor.external_ref)
        .join(Debtor, (Debtor.client_id == Payment.client_id) & (Debtor.id == Payment.debtor_id))
        .where(Payment.client_id == client.id)
    )


def _payments_page(client: Client, urls: dict[str, Any]) -> Any:
    """Every payment of the client: newest first unless sorted, searchable, filterable to unapplied ones."""
    stmt = _payments_stmt(client)
    search = request.args.get("q", "").strip()
    unapplied_only = request.args.get("unapplied") == "1"
    if search:
        like = f"%{search.lower()}%"
        stmt = stmt.where(
            or_(
                func.lower(Payment.external_ref).like(like),
                func.lower(Payment.reference).like(like),
                func.lower(Debtor.name).like(like),
                func.lower(Debtor.external_ref).like(like),
            )
        )
    if unapplied_only:
        stmt = stmt.where(Payment.unapplied_minor > 0)
    if "sort" in request.args:
        stmt = apply_sort(stmt, PAYMENT_SORTS, "received_on", tiebreak=Payment.id)
    else:
        stmt = stmt.order_by(Payment.received_on.desc(), Payment.id.desc())
    return render_template(
        "clients/payments.html",
        client=client,
        page=paginate(stmt),
        search=search,
        unapplied_only=unapplied_only,
        urls=urls,
    )


# --- back office ------------------------------------------------------------------------------------


def _back_office_urls(client: Client) -> dict[str, Any]:
    def debtor(debtor_id: int) -> str:
        return url_for("clients.debtor", client_id=client.id, debtor_id=debtor_id)

    return {
        "payments": url_for("payments.index", client_id=client.id),
        "unmatched": url_for("payments.unmatched", client_id=client.id),
        "imports": url_for("payments.imports", client_id=client.id),
        "batch": lambda batch_id: url_for("payments.import_batch", client_id=client.id, payment_batch_id=batch_id),
        "allocate": lambda payment_id: url_for("payments.allocate", client_id=client.id, payment_id=payment_id),
        "payment": lambda payment_id: url_for("payments.payment", client_id=client.id, payment_id=payment_id),
        "assign": lambda batch_id, line: url_for(
            "payments.assign_line", client_id=client.id, payment_batch_id=batch_id, line=line
        ),
        "debtor": debtor,
    }


@bp.get("/clients/<int:client_id>/payments")
@require(Permission.DEBTORS_READ)
def index(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    return _payments_page(client, _back_office_urls(client))


@bp.route("/clients/<int:client_id>/payments/imports", methods=["GET", "POST"])
@require(Permission.PAYMENTS_IMPORT)
def imports(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    return _uploads_page(client, _back_office_urls(client), "back_office")


@bp.get("/clients/<int:client_id>/payments/imports/<int:payment_batch_id>")
@require(Permission.PAYMENTS_IMPORT)
def import_batch(client_id: int, payment_batch_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    return _batch_page(client, payment_batch_id, _back_office_urls(client))


ASSIGN_CANDIDATES = 20


@bp.route("/clients/<int:client_id>/payments/imports/<int:payment_batch_id>/lines/<int:line>", methods=["GET", "POST"])
@require(Permission.PAYMENTS_ALLOCATE)
def assign_line(client_id: int, payment_batch_id: int, line: int) -> Any:
    """A bank line the import found no debtor for: search the client's debtors, pick the one who paid, and the
    payment is recorded with the line's reference, date and amount and allocated as the import would have."""
    client = get_visible_or_404(db.session, Client, client_id)
    batch = get_for_client(db.session, ImportBatch, payment_batch_id, client.id)
    if batch.kind != KIND:
        abort(404)
    found = unidentified_lines(db.session, batch).get(line)
    if found is None:
        abort(404)
    error = ""
    if request.method == "POST":
        debtor = get_for_client(db.session, Debtor, request.form.get("debtor_id"), client.id)
        try:
            payment = assign_debtor(db.session, batch, line, debtor)
        except ServiceError as exc:
            db.session.rollback()
            error = str(exc)
        else:
            db.session.commit()
            left = format_money(payment.unapplied_minor, payment.currency)
            message = f"Row {line}: payment {payment.external_ref} recorded for {debtor.name}; {left} left unapplied."
            flash(message, "success")
            return redirect(_back_office_urls(client)["batch"](batch.id))
    search = request.args.get("q", "").strip()
    like = f"%{search.lower()}%"
    candidates = (
        db.session.scalars(
            select(Debtor)
            .where(
                Debtor.client_id == client.id,
                or_(func.lower(Debtor.name).like(like), func.lower(Debtor.external_ref).like(like)),
            )
            .order_by(Debtor.name, Debtor.id)
            .limit(ASSIGN_CANDIDATES + 1)
        ).all()
        if search
        else []
    )
    return render_template(
        "clients/payment_assign.html",
        client=client,
        batch=batch,
        found=found,
        why=next((e["message"] for e in batch.errors if e["row"] == line), ""),
        search=search,
        candidates=candidates[:ASSIGN_CANDIDATES],
        more=len(candidates) > ASSIGN_CANDIDATES,
        error=error,
        urls=_back_office_urls(client),
    ), (422 if error else 200)


@bp.get("/clients/<int:client_id>/payments/unmatched")
@require(Permission.PAYMENTS_ALLOCATE)
def unmatched(client_id: int) -> Any:
    """Payments with money not yet applied to an invoice, oldest first, with what their debtor has open."""
    client = get_visible_or_404(db.session, Client, client_id)
    open_same = (
        select(func.coalesce(func.sum(Invoice.open_minor), 0))
        .where(
            Invoice.client_id == Payment.client_id,
            Invoice.debtor_id == Payment.debtor_id,
            Invoice.currency == Payment.currency,
            Invoice.open_minor > 0,
            Invoice.on_hold.is_(False),
        )
        .correlate(Payment)
        .scalar_subquery()
    )
    stmt = _payments_stmt(client).add_columns(open_same.label("debtor_open")).where(Payment.unapplied_minor > 0)
    stmt = apply_sort(stmt, PAYMENT_SORTS, "received_on", tiebreak=Payment.id)
    totals = db.session.execute(
        select(Payment.currency, func.count(), func.sum(Payment.unapplied_minor))
        .where(Payment.client_id == client.id, Payment.unapplied_minor > 0)
        .group_by(Payment.currency)
        .order_by(Payment.currency)
    ).all()
    return render_template(
        "clients/payments_unmatched.html",
        client=client,
        page=paginate(stmt),
        totals=totals,
        waiting=waiting_lines(db.session, client),
        urls=_back_office_urls(client),
    )


@bp.route("/clients/<int:client_id>/payments/<int:payment_id>/allocate", methods=["GET", "POST"])
@require(Permission.PAYMENTS_ALLOCATE)
def allocate(client_id: int, payment_id: int) -> Any:
    """Apply an unmatched payment to the debtor's open invoices by hand: every line or none."""
    client = get_visible_or_404(db.session, Client, client_id)
    payment = get_for_client(db.session, Payment, payment_id, client.id)
    invoices = allocatable_invoices(db.session, payment)
    values = {f"amount_{i}": _major(m, payment.currency) for i, m in suggested_split(payment, invoices).items()}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values = {k: v for k, v in request.form.items() if k.startswith("amount_") or k == "allocated_on"}
        errors = _allocate_from_form(client, payment, invoices)
        if not errors:
            return redirect(url_for("payments.unmatched", client_id=client.id))
    return render_template(
        "clients/payment_allocate.html",
        client=client,
        payment=payment,
        debtor=db.session.get_one(Debtor, payment.debtor_id),
        invoices=invoices,
        values=values,
        errors=errors,
        today=client_today(client),
        urls=_back_office_urls(client),
    ), (422 if errors else 200)


def _allocation_day(client: Client, payment: Payment, errors: dict[str, list[str]]) -> date | None:
    """The typed allocation date (blank: the ledger's default, the payment's receipt), checked against the
    receipt and the client's today; each invoice's issue date is checked by the ledger, on its own row."""
    typed = request.form.get("allocated_on", "").strip()
    if not typed:
        return None
    try:
        day = date.fromisoformat(typed)
    except ValueError:
        errors["allocated_on"] = [f"“{typed}” is not a date: write it as YYYY-MM-DD"]
        return None
    try:
        return check_day(
            client, day, "allocated_on", "the allocation date", [(payment.received_on, "the payment was received")]
        )
    except ServiceError as exc:
        errors["allocated_on"] = [str(exc)]
    return None


def _allocate_from_form(client: Client, payment: Payment, invoices: list[Invoice]) -> dict[str, list[str]]:
    """Parse the amounts and the date, allocate them, commit; else every problem by form field (unreadable
    amounts and refused ones together), with nothing written."""
    errors: dict[str, list[str]] = {}
    try:
        amounts = _allocation_schema(invoices, payment.currency).load(request.form)
    except ValidationError as exc:
        amounts = exc.valid_data or {}
        errors = {k: v if isinstance(v, list) else [str(v)] for k, v in exc.normalized_messages().items()}
    day = _allocation_day(client, payment, errors)
    by_invoice = {int(k.removeprefix("amount_")): v for k, v in amounts.items()}
    if errors:
        problems = allocation_problems(db.session, client, payment, by_invoice) if any(by_invoice.values()) else {}
        return {**_by_field(problems), **errors}
    try:
        allocate_by_hand(db.session, client, payment, by_invoice, day)
    except AllocationRejected as exc:
        db.session.rollback()
        return _by_field(exc.errors)
    db.session.commit()
    left = format_money(payment.unapplied_minor, payment.currency)
    applied = format_money(sum(by_invoice.values()), payment.currency)
    flash(f"Payment {payment.external_ref}: {applied} allocated, {left} left unapplied.", "success")
    return {}


def _by_field(problems: dict[int | None, str]) -> dict[str, list[str]]:
    return {("_schema" if i is None else f"amount_{i}"): [m] for i, m in problems.items()}


@bp.get("/clients/<int:client_id>/payments/<int:payment_id>")
@require(Permission.DEBTORS_READ)
def payment(client_id: int, payment_id: int) -> Any:
    """One payment: what it paid (allocations and their reversals) and, for a manager, the reversal form."""
    client = get_visible_or_404(db.session, Client, client_id)
    return _payment_page(client, get_for_client(db.session, Payment, payment_id, client.id))


def _payment_page(
    client: Client, payment: Payment, errors: dict[str, list[str]] | None = None, form: Any = None
) -> Any:
    original = corrections.document_transaction(db.session, client, payment)
    reversed_by = corrections.reversal_of(db.session, client, original)
    rows = db.session.execute(
        select(JournalTransaction, JournalEntry.amount_minor, Invoice.id, Invoice.number)
        .join(
            JournalEntry,
            (JournalEntry.client_id == JournalTransaction.client_id)
            & (JournalEntry.transaction_id == JournalTransaction.id),
        )
        .join(Invoice, (Invoice.client_id == JournalEntry.client_id) & (Invoice.id == JournalEntry.invoice_id))
        .where(
            JournalTransaction.client_id == client.id,
            JournalEntry.payment_id == payment.id,
            JournalEntry.account == Account.RECEIVABLE.value,
        )
        .order_by(JournalTransaction.occurred_on, JournalTransaction.id)
    ).all()
    return render_template(
        "clients/payment.html",
        client=client,
        payment=payment,
        debtor=db.session.get_one(Debtor, payment.debtor_id),
        original=original,
        reversed_by=reversed_by,
        applied=[(tx, -amount, inv_id, number) for tx, amount, inv_id, number in rows],
        correct=current_user.can(Permission.LEDGER_CORRECT),
        today=client_today(client),
        errors=errors or {},
        form=form or {},
        urls=_back_office_urls(client),
    ), (422 if errors else 200)


@bp.post("/clients/<int:client_id>/payments/<int:payment_id>/reverse")
@require(Permission.LEDGER_CORRECT)
def reverse(client_id: int, payment_id: int) -> Any:
    """Reverse a payment (bounced, returned) with its allocations, dated as typed (default today), with a reason."""
    client = get_visible_or_404(db.session, Client, client_id)
    payment = get_for_client(db.session, Payment, payment_id, client.id)
    form = {k: request.form.get(k, "") for k in ("reversed_on", "reason", "confirm")}
    errors = corrections_form.reverse_payment(db.session, client, payment, form)
    if errors:
        db.session.rollback()
        return _payment_page(client, payment, errors, form)
    db.session.commit()
    flash(f"Payment {payment.external_ref} reversed; the invoices it paid are open again.", "success")
    return redirect(url_for("payments.payment", client_id=client.id, payment_id=payment.id))


# --- portal -----------------------------------------------------------------------------------------


def _my_client() -> Client:
    client = db.session.get(Client, current_user.client_id)
    if client is None:  # scope and binding disagree: never show anything
        abort(404)
    return client


def _portal_urls() -> dict[str, Any]:
    def debtor(debtor_id: int) -> str:
        return url_for("portal.debtor", debtor_id=debtor_id)

    return {
        "payments": url_for("portal_payments.index"),
        "unmatched": None,
        "imports": url_for("portal_payments.imports"),
        "batch": lambda batch_id: url_for("portal_payments.import_batch", payment_batch_id=batch_id),
        "allocate": None,
        "payment": None,
        "assign": None,
        "debtor": debtor,
    }


@portal_bp.get("/", endpoint="index")
@require(Permission.PORTAL)
def index_portal() -> Any:
    return _payments_page(_my_client(), _portal_urls())


@portal_bp.route("/imports", methods=["GET", "POST"], endpoint="imports")
@require(Permission.PORTAL_PAYMENTS)
def imports_portal() -> Any:
    return _uploads_page(_my_client(), _portal_urls(), "portal")


@portal_bp.get("/imports/<int:payment_batch_id>", endpoint="import_batch")
@require(Permission.PORTAL_PAYMENTS)
def import_batch_portal(payment_batch_id: int) -> Any:
    return _batch_page(_my_client(), payment_batch_id, _portal_urls())
