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
    Source,
)
from provider.books.posting import Leg, Posting, bring_up_to_date, load_schedules, post
from provider.books.pricing import bp_of, schedule_in_force
from provider.books.remittance import _invoice_numbers, _leg
from provider.core import audit
from provider.core.clock import today_utc

A = AgencyAccount
UTC = ZoneInfo("UTC")


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
    t, e, p, d = AgencyTransaction, AgencyEntry, Payment, Debtor
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
        .join(e, and_(e.client_id == t.client_id, e.transaction_id == t.id))
        .outerjoin(p, and_(p.client_id == t.client_id, p.id == t.payment_id))
        .outerjoin(d, and_(d.client_id == p.client_id, d.id == p.debtor_id))
        .where(t.client_id == client_id, t.currency == currency, t.id > from_tx_id, t.id <= upto_tx_id)
        .group_by(t.id, t.kind, t.occurred_on, t.payment_id, t.memo, p.external_ref, d.name, p.amount_minor)
        .order_by(t.id)
    ).all()
    numbers = _invoice_numbers(session, client_id, {r[3] for r in rows if r[3] is not None})
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
