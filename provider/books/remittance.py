"""Remittance runs: what the agency owes each client out of trust, per client, currency and cycle.

A run covers the client's agency transactions with id in (`from_tx_id`, `upto_tx_id`] — from where the last
approved run of that currency stopped up to the newest transaction when it was drafted (taken under
`lock_books`, which serialises every writer of the books, so no transaction with a lower id can commit later).

    net position  = trust held - due from the client, in the run's currency, at `upto_tx_id`
                  = money received in trust - fees (and tax) netted - already remitted - clawbacks
    statement     = brought forward (the last run's carried-forward, <= 0) + one line per payment event in the
                    range (collection +, fee priced later -, reversal -: a clawback when its payment was
                    remitted before) = net position. `draft_run` checks this equality against the books and
                    refuses a run whose statement would not equal them.
    remit         = max(net, 0) paid to the client; carried forward = min(net, 0) (the client still owes it).

Status machine (TRANSITIONS): draft -> approved -> paid, draft -> cancelled. Postings:
    approve_run      REMITTANCE       trust_liability +held, remit_clearing -remit, due_from_client -netted
    mark_run_paid    REMITTANCE_PAID  remit_clearing +remit, trust_bank -remit, and the fees the run netted
                                      leave the trust bank for the agency's own account:
                                      agency_bank +fees, trust_bank -fees
Both are idempotent on (client, 'run', run id, kind). Four-eyes approval, payout files and matching the bank's
debit are layered on top by the payouts module (branch money-ops): it calls `approve_run` and `mark_run_paid`.
"""

from __future__ import annotations

import calendar
import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session

from clients.journal import Account, Invoice, JournalEntry, Payment
from clients.models import Debtor
from provider.books.models import (
    AgencyAccount,
    AgencyEntry,
    AgencyTransaction,
    BooksKind,
    Cycle,
    PaymentFee,
    RemittanceRun,
    RunStatus,
    Source,
)
from provider.books.posting import Leg, Posting, bring_up_to_date, lock_books, post
from provider.core import audit
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.money import format_money

A = AgencyAccount
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.DRAFT: frozenset({RunStatus.APPROVED, RunStatus.CANCELLED}),
    RunStatus.APPROVED: frozenset({RunStatus.PAID}),
    RunStatus.PAID: frozenset(),
    RunStatus.CANCELLED: frozenset(),
}
STATUS_LABELS = {
    RunStatus.DRAFT.value: "Draft",
    RunStatus.APPROVED.value: "Approved",
    RunStatus.PAID.value: "Paid",
    RunStatus.CANCELLED.value: "Cancelled",
}
TRUST_KINDS = (BooksKind.COLLECTION.value, BooksKind.FEE.value, BooksKind.REVERSAL.value)


class RunRefused(ServiceError):
    """A run cannot move to the asked status (or its statement would not equal the books)."""


def _move(run: RemittanceRun, to: RunStatus) -> None:
    if to not in TRANSITIONS[RunStatus(run.status)]:
        raise RunRefused(
            f"a {STATUS_LABELS[run.status].lower()} remittance cannot be {STATUS_LABELS[to.value].lower()}",
            field="status",
        )
    run.status = to.value


def period_of(cycle: str, day: date) -> tuple[date, date]:
    """The cycle's period holding `day`: its calendar month, or its ISO week (Monday to Sunday)."""
    if cycle == Cycle.WEEKLY.value:
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=6)
    return day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1])


def last_complete_period(cycle: str, today: date) -> tuple[date, date]:
    start, _ = period_of(cycle, today)
    return period_of(cycle, start - timedelta(days=1))


# --- statement lines ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatementLine:
    transaction_id: int
    kind: str
    occurred_on: date
    payment_id: int | None
    payment_ref: str
    debtor: str
    invoices: str
    received_by_client: bool
    amount_minor: int  # into the trust account (+) or out of it (-, a reversal)
    fee_minor: int
    tax_minor: int
    net_minor: int  # the client's share: + owed to it, - owed by it (a clawback or a fee priced late)

    @property
    def label(self) -> str:
        if self.kind == BooksKind.REVERSAL.value:
            return "Reversed payment (clawed back)" if self.net_minor < 0 else "Reversed payment"
        if self.kind == BooksKind.FEE.value:
            return "Fee priced after payment"
        return "Payment"


def _leg(*accounts: AgencyAccount) -> Any:
    """The sum of one transaction's legs on these accounts, as a scalar subquery of `AgencyTransaction` (one
    lookup through the entries' (client, transaction) index per transaction). Not a join and GROUP BY: with the
    statistics of a client written since the last ANALYZE (estimated at one row), that join was planned as a
    nested loop over every entry of the client, per transaction (35 s for one client of 4,000 payments)."""
    t, e = AgencyTransaction, AgencyEntry
    return (
        select(func.coalesce(func.sum(e.amount_minor), 0))
        .where(e.client_id == t.client_id, e.transaction_id == t.id, e.account.in_([a.value for a in accounts]))
        .scalar_subquery()
    )


def statement_lines(
    session: Session,
    client_id: int,
    currency: str,
    from_tx_id: int,
    upto_tx_id: int,
    kinds: tuple[str, ...] = TRUST_KINDS,
) -> list[StatementLine]:
    """The trust events of one client and currency in (from, upto], oldest first, with debtor and invoices."""
    t, p, d = AgencyTransaction, Payment, Debtor
    rows = session.execute(
        select(
            t.id,
            t.kind,
            t.occurred_on,
            t.payment_id,
            p.external_ref,
            d.name,
            _leg(A.TRUST_BANK),
            _leg(A.FEES_EARNED),
            _leg(A.TAX_PAYABLE),
            _leg(A.TRUST_LIABILITY, A.DUE_FROM_CLIENT),
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
            t.kind.in_(kinds),
        )
        .order_by(t.id)
    ).all()
    invoices = _range_invoice_numbers(session, client_id, currency, from_tx_id, upto_tx_id, kinds)
    return [
        StatementLine(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4] or "",
            r[5] or "",
            invoices.get(r[3], ""),
            int(r[10]) != 0,
            int(r[6]),
            -int(r[7]),
            -int(r[8]),
            -int(r[9]),
        )
        for r in rows
        if int(r[10]) == 0  # a payment made directly to the client (its reversal) is not a trust event
    ]


def _range_invoice_numbers(
    session: Session, client_id: int, currency: str, from_tx_id: int, upto_tx_id: int, kinds: tuple[str, ...]
) -> dict[int, str]:
    """Per payment of the range's transactions, the numbers of the invoices its money was allocated to: one query
    through the range (the journal's (client, payment) index), not the client's whole journal."""
    t, je, i = AgencyTransaction, JournalEntry, Invoice
    rows = session.execute(
        select(je.payment_id, i.number)
        .select_from(t)
        .join(je, and_(je.client_id == t.client_id, je.payment_id == t.payment_id))
        .join(i, and_(i.client_id == je.client_id, i.id == je.invoice_id))
        .where(
            t.client_id == client_id,
            t.currency == currency,
            t.id > from_tx_id,
            t.id <= upto_tx_id,
            t.kind.in_(kinds),
            t.payment_id.is_not(None),
            je.account == Account.RECEIVABLE.value,
        )
        .distinct()
    )
    found: dict[int, list[str]] = defaultdict(list)
    for payment_id, number in rows:
        if payment_id is not None:
            found[payment_id].append(number)
    return {k: ", ".join(sorted(v)) for k, v in found.items()}


@dataclass(frozen=True)
class RunTotals:
    """What a run's statement adds up to, computed by the database from the same legs as `statement_lines`."""

    lines: int
    collected_minor: int
    reversed_minor: int
    fees_minor: int
    tax_minor: int
    net_minor: int  # the lines' net: brought forward + this = the client's position


def run_totals(session: Session, client_id: int, currency: str, from_tx_id: int, upto_tx_id: int) -> RunTotals:
    """The totals of `statement_lines` over the same range (same legs, same rows left out), in one aggregate
    query: drafting a run needs its totals, not its lines (those are read once, by the statement itself)."""
    t = AgencyTransaction
    per_tx = (
        select(
            _leg(A.TRUST_BANK).label("amount"),
            _leg(A.FEES_EARNED).label("fee"),
            _leg(A.TAX_PAYABLE).label("tax"),
            _leg(A.TRUST_LIABILITY, A.DUE_FROM_CLIENT).label("share"),
            _leg(A.FEES_RECEIVABLE).label("receivable"),
        )
        .where(
            t.client_id == client_id,
            t.currency == currency,
            t.id > from_tx_id,
            t.id <= upto_tx_id,
            t.kind.in_(TRUST_KINDS),
        )
        .subquery()
    )
    c = per_tx.c
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((c.amount > 0, c.amount), else_=0)), 0),
            func.coalesce(func.sum(case((c.amount < 0, -c.amount), else_=0)), 0),
            func.coalesce(func.sum(-c.fee), 0),
            func.coalesce(func.sum(-c.tax), 0),
            func.coalesce(func.sum(-c.share), 0),
        ).where(c.receivable == 0)  # as in statement_lines: a direct payment's events are not trust
    ).one()
    return RunTotals(*(int(v) for v in row))


def position(session: Session, client_id: int, currency: str, upto_tx_id: int | None = None) -> tuple[int, int]:
    """(trust held, due from the client) in one currency, optionally as of a transaction id (the two accounts
    only, through the (client, account, currency) index)."""
    e = AgencyEntry
    held = e.account == A.TRUST_LIABILITY.value
    stmt = select(
        func.coalesce(func.sum(case((held, -e.amount_minor), else_=0)), 0),
        func.coalesce(func.sum(case((held, 0), else_=e.amount_minor)), 0),
    ).where(
        e.client_id == client_id,
        e.currency == currency,
        e.account.in_([A.TRUST_LIABILITY.value, A.DUE_FROM_CLIENT.value]),
    )
    if upto_tx_id is not None:
        stmt = stmt.where(e.transaction_id <= upto_tx_id)
    row = session.execute(stmt).one()
    return int(row[0]), int(row[1])


def _positions_then_and_now(session: Session, client_id: int, currency: str, upto_tx_id: int) -> tuple[int, int, int]:
    """(trust held, due from the client) at `upto_tx_id`, and trust held now: one pass over the two accounts."""
    e = AgencyEntry
    then = e.transaction_id <= upto_tx_id
    held = e.account == A.TRUST_LIABILITY.value
    row = session.execute(
        select(
            func.coalesce(func.sum(case((and_(held, then), -e.amount_minor), else_=0)), 0),
            func.coalesce(func.sum(case((and_(~held, then), e.amount_minor), else_=0)), 0),
            func.coalesce(func.sum(case((held, -e.amount_minor), else_=0)), 0),
        ).where(
            e.client_id == client_id,
            e.currency == currency,
            e.account.in_([A.TRUST_LIABILITY.value, A.DUE_FROM_CLIENT.value]),
        )
    ).one()
    return int(row[0]), int(row[1]), int(row[2])


# --- drafting, approving, paying -----------------------------------------------------------------------


def _last_settled(session: Session, client_id: int, currency: str) -> RemittanceRun | None:
    return session.scalars(
        select(RemittanceRun)
        .where(
            RemittanceRun.client_id == client_id,
            RemittanceRun.currency == currency,
            RemittanceRun.status.in_([RunStatus.APPROVED.value, RunStatus.PAID.value]),
        )
        .order_by(RemittanceRun.upto_tx_id.desc())
        .limit(1)
    ).first()


def _currencies_with_trust(session: Session, client_id: int) -> list[str]:
    return sorted(
        session.scalars(
            select(AgencyTransaction.currency)
            .where(AgencyTransaction.client_id == client_id, AgencyTransaction.kind.in_(TRUST_KINDS))
            .distinct()
        )
    )


def draft_runs(
    session: Session,
    client_id: int,
    cycle: str,
    period_start: date,
    period_end: date,
    *,
    received_until: date | None = None,
) -> list[RemittanceRun]:
    """Bring the books up to date and draft the client's run of each currency for the period (the existing run
    when it was drafted before: idempotent). An older draft still waiting is cancelled and its payments come
    into the new run. A currency with nothing in the range and nothing held drafts no run. `received_until`: see
    `bring_up_to_date` (the demo's replay of history; None in production)."""
    bring_up_to_date(session, client_id, received_until)  # takes lock_books
    upto = session.scalar(select(func.max(AgencyTransaction.id)).where(AgencyTransaction.client_id == client_id)) or 0
    runs = []
    for currency in _currencies_with_trust(session, client_id):
        run = _draft(session, client_id, currency, cycle, period_start, period_end, upto)
        if run is not None:
            runs.append(run)
    return runs


def _draft(
    session: Session, client_id: int, currency: str, cycle: str, start: date, end: date, upto: int
) -> RemittanceRun | None:
    open_runs = list(
        session.scalars(
            select(RemittanceRun).where(
                RemittanceRun.client_id == client_id,
                RemittanceRun.currency == currency,
                RemittanceRun.status == RunStatus.DRAFT.value,
            )
        )
    )
    same = session.scalars(
        select(RemittanceRun).where(
            RemittanceRun.client_id == client_id,
            RemittanceRun.currency == currency,
            RemittanceRun.period_end == end,
            RemittanceRun.status != RunStatus.CANCELLED.value,
        )
    ).first()
    if same is not None:
        return same
    last = _last_settled(session, client_id, currency)
    start_tx, brought = (last.upto_tx_id, last.carried_forward_minor) if last else (0, 0)
    totals = run_totals(session, client_id, currency, start_tx, upto)
    held, due = position(session, client_id, currency, upto)
    net = held - due
    if not totals.lines and net == 0 and brought == 0:
        return None
    stated = brought + totals.net_minor
    if stated != net:
        raise RunRefused(
            f"the statement of {currency} would not equal the books (lines {stated}, books {net}); nothing was drafted"
        )
    for old in open_runs:
        _move(old, RunStatus.CANCELLED)
        old.status_reason = f"replaced by the remittance for the period ending {end.isoformat()}"
    session.flush()
    run = RemittanceRun(
        client_id=client_id,
        currency=currency,
        cycle=cycle,
        period_start=start,
        period_end=end,
        status=RunStatus.DRAFT.value,
        from_tx_id=start_tx,
        upto_tx_id=upto,
        brought_forward_minor=brought,
        collected_minor=totals.collected_minor,
        reversed_minor=totals.reversed_minor,
        fees_minor=totals.fees_minor,
        tax_minor=totals.tax_minor,
        net_minor=net,
        remit_minor=max(net, 0),
        carried_forward_minor=min(net, 0),
        netted_minor=totals.fees_minor + totals.tax_minor,
        lines=totals.lines,
    )
    session.add(run)
    session.flush()
    audit.record(session, "remittance.draft", run, after={"currency": currency, "period_end": end, "net_minor": net})
    return run


def approve_run(session: Session, run: RemittanceRun, approver_label: str | None = None) -> RemittanceRun:
    """draft -> approved: the client's share at the run's watermark leaves trust held for the clearing account
    (what the bank will pay), and what the client owed is netted. Refused when trust held has fallen below
    what the run takes (a payment in it was reversed after drafting: draft the run again). The payouts module
    wraps this with its four-eyes check; calling it twice refuses the second call and posts nothing."""
    lock_books(session, run.client_id)
    session.refresh(run)
    if run.status != RunStatus.DRAFT.value:
        _move(run, RunStatus.APPROVED)  # raises with the reason
    held_then, due_then, held_now = _positions_then_and_now(session, run.client_id, run.currency, run.upto_tx_id)
    if held_now < held_then:
        raise RunRefused(
            "a payment in this remittance was reversed after it was drafted, so trust holds "
            f"{format_money(held_now, run.currency)}, less than the {format_money(held_then, run.currency)} it would "
            "pay out; recalculate the remittance",
            field="status",
        )
    netted = min(due_then, held_then)
    legs = [
        Leg(A.TRUST_LIABILITY, held_then),
        Leg(A.REMITTANCE_CLEARING, -run.remit_minor),
        Leg(A.DUE_FROM_CLIENT, -netted),
    ]
    post(
        session,
        run.client_id,
        [Posting(BooksKind.REMITTANCE, Source.RUN, run.id, run.currency, now_utc().date(), legs, memo=f"run {run.id}")],
    )
    _move(run, RunStatus.APPROVED)
    run.approved_at, run.approved_by = now_utc(), (approver_label or audit.current_actor().label)[:254]
    session.flush()
    audit.record(session, "remittance.approve", run, after={"remit_minor": run.remit_minor, "netted_minor": netted})
    return run


def mark_run_paid(session: Session, run: RemittanceRun, paid_on: date, bank_reference: str = "") -> RemittanceRun:
    """approved -> paid, when the bank statement shows the debit: the remittance and the fees the run netted
    leave the trust bank. Refused unless approved; a second call for a paid run refuses and posts nothing."""
    lock_books(session, run.client_id)
    session.refresh(run)
    _move(run, RunStatus.PAID)
    legs = [
        Leg(A.REMITTANCE_CLEARING, run.remit_minor),
        Leg(A.AGENCY_BANK, run.netted_minor),
        Leg(A.TRUST_BANK, -(run.remit_minor + run.netted_minor)),
    ]
    post(session, run.client_id, [Posting(BooksKind.REMITTANCE_PAID, Source.RUN, run.id, run.currency, paid_on, legs)])
    run.paid_at, run.paid_on, run.bank_reference = now_utc(), paid_on, bank_reference[:140]
    session.flush()
    audit.record(session, "remittance.paid", run, after={"paid_on": paid_on, "bank_reference": bank_reference[:140]})
    return run


def cancel_run(session: Session, run: RemittanceRun, reason: str) -> RemittanceRun:
    """draft -> cancelled (nothing was posted for a draft); its payments come into the next run."""
    if not reason.strip():
        raise RunRefused("say why the remittance is cancelled", field="reason")
    _move(run, RunStatus.CANCELLED)
    run.status_reason = reason.strip()[:300]
    session.flush()
    audit.record(session, "remittance.cancel", run, after={"reason": run.status_reason})
    return run


def recalculate_run(session: Session, run: RemittanceRun) -> RemittanceRun | None:
    """Cancel a draft and draft its period again from the books as they are now."""
    cancel_run(session, run, "recalculated")
    runs = draft_runs(session, run.client_id, run.cycle, run.period_start, run.period_end)
    return next((r for r in runs if r.currency == run.currency), None)


# --- the statement as a file ---------------------------------------------------------------------------

CSV_HEADER = [
    "Date",
    "Line",
    "Payment reference",
    "Debtor",
    "Invoices",
    "Currency",
    "Amount",
    "Fee",
    "Tax on fee",
    "Net to you",
]


def _csv_safe(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _decimal(minor: int, currency: str) -> str:
    from provider.core.money import exponent

    exp = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, frac = divmod(abs(minor), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}" if exp else f"{sign}{whole}"


def statement_csv(session: Session, run: RemittanceRun, lines: list[StatementLine] | None = None) -> bytes:
    """The run's statement as CSV: brought forward, one row per line, totals. Amounts in decimal notation.
    `lines`: the run's `statement_lines` when the caller has read them already (the PDF beside it)."""
    cur = run.currency
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    writer.writerow(
        [
            run.period_start.isoformat(),
            "Brought forward",
            "",
            "",
            "",
            cur,
            "",
            "",
            "",
            _decimal(run.brought_forward_minor, cur),
        ]
    )
    if lines is None:
        lines = statement_lines(session, run.client_id, cur, run.from_tx_id, run.upto_tx_id)
    for x in lines:
        writer.writerow(
            [
                x.occurred_on.isoformat(),
                x.label,
                _csv_safe(x.payment_ref),
                _csv_safe(x.debtor),
                _csv_safe(x.invoices),
                cur,
                _decimal(x.amount_minor, cur),
                _decimal(x.fee_minor, cur),
                _decimal(x.tax_minor, cur),
                _decimal(x.net_minor, cur),
            ]
        )
    writer.writerow(
        [
            run.period_end.isoformat(),
            "Total",
            "",
            "",
            "",
            cur,
            _decimal(run.collected_minor - run.reversed_minor, cur),
            _decimal(run.fees_minor, cur),
            _decimal(run.tax_minor, cur),
            _decimal(run.net_minor, cur),
        ]
    )
    return out.getvalue().encode("utf-8")


def unpriced_in_run(session: Session, run: RemittanceRun) -> int:
    """How many payments of the run's lines still wait for a fee (their fee comes on a later statement)."""
    t, f = AgencyTransaction, PaymentFee
    return int(
        session.scalar(
            select(func.count())
            .select_from(t)
            .join(f, and_(f.client_id == t.client_id, f.payment_id == t.payment_id))
            .where(
                t.client_id == run.client_id,
                t.id > run.from_tx_id,
                t.id <= run.upto_tx_id,
                t.kind == BooksKind.COLLECTION.value,
                f.status == "unpriced",
            )
        )
        or 0
    )
