"""Ledger services: place, pay, allocate, credit, write off, adjust, reverse.

Each verb validates everything first and then posts one balanced journal transaction (or a batch of them)
or nothing: on any refusal it raises `ServiceError` (or `BatchRejected` listing every bad row) before the
first write, and the guarded cache updates make a lost race a refusal too. Services flush, never commit.

This module holds placing invoices and recording payments; allocation lives in `clients.allocations`, credit
notes, write-offs, adjustments and reversals in `clients.corrections`, their dating rules in
`clients.ledger_dates`. Every verb is importable from here (and from `clients.services`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, bindparam, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from clients import month_totals
from clients.allocations import allocate, auto_allocate, auto_allocate_many
from clients.corrections import adjust, issue_credit_note, reverse, write_off
from clients.journal import Account, Invoice, JournalEntry, Payment, PaymentMethod, ReceivedBy, TxKind
from clients.ledger_common import (
    MAX_FUTURE_DAYS,
    BatchRejected,
    IdempotencyConflict,
    RowError,
    atomic,
    chunks,
    payments_posted,
)
from clients.models import Client, Debtor
from clients.posting import Line, apply_to_documents, check_balanced, post_many
from provider.core import audit
from provider.core.clock import now_utc, today_utc
from provider.core.errors import ServiceError
from provider.core.money import MoneyError, validate_currency
from provider.core.tenancy import current_scope

_chunks = chunks


@dataclass(frozen=True)
class PaymentResult:
    payment: Payment
    replayed: bool


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


def _payment_fields(data: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A payment request normalised (currency upper-case, defaults filled, reference stripped) and every
    problem with it as (field, message), in the order `record_payment` reports the first one."""
    problems: list[tuple[str, str]] = []
    try:
        currency = validate_currency(data.get("currency") or "")
    except MoneyError as exc:
        currency = ""
        problems.append(("currency", str(exc)))
    clean = {
        **data,
        "external_ref": (data.get("external_ref") or "").strip(),
        "currency": currency,
        "method": data.get("method") or PaymentMethod.BANK_TRANSFER.value,
        "received_by": data.get("received_by") or ReceivedBy.AGENCY.value,
        "reference": data.get("reference") or "",
    }
    amount, received_on = clean.get("amount_minor"), clean.get("received_on")
    if not clean["external_ref"]:
        problems.append(("external_ref", "a payment needs its external reference"))
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        problems.append(("amount", "the amount must be positive"))
    if clean["method"] not in _METHODS:
        problems.append(("method", f"unknown payment method {clean['method']!r}"))
    if clean["received_by"] not in _RECEIVERS:
        problems.append(("received_by", "received by must be 'agency' or 'client'"))
    if not isinstance(received_on, date) or isinstance(received_on, datetime):
        problems.append(("received_on", "the date received must be a date"))
    elif received_on > today_utc() + timedelta(days=MAX_FUTURE_DAYS):
        problems.append(("received_on", f"received on {received_on.isoformat()} is in the future"))
    return clean, problems


_METHODS = frozenset(m.value for m in PaymentMethod)
_RECEIVERS = frozenset(r.value for r in ReceivedBy)


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


def _payment_lines(payment_id: int, data: dict[str, Any]) -> list[Line]:
    """Cash (the agency's or the client's, by who received it) against UNAPPLIED."""
    cash = Account.CASH_AGENCY if data["received_by"] == ReceivedBy.AGENCY.value else Account.CASH_CLIENT
    debtor_id, currency, amount = data["debtor_id"], data["currency"], data["amount_minor"]
    return [
        Line(cash, debtor_id, currency, amount, payment_id=payment_id),
        Line(Account.UNAPPLIED, debtor_id, currency, -amount, payment_id=payment_id),
    ]


# Statements of the single-payment path, built once (building them costs more than running them on SQLite).
_DEBTOR_AND_PAYMENT = (
    select(Debtor.id, Payment)
    .select_from(Debtor)
    .outerjoin(Payment, and_(Payment.client_id == Debtor.client_id, Payment.external_ref == bindparam("ref")))
    .where(Debtor.client_id == bindparam("client_id"), Debtor.id == bindparam("debtor_id"))
)
_INSERT_PAYMENT = {
    name: dialect_insert(Payment).on_conflict_do_nothing().returning(Payment)
    for name, dialect_insert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


def _debtor_and_payment(session: Session, client: Client, debtor_id: Any, ref: str) -> tuple[bool, Payment | None]:
    """One query: is `debtor_id` a debtor of the client, and which payment (if any) carries `ref`."""
    if isinstance(debtor_id, bool) or not isinstance(debtor_id, int):
        return False, None
    row = session.execute(_DEBTOR_AND_PAYMENT, {"client_id": client.id, "debtor_id": debtor_id, "ref": ref}).first()
    return (True, row[1]) if row is not None else (False, None)


def _record_payment_pg_sql() -> Any:
    """PostgreSQL: the whole posting of one new payment in one statement. Data-modifying CTEs insert the
    payment (only if the debtor is the client's; nothing on any unique conflict: reference or key), its
    journal transaction, the two entries (cash, UNAPPLIED; in this order) and the audit event, all from the
    payment row actually inserted, so a conflict or an unknown debtor writes nothing and returns no row."""
    payment_cols = [c.name for c in Payment.__table__.c]
    inserted = [c for c in payment_cols if c != "id"]
    amounts = ("amount_minor", "unapplied_minor")  # both start at the amount
    values = ["CAST(:amount_minor AS bigint)" if c in amounts else f":{c}" for c in inserted]
    # the model's own column names go into the text; every value is a bound parameter
    sql = f"""
WITH p AS (
    INSERT INTO payments ({", ".join(inserted)})
    SELECT {", ".join(values)}
    WHERE EXISTS (SELECT 1 FROM debtors WHERE debtors.client_id = :client_id AND debtors.id = :debtor_id)
    ON CONFLICT DO NOTHING
    RETURNING {", ".join(payment_cols)}
), t AS (
    INSERT INTO journal_transactions (client_id, kind, occurred_on, posted_at, actor_user_id, actor_label, memo)
    SELECT p.client_id, :kind, p.received_on, :recorded_at, :actor_user_id, :actor_label, '' FROM p
    RETURNING id, client_id
), e AS (
    INSERT INTO journal_entries (client_id, transaction_id, account, debtor_id, payment_id, currency, amount_minor)
    SELECT t.client_id, t.id, v.account, p.debtor_id, p.id, p.currency, v.amount_minor
    FROM t CROSS JOIN p
    CROSS JOIN LATERAL (VALUES (1, :cash_account, p.amount_minor), (2, :unapplied_account, -p.amount_minor))
        AS v(n, account, amount_minor)
    ORDER BY v.n
), a AS (
    INSERT INTO audit_events (occurred_at, actor_user_id, actor_label, action, object_type, object_id, client_id,
                              changes)
    SELECT :recorded_at, :actor_user_id, :actor_label, 'payment.record', 'Payment', CAST(p.id AS text), p.client_id,
           CAST(:changes AS jsonb)
    FROM p
)
SELECT {", ".join(f"p.{c}" for c in payment_cols)} FROM p"""  # noqa: S608
    return select(Payment).from_statement(text(sql).columns(*Payment.__table__.c))


_RECORD_PAYMENT_PG = _record_payment_pg_sql()


def record_payment(
    session: Session, client: Client, data: dict[str, Any], idempotency_key: str | None = None
) -> PaymentResult:
    """Record money received from a debtor. Idempotent on (client, external reference) and on the key:
    the same request again returns the first payment (`replayed=True`); different content is refused.

    Every refusal (fields, debtor of this client, reference or key seen before with other content) leaves
    nothing written, so the verb is atomic without a SAVEPOINT. On PostgreSQL a new payment takes one
    statement (`_RECORD_PAYMENT_PG`: payment, journal transaction, entries and audit event); only when it
    inserts nothing (unknown debtor, or the reference or key seen before, also by a concurrent twin that won
    the race) do the lookups run to tell a replay from a refusal. SQLite checks first (debtor and a previous
    payment in one query) and then inserts with ON CONFLICT DO NOTHING.
    """
    data, problems = _payment_fields(data)
    if problems:
        field, message = problems[0]
        raise ServiceError(message, field=field)
    ref = data["external_ref"]
    digest = _fingerprint(data)
    debtor_id = data.get("debtor_id")
    if isinstance(debtor_id, bool) or not isinstance(debtor_id, int) or not current_scope().allows(client.id):
        raise ServiceError(f"debtor #{debtor_id} is not a debtor of {client.code}", field="debtor_id")
    values = {
        "client_id": client.id,
        "debtor_id": debtor_id,
        "external_ref": ref,
        "idempotency_key": idempotency_key,
        "request_hash": digest,
        "received_on": data["received_on"],
        "currency": data["currency"],
        "amount_minor": data["amount_minor"],
        "unapplied_minor": data["amount_minor"],
        "method": data["method"],
        "received_by": data["received_by"],
        "reference": data["reference"],
        "recorded_at": now_utc(),
    }
    values["updated_at"] = values["recorded_at"]  # the PostgreSQL statement names every column
    if session.connection().dialect.name == "postgresql":
        return _record_payment_pg(session, client, data, values)
    known, found = _debtor_and_payment(session, client, debtor_id, ref)
    if not known:
        raise ServiceError(f"debtor #{debtor_id} is not a debtor of {client.code}", field="debtor_id")
    if idempotency_key or found is not None:
        found = _existing_payment(session, client, idempotency_key, ref, digest) if idempotency_key else found
        if found is not None and found.request_hash != digest:
            raise IdempotencyConflict(
                f"payment reference {ref} was already recorded with different details", field="external_ref"
            )
        if found is not None:
            return PaymentResult(found, replayed=True)
    payment = session.scalars(_INSERT_PAYMENT[session.connection().dialect.name], [values]).one_or_none()
    if payment is None:  # a concurrent twin recorded it first: return what it recorded (or refuse it)
        return _replay_or_refuse(session, client, values)
    post_many(session, client.id, TxKind.PAYMENT.value, [(payment.received_on, _payment_lines(payment.id, data))])
    audit.record(session, "payment.record", payment, after=audit.snapshot(payment, PAYMENT_KEYS))
    payments_posted.send(session, client_id=client.id, debtor_ids=[payment.debtor_id])
    return PaymentResult(payment, replayed=False)


def _record_payment_pg(session: Session, client: Client, data: dict[str, Any], values: dict[str, Any]) -> PaymentResult:
    check_balanced(_payment_lines(0, data))
    cash = Account.CASH_AGENCY if data["received_by"] == ReceivedBy.AGENCY.value else Account.CASH_CLIENT
    actor = audit.current_actor()
    snapshot = audit.snapshot(SimpleNamespace(**values), PAYMENT_KEYS)
    params = {
        **values,
        "kind": TxKind.PAYMENT.value,
        "actor_user_id": actor.user_id,
        "actor_label": actor.label,
        "cash_account": cash.value,
        "unapplied_account": Account.UNAPPLIED.value,
        "changes": json.dumps(audit.diff(None, snapshot)),
    }
    payment = session.scalars(_RECORD_PAYMENT_PG, params).one_or_none()
    if payment is None:  # unknown debtor, or the reference / key was used before (perhaps by a concurrent twin)
        return _replay_or_refuse(session, client, values)
    if not month_totals.kept_by_trigger(session):
        month_totals.add_posted(session, client.id, JournalEntry.__table__.c.payment_id == payment.id)
    payments_posted.send(session, client_id=client.id, debtor_ids=[payment.debtor_id])
    return PaymentResult(payment, replayed=False)


def _replay_or_refuse(session: Session, client: Client, values: dict[str, Any]) -> PaymentResult:
    """Nothing was inserted: the debtor is not the client's (refused), or the payment was recorded before
    with the same content (a replay) or with other content (an `IdempotencyConflict`)."""
    ref, key, digest = values["external_ref"], values["idempotency_key"], values["request_hash"]
    known, _ = _debtor_and_payment(session, client, values["debtor_id"], ref)
    if not known:
        raise ServiceError(f"debtor #{values['debtor_id']} is not a debtor of {client.code}", field="debtor_id")
    found = _existing_payment(session, client, key, ref, digest)
    if found is None:
        raise ServiceError(f"payment reference {ref} could not be recorded; try again", field="external_ref")
    return PaymentResult(found, replayed=True)


def record_payments(session: Session, client: Client, rows: list[dict[str, Any]]) -> list[PaymentResult]:
    """Record many payments at once: all or nothing, with `record_payment`'s validation and idempotency.

    Per row: a (client, external reference) recorded before with the same content is a replay (nothing
    posted, the first payment returned with `replayed=True`); with different content it is refused. Every
    problem of every row (including a reference twice in the batch, naming both rows) is collected and
    raised as `BatchRejected` before the first write. Otherwise the new payments are inserted in bulk and
    posted as one balanced transaction each (cash vs UNAPPLIED); one audit event records the batch.
    Returns one result per row, in row order. Rows carry no Idempotency-Key (use `record_payment`).
    """
    for attempt in (1, 2):
        try:
            with session.begin_nested():
                results = _record_payments(session, client, rows)
                fresh = sorted({r.payment.debtor_id for r in results if not r.replayed})
                if fresh:
                    payments_posted.send(session, client_id=client.id, debtor_ids=fresh)
                return results
        except IntegrityError:  # a concurrent batch recorded some of these references first: look again
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _record_payments(session: Session, client: Client, rows: list[dict[str, Any]]) -> list[PaymentResult]:
    errors: list[RowError] = []
    cleaned: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}
    for i, row in enumerate(rows, start=1):
        clean, problems = _payment_fields(row)
        errors += [RowError(i, f, m) for f, m in problems]
        ref = clean["external_ref"]
        if ref in first_row:
            errors.append(
                RowError(
                    i,
                    "external_ref",
                    f"payment reference {ref} appears twice in this batch (rows {first_row[ref]} and {i})",
                )
            )
        elif ref:
            first_row[ref] = i
        cleaned.append(clean)

    wanted = sorted({d for c in cleaned if isinstance(d := c.get("debtor_id"), int) and not isinstance(d, bool)})
    known: set[int] = set()
    for chunk in _chunks(wanted):
        known.update(session.scalars(select(Debtor.id).where(Debtor.client_id == client.id, Debtor.id.in_(chunk))))
    existing: dict[str, Payment] = {}
    for chunk in _chunks(list(first_row)):
        stmt = select(Payment).where(Payment.client_id == client.id, Payment.external_ref.in_(chunk))
        existing.update((p.external_ref, p) for p in session.scalars(stmt))

    results: list[PaymentResult | None] = [None] * len(rows)
    fresh: list[tuple[int, dict[str, Any]]] = []
    for i, clean in enumerate(cleaned, start=1):
        if clean.get("debtor_id") not in known:
            errors.append(
                RowError(i, "debtor_id", f"debtor #{clean.get('debtor_id')} is not a debtor of {client.code}")
            )
        clean["request_hash"] = digest = _fingerprint(clean)
        old = existing.get(clean["external_ref"])
        if old is None:
            fresh.append((i - 1, clean))
        elif first_row.get(clean["external_ref"]) != i:
            continue  # the in-batch duplicate is reported already
        elif old.request_hash != digest:
            errors.append(
                RowError(
                    i,
                    "external_ref",
                    f"payment reference {old.external_ref} was already recorded with different details",
                )
            )
        else:
            results[i - 1] = PaymentResult(old, replayed=True)
    if errors:
        raise BatchRejected(sorted(errors, key=lambda e: (e.row, e.field)))
    if fresh:
        _insert_payments(session, client, fresh, results)
    return [r for r in results if r is not None]


def _insert_payments(
    session: Session,
    client: Client,
    fresh: list[tuple[int, dict[str, Any]]],
    results: list[PaymentResult | None],
) -> None:
    values = [
        {
            "client_id": client.id,
            "debtor_id": c["debtor_id"],
            "external_ref": c["external_ref"],
            "idempotency_key": None,
            "request_hash": c["request_hash"],
            "received_on": c["received_on"],
            "currency": c["currency"],
            "amount_minor": c["amount_minor"],
            "unapplied_minor": c["amount_minor"],
            "method": c["method"],
            "received_by": c["received_by"],
            "reference": c["reference"],
        }
        for _, c in fresh
    ]
    payments = list(session.scalars(insert(Payment).returning(Payment, sort_by_parameter_order=True), values))
    post_many(
        session,
        client.id,
        TxKind.PAYMENT.value,
        [(p.received_on, _payment_lines(p.id, c)) for p, (_, c) in zip(payments, fresh, strict=True)],
    )
    for payment, (index, _) in zip(payments, fresh, strict=True):
        results[index] = PaymentResult(payment, replayed=False)
    totals: dict[str, int] = {}
    for v in values:
        totals[v["currency"]] = totals.get(v["currency"], 0) + v["amount_minor"]
    audit.record(
        session,
        "payment.record_batch",
        "Payment",
        client_id=client.id,
        object_id="*",
        after={
            "count": len(values),
            "first": values[0]["external_ref"],
            "last": values[-1]["external_ref"],
            "total_minor": totals,
        },
    )


__all__ = [
    "MAX_FUTURE_DAYS",
    "BatchRejected",
    "IdempotencyConflict",
    "PaymentResult",
    "RowError",
    "adjust",
    "allocate",
    "apply_to_documents",
    "auto_allocate",
    "auto_allocate_many",
    "issue_credit_note",
    "payments_posted",
    "place_invoices",
    "record_payment",
    "record_payments",
    "reverse",
    "write_off",
]
