"""Writes on clients and debtors. Services validate, flush and audit; the caller commits once."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clients.journal import Invoice
from clients.ledger import (  # the ledger verbs live in clients/ledger.py; this is the one place to import them
    BatchRejected,
    IdempotencyConflict,
    PaymentResult,
    RowError,
    adjust,
    allocate,
    auto_allocate,
    auto_allocate_many,
    issue_credit_note,
    place_invoices,
    record_payment,
    record_payments,
    reverse,
    write_off,
)
from clients.models import Client, ContactKind, Debtor, DebtorContact, language_for_country
from clients.month_totals import move_due_month
from provider.core import audit
from provider.core.errors import ServiceError

__all__ = [
    "BatchRejected",
    "IdempotencyConflict",
    "PaymentResult",
    "RowError",
    "ServiceError",
    "adjust",
    "allocate",
    "auto_allocate",
    "auto_allocate_many",
    "create_client",
    "create_debtor",
    "issue_credit_note",
    "place_invoices",
    "record_payment",
    "record_payments",
    "reverse",
    "update_client",
    "update_debtor",
    "update_invoice_details",
    "write_off",
]


def create_client(session: Session, data: dict[str, Any]) -> Client:
    """Create a tenant. Refuses a short code already in use."""
    if session.scalar(select(Client.id).where(Client.code == data["code"]).execution_options(skip_tenant_guard=True)):
        raise ServiceError(f"the code {data['code']} is already used by another client", field="code")
    client = Client(**data)
    session.add(client)
    session.flush()
    audit.record(
        session, "client.create", client, client_id=client.id, after=audit.snapshot(client, Client.AUDIT_FIELDS)
    )
    return client


def update_client(session: Session, client: Client, data: dict[str, Any]) -> Client:
    """Change a client's settings. The base currency is fixed once the client has debtors."""
    before = audit.snapshot(client, Client.AUDIT_FIELDS)
    if data.get("code") and data["code"] != client.code:
        clash = select(Client.id).where(Client.code == data["code"], Client.id != client.id)
        if session.scalar(clash.execution_options(skip_tenant_guard=True)):
            raise ServiceError(f"the code {data['code']} is already used by another client", field="code")
    if data.get("base_currency") and data["base_currency"] != client.base_currency:
        has_debtors = session.scalar(select(Debtor.id).where(Debtor.client_id == client.id).limit(1))
        if has_debtors:
            raise ServiceError("the base currency cannot change once debtors are placed", field="base_currency")
    for key, value in data.items():
        setattr(client, key, value)
    session.flush()
    after = audit.snapshot(client, Client.AUDIT_FIELDS)
    if before != after:
        audit.record(session, "client.update", client, client_id=client.id, before=before, after=after)
    return client


def _contact_rows(debtor: Debtor, data: dict[str, Any]) -> list[DebtorContact]:
    rows = []
    if data.get("email"):
        rows.append(
            DebtorContact(
                client_id=debtor.client_id, kind=ContactKind.EMAIL.value, value=data["email"], is_primary=True
            )
        )
    if data.get("phone"):
        rows.append(
            DebtorContact(
                client_id=debtor.client_id, kind=ContactKind.PHONE.value, value=data["phone"], is_primary=True
            )
        )
    return rows


def create_debtor(session: Session, client: Client, data: dict[str, Any]) -> Debtor:
    """Add a debtor to one client; the external reference must be new for that client."""
    data = dict(data)
    email, phone = data.pop("email", None), data.pop("phone", None)
    exists = select(Debtor.id).where(Debtor.client_id == client.id, Debtor.external_ref == data["external_ref"])
    if session.scalar(exists):
        raise ServiceError(
            f"{client.code} already has a debtor with reference {data['external_ref']}", field="external_ref"
        )
    data.setdefault("language", language_for_country(client.country))
    debtor = Debtor(client_id=client.id, **data)
    session.add(debtor)
    session.flush()
    for contact in _contact_rows(debtor, {"email": email, "phone": phone}):
        contact.debtor_id = debtor.id
        session.add(contact)
    session.flush()
    audit.record(session, "debtor.create", debtor, after=audit.snapshot(debtor, Debtor.AUDIT_FIELDS))
    return debtor


def update_debtor(session: Session, debtor: Debtor, data: dict[str, Any]) -> Debtor:
    """Change a debtor's details (the external reference stays: it is the client's key)."""
    before = audit.snapshot(debtor, Debtor.AUDIT_FIELDS)
    for key in ("name", "timezone", "segment", "language", "do_not_contact"):
        if key in data:
            setattr(debtor, key, data[key])
    session.flush()
    after = audit.snapshot(debtor, Debtor.AUDIT_FIELDS)
    if before != after:
        audit.record(session, "debtor.update", debtor, before=before, after=after)
    return debtor


INVOICE_DETAILS = ("due_date", "po_reference")


def update_invoice_details(session: Session, invoice: Invoice, data: dict[str, Any]) -> Invoice:
    """Change what the client's ERP owns on an invoice: its due date (renegotiated terms) and its purchase-order
    reference. Amounts, currency, debtor, dates of issue and the number never change here: money moves only
    through journal transactions (credit notes, write-offs, reversals; DESIGN §3), and the number is the
    placement's idempotency key. Refused (nothing written): a due date before the issue date, and a new due
    date on a settled invoice (its lateness is history the KPIs have read). The journal's monthly totals, keyed
    by due month, follow the new due date. Audited when something changed."""
    before = audit.snapshot(invoice, INVOICE_DETAILS)
    due = data.get("due_date", invoice.due_date)
    if due != invoice.due_date:
        if due < invoice.issue_date:
            raise ServiceError(f"the due date is before the issue date ({invoice.issue_date})", field="due_date")
        if invoice.open_minor == 0:
            raise ServiceError("invoice is settled: its due date can no longer change", field="due_date")
        old_due, invoice.due_date = invoice.due_date, due
        session.flush()
        move_due_month(session, invoice.client_id, invoice.currency, old_due, due)
    if "po_reference" in data:
        invoice.po_reference = data["po_reference"]
    session.flush()
    after = audit.snapshot(invoice, INVOICE_DETAILS)
    if before != after:
        audit.record(session, "invoice.update", invoice, before=before, after=after)
    return invoice
