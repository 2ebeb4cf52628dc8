"""Fee invoices to clients and the month's flat fees.

A fee invoice bills the client for what the books put in FEES_RECEIVABLE in its range of agency transactions
(`from_tx_id`, `upto_tx_id`]: the fees (+ tax) of payments made directly to the client, their reversals (a negative
line), and the month's flat fees (per placement, and the top-up to the monthly minimum). Numbers are the agency's
own sequence without gaps: `agency_counters` is incremented in the issuing transaction (its row lock is held until
commit; a rollback gives the number back). One invoice per client, currency and period (unique), so the job that
issues it can run twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from clients.journal import Invoice, Payment
from clients.models import Debtor
from provider.books.models import (
    AgencyAccount,
    AgencyCounter,
    AgencyEntry,
    AgencyTransaction,
    BooksKind,
    FeeInvoice,
    FeeInvoicePayment,
    Source,
)
from provider.books.posting import Leg, Posting, bring_up_to_date, load_schedules, post
from provider.books.pricing import bp_of, schedule_in_force
from provider.books.remittance import _leg, _range_invoice_numbers
from provider.core import audit
from provider.core.audit import current_actor
from provider.core.clock import today_utc
from provider.core.errors import ServiceError
from provider.core.money import Money, MoneyError

A = AgencyAccount
UTC = ZoneInfo("UTC")
# what a fee invoice bills: every kind but what the client paid against invoices (that settles them)
BILLED_KINDS = tuple(k.value for k in BooksKind if k is not BooksKind.FEE_SETTLED)


@dataclass(frozen=True)
class InvoiceLine:
    occurred_on: date
    label: str
    payment_ref: str
    debtor: str
    invoices: str
    amount_minor: int  # the payment's amount (0 for flat fees)
    fee_minor: int
    tax_minor: int

    @property
    def total_minor(self) -> int:
        return self.fee_minor + self.tax_minor


def invoice_lines(
    session: Session, client_id: int, currency: str, from_tx_id: int, upto_tx_id: int
) -> list[InvoiceLine]:
    t, p, d = AgencyTransaction, Payment, Debtor
    rows = session.execute(
        select(
            t.id,
            t.kind,
            t.occurred_on,
            t.payment_id,
            t.memo,
            p.external_ref,
            d.name,
            p.amount_minor,
            _leg(A.FEES_EARNED),
            _leg(A.TAX_PAYABLE),
            _leg(A.FEES_RECEIVABLE),
        )
        .select_from(t)
        .outerjoin(p, and_(p.client_id == t.client_id, p.id == t.payment_id))
        .outerjoin(d, and_(d.client_id == p.client_id, d.id == p.debtor_id))
        .where(
            t.client_id == client_id,
            t.currency == currency,
            t.id > from_tx_id,
            t.id <= upto_tx_id,
            t.kind.in_(BILLED_KINDS),
        )
        .order_by(t.id)
    ).all()
    numbers = _range_invoice_numbers(session, client_id, currency, from_tx_id, upto_tx_id, BILLED_KINDS)
    out = []
    for r in rows:
        if int(r[10]) == 0:
            continue
        label = {
            BooksKind.DIRECT_FEE.value: "Fee on a payment made to you",
            BooksKind.REVERSAL.value: "Fee returned: payment reversed",
            BooksKind.PERIOD_FEE.value: r[4] or "Monthly fees",
        }.get(r[1], "Fee")
        amount = int(r[7] or 0) * (-1 if r[1] == BooksKind.REVERSAL.value else 1)
        out.append(
            InvoiceLine(r[2], label, r[5] or "", r[6] or "", numbers.get(r[3], ""), amount, -int(r[8]), -int(r[9]))
        )
    return out


def next_invoice_number(session: Session) -> int:
    """The agency's next fee invoice number; the counter row stays locked until the transaction ends."""
    counter = AgencyCounter.__table__
    return int(
        session.execute(
            update(counter)
            .where(counter.c.name == "fee_invoice")
            .values(value=counter.c.value + 1)
            .returning(counter.c.value)
        ).scalar_one()
    )


def post_period_fees(session: Session, client_id: int, month_start: date, month_end: date) -> int:
    """Post the month's flat fees of the schedule in force at its end: per invoice placed in the month, per letter
    handed to the mail house in the month (a dunning or any other letter, counted when dispatched: the moment it
    counts as sent), and the top-up to the monthly minimum (minimum - fees earned in the month, when positive).
    Idempotent (one transaction per client and month); tax at the schedule's rate; in the schedule's currency."""
    schedule = schedule_in_force(load_schedules(session, client_id), month_end)
    if schedule is None:
        return 0
    from provider.books.models import FeeSchedule

    row = session.get_one(FeeSchedule, schedule.id)
    start = datetime.combine(month_start, time(), UTC)
    end = datetime.combine(month_end + timedelta(days=1), time(), UTC)
    placed = int(
        session.scalar(
            select(func.count()).where(
                Invoice.client_id == client_id, Invoice.placed_at >= start, Invoice.placed_at < end
            )
        )
        or 0
    )
    placement_fees = placed * row.per_placement_minor
    letters = letters_dispatched(session, client_id, start, end) if row.per_letter_minor else 0
    letter_fees = letters * row.per_letter_minor
    t, e = AgencyTransaction, AgencyEntry
    earned = -int(
        session.scalar(
            select(func.coalesce(func.sum(e.amount_minor), 0))
            .join(t, and_(t.client_id == e.client_id, t.id == e.transaction_id))
            .where(
                e.client_id == client_id,
                e.currency == schedule.currency,
                e.account == A.FEES_EARNED.value,
                t.occurred_on >= month_start,
                t.occurred_on <= month_end,
                t.kind != BooksKind.PERIOD_FEE.value,
            )
        )
        or 0
    )
    top_up = max(0, row.monthly_minimum_minor - earned - placement_fees - letter_fees)
    fee = placement_fees + letter_fees + top_up
    if fee == 0:
        return 0
    tax = bp_of(fee, schedule.tax_rate_bp)
    parts = []
    if placement_fees:
        parts.append(f"{placed} placement{'s' if placed != 1 else ''}")
    if letter_fees:
        parts.append(f"{letters} letter{'s' if letters != 1 else ''} posted")
    if top_up:
        parts.append("top-up to the monthly minimum")
    source_id = month_start.year * 100 + month_start.month
    exists = session.scalar(
        select(t.id).where(t.client_id == client_id, t.source == Source.MONTH.value, t.source_id == source_id)
    )
    if exists:
        return 0
    legs = [Leg(A.FEES_RECEIVABLE, fee + tax), Leg(A.FEES_EARNED, -fee), Leg(A.TAX_PAYABLE, -tax)]
    memo = f"Monthly fees {month_start:%B %Y}: " + " and ".join(parts)
    post(
        session,
        client_id,
        [Posting(BooksKind.PERIOD_FEE, Source.MONTH, source_id, schedule.currency, month_end, legs, memo=memo)],
    )
    return fee


def letters_dispatched(session: Session, client_id: int, start: datetime, end: datetime) -> int:
    """Letters of the client handed to the mail house in [start, end) (their batch marked dispatched)."""
    from provider.comms.models import Message

    return int(
        session.scalar(
            select(func.count()).where(
                Message.client_id == client_id,
                Message.channel == "letter",
                Message.dispatched_at >= start,
                Message.dispatched_at < end,
            )
        )
        or 0
    )


def issue_fee_invoice(
    session: Session,
    client_id: int,
    currency: str,
    period_start: date,
    period_end: date,
    issued_on: date | None = None,
    *,
    received_until: date | None = None,
) -> FeeInvoice | None:
    """Issue the client's fee invoice of one currency and period (the existing one when issued before), or None
    when there is nothing to bill. Brings the books up to date first (under `lock_books`)."""
    bring_up_to_date(session, client_id, received_until)
    same = session.scalars(
        select(FeeInvoice).where(
            FeeInvoice.client_id == client_id, FeeInvoice.currency == currency, FeeInvoice.period_end == period_end
        )
    ).first()
    if same is not None:
        return same
    start_tx = (
        session.scalar(
            select(func.max(FeeInvoice.upto_tx_id)).where(
                FeeInvoice.client_id == client_id, FeeInvoice.currency == currency
            )
        )
        or 0
    )
    upto = session.scalar(select(func.max(AgencyTransaction.id)).where(AgencyTransaction.client_id == client_id)) or 0
    lines = invoice_lines(session, client_id, currency, start_tx, upto)
    if not lines:
        return None
    invoice = FeeInvoice(
        client_id=client_id,
        number=next_invoice_number(session),
        currency=currency,
        period_start=period_start,
        period_end=period_end,
        issued_on=issued_on or today_utc(),
        from_tx_id=start_tx,
        upto_tx_id=upto,
        fees_minor=sum(x.fee_minor for x in lines),
        tax_minor=sum(x.tax_minor for x in lines),
        total_minor=sum(x.total_minor for x in lines),
        lines=len(lines),
    )
    session.add(invoice)
    session.flush()
    audit.record(
        session, "fee_invoice.issue", invoice, after={"number": invoice.number, "total_minor": invoice.total_minor}
    )
    return invoice


def receivable_currencies(session: Session, client_id: int) -> list[str]:
    e = AgencyEntry
    return sorted(
        session.scalars(
            select(e.currency).where(e.client_id == client_id, e.account == A.FEES_RECEIVABLE.value).distinct()
        )
    )


# --- what clients pay against their fee invoices ---------------------------------------------------------------


def paid_on_invoices(session: Session, client_id: int, invoice_ids: list[int]) -> dict[int, int]:
    """{fee invoice id: minor units paid against it} (0 when nothing)."""
    if not invoice_ids:
        return {}
    f = FeeInvoicePayment
    rows = session.execute(
        select(f.invoice_id, func.sum(f.amount_minor))
        .where(f.client_id == client_id, f.invoice_id.in_(invoice_ids))
        .group_by(f.invoice_id)
    )
    found = {int(i): int(total or 0) for i, total in rows}
    return {i: found.get(i, 0) for i in invoice_ids}


def invoice_payments(session: Session, invoice: FeeInvoice) -> list[FeeInvoicePayment]:
    return list(
        session.scalars(
            select(FeeInvoicePayment)
            .where(FeeInvoicePayment.client_id == invoice.client_id, FeeInvoicePayment.invoice_id == invoice.id)
            .order_by(FeeInvoicePayment.paid_on, FeeInvoicePayment.id)
        )
    )


def record_fee_payment(
    session: Session, invoice: FeeInvoice, amount: str, paid_on_text: str, reference: str
) -> FeeInvoicePayment:
    """Record what the client paid against a fee invoice and post it to the books (agency bank +, fees
    receivable -). Idempotent by bank reference: the same reference on the same invoice again returns the payment
    already recorded (when the amount agrees) and posts nothing. Refused, naming the field: an amount that does
    not parse in the invoice's currency, is not positive or is more than the invoice still owes; a day that is not
    a date, is in the future or before the invoice; no reference."""
    reference = " ".join((reference or "").split())[:140]
    if not reference:
        raise ServiceError("give the bank reference of the payment", field="reference")
    try:
        minor = Money.parse(amount, invoice.currency).minor
    except MoneyError as exc:
        raise ServiceError(str(exc), field="amount") from None
    if minor <= 0:
        raise ServiceError("the amount paid must be above zero", field="amount")
    try:
        paid_on = date.fromisoformat((paid_on_text or "").strip())
    except ValueError:
        raise ServiceError("give the day the payment reached the agency's account", field="paid_on") from None
    if paid_on > today_utc():
        raise ServiceError("a payment cannot be dated in the future", field="paid_on")
    if paid_on < invoice.issued_on:
        raise ServiceError("the payment is dated before the invoice was issued", field="paid_on")
    before = session.scalar(
        select(FeeInvoicePayment).where(
            FeeInvoicePayment.client_id == invoice.client_id,
            FeeInvoicePayment.invoice_id == invoice.id,
            FeeInvoicePayment.reference == reference,
        )
    )
    if before is not None:
        if before.amount_minor != minor:
            raise ServiceError(
                f"the payment {reference} is already recorded on this invoice with another amount", field="reference"
            )
        return before
    lock_fee_invoice(session, invoice)
    owed = invoice.total_minor - paid_on_invoices(session, invoice.client_id, [invoice.id])[invoice.id]
    if minor > owed:
        raise ServiceError(
            f"that is more than the invoice still owes ({Money(owed, invoice.currency).format()})", field="amount"
        )
    row = FeeInvoicePayment(
        client_id=invoice.client_id,
        invoice_id=invoice.id,
        currency=invoice.currency,
        amount_minor=minor,
        paid_on=paid_on,
        reference=reference,
        created_by=current_actor().label[:254],
    )
    session.add(row)
    session.flush()
    legs = [Leg(A.AGENCY_BANK, minor), Leg(A.FEES_RECEIVABLE, -minor)]
    memo = f"Fee invoice {invoice.number} paid ({reference})"[:300]
    post(
        session,
        invoice.client_id,
        [Posting(BooksKind.FEE_SETTLED, Source.FEE_PAYMENT, row.id, invoice.currency, paid_on, legs, memo=memo)],
    )
    audit.record(
        session,
        "fee_invoice.paid",
        invoice,
        after={"number": invoice.number, "amount_minor": minor, "reference": reference, "paid_on": paid_on},
    )
    return row


def lock_fee_invoice(session: Session, invoice: FeeInvoice) -> None:
    """Serialise payments recorded against one invoice (PostgreSQL: its row locked until commit; SQLite: the
    database's single writer already does)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            select(FeeInvoice.id)
            .where(FeeInvoice.client_id == invoice.client_id, FeeInvoice.id == invoice.id)
            .with_for_update()
        )
