"""The monthly report's "Collections and fees" section: the agency's books with the client for one month.

Read through `provider.reporting.hooks` (the report freezes the result in its inputs, so it must be JSON). Sums of
the books' entries dated in the month and posted before the report was made (`posted_by`), like the report's own
figures; remittances and fee invoices are those of periods ending in the month.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from clients.journal import Payment
from provider.books.models import AgencyAccount, AgencyEntry, AgencyTransaction, BooksKind, FeeInvoice, RemittanceRun
from provider.books.remittance import STATUS_LABELS

A = AgencyAccount
FIGURES = ("to_agency", "direct", "reversed", "fees", "tax", "remitted", "held")


def _leg(account: AgencyAccount, kinds: tuple[str, ...] | None = None) -> Any:
    e, t = AgencyEntry, AgencyTransaction
    condition = e.account == account.value
    if kinds is not None:
        condition = and_(condition, t.kind.in_(kinds))
    return func.coalesce(func.sum(case((condition, e.amount_minor), else_=0)), 0)


def collections_and_fees(
    session: Session, client_id: int, start: date, end: date, posted_by: datetime | None = None
) -> dict[str, Any]:
    """{"currencies": {currency: {to_agency, direct, reversed, fees, tax, remitted, held}}, "remittances": [...],
    "invoices": [...]} in minor units; "currencies" is empty when the client had no money movement with the agency
    and nothing is held."""
    e, t = AgencyEntry, AgencyTransaction
    joined = and_(t.client_id == e.client_id, t.id == e.transaction_id)
    cut = [t.posted_at <= posted_by] if posted_by is not None else []
    in_month = session.execute(
        select(
            e.currency,
            _leg(A.TRUST_BANK, (BooksKind.COLLECTION.value,)),
            _leg(A.TRUST_BANK, (BooksKind.REVERSAL.value,)),
            _leg(A.FEES_EARNED),
            _leg(A.TAX_PAYABLE),
        )
        .join(t, joined)
        .where(e.client_id == client_id, t.occurred_on >= start, t.occurred_on <= end, *cut)
        .group_by(e.currency)
    ).all()
    held = session.execute(
        select(e.currency, -func.sum(e.amount_minor))
        .join(t, joined)
        .where(e.client_id == client_id, e.account == A.TRUST_LIABILITY.value, t.occurred_on <= end, *cut)
        .group_by(e.currency)
    ).all()
    p = Payment
    direct = session.execute(
        select(p.currency, func.sum(p.amount_minor))
        .where(
            p.client_id == client_id,
            p.received_by == "client",
            p.received_on >= start,
            p.received_on <= end,
            *([p.recorded_at <= posted_by] if posted_by is not None else []),
        )
        .group_by(p.currency)
    ).all()
    runs = session.scalars(
        select(RemittanceRun)
        .where(
            RemittanceRun.client_id == client_id,
            RemittanceRun.period_end >= start,
            RemittanceRun.period_end <= end,
            RemittanceRun.status.in_(("approved", "paid")),
        )
        .order_by(RemittanceRun.period_end, RemittanceRun.currency)
    ).all()
    invoices = session.scalars(
        select(FeeInvoice)
        .where(FeeInvoice.client_id == client_id, FeeInvoice.period_end >= start, FeeInvoice.period_end <= end)
        .order_by(FeeInvoice.number)
    ).all()
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FIGURES, 0))
    for currency, collected, reversed_, fees, tax in in_month:
        row = out[currency]
        row["to_agency"], row["reversed"] = int(collected), -int(reversed_)
        row["fees"], row["tax"] = -int(fees), -int(tax)
    for currency, amount in direct:
        out[currency]["direct"] = int(amount or 0)
    for currency, amount in held:
        if amount:
            out[currency]["held"] = int(amount)
    for run in runs:
        out[run.currency]["remitted"] += run.remit_minor
    return {
        "currencies": {c: v for c, v in sorted(out.items()) if any(v.values())},
        "remittances": [
            {
                "period": f"{r.period_start.isoformat()} to {r.period_end.isoformat()}",
                "currency": r.currency,
                "status": STATUS_LABELS[r.status],
                "remitted": r.remit_minor,
                "netted": r.netted_minor,
            }
            for r in runs
        ],
        "invoices": [
            {
                "number": i.number,
                "issued_on": i.issued_on.isoformat(),
                "currency": i.currency,
                "fees": i.fees_minor,
                "tax": i.tax_minor,
                "total": i.total_minor,
            }
            for i in invoices
        ],
    }
