"""Ledger services: place, pay, allocate, credit, write off, adjust, reverse.

Each verb validates everything first and then posts one balanced journal transaction (or a batch of them)
or nothing: on any refusal it raises `ServiceError` (or `BatchRejected` listing every bad row) before the
first write, and the guarded cache updates make a lost race a refusal too. Services flush, never commit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import wraps
from typing import Any, TypeVar

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clients.journal import (
    Account,
    CreditNote,
    Invoice,
    JournalTransaction,
    Payment,
    PaymentMethod,
    ReceivedBy,
    TxKind,
)
from clients.models import Client, Debtor
from clients.posting import Line, apply_to_documents, lines_of, post, post_many
from provider.core import audit
from provider.core.clock import today_utc
from provider.core.errors import ServiceError
from provider.core.money import MoneyError, format_money, validate_currency

MAX_FUTURE_DAYS = 1  # a date "today" in the furthest time zone is tomorrow in UTC


@dataclass(frozen=True)
class RowError:
    row: int
    field: str
    message: str


class BatchRejected(ServiceError):
    """Some rows of a batch are invalid; nothing was posted. `errors` lists every problem."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} problem(s); nothing was posted")
        self.errors = errors


class IdempotencyConflict(ServiceError):
    """The same idempotency key (or external reference) was used before with different content."""


@dataclass(frozen=True)
class PaymentResult:
    payment: Payment
    replayed: bool


F = TypeVar("F", bound=Callable[..., Any])


def atomic(service: F) -> F:
    """Run a ledger verb inside a SAVEPOINT: if it refuses after its first write, none of its writes stay."""

    @wraps(service)
    def wrapper(session: Session, *args: Any, **kwargs: Any) -> Any:
        with session.begin_nested():
            return service(session, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _money(amount: int, currency: str) -> str:
    return format_money(amount, currency)


def _only_open(invoice: Invoice) -> ServiceError:
    return ServiceError(
        f"invoice {invoice.number} has only {_money(invoice.open_minor, invoice.currency)} open", field="amount"
    )


def _check_currency(code: str) -> str:
    try:
        return validate_currency(code)
    except MoneyError as exc:
        raise ServiceError(str(exc), field="currency") from None


def _debtor(session: Session, client: Client, debtor_id: int) -> Debtor:
    debtor = session.get(Debtor, debtor_id)
    if debtor is None or debtor.client_id != client.id:
        raise ServiceError(f"debtor #{debtor_id} is not a debtor of {client.code}", field="debtor_id")
    return debtor


def _not_future(day: date, field: str) -> None:
    if day > today_utc() + timedelta(days=MAX_FUTURE_DAYS):
        raise ServiceError(f"{field.replace('_', ' ')} {day.isoformat()} is in the future", field=field)


# --- invoices ---------------------------------------------------------------------------------------

INVOICE_KEYS = ("debtor_id", "number", "issue_date", "due_date", "currency", "amount_minor", "po_reference")


def _invoice_problems(row: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if not isinstance(row.get("amount_minor"), int) or row["amount_minor"] <= 0:
        problems.append(("amount", "must be a positive amount"))
    try:
        validate_currency(row.get("currency") or "")
    except MoneyError as exc:
        problems.append(("currency", str(exc)))
    issue, due = row.get("issue_date"), row.get("due_date")
    if isinstance(issue, date) and isinstance(due, date):
        if due < issue:
            problems.append(("due_date", f"due date {due} is before the issue date {issue}"))
        if issue > today_utc() + timedelta(days=MAX_FUTURE_DAYS):
            problems.append(("issue_date", f"issue date {issue} is in the future"))
    else:
        problems.append(("issue_date" if not isinstance(issue, date) else "due_date", "must be a date"))
    if not (row.get("number") or "").strip():
        problems.append(("number", "an invoice number is required"))
    return problems


def _normalised(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "debtor_id": row.get("debtor_id"),
        "number": (row.get("number") or "").strip(),
        "issue_date": row.get("issue_date"),
        "due_date": row.get("due_date"),
        "currency": (row.get("currency") or "").upper(),
        "amount_minor": row.get("amount_minor"),
        "po_reference": row.get("po_reference") or "",
    }


@atomic
def place_invoices(session: Session, client: Client, rows: list[dict[str, Any]]) -> list[Invoice]:
    """Place invoices for collection: all or nothing, idempotent on (client, invoice number).

    A row whose number already exists with the same content is skipped (a re-uploaded file posts nothing
    twice); with different content it is an error. Returns the invoices placed now.
    """
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows, start=1):
        errors += [RowError(i, f, m) for f, m in _invoice_problems(row)]
        number = (row.get("number") or "").strip()
        if number in seen:
            errors.append(RowError(i, "number", f"invoice {number} appears twice in this batch (row {seen[number]})"))
        seen.setdefault(number, i)
    debtor_ids = {r.get("debtor_id") for r in rows}
    known = set(session.scalars(select(Debtor.id).where(Debtor.client_id == client.id, Debtor.id.in_(debtor_ids))))
    errors += [
        RowError(i, "debtor", f"debtor #{r.get('debtor_id')} is not a debtor of {client.code}")
        for i, r in enumerate(rows, start=1)
        if r.get("debtor_id") not in known
    ]
    existing = {
        inv.number: inv
        for inv in session.scalars(select(Invoice).where(Invoice.client_id == client.id, Invoice.number.in_(seen)))
    }
    fresh = []
    for i, row in enumerate(rows, start=1):
        old = existing.get((row.get("number") or "").strip())
        if old is None:
            fresh.append(row)
        elif {k: getattr(old, k) for k in INVOICE_KEYS} != _normalised(row):
            errors.append(RowError(i, "number", f"invoice {old.number} was placed before with different details"))
    if errors:
        raise BatchRejected(sorted(errors, key=lambda e: (e.row, e.field)))
    if not fresh:
        return []

    values = [
        {
            "client_id": client.id,
            "debtor_id": r["debtor_id"],
            "number": r["number"].strip(),
            "issue_date": r["issue_date"],
            "due_date": r["due_date"],
            "currency": r["currency"].upper(),
            "amount_minor": r["amount_minor"],
            "adjusted_minor": 0,
            "open_minor": r["amount_minor"],
            "po_reference": r.get("po_reference") or "",
            "on_hold": False,
        }
        for r in fresh
    ]
    ids = list(session.scalars(insert(Invoice).returning(Invoice.id, sort_by_parameter_order=True), values))
    batch = [
        (
            v["issue_date"],
            [
                Line(Account.RECEIVABLE, v["debtor_id"], v["currency"], v["amount_minor"], invoice_id=inv_id),
                Line(Account.SALES, v["debtor_id"], v["currency"], -v["amount_minor"], invoice_id=inv_id),
            ],
        )
        for inv_id, v in zip(ids, values, strict=True)
    ]
    post_many(session, client.id, TxKind.INVOICE.value, batch)
    audit.record(
        session,
        "invoice.place",
        "Invoice",
        client_id=client.id,
        object_id="*",
        after={"count": len(ids), "first": values[0]["number"], "last": values[-1]["number"]},
    )
    return list(session.scalars(select(Invoice).where(Invoice.id.in_(ids)).order_by(Invoice.id)))


# --- payments ---------------------------------------------------------------------------------------

PAYMENT_KEYS = (
    "debtor_id",
    "external_ref",
    "received_on",
    "currency",
    "amount_minor",
    "method",
    "received_by",
    "reference",
)


def _fingerprint(data: dict[str, Any]) -> str:
    canonical = json.dumps({k: str(data.get(k, "")) for k in PAYMENT_KEYS}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _existing_payment(session: Session, client: Client, key: str | None, ref: str, digest: str) -> Payment | None:
    found = None
    if key:
        found = session.scalar(select(Payment).where(Payment.client_id == client.id, Payment.idempotency_key == key))
        if found is not None and found.request_hash != digest:
            raise IdempotencyConflict("this Idempotency-Key was already used for a different payment", field="key")
    if found is None:
        found = session.scalar(select(Payment).where(Payment.client_id == client.id, Payment.external_ref == ref))
        if found is not None and found.request_hash != digest:
            raise IdempotencyConflict(
                f"payment reference {ref} was already recorded with different details", field="external_ref"
            )
    return found


@atomic
def record_payment(
    session: Session, client: Client, data: dict[str, Any], idempotency_key: str | None = None
) -> PaymentResult:
    """Record money received from a debtor. Idempotent on (client, external reference) and on the key:
    the same request again returns the first payment (`replayed=True`); different content is refused."""
    data = {
        **data,
        "currency": _check_currency(data.get("currency", "")),
        "method": data.get("method") or PaymentMethod.BANK_TRANSFER.value,
        "received_by": data.get("received_by") or ReceivedBy.AGENCY.value,
        "reference": data.get("reference") or "",
    }
    ref = (data.get("external_ref") or "").strip()
    if not ref:
        raise ServiceError("a payment needs its external reference", field="external_ref")
    if not isinstance(data.get("amount_minor"), int) or data["amount_minor"] <= 0:
        raise ServiceError("the amount must be positive", field="amount")
    if data["method"] not in {m.value for m in PaymentMethod}:
        raise ServiceError(f"unknown payment method {data['method']!r}", field="method")
    if data["received_by"] not in {r.value for r in ReceivedBy}:
        raise ServiceError("received by must be 'agency' or 'client'", field="received_by")
    _not_future(data["received_on"], "received_on")
    debtor = _debtor(session, client, data["debtor_id"])
    digest = _fingerprint({**data, "external_ref": ref})
    found = _existing_payment(session, client, idempotency_key, ref, digest)
    if found is not None:
        return PaymentResult(found, replayed=True)

    payment = Payment(
        client_id=client.id,
        debtor_id=debtor.id,
        external_ref=ref,
        idempotency_key=idempotency_key,
        request_hash=digest,
        received_on=data["received_on"],
        currency=data["currency"],
        amount_minor=data["amount_minor"],
        unapplied_minor=data["amount_minor"],
        method=data["method"],
        received_by=data["received_by"],
        reference=data["reference"],
    )
    try:
        with session.begin_nested():
            session.add(payment)
            session.flush()
    except IntegrityError:  # a concurrent twin won the race: return what it recorded
        found = _existing_payment(session, client, idempotency_key, ref, digest)
        if found is None:
            raise
        return PaymentResult(found, replayed=True)
    cash = Account.CASH_AGENCY if payment.received_by == ReceivedBy.AGENCY.value else Account.CASH_CLIENT
    post_many(
        session,
        client.id,
        TxKind.PAYMENT.value,
        [
            (
                payment.received_on,
                [
                    Line(cash, debtor.id, payment.currency, payment.amount_minor, payment_id=payment.id),
                    Line(Account.UNAPPLIED, debtor.id, payment.currency, -payment.amount_minor, payment_id=payment.id),
                ],
            )
        ],
    )
    audit.record(session, "payment.record", payment, after=audit.snapshot(payment, PAYMENT_KEYS))
    return PaymentResult(payment, replayed=False)


# --- allocation -------------------------------------------------------------------------------------


@atomic
def allocate(
    session: Session,
    client: Client,
    source: Payment | CreditNote,
    invoice: Invoice,
    amount_minor: int,
    on: date | None = None,
) -> JournalTransaction:
    """Apply part or all of a payment or credit note to one invoice of the same client, debtor and currency."""
    what = "payment" if isinstance(source, Payment) else "credit note"
    if source.client_id != client.id or invoice.client_id != client.id:
        raise ServiceError("an allocation cannot cross clients")
    if source.debtor_id != invoice.debtor_id:
        raise ServiceError(f"this {what} is from another debtor than invoice {invoice.number}")
    if source.currency != invoice.currency:
        raise ServiceError(f"cannot allocate {source.currency} to an invoice in {invoice.currency}", field="currency")
    if not isinstance(amount_minor, int) or amount_minor <= 0:
        raise ServiceError("the amount to allocate must be positive", field="amount")
    if invoice.on_hold:
        raise ServiceError(f"invoice {invoice.number} is on hold (disputed); allocate after the dispute is settled")
    session.refresh(source)
    session.refresh(invoice)
    if amount_minor > source.unapplied_minor:
        raise ServiceError(
            f"the {what} has only {_money(source.unapplied_minor, source.currency)} left to allocate", field="amount"
        )
    if amount_minor > invoice.open_minor:
        raise _only_open(invoice)
    doc = {"payment_id": source.id} if isinstance(source, Payment) else {"credit_note_id": source.id}
    account = Account.UNAPPLIED if isinstance(source, Payment) else Account.CREDITS
    lines = [
        Line(account, invoice.debtor_id, invoice.currency, amount_minor, invoice_id=invoice.id, **doc),
        Line(Account.RECEIVABLE, invoice.debtor_id, invoice.currency, -amount_minor, invoice_id=invoice.id, **doc),
    ]
    tx = post(
        session, client.id, TxKind.ALLOCATION.value, on or today_utc(), lines, memo=f"{what} → invoice {invoice.number}"
    )
    session.refresh(source)
    session.refresh(invoice)
    return tx


@atomic
def auto_allocate(session: Session, client: Client, payment: Payment) -> list[JournalTransaction]:
    """Allocate what is left of a payment: first to the invoice its reference names, then oldest due first."""
    session.refresh(payment)
    candidates = list(
        session.scalars(
            select(Invoice)
            .where(
                Invoice.client_id == client.id,
                Invoice.debtor_id == payment.debtor_id,
                Invoice.currency == payment.currency,
                Invoice.open_minor > 0,
                Invoice.on_hold.is_(False),
            )
            .order_by(Invoice.due_date, Invoice.id)
        )
    )
    named = [inv for inv in candidates if inv.number and inv.number.lower() in payment.reference.lower()]
    ordered = named + [inv for inv in candidates if inv not in named]
    done = []
    for invoice in ordered:
        if payment.unapplied_minor == 0:
            break
        amount = min(payment.unapplied_minor, invoice.open_minor)
        done.append(
            allocate(session, client, payment, invoice, amount, on=max(payment.received_on, invoice.issue_date))
        )
    return done


# --- credit notes, write-offs, adjustments, reversals -----------------------------------------------


@atomic
def issue_credit_note(session: Session, client: Client, data: dict[str, Any]) -> CreditNote:
    """Record a credit note the client granted; allocate it with `allocate` (or to `invoice_id` at once)."""
    currency = _check_currency(data.get("currency", ""))
    if not isinstance(data.get("amount_minor"), int) or data["amount_minor"] <= 0:
        raise ServiceError("the amount must be positive", field="amount")
    number = (data.get("number") or "").strip()
    if not number:
        raise ServiceError("a credit note needs a number", field="number")
    if session.scalar(select(CreditNote.id).where(CreditNote.client_id == client.id, CreditNote.number == number)):
        raise ServiceError(f"credit note {number} already exists", field="number")
    _not_future(data["issued_on"], "issued_on")
    debtor = _debtor(session, client, data["debtor_id"])
    note = CreditNote(
        client_id=client.id,
        debtor_id=debtor.id,
        number=number,
        issued_on=data["issued_on"],
        currency=currency,
        amount_minor=data["amount_minor"],
        unapplied_minor=data["amount_minor"],
        reason=data.get("reason") or "",
    )
    session.add(note)
    session.flush()
    post_many(
        session,
        client.id,
        TxKind.CREDIT_NOTE.value,
        [
            (
                note.issued_on,
                [
                    Line(Account.SALES, debtor.id, currency, note.amount_minor, credit_note_id=note.id),
                    Line(Account.CREDITS, debtor.id, currency, -note.amount_minor, credit_note_id=note.id),
                ],
            )
        ],
    )
    audit.record(session, "credit_note.issue", note, after={"number": number, "amount_minor": note.amount_minor})
    if data.get("invoice_id"):
        invoice = session.get(Invoice, data["invoice_id"])
        if invoice is None or invoice.client_id != client.id:
            raise ServiceError(f"invoice #{data['invoice_id']} is not an invoice of {client.code}", field="invoice_id")
        allocate(session, client, note, invoice, min(note.amount_minor, invoice.open_minor), on=note.issued_on)
    return note


@atomic
def write_off(
    session: Session, client: Client, invoice: Invoice, amount_minor: int | None = None, reason: str = ""
) -> JournalTransaction:
    """Write off all (default) or part of an invoice's open balance as bad debt."""
    session.refresh(invoice)
    amount = invoice.open_minor if amount_minor is None else amount_minor
    if not isinstance(amount, int) or amount <= 0:
        raise ServiceError(
            f"invoice {invoice.number} has nothing to write off"
            if amount_minor is None
            else "the amount to write off must be positive",
            field="amount",
        )
    if amount > invoice.open_minor:
        raise _only_open(invoice)
    lines = [
        Line(Account.WRITE_OFF, invoice.debtor_id, invoice.currency, amount, invoice_id=invoice.id),
        Line(Account.RECEIVABLE, invoice.debtor_id, invoice.currency, -amount, invoice_id=invoice.id),
    ]
    tx = post(session, client.id, TxKind.WRITE_OFF.value, today_utc(), lines, memo=reason[:300])
    session.refresh(invoice)
    return tx


@atomic
def adjust(session: Session, client: Client, invoice: Invoice, delta_minor: int, reason: str) -> JournalTransaction:
    """Correct an invoice's amount by `delta_minor` (+ adds, - reduces; not below what is already paid)."""
    if not isinstance(delta_minor, int) or delta_minor == 0:
        raise ServiceError("an adjustment must change the amount", field="amount")
    if not reason.strip():
        raise ServiceError("say why the invoice is adjusted", field="reason")
    session.refresh(invoice)
    if invoice.open_minor + delta_minor < 0:
        raise _only_open(invoice)
    lines = [
        Line(Account.RECEIVABLE, invoice.debtor_id, invoice.currency, delta_minor, invoice_id=invoice.id),
        Line(Account.ADJUSTMENT, invoice.debtor_id, invoice.currency, -delta_minor, invoice_id=invoice.id),
    ]
    tx = post(session, client.id, TxKind.ADJUSTMENT.value, today_utc(), lines, memo=reason[:300])
    session.refresh(invoice)
    return tx


@atomic
def reverse(session: Session, client: Client, transaction: JournalTransaction, reason: str) -> JournalTransaction:
    """Post the exact opposite of a transaction. Refused when it was reversed already, is itself a reversal,
    or when undoing it would take a document out of range (e.g. a payment whose money is allocated)."""
    if transaction.client_id != client.id:
        raise ServiceError("that transaction belongs to another client")
    if transaction.kind == TxKind.REVERSAL.value:
        raise ServiceError("a reversal cannot be reversed; post the original event again instead")
    if session.scalar(select(JournalTransaction.id).where(JournalTransaction.reverses_id == transaction.id)):
        raise ServiceError(f"transaction #{transaction.id} was already reversed")
    if not reason.strip():
        raise ServiceError("say why the transaction is reversed", field="reason")
    lines = [line.negated() for line in lines_of(transaction)]
    tx = post(
        session,
        client.id,
        TxKind.REVERSAL.value,
        today_utc(),
        lines,
        memo=f"reverses #{transaction.id}: {reason}"[:300],
        reverses_id=transaction.id,
    )
    return tx


__all__ = [
    "BatchRejected",
    "IdempotencyConflict",
    "PaymentResult",
    "RowError",
    "adjust",
    "allocate",
    "apply_to_documents",
    "auto_allocate",
    "issue_credit_note",
    "place_invoices",
    "record_payment",
    "reverse",
    "write_off",
]
