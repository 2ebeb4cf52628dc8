"""Late-payment charges on a client's ledger: the settings, the accrual run, waivers and what is owed.

Guarantees:
- Charges post to their own journal accounts (`INTEREST_DUE` / `LATE_CHARGES`) with their own kinds, never to
  RECEIVABLE: an invoice's open principal, aging, DSO and CEI are the same with or without them.
- `accrue()` is idempotent per (invoice, kind, accrual date): every posting has a `ChargeAccrual` row unique on that
  key, committed with its journal transaction. It posts the difference between the interest owed through the date
  (recomputed from the invoice's principal movements, `clients.interest_rules`) and what was charged before, so a
  second run posts nothing, a run after days of downtime catches up, and a back-dated payment is credited back.
- It works in batches of invoices; each batch is one transaction (the caller's `checkpoint` commits it), so a run
  killed mid-way leaves whole batches only, and the next run completes the rest once.
- `waive()` posts a reversing transaction (kind `charges_waived`) for at most what the invoice owes in charges,
  with a reason, audited; `stops_accrual` also ends further interest on that invoice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from clients.interest_models import ChargeAccrual, ChargeKind, ChargeWaiver, LatePaymentTerms, ReferenceRate
from clients.interest_rules import (
    SERIES_LABELS,
    Compensation,
    DayCount,
    InterestBasis,
    LateTerms,
    MissingRate,
    Rates,
    RateSeries,
    accrued_interest,
    compensation_due,
    round_half_up,
)
from clients.journal import Account, Invoice, JournalEntry, JournalTransaction, TxKind
from clients.models import Client
from clients.posting import Line, check_balanced, post_many
from provider.core import audit
from provider.core.audit import current_actor
from provider.core.clock import now_utc, today_utc
from provider.core.errors import ServiceError
from provider.core.money import validate_currency

BATCH = 500


def load_rates(session: Session) -> Rates:
    table: dict[str, list[tuple[date, int]]] = defaultdict(list)
    for series, day, bp in session.execute(
        sa.select(ReferenceRate.series, ReferenceRate.effective_from, ReferenceRate.rate_bp)
    ):
        table[series].append((day, bp))
    return Rates(table)


def late_terms(session: Session, client_id: int) -> list[LateTerms]:
    """The client's late-payment terms, oldest first."""
    rows = session.scalars(
        sa.select(LatePaymentTerms)
        .where(LatePaymentTerms.client_id == client_id)
        .order_by(LatePaymentTerms.effective_from)
    )
    return [r.rules() for r in rows]


# --- settings ---------------------------------------------------------------------------------------------


def set_late_payment_terms(session: Session, client: Client, terms: Any, data: dict[str, Any]) -> LatePaymentTerms:
    """Record the late-payment settings of one contract terms version (`sla.models.ContractTerms`).

    Only the version in force today or a later one takes settings; they apply from the version's start, or from
    today when it is already in force (interest already charged is never re-rated). Settings not yet in force may
    be replaced; settings in force are changed by a new contract terms version. Errors name the field.
    """
    if terms.client_id != client.id:
        raise ServiceError("these contract terms belong to another client")
    today = today_utc()
    later = session.scalar(
        sa.select(sa.func.min(type(terms).effective_from)).where(
            type(terms).client_id == client.id, type(terms).effective_from > terms.effective_from
        )
    )
    if later is not None and later <= today:
        raise ServiceError("this version of the terms is no longer in force; set the charges on the current one")
    values = _validated(data)
    existing = session.scalar(
        sa.select(LatePaymentTerms).where(
            LatePaymentTerms.client_id == client.id, LatePaymentTerms.terms_id == terms.id
        )
    )
    starts = max(terms.effective_from, today)
    if existing is not None:
        if existing.effective_from <= today:
            raise ServiceError(
                "these late-payment terms are already in force; record a new contract terms version to change them"
            )
        before = audit.snapshot(existing, LatePaymentTerms.AUDIT_FIELDS)
        for key, value in values.items():
            setattr(existing, key, value)
        existing.effective_from = starts
        session.flush()
        audit.record(
            session,
            "late_terms.changed",
            existing,
            before=before,
            after=audit.snapshot(existing, LatePaymentTerms.AUDIT_FIELDS),
        )
        return existing
    clash = session.scalar(
        sa.select(LatePaymentTerms).where(
            LatePaymentTerms.client_id == client.id, LatePaymentTerms.effective_from == starts
        )
    )
    if clash is not None:
        raise ServiceError("other late-payment terms already start that day", field="effective_from")
    row = LatePaymentTerms(client_id=client.id, terms_id=terms.id, effective_from=starts, **values)
    session.add(row)
    session.flush()
    audit.record(session, "late_terms.set", row, after=audit.snapshot(row, LatePaymentTerms.AUDIT_FIELDS))
    return row


RATE_BACKDATE_DAYS = 31  # a decision recorded late may start this far back; charges already made are not re-rated


def add_reference_rate(session: Session, data: dict[str, Any]) -> ReferenceRate:
    """Record a central bank's new reference rate (agency-wide). The history only grows: a rate starts after the
    series' latest recorded one, at most `RATE_BACKDATE_DAYS` in the past (interest charged already stays as
    charged; days not yet charged use the new rate). Errors name the field."""
    try:
        series = RateSeries(str(data.get("series", "")))
    except ValueError:
        raise ServiceError("choose the reference rate", field="series") from None
    try:
        starts = date.fromisoformat(str(data.get("effective_from", "")).strip())
    except ValueError:
        raise ServiceError("give the day the rate applies from", field="effective_from") from None
    latest = session.scalar(
        sa.select(sa.func.max(ReferenceRate.effective_from)).where(ReferenceRate.series == series.value)
    )
    if latest is not None and starts <= latest:
        raise ServiceError(
            f"the {SERIES_LABELS[series]} already has a rate from {latest:%d %b %Y}; a new rate starts after it",
            field="effective_from",
        )
    if starts < today_utc() - timedelta(days=RATE_BACKDATE_DAYS):
        raise ServiceError(
            f"a new rate may start at most {RATE_BACKDATE_DAYS} days in the past", field="effective_from"
        )
    text = str(data.get("rate", "")).strip()
    negative = text.startswith("-")
    rate_bp = _percent_bp(text[1:] if negative else text, "rate") * (-1 if negative else 1)
    row = ReferenceRate(
        series=series.value, effective_from=starts, rate_bp=rate_bp, note=str(data.get("note", "")).strip()[:200]
    )
    session.add(row)
    session.flush()
    audit.record(session, "reference_rate.added", row, after=audit.snapshot(row, ReferenceRate.AUDIT_FIELDS))
    return row


def _percent_bp(raw: Any, field_name: str) -> int:
    text = str(raw or "").strip().replace(",", ".")
    try:
        whole, _, frac = text.partition(".")
        if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 2:
            raise ValueError
        bp = int(whole) * 100 + int((frac + "00")[:2])
    except ValueError:
        raise ServiceError(
            "give the rate as a percentage with up to two decimals, e.g. 9.50", field=field_name
        ) from None
    if bp > 10_000:
        raise ServiceError("a rate above 100% a year is not a late-payment rate", field=field_name)
    return bp


def _validated(data: dict[str, Any]) -> dict[str, Any]:
    try:
        basis = InterestBasis(data.get("basis", ""))
    except ValueError:
        raise ServiceError("choose how interest is charged", field="basis") from None
    try:
        compensation = Compensation(data.get("compensation") or Compensation.NONE.value)
    except ValueError:
        raise ServiceError("choose the fixed compensation", field="compensation") from None
    try:
        day_count = DayCount(data.get("day_count") or DayCount.ACT_365.value)
    except ValueError:
        raise ServiceError("choose the day count", field="day_count") from None
    rate = _percent_bp(data.get("contract_rate"), "contract_rate") if basis == InterestBasis.CONTRACT else 0
    if basis == InterestBasis.CONTRACT and rate == 0:
        raise ServiceError("a contract rate must be above zero", field="contract_rate")
    fixed_minor, fixed_currency = 0, ""
    if compensation == Compensation.FIXED:
        try:
            fixed_currency = validate_currency(str(data.get("fixed_currency", "")).strip().upper())
        except ValueError as exc:
            raise ServiceError(str(exc), field="fixed_currency") from None
        raw = str(data.get("fixed_minor", "")).strip()
        if not raw.isdigit() or int(raw) <= 0:
            raise ServiceError("give the fixed compensation in minor units (cents), above zero", field="fixed_minor")
        fixed_minor = int(raw)
    return {
        "basis": basis.value,
        "contract_rate_bp": rate,
        "day_count": day_count.value if basis == InterestBasis.CONTRACT else DayCount.ACT_365.value,
        "compensation": compensation.value,
        "fixed_minor": fixed_minor,
        "fixed_currency": fixed_currency,
    }


# --- the accrual run ----------------------------------------------------------------------------------------


@dataclass
class AccrualResult:
    through: date
    invoices_checked: int = 0
    postings: int = 0
    charged: dict[str, int] = field(default_factory=dict)  # currency -> minor units posted (net)
    skipped: list[str] = field(default_factory=list)  # why an invoice could not be charged (a missing rate, ...)

    def summary(self) -> str:
        money = ", ".join(f"{c} {v}" for c, v in sorted(self.charged.items())) or "nothing"
        text = f"{self.invoices_checked} invoices checked through {self.through}, {self.postings} postings ({money})"
        return text + (f"; {len(self.skipped)} skipped" if self.skipped else "")


def _stopped(client_id: int) -> Any:
    w = ChargeWaiver.__table__.c
    return sa.select(w.invoice_id).where(w.client_id == client_id, w.stops_accrual.is_(True))


def candidate_ids(session: Session, client_id: int, through: date) -> list[int]:
    """Invoices that may owe more (or less) than was charged through `through`: overdue and still open, or with
    a principal movement after their due date posted since their last accrual. Three set-based queries."""
    inv, je, tx = Invoice.__table__.c, JournalEntry.__table__.c, JournalTransaction.__table__.c
    acc = ChargeAccrual.__table__.c
    open_ids = set(
        session.scalars(sa.select(inv.id).where(inv.client_id == client_id, inv.due_date < through, inv.open_minor > 0))
    )
    last = (
        sa.select(acc.invoice_id.label("invoice_id"), sa.func.max(acc.created_at).label("last"))
        .where(acc.client_id == client_id)
        .group_by(acc.invoice_id)
        .subquery("last_accrual")
    )
    moved = (
        sa.select(je.invoice_id)
        .select_from(
            JournalEntry.__table__.join(
                JournalTransaction.__table__, sa.and_(tx.client_id == je.client_id, tx.id == je.transaction_id)
            )
            .join(Invoice.__table__, sa.and_(inv.client_id == je.client_id, inv.id == je.invoice_id))
            .outerjoin(last, last.c.invoice_id == je.invoice_id)
        )
        .where(
            je.client_id == client_id,
            je.account == Account.RECEIVABLE.value,
            inv.due_date < through,
            tx.occurred_on > inv.due_date,
            sa.or_(last.c.last.is_(None), tx.posted_at >= last.c.last),
        )
        .distinct()
    )
    stopped = set(session.scalars(_stopped(client_id)))
    return sorted((open_ids | set(session.scalars(moved))) - stopped)


def _movements(session: Session, client_id: int, ids: list[int], through: date) -> dict[int, list[tuple[date, int]]]:
    je, tx = JournalEntry.__table__.c, JournalTransaction.__table__.c
    out: dict[int, list[tuple[date, int]]] = defaultdict(list)
    for invoice_id, on, amount in session.execute(
        sa.select(je.invoice_id, tx.occurred_on, sa.func.sum(je.amount_minor))
        .select_from(
            JournalEntry.__table__.join(
                JournalTransaction.__table__, sa.and_(tx.client_id == je.client_id, tx.id == je.transaction_id)
            )
        )
        .where(
            je.client_id == client_id,
            je.invoice_id.in_(ids),
            je.account == Account.RECEIVABLE.value,
            tx.occurred_on <= through,
        )
        .group_by(je.invoice_id, tx.occurred_on)
    ):
        out[invoice_id].append((on, int(amount)))
    return out


def _charged(session: Session, client_id: int, ids: list[int]) -> dict[tuple[int, str], tuple[int, date]]:
    acc = ChargeAccrual.__table__.c
    return {
        (invoice_id, kind): (int(total), last)
        for invoice_id, kind, total, last in session.execute(
            sa.select(acc.invoice_id, acc.kind, sa.func.sum(acc.amount_minor), sa.func.max(acc.through_date))
            .where(acc.client_id == client_id, acc.invoice_id.in_(ids))
            .group_by(acc.invoice_id, acc.kind)
        )
    }


def owed_by_invoice(session: Session, client_id: int, ids: list[int]) -> dict[int, int]:
    """What each invoice owes in charges now (its INTEREST_DUE entries summed)."""
    je = JournalEntry.__table__.c
    return {
        invoice_id: int(total)
        for invoice_id, total in session.execute(
            sa.select(je.invoice_id, sa.func.sum(je.amount_minor))
            .where(je.client_id == client_id, je.invoice_id.in_(ids), je.account == Account.INTEREST_DUE.value)
            .group_by(je.invoice_id)
        )
    }


def accrue(
    session: Session,
    client: Client,
    through: date,
    *,
    batch_size: int = BATCH,
    checkpoint: Callable[[], None] | None = None,
) -> AccrualResult:
    """Charge the client's overdue invoices what they owe in late-payment interest and compensation through
    `through` (inclusive). Each batch is flushed and handed to `checkpoint` (a job commits it there)."""
    result = AccrualResult(through)
    versions = late_terms(session, client.id)
    if not versions:
        return result
    rates = load_rates(session)
    ids = candidate_ids(session, client.id, through)
    for start in range(0, len(ids), batch_size):
        _accrue_batch(session, client, through, ids[start : start + batch_size], versions, rates, result)
        if checkpoint is not None:
            checkpoint()
    if ids:
        audit.record(
            session,
            "charges.accrued",
            "Client",
            client_id=client.id,
            object_id=client.id,
            after={"through": through.isoformat(), "postings": result.postings, "charged": result.charged},
        )
        session.flush()
    return result


def _accrue_batch(
    session: Session,
    client: Client,
    through: date,
    ids: list[int],
    versions: list[LateTerms],
    rates: Rates,
    result: AccrualResult,
) -> None:
    invoices = session.execute(
        sa.select(Invoice.id, Invoice.debtor_id, Invoice.due_date, Invoice.currency).where(
            Invoice.client_id == client.id, Invoice.id.in_(ids)
        )
    ).all()
    movements = _movements(session, client.id, ids, through)
    charged = _charged(session, client.id, ids)
    owed = owed_by_invoice(session, client.id, ids)
    postings: dict[str, list[tuple[int, str, int, list[Line]]]] = {ChargeKind.INTEREST: [], ChargeKind.COMPENSATION: []}
    for invoice_id, debtor_id, due, currency in invoices:
        result.invoices_checked += 1
        moves = movements.get(invoice_id, [])
        try:
            interest = round_half_up(accrued_interest(moves, due, through, versions, rates))
        except MissingRate as exc:
            result.skipped.append(f"invoice #{invoice_id}: {exc}")
            continue
        targets = {ChargeKind.INTEREST: interest}
        if through > due:
            targets[ChargeKind.COMPENSATION] = compensation_due(moves, due, currency, versions)
        available = owed.get(invoice_id, 0)
        for kind, target in targets.items():
            before, last = charged.get((invoice_id, kind), (0, None))
            delta = target - before
            if delta < 0:
                delta = max(delta, -available)  # never credit back more than the invoice still owes in charges
            if delta == 0 or (last is not None and last >= through):
                continue  # nothing new, or this date (or a later one) was already accrued: the idempotency key
            available += delta
            lines = [
                Line(Account.INTEREST_DUE, debtor_id, currency, delta, invoice_id=invoice_id),
                Line(Account.LATE_CHARGES, debtor_id, currency, -delta, invoice_id=invoice_id),
            ]
            check_balanced(lines)
            postings[kind].append((invoice_id, currency, delta, lines))
    for kind, items in postings.items():
        if not items:
            continue
        tx_kind = TxKind.INTEREST.value if kind == ChargeKind.INTEREST else TxKind.COMPENSATION.value
        memo = (
            f"Late-payment interest through {through.isoformat()}"
            if kind == ChargeKind.INTEREST
            else ("Late-payment compensation")
        )
        memos = [memo if delta > 0 else f"{memo} (recalculated: credited back)" for _, _, delta, _ in items]
        tx_ids = post_many(session, client.id, tx_kind, [(through, lines) for *_, lines in items], memos=memos)
        session.execute(
            sa.insert(ChargeAccrual.__table__),
            [
                {
                    "client_id": client.id,
                    "invoice_id": invoice_id,
                    "kind": kind,
                    "through_date": through,
                    "currency": currency,
                    "amount_minor": delta,
                    "transaction_id": tx_id,
                    "created_at": now_utc(),
                }
                for (invoice_id, currency, delta, _), tx_id in zip(items, tx_ids, strict=True)
            ],
        )
        for _, currency, delta, _ in items:
            result.charged[currency] = result.charged.get(currency, 0) + delta
        result.postings += len(items)
    session.flush()


# --- waivers ------------------------------------------------------------------------------------------------


def waive(
    session: Session,
    client: Client,
    invoice: Invoice,
    reason: str,
    amount_minor: int | None = None,
    *,
    stops_accrual: bool = False,
) -> ChargeWaiver:
    """Waive late-payment charges of one invoice (all it owes in charges when `amount_minor` is None).

    Refused without a reason, for nothing owed, or for more than is owed. The invoice row is locked first so that
    two waivers of the same charges cannot both pass the check.
    """
    if invoice.client_id != client.id:
        raise ServiceError("this invoice belongs to another client")
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("say why the charges are waived", field="reason")
    if len(reason) > 300:
        raise ServiceError("keep the reason under 300 characters", field="reason")
    session.execute(
        sa.select(Invoice.id).where(Invoice.client_id == client.id, Invoice.id == invoice.id).with_for_update()
    )
    owed = owed_by_invoice(session, client.id, [invoice.id]).get(invoice.id, 0)
    if owed <= 0:
        raise ServiceError("this invoice owes no late-payment charges", field="amount")
    amount = owed if amount_minor is None else int(amount_minor)
    if amount <= 0 or amount > owed:
        raise ServiceError(
            "the amount waived must be above zero and at most what the invoice owes in charges", field="amount"
        )
    lines = [
        Line(Account.INTEREST_DUE, invoice.debtor_id, invoice.currency, -amount, invoice_id=invoice.id),
        Line(Account.LATE_CHARGES, invoice.debtor_id, invoice.currency, amount, invoice_id=invoice.id),
    ]
    (tx_id,) = post_many(
        session, client.id, TxKind.WAIVER.value, [(today_utc(), lines)], memo=f"Charges waived: {reason}"[:300]
    )
    waiver = ChargeWaiver(
        client_id=client.id,
        invoice_id=invoice.id,
        currency=invoice.currency,
        amount_minor=amount,
        reason=reason,
        stops_accrual=stops_accrual,
        transaction_id=tx_id,
        user_id=current_actor().user_id,
        waived_at=now_utc(),
    )
    session.add(waiver)
    session.flush()
    audit.record(
        session,
        "charges.waived",
        waiver,
        after={
            "invoice": invoice.number,
            "amount_minor": amount,
            "currency": invoice.currency,
            "reason": reason,
            "stops_accrual": stops_accrual,
        },
    )
    return waiver


# --- what is owed -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChargeTotal:
    currency: str
    interest: int  # charged (net of recalculations)
    compensation: int
    waived: int

    @property
    def owed(self) -> int:
        return self.interest + self.compensation - self.waived


def charge_totals(
    session: Session,
    client_id: int,
    *,
    debtor_id: int | None = None,
    invoice_id: int | None = None,
    through: date | None = None,
) -> list[ChargeTotal]:
    """Late-payment charges per currency (of a client, a debtor or an invoice): interest, compensation, waived."""
    je, tx = JournalEntry.__table__.c, JournalTransaction.__table__.c
    where = [je.client_id == client_id, je.account == Account.INTEREST_DUE.value]
    if debtor_id is not None:
        where.append(je.debtor_id == debtor_id)
    if invoice_id is not None:
        where.append(je.invoice_id == invoice_id)
    if through is not None:
        where.append(tx.occurred_on <= through)
    sums: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for currency, kind, total in session.execute(
        sa.select(je.currency, tx.kind, sa.func.sum(je.amount_minor))
        .select_from(
            JournalEntry.__table__.join(
                JournalTransaction.__table__, sa.and_(tx.client_id == je.client_id, tx.id == je.transaction_id)
            )
        )
        .where(*where)
        .group_by(je.currency, tx.kind)
    ):
        sums[currency][kind] += int(total)
    return [
        ChargeTotal(
            c,
            k[TxKind.INTEREST.value],
            k[TxKind.COMPENSATION.value],
            -k[TxKind.WAIVER.value],
        )
        for c, k in sorted(sums.items())
    ]


def waivers_of(session: Session, client_id: int, invoice_id: int) -> list[ChargeWaiver]:
    return list(
        session.scalars(
            sa.select(ChargeWaiver)
            .where(ChargeWaiver.client_id == client_id, ChargeWaiver.invoice_id == invoice_id)
            .order_by(ChargeWaiver.waived_at.desc())
        )
    )


def interest_start(due: date) -> date:
    return due + timedelta(days=1)
