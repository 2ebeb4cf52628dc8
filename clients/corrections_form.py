"""The back office's correction forms (write off an invoice, reverse an allocation, write-off or payment):
typed values read, the ledger's verb called, and every problem returned by form field, with nothing written.

Dates are typed as YYYY-MM-DD (blank: today in the client's time zone); amounts in major units as the
currency writes them (blank: all that is open). Each form needs a reason and a ticked confirmation.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from clients import corrections
from clients.journal import Invoice, JournalEntry, JournalTransaction, Payment, TxKind
from clients.models import Client
from provider.core.errors import ServiceError
from provider.core.money import Money, MoneyError

Errors = dict[str, list[str]]


def _day(form: dict[str, str], field: str, errors: Errors) -> date | None:
    typed = (form.get(field) or "").strip()
    if not typed:
        return None
    try:
        return date.fromisoformat(typed)
    except ValueError:
        errors[field] = [f"“{typed}” is not a date: write it as YYYY-MM-DD"]
        return None


def _reason_and_confirmation(form: dict[str, str], what: str, errors: Errors) -> str:
    reason = (form.get("reason") or "").strip()
    if not reason:
        errors["reason"] = [f"say why the {what}"]
    elif len(reason) > 200:
        errors["reason"] = ["keep the reason under 200 characters"]
    if form.get("confirm") not in ("1", "yes", "on"):
        errors["confirm"] = ["tick the box to confirm"]
    return reason


def _refused(exc: ServiceError) -> Errors:
    return {exc.field or "_schema": [str(exc)]}


def write_off(session: Session, client: Client, invoice: Invoice, form: dict[str, str]) -> Errors:
    errors: Errors = {}
    amount = None
    if (form.get("amount") or "").strip():
        try:
            amount = Money.parse(form["amount"], invoice.currency).minor
        except MoneyError as exc:
            errors["amount"] = [str(exc)]
    day = _day(form, "written_off_on", errors)
    reason = _reason_and_confirmation(form, "invoice is written off", errors)
    if errors:
        return errors
    try:
        corrections.write_off(session, client, invoice, amount, reason, on=day)
    except ServiceError as exc:
        return _refused(exc)
    return {}


def reverse_on_invoice(
    session: Session, client: Client, invoice: Invoice, tx: JournalTransaction, form: dict[str, str]
) -> Errors:
    """Reverse an allocation or write-off of `invoice` (another transaction is refused as not found here)."""
    touches = session.scalar(
        select(JournalEntry.id).where(
            JournalEntry.client_id == client.id,
            JournalEntry.transaction_id == tx.id,
            JournalEntry.invoice_id == invoice.id,
        )
    )
    if touches is None or tx.kind not in (TxKind.ALLOCATION.value, TxKind.WRITE_OFF.value):
        return {"_schema": ["only an allocation or a write-off of this invoice can be reversed here"]}
    errors: Errors = {}
    day = _day(form, "reversed_on", errors)
    what = "allocation is reversed" if tx.kind == TxKind.ALLOCATION.value else "write-off is reversed"
    reason = _reason_and_confirmation(form, what, errors)
    if errors:
        return errors
    try:
        corrections.reverse(session, client, tx, reason, day)
    except ServiceError as exc:
        return _refused(exc)
    return {}


def reverse_payment(session: Session, client: Client, payment: Payment, form: dict[str, str]) -> Errors:
    """Reverse a payment with its allocations (a bounced transfer, a returned cheque)."""
    errors: Errors = {}
    day = _day(form, "reversed_on", errors)
    reason = _reason_and_confirmation(form, "payment is reversed", errors)
    if errors:
        return errors
    try:
        corrections.reverse_document(session, client, payment, reason, day)
    except ServiceError as exc:
        return _refused(exc)
    return {}
