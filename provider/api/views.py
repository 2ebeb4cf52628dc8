"""API v1 resources: debtors, invoices, payments and allocations, credit notes, aging and KPIs, work history,
disputes (open, comment, answer, decide a proposal, list) and monthly reports (list, figures, PDF).

Views are thin: parse (marshmallow), load through the token's client (404 otherwise), call the ledger's
verbs, serialise. `operation` (provider.api.base) checks the token's access, runs writes through the
idempotency store and commits once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Response, g, url_for
from sqlalchemy import func, select

from clients import corrections, services
from clients.journal import CreditNote, Invoice, JournalTransaction, Payment, TxKind
from clients.models import Debtor
from clients.placement_stage import place_rows
from provider.api import schemas as s
from provider.api.base import current_client, load, operation, parse_body, parse_query
from provider.api.debtors import with_etag
from provider.api.pagination import as_date, as_datetime, as_int, as_str, keyset_page, same
from provider.api.problems import ApiProblem, conflict_kind
from provider.api.webhooks import emit_event
from provider.core.errors import ServiceError
from provider.extensions import db
from provider.reporting.models import MonthlyReport
from sla import disputes as dispute_service
from sla.models import Dispute, DisputeInvoice, DisputeMessage

INVOICE_OUT, PAYMENT_OUT, CREDIT_OUT = s.InvoiceOut(), s.PaymentOut(), s.CreditNoteOut()
DISPUTE_OUT, COMMENT_OUT, REPORT_OUT = s.DisputeOut(), s.CommentOut(), s.ReportOut()


def _page(items: list[Any], cursor: str | None, schema: Any) -> dict[str, Any]:
    return {"data": schema.dump(items, many=True), "next_cursor": cursor}


def _changes(stmt: Any, model: Any, args: dict[str, Any], sorts: Any) -> Any:
    """Every list's change feed: `updated_since` filters on `updated_at`, and `sort=updated_at` pages by it."""
    sorts["updated_at"] = (model.updated_at, as_datetime)
    if args.get("updated_since"):
        stmt = stmt.where(model.updated_at >= args["updated_since"])
    return stmt


def _rejected(exc: services.BatchRejected, prefix: str = "") -> ApiProblem:
    errors: dict[str, list[str]] = {}
    for e in exc.errors:
        field = "amount_minor" if e.field == "amount" else ("debtor_id" if e.field == "debtor" else e.field)
        errors.setdefault(f"{prefix}{e.row - 1}.{field}" if prefix else field, []).append(e.message)
    kinds = {conflict_kind(name) for name in errors}
    return ApiProblem(409, str(exc), kind=kinds.pop() if len(kinds) == 1 else "ledger-rule", errors=errors)


def own_debtor(debtor_id: int, field: str = "debtor_id") -> Debtor:
    """The body's debtor, of the token's client: otherwise the same 409 (type `unknown-reference`, the field
    named) on every operation that takes a debtor in its body (payments, invoices, credit notes, disputes)."""
    debtor = db.session.get(Debtor, debtor_id)
    if debtor is None or debtor.client_id != current_client().id:
        raise ApiProblem(
            409,
            f"no such debtor: {debtor_id}",
            kind="unknown-reference",
            errors={field: ["not a debtor of this client"]},
        )
    return debtor


# --- invoices -------------------------------------------------------------------------------------------


@operation(
    "/invoices", "GET", summary="List invoices", tag="invoices", query=s.InvoiceQuery, response=s.page_of(s.InvoiceOut)
)
def list_invoices() -> Any:
    args = parse_query(s.InvoiceQuery())
    stmt = select(Invoice).where(Invoice.client_id == current_client().id)
    for name in ("debtor_id", "number", "currency"):
        if args.get(name) is not None:
            stmt = stmt.where(getattr(Invoice, name) == args[name])
    if args.get("status") == "open":
        stmt = stmt.where(Invoice.open_minor > 0)
    elif args.get("status") == "settled":
        stmt = stmt.where(Invoice.open_minor == 0)
    if args.get("due_before"):
        stmt = stmt.where(Invoice.due_date < args["due_before"])
    if args.get("due_after"):
        stmt = stmt.where(Invoice.due_date > args["due_after"])
    sorts = {
        "id": (Invoice.id, as_int),
        "due_date": (Invoice.due_date, as_date),
        "issue_date": (Invoice.issue_date, as_date),
        "number": (Invoice.number, as_str),
        "amount_minor": (Invoice.amount_minor, as_int),
        "open_minor": (Invoice.open_minor, as_int),
    }
    stmt = _changes(stmt, Invoice, args, sorts)
    return _page(*keyset_page(stmt, Invoice.id, sorts, args), INVOICE_OUT)


@operation("/invoices/{invoice_id}", "GET", summary="One invoice", tag="invoices", response=s.InvoiceOut)
def get_invoice(invoice_id: int) -> Any:
    """The answer's `ETag` is what `If-Match` of a PATCH compares with."""
    return with_etag(INVOICE_OUT.dump(load(Invoice, invoice_id)))


def _emit_placed(client_id: int, invoices: list[Invoice]) -> None:
    if not invoices:
        return
    emit_event(
        db.session,
        client_id,
        "invoice.placed",
        {
            "invoices": [
                {
                    "id": i.id,
                    "number": i.number,
                    "debtor_id": i.debtor_id,
                    "currency": i.currency,
                    "amount_minor": i.amount_minor,
                    "due_date": i.due_date.isoformat(),
                }
                for i in invoices
            ]
        },
        dedupe_key=f"invoice.placed:{invoices[0].id}-{invoices[-1].id}",
    )


def _emit_placed_rows(client_id: int, placed: list[tuple[int, dict[str, Any]]]) -> None:
    """`invoice.placed` for a batch from the request's own rows (no reload): one event per batch."""
    emit_event(
        db.session,
        client_id,
        "invoice.placed",
        {
            "invoices": [
                {
                    "id": invoice_id,
                    "number": r["number"].strip(),
                    "debtor_id": r["debtor_id"],
                    "currency": r["currency"].upper(),
                    "amount_minor": r["amount_minor"],
                    "due_date": r["due_date"].isoformat(),
                }
                for invoice_id, r in placed
            ]
        },
        dedupe_key=f"invoice.placed:{placed[0][0]}-{placed[-1][0]}",
    )


@operation(
    "/invoices",
    "POST",
    summary="Place one invoice",
    tag="invoices",
    body=s.InvoiceIn,
    response=s.InvoiceOut,
    status=201,
    extra_responses={200: "placed before with the same details: the existing invoice"},
)
def place_invoice() -> Any:
    """Idempotent on the invoice number: the same invoice again answers 200 with the existing one; the same
    number with other details is a 409 (`duplicate`)."""
    row = parse_body(s.InvoiceIn())
    client = current_client()
    own_debtor(row["debtor_id"])
    try:
        placed = services.place_invoices(db.session, client, [row])
    except services.BatchRejected as exc:
        raise _rejected(exc) from None
    if not placed:
        existing = db.session.scalar(
            select(Invoice).where(Invoice.client_id == client.id, Invoice.number == row["number"])
        )
        return INVOICE_OUT.dump(existing), 200
    _emit_placed(client.id, placed)
    return INVOICE_OUT.dump(placed[0]), 201, {"Location": url_for("api.get_invoice", invoice_id=placed[0].id)}


@operation(
    "/invoices/batch",
    "POST",
    summary="Place up to 1,000 invoices, all or nothing",
    tag="invoices",
    body=s.InvoiceBatchIn,
    response=s.InvoiceBatchOut,
    status=201,
)
def place_invoice_batch() -> Any:
    """Every problem of every row is reported (`errors` keyed `invoices.<index>.<field>`) and nothing is placed
    when any row is invalid. Rows placed before with the same details are skipped (counted as unchanged). The
    answer lists the id and number of each invoice placed now (read the whole invoice with GET /invoices/{id})."""
    rows = parse_body(s.InvoiceBatchIn(), s.plain_invoice_batch)["invoices"]
    client = current_client()
    result = place_rows(db.session, client.id, rows, memo=f"API batch ({g.api_token.actor_label})")
    if result.problems:
        raise _rejected(services.BatchRejected(result.problems), prefix="invoices.")
    if result.ids:
        by_number = {r["number"].strip(): r for r in rows}
        _emit_placed_rows(client.id, [(invoice_id, by_number[n]) for n, invoice_id in result.ids.items()])
    placed = [{"id": invoice_id, "number": number} for number, invoice_id in result.ids.items()]
    return {"placed": len(placed), "unchanged": result.unchanged, "invoices": placed}, 201


# --- payments and allocations ---------------------------------------------------------------------------


@operation(
    "/payments", "GET", summary="List payments", tag="payments", query=s.PaymentQuery, response=s.page_of(s.PaymentOut)
)
def list_payments() -> Any:
    args = parse_query(s.PaymentQuery())
    stmt = select(Payment).where(Payment.client_id == current_client().id)
    if args.get("debtor_id") is not None:
        stmt = stmt.where(Payment.debtor_id == args["debtor_id"])
    if args.get("external_ref"):
        stmt = stmt.where(Payment.external_ref == args["external_ref"])
    if args.get("unapplied") is not None:
        stmt = stmt.where(Payment.unapplied_minor > 0 if args["unapplied"] else Payment.unapplied_minor == 0)
    sorts = {
        "id": (Payment.id, as_int),
        "received_on": (Payment.received_on, as_date),
        "amount_minor": (Payment.amount_minor, as_int),
    }
    stmt = _changes(stmt, Payment, args, sorts)
    return _page(*keyset_page(stmt, Payment.id, sorts, args), PAYMENT_OUT)


@operation("/payments/{payment_id}", "GET", summary="One payment", tag="payments", response=s.PaymentOut)
def get_payment(payment_id: int) -> Any:
    return PAYMENT_OUT.dump(load(Payment, payment_id))


@operation(
    "/payments",
    "POST",
    summary="Record a payment",
    tag="payments",
    body=s.PaymentIn,
    response=s.PaymentOut,
    status=201,
    extra_responses={200: "recorded before with the same details (same external_ref): the existing payment"},
)
def record_payment() -> Any:
    """Idempotent on (client, external_ref) and on the Idempotency-Key; the `payment.posted` webhook fires."""
    from flask import request

    data = parse_body(s.PaymentIn())
    own_debtor(data["debtor_id"])
    key = request.headers.get("Idempotency-Key")
    result = services.record_payment(db.session, current_client(), data, idempotency_key=key)
    if result.replayed:
        return PAYMENT_OUT.dump(result.payment), 200
    location = url_for("api.get_payment", payment_id=result.payment.id)
    return PAYMENT_OUT.dump(result.payment), 201, {"Location": location}


@operation(
    "/payments/{payment_id}/allocations",
    "POST",
    summary="Allocate a payment to an invoice (or automatically)",
    tag="payments",
    body=s.AllocationIn,
    response=s.AllocationOut,
    status=201,
)
def allocate_payment(payment_id: int) -> Any:
    """With `invoice_id` and `amount_minor`: that amount to that invoice, dated `allocated_on` or by default
    the payment's receipt date (the invoice's issue date if later), as automatic matching dates it. Without:
    what is left goes to the invoices the payment's reference names, then oldest due first. 409 naming the
    field when the date is before the receipt or the invoice's issue, in the future, or would overpay the
    invoice at some date (`date-rule`), the amount is more than is open or left (`amount-rule`), the currencies
    differ (`currency-mismatch`) or the invoice is not this client's (`unknown-reference`); nothing is written."""
    payment = load(Payment, payment_id)
    data = parse_body(s.AllocationIn())
    client = current_client()
    if data.get("invoice_id") is None:
        if data.get("allocated_on") is not None or data.get("amount_minor") is not None:
            raise _conflict("invoice_id", "an amount or date applies to one invoice: give its invoice_id")
        txs = services.auto_allocate(db.session, client, payment)
    else:
        invoice = db.session.get(Invoice, data["invoice_id"])
        if invoice is None or invoice.client_id != client.id:
            raise _conflict("invoice_id", f"no such invoice: {data['invoice_id']}", "unknown-reference")
        if data.get("amount_minor") is None:
            raise _conflict("amount_minor", "say how much to allocate to this invoice (amount_minor)")
        try:
            tx = services.allocate(db.session, client, payment, invoice, data["amount_minor"], data.get("allocated_on"))
        except ServiceError as exc:
            raise _as_body_field(exc, amount="amount_minor") from None
        txs = [tx]
    db.session.refresh(payment)
    return {"payment": PAYMENT_OUT.dump(payment), "transaction_ids": [t.id for t in txs]}, 201


@operation(
    "/payments/{payment_id}/reversal",
    "POST",
    summary="Reverse a payment (bounced, returned), with its allocations",
    tag="payments",
    body=s.ReversalIn,
    response=s.PaymentReversalOut,
    status=201,
)
def reverse_payment(payment_id: int) -> Any:
    """Posts the opposite of the payment and of every allocation of it still standing, in one database
    transaction, dated `reversed_on` (default today in the client's time zone): the invoices it paid are open
    again. 409 naming `reversed_on` when the date is before the payment's receipt or one of its allocations, or
    in the future (`date-rule`); 409 when it was reversed already (`state-conflict`). Audited."""
    payment = load(Payment, payment_id)
    data = parse_body(s.ReversalIn())
    done = corrections.reverse_document(db.session, current_client(), payment, data["reason"], data.get("reversed_on"))
    return {**_reversal(done), "payment": PAYMENT_OUT.dump(payment)}, 201


def _reversal(done: corrections.Reversal) -> dict[str, Any]:
    tx = done.transaction
    return {
        "transaction_id": tx.id,
        "reverses_id": tx.reverses_id,
        "reversed_on": tx.occurred_on.isoformat(),
        "allocations_reversed": done.allocations,
    }


@operation(
    "/transactions/{transaction_id}/reversal",
    "POST",
    summary="Reverse one allocation or write-off",
    tag="payments",
    body=s.ReversalIn,
    response=s.ReversalOut,
    status=201,
)
def reverse_transaction(transaction_id: int) -> Any:
    """For the `transaction_ids` an allocation returned, or the `transaction_id` of a write-off: posts its
    opposite, dated `reversed_on` (default today in the client's time zone; not before the original, not in
    the future). Payments and credit notes are reversed through their own `/reversal`. Audited."""
    tx = load(JournalTransaction, transaction_id)
    if tx.kind not in (TxKind.ALLOCATION.value, TxKind.WRITE_OFF.value):
        raise _conflict("transaction_id", "only an allocation or a write-off is reversed here", "state-conflict")
    data = parse_body(s.ReversalIn())
    done = services.reverse(db.session, current_client(), tx, data["reason"], data.get("reversed_on"))
    return _reversal(corrections.Reversal(done, [])), 201


@operation(
    "/invoices/{invoice_id}/write-offs",
    "POST",
    summary="Write off an invoice's open balance (or part of it)",
    tag="invoices",
    body=s.WriteOffIn,
    response=s.WriteOffOut,
    status=201,
)
def write_off_invoice(invoice_id: int) -> Any:
    """Dated `written_off_on` (default today in the client's time zone). 409 naming the field when the date is
    before the invoice's issue date or in the future, or the amount is more than is open. Audited; reverse it
    through `/transactions/{transaction_id}/reversal`."""
    invoice = load(Invoice, invoice_id)
    data = parse_body(s.WriteOffIn())
    try:
        tx = services.write_off(
            db.session,
            current_client(),
            invoice,
            data.get("amount_minor"),
            data["reason"],
            on=data.get("written_off_on"),
        )
    except ServiceError as exc:
        raise _as_body_field(exc, amount="amount_minor") from None
    amount = sum(e.amount_minor for e in tx.entries if e.account == "write_off")
    return {
        "transaction_id": tx.id,
        "written_off_on": tx.occurred_on.isoformat(),
        "amount_minor": amount,
        "invoice": INVOICE_OUT.dump(invoice),
    }, 201


# --- credit notes ---------------------------------------------------------------------------------------


@operation(
    "/credit-notes",
    "GET",
    summary="List credit notes",
    tag="credit notes",
    query=s.CreditNoteQuery,
    response=s.page_of(s.CreditNoteOut),
)
def list_credit_notes() -> Any:
    args = parse_query(s.CreditNoteQuery())
    stmt = select(CreditNote).where(CreditNote.client_id == current_client().id)
    if args.get("debtor_id") is not None:
        stmt = stmt.where(CreditNote.debtor_id == args["debtor_id"])
    sorts = {
        "id": (CreditNote.id, as_int),
        "issued_on": (CreditNote.issued_on, as_date),
        "amount_minor": (CreditNote.amount_minor, as_int),
    }
    stmt = _changes(stmt, CreditNote, args, sorts)
    return _page(*keyset_page(stmt, CreditNote.id, sorts, args), CREDIT_OUT)


@operation(
    "/credit-notes/{credit_note_id}/reversal",
    "POST",
    summary="Cancel a credit note, with its allocations",
    tag="credit notes",
    body=s.ReversalIn,
    response=s.ReversalOut,
    status=201,
)
def reverse_credit_note(credit_note_id: int) -> Any:
    """Like a payment's reversal: its allocations are reversed with it, dated `reversed_on`. Audited."""
    note = load(CreditNote, credit_note_id)
    data = parse_body(s.ReversalIn())
    done = corrections.reverse_document(db.session, current_client(), note, data["reason"], data.get("reversed_on"))
    return _reversal(done), 201


@operation(
    "/credit-notes/{credit_note_id}", "GET", summary="One credit note", tag="credit notes", response=s.CreditNoteOut
)
def get_credit_note(credit_note_id: int) -> Any:
    return CREDIT_OUT.dump(load(CreditNote, credit_note_id))


@operation(
    "/credit-notes",
    "POST",
    summary="Issue a credit note (optionally allocated at once)",
    tag="credit notes",
    body=s.CreditNoteIn,
    response=s.CreditNoteOut,
    status=201,
)
def issue_credit_note() -> Any:
    """`issued_on` may not be in the future (client's time zone) nor, with `invoice_id`, before that invoice's
    issue date: 409 naming the field, nothing written."""
    data = parse_body(s.CreditNoteIn())
    own_debtor(data["debtor_id"])
    try:
        note = services.issue_credit_note(db.session, current_client(), data)
    except ServiceError as exc:
        raise _as_body_field(exc, amount="amount_minor") from None
    db.session.refresh(note)
    return CREDIT_OUT.dump(note), 201, {"Location": url_for("api.get_credit_note", credit_note_id=note.id)}


# --- aging and KPIs -------------------------------------------------------------------------------------


@operation(
    "/aging",
    "GET",
    summary="Aging of open receivables as of a date",
    tag="reports",
    query=s.AsOfQuery,
    response=s.AgingOut,
)
def aging() -> Any:
    """Open balances from the journal as of the date (payments after it are not counted), by days past due."""
    from clients.ledger_queries import BUCKETS
    from provider.reporting.kpi import aging_at

    args = parse_query(s.AsOfQuery())
    if args.get("debtor_id") is not None:
        load(Debtor, args["debtor_id"])
        from clients.ledger_queries import aging as open_aging

        rows = [(a.currency, a.buckets) for a in open_aging(current_client().id, args["as_of"], args["debtor_id"])]
    else:
        rows = [(c, f.amounts) for c, f in sorted(aging_at(current_client().id, args["as_of"]).items())]
    currencies = [
        {"currency": c, "buckets": b, "total_minor": sum(b.values()), "overdue_minor": sum(b.values()) - b["Current"]}
        for c, b in rows
    ]
    return {"as_of": args["as_of"].isoformat(), "bucket_names": list(BUCKETS), "currencies": currencies}


@operation(
    "/kpis",
    "GET",
    summary="Receivables KPIs as of a date (DSO, BPDSO, ADD)",
    tag="reports",
    query=s.KpiQuery,
    response=s.KpiOut,
)
def kpis() -> Any:
    """DSO = AR / sales x days over the `days` before `as_of` (DESIGN §7); null when there were no sales."""
    from provider.reporting import formulas
    from provider.reporting.kpi import aging_at

    args = parse_query(s.KpiQuery())
    client_id, as_of, days = current_client().id, args["as_of"], args["days"]
    figures = aging_at(client_id, as_of)
    sales = dict(
        db.session.execute(
            select(Invoice.currency, func.sum(Invoice.amount_minor))
            .where(
                Invoice.client_id == client_id,
                Invoice.issue_date > as_of - timedelta(days=days),
                Invoice.issue_date <= as_of,
            )
            .group_by(Invoice.currency)
        ).all()
    )
    out = []
    for currency in sorted(set(figures) | set(sales)):
        f = figures.get(currency)
        ar, current = (f.total, f.current) if f else (0, 0)
        sold = int(sales.get(currency) or 0)
        out.append(
            {
                "currency": currency,
                "receivable_minor": ar,
                "current_minor": current,
                "overdue_minor": ar - current,
                "sales_minor": sold,
                "dso": formulas.rounded(formulas.dso(ar, sold, days)),
                "best_possible_dso": formulas.rounded(formulas.best_possible_dso(current, sold, days)),
                "average_days_delinquent": formulas.rounded(formulas.average_days_delinquent(ar, current, sold, days)),
            }
        )
    return {"as_of": as_of.isoformat(), "period_days": days, "currencies": out}


# --- disputes -------------------------------------------------------------------------------------------

NOT_YOURS = "not an invoice of this client"


@operation(
    "/disputes", "GET", summary="List disputes", tag="disputes", query=s.DisputeQuery, response=s.page_of(s.DisputeOut)
)
def list_disputes() -> Any:
    args = parse_query(s.DisputeQuery())
    stmt = select(Dispute).where(Dispute.client_id == current_client().id)
    if args.get("debtor_id") is not None:
        stmt = stmt.where(Dispute.debtor_id == args["debtor_id"])
    if args.get("status"):
        stmt = stmt.where(Dispute.status == args["status"])
    sorts = {"id": (Dispute.id, as_int), "opened_at": (Dispute.opened_at, as_datetime)}
    stmt = _changes(stmt, Dispute, args, sorts)
    return _page(*keyset_page(stmt, Dispute.id, sorts, args), DISPUTE_OUT)


def _dispute_detail(dispute: Dispute) -> dict[str, Any]:
    """The dispute with its invoice ids and its conversation (what the portal's dispute page shows)."""
    invoice_ids = db.session.scalars(
        select(DisputeInvoice.invoice_id)
        .where(DisputeInvoice.client_id == dispute.client_id, DisputeInvoice.dispute_id == dispute.id)
        .order_by(DisputeInvoice.invoice_id)
    ).all()
    messages = db.session.scalars(
        select(DisputeMessage)
        .where(DisputeMessage.client_id == dispute.client_id, DisputeMessage.dispute_id == dispute.id)
        .order_by(DisputeMessage.created_at, DisputeMessage.id)
        .limit(500)
    ).all()
    return {
        **DISPUTE_OUT.dump(dispute),
        "invoice_ids": list(invoice_ids),
        "messages": COMMENT_OUT.dump(messages, many=True),
    }


@operation(
    "/disputes/{dispute_id}",
    "GET",
    summary="One dispute, with its invoices and conversation",
    tag="disputes",
    response=s.DisputeDetailOut,
)
def get_dispute(dispute_id: int) -> Any:
    return _dispute_detail(load(Dispute, dispute_id))


def _conflict(field: str, message: str, kind: str = "field-combination") -> ApiProblem:
    """A schema-valid body refused by a rule the schema cannot state: 409 naming the field."""
    return ApiProblem(409, message, kind=kind, errors={field: [message]})


def _as_body_field(exc: ServiceError, **names: str) -> ServiceError:
    """The same refusal with its field named as in this request's body (`names` renames); the blueprint's
    ServiceError handler answers it (409)."""
    return ServiceError(str(exc), field=names.get(exc.field, exc.field) if exc.field else None, kind=exc.kind)


@operation(
    "/disputes",
    "POST",
    summary="Open a dispute against one or more invoices",
    tag="disputes",
    body=s.DisputeIn,
    response=s.DisputeDetailOut,
    status=201,
)
def open_dispute() -> Any:
    """The invoices (open, of one debtor, in one currency) are held while the dispute is active; the amount in
    dispute is at most what is open on them. The agency's acknowledgement and resolution clocks start and the
    `dispute.updated` webhook fires. Invoices of another client are refused like ids that do not exist."""
    data = parse_body(s.DisputeIn())
    client = current_client()
    if data.get("debtor_id") is not None:
        own_debtor(data["debtor_id"])
    ids = sorted(set(data["invoice_ids"]))
    rows = db.session.execute(
        select(Invoice.id, Invoice.debtor_id).where(Invoice.client_id == client.id, Invoice.id.in_(ids))
    ).all()
    found = {r.id for r in rows}
    if len(found) != len(ids):
        unknown = ", ".join(str(i) for i in ids if i not in found)
        raise _conflict("invoice_ids", f"{NOT_YOURS}: {unknown}", "unknown-reference")
    debtor_ids = {r.debtor_id for r in rows}
    if len(debtor_ids) != 1:
        raise _conflict("invoice_ids", "the invoices of one dispute must belong to one debtor", "ledger-rule")
    debtor_id = debtor_ids.pop()
    if data.get("debtor_id") is not None and data["debtor_id"] != debtor_id:
        raise _conflict("debtor_id", "the invoices are not this debtor's")
    debtor = load(Debtor, debtor_id)
    opening = {k: data[k] for k in ("reason", "summary", "amount_minor")} | {"invoice_ids": ids}
    try:
        dispute = dispute_service.open_dispute(db.session, client, debtor, opening, via="api")
        if data.get("message"):
            dispute_service.add_message(db.session, dispute, data["message"], from_client=True)
    except ServiceError as exc:
        raise _as_body_field(exc, amount="amount_minor") from None
    return _dispute_detail(dispute), 201, {"Location": url_for("api.get_dispute", dispute_id=dispute.id)}


@operation(
    "/disputes/{dispute_id}/messages",
    "POST",
    summary="Add a message (from the client) to a dispute's conversation",
    tag="disputes",
    body=s.CommentIn,
    response=s.CommentOut,
    status=201,
)
def add_dispute_message(dispute_id: int) -> Any:
    """A closed (resolved or withdrawn) dispute takes no more messages (409 `state-conflict`)."""
    dispute = load(Dispute, dispute_id)
    data = parse_body(s.CommentIn())
    message = dispute_service.add_message(db.session, dispute, data["body"], from_client=True)
    return COMMENT_OUT.dump(message), 201


@operation(
    "/disputes/{dispute_id}/answer",
    "POST",
    summary="Answer the agency's question: the dispute goes back to the agency",
    tag="disputes",
    body=s.CommentIn,
    response=s.DisputeDetailOut,
)
def answer_dispute(dispute_id: int) -> Any:
    """Only while the dispute waits for the client's answer (`awaiting_client`), and not while a proposed
    resolution waits for approval (decide it through `/proposal`): 409 `state-conflict` otherwise. The answer joins the
    conversation and the agency's resolution clock resumes."""
    dispute = load(Dispute, dispute_id)
    data = parse_body(s.CommentIn())
    dispute_service.client_answers(db.session, dispute, data["body"])
    return _dispute_detail(dispute)


@operation(
    "/disputes/{dispute_id}/proposal",
    "POST",
    summary="Approve or reject the resolution the agency proposed",
    tag="disputes",
    body=s.ProposalDecisionIn,
    response=s.DisputeDetailOut,
)
def decide_proposal(dispute_id: int) -> Any:
    """Approving posts the proposal at once (a credit note or write-off in the ledger) and resolves the
    dispute; rejecting (with a reason) hands it back to the agency, whose resolution clock resumes. 409
    (`state-conflict`) when no proposal is pending; rejecting without a `note` is a 409 naming it."""
    dispute = load(Dispute, dispute_id)
    data = parse_body(s.ProposalDecisionIn())
    try:
        if data["decision"] == "approve":
            dispute_service.approve_proposal(db.session, current_client(), dispute, data["note"])
        else:
            dispute_service.reject_proposal(db.session, dispute, data["note"])
    except ServiceError as exc:
        raise _as_body_field(exc, reason="note") from None  # the portal's "reason" is this body's "note"
    return _dispute_detail(dispute)


# --- monthly reports ------------------------------------------------------------------------------------


@operation(
    "/reports",
    "GET",
    summary="List monthly reports (every version)",
    tag="reports",
    query=s.ReportQuery,
    response=s.page_of(s.ReportOut),
)
def list_reports() -> Any:
    """A re-issued month has several versions: the latest is `current`, the older ones `superseded`."""
    args = parse_query(s.ReportQuery())
    stmt = select(MonthlyReport).where(MonthlyReport.client_id == current_client().id)
    if args.get("period"):
        stmt = stmt.where(MonthlyReport.period == args["period"])
    if args.get("status"):
        stmt = stmt.where(MonthlyReport.status == args["status"])
    sorts = {
        "id": (MonthlyReport.id, as_int),
        "period": (MonthlyReport.period, as_str),
        "created_at": (MonthlyReport.generated_at, as_datetime),
    }
    stmt = _changes(stmt, MonthlyReport, args, sorts)
    return _page(*keyset_page(stmt, MonthlyReport.id, sorts, args), REPORT_OUT)


@operation(
    "/reports/{report_id}",
    "GET",
    summary="One monthly report with its figures",
    tag="reports",
    response=s.ReportDetailOut,
)
def get_report(report_id: int) -> Any:
    """`figures` are the frozen figures of the report. Each month's `countback_dso_is_lower_bound` is true when
    open AR is more than all the sales of the 24 months counted back: `countback_dso` (730 days or so) is then
    a lower bound ("more than"), not the value."""
    from provider.reporting.figures import with_countback_bounds

    report = load(MonthlyReport, report_id)
    summary = [line for line in (report.summary or "").splitlines() if line.strip()]
    figures = with_countback_bounds(report.figures, report.inputs)
    return {**REPORT_OUT.dump(report), "figures": figures, "summary": summary}


@operation(
    "/reports/{report_id}/pdf",
    "GET",
    summary="A monthly report's PDF",
    tag="reports",
    response={"type": "string", "format": "binary"},
    content_type="application/pdf",
)
def get_report_pdf(report_id: int) -> Any:
    report = load(MonthlyReport, report_id)
    name = f"report-{current_client().code}-{report.period}-v{report.version}.pdf"
    return Response(
        report.pdf, mimetype="application/pdf", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


_ = same  # re-exported parser kept for symmetry
