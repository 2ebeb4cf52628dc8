"""Tables of the agency's books (issue 20): fee schedules, fees per payment, the agency's double-entry journal,
remittance runs and fee invoices. Every client-owned table is `ClientKeyed` (DESIGN §6).

The agency's journal (`agency_transactions` / `agency_entries`) is kept apart from the clients' ledgers. Amounts
are integer minor units, debit positive, credit negative; every transaction sums to zero per currency (built so
by `provider.books.posting.post`, the only writer). Rows are append-only: the ORM guard refuses UPDATE/DELETE on
both databases, and on PostgreSQL the application role has no UPDATE/DELETE privilege on them (migration 0025;
no trigger, which Citus would refuse on a distributed table). Chart of accounts, one set per client and currency:

    TRUST_BANK        the agency's trust bank account (its share for this client)       debit balance
    TRUST_LIABILITY   held in trust for the client, owed to it ("trust held", never < 0)  credit balance
    FEES_EARNED       the agency's fees                                                  credit balance
    TAX_PAYABLE       tax charged on fees                                                credit balance
    FEES_RECEIVABLE   fees (+ tax) the client owes for payments made directly to it      debit balance
    DUE_FROM_CLIENT   trust money the client owes back (a payment reversed, or a fee
                      priced, after its money was remitted); netted on the next run      debit balance
    REMITTANCE_CLEARING  approved remittances not yet paid out of the trust bank         credit balance
    AGENCY_BANK       fees taken out of the trust bank into the agency's own account     debit balance

Posting idempotency: (client_id, source, source_id, kind) is unique, so a job that runs twice posts once.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provider.core.audit import register_append_only
from provider.core.db import Base, UTCDateTime, created_at
from provider.core.tenancy import ClientKeyed
from provider.extensions import db


class AgencyAccount(StrEnum):
    TRUST_BANK = "trust_bank"
    TRUST_LIABILITY = "trust_liability"
    FEES_EARNED = "fees_earned"
    TAX_PAYABLE = "tax_payable"
    FEES_RECEIVABLE = "fees_receivable"
    DUE_FROM_CLIENT = "due_from_client"
    REMITTANCE_CLEARING = "remit_clearing"
    AGENCY_BANK = "agency_bank"


class BooksKind(StrEnum):
    COLLECTION = "collection"  # a payment to the agency: trust in, client's share held, fee netted
    FEE = "fee"  # the fee of a payment to the agency priced after it was collected (re-price)
    DIRECT_FEE = "direct_fee"  # the fee of a payment made directly to the client: receivable from the client
    REVERSAL = "reversal"  # a payment reversed (bounced): its trust money and its fee undone
    PERIOD_FEE = "period_fee"  # flat fees of a month (per placement, per letter) and the top-up to the minimum
    REMITTANCE = "remittance"  # a run approved: the client's share moves to clearing, amounts due are netted
    REMITTANCE_PAID = "remittance_paid"  # the bank paid the run: clearing and netted fees leave the trust bank
    FEE_SETTLED = "fee_settled"  # the client paid (part of) a fee invoice to the agency's own account


class Source(StrEnum):
    PAYMENT = "payment"
    MONTH = "month"
    RUN = "run"
    FEE_PAYMENT = "fee_paid"  # (the column holds 10 characters)


class Cycle(StrEnum):
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class FeeStatus(StrEnum):
    PRICED = "priced"
    UNPRICED = "unpriced"  # no schedule in force, or no tier for the account: the payment posted, the fee waits
    VOID = "void"  # the payment was reversed before its fee could be priced: no fee is due


class RunStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    PAID = "paid"
    CANCELLED = "cancelled"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def _fk(column: str, table: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["client_id", column], [f"{table}.client_id", f"{table}.id"])


class FeeSchedule(ClientKeyed, db.Model):
    """One version of a client's fee schedule (part of its contract), in force from `effective_from` until the
    next version's. Rates are basis points (1 % = 100); flat amounts are minor units of `currency`."""

    __tablename__ = "fee_schedules"
    __table_args__ = (
        UniqueConstraint("client_id", "version"),
        UniqueConstraint("client_id", "effective_from"),
        CheckConstraint(_in("remittance_cycle", Cycle), name="cycle"),
        CheckConstraint("tax_rate_bp >= 0 AND tax_rate_bp <= 10000", name="tax_rate"),
        CheckConstraint(
            "per_placement_minor >= 0 AND per_letter_minor >= 0 AND monthly_minimum_minor >= 0", name="flat_fees"
        ),
    )

    version: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    tax_rate_bp: Mapped[int] = mapped_column(Integer, default=0)
    per_placement_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    per_letter_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    monthly_minimum_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    remittance_cycle: Mapped[str] = mapped_column(String(10), default=Cycle.MONTHLY.value)
    note: Mapped[str] = mapped_column(String(300), default="")
    # the client's billing address (lines) as printed on its remittance statements and fee invoices
    bill_to: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[created_at]
    created_by: Mapped[str] = mapped_column(String(254), default="")

    tiers: Mapped[list[FeeTier]] = relationship(
        primaryjoin="and_(FeeTier.client_id == FeeSchedule.client_id, FeeTier.schedule_id == FeeSchedule.id)",
        foreign_keys="[FeeTier.client_id, FeeTier.schedule_id]",
        order_by="(FeeTier.min_age_days, FeeTier.min_amount_minor)",
        viewonly=True,
    )


class FeeTier(ClientKeyed, db.Model):
    """A rate for accounts `min_age_days`..`max_age_days` past due when placed and `min_amount_minor`..
    `max_amount_minor` placed (bounds inclusive, NULL = open): `rate_bp` on payments to the agency,
    `direct_rate_bp` on payments made directly to the client."""

    __tablename__ = "fee_tiers"
    __table_args__ = (
        _fk("schedule_id", "fee_schedules"),
        UniqueConstraint(
            "client_id", "schedule_id", "min_age_days", "min_amount_minor", name="uq_fee_tiers_schedule_bounds"
        ),
        CheckConstraint("min_age_days >= 0 AND (max_age_days IS NULL OR max_age_days >= min_age_days)", name="ages"),
        CheckConstraint(
            "min_amount_minor >= 0 AND (max_amount_minor IS NULL OR max_amount_minor >= min_amount_minor)",
            name="amounts",
        ),
        CheckConstraint("rate_bp BETWEEN 0 AND 10000 AND direct_rate_bp BETWEEN 0 AND 10000", name="rates"),
    )

    schedule_id: Mapped[int] = mapped_column(BigInteger)
    min_age_days: Mapped[int] = mapped_column(Integer, default=0)
    max_age_days: Mapped[int | None] = mapped_column(Integer)
    min_amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    max_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    rate_bp: Mapped[int] = mapped_column(Integer)
    direct_rate_bp: Mapped[int] = mapped_column(Integer)


class PaymentFee(ClientKeyed, db.Model):
    """The fee of one payment (one row per payment): how it was priced, or why it is not priced yet. The
    agency journal carries the amounts; this row says which schedule, tier, age and rate made them."""

    __tablename__ = "payment_fees"
    __table_args__ = (
        UniqueConstraint("client_id", "payment_id"),
        _fk("payment_id", "payments"),
        CheckConstraint(_in("status", FeeStatus), name="status"),
        Index(None, "client_id", "status"),
    )

    payment_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(300), default="")
    direct: Mapped[bool] = mapped_column(default=False)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    schedule_id: Mapped[int | None] = mapped_column(BigInteger)
    tier_id: Mapped[int | None] = mapped_column(BigInteger)
    age_days: Mapped[int | None] = mapped_column(Integer)
    placed_minor: Mapped[int | None] = mapped_column(BigInteger)
    rate_bp: Mapped[int | None] = mapped_column(Integer)
    tax_rate_bp: Mapped[int | None] = mapped_column(Integer)
    fee_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


@register_append_only
class AgencyTransaction(ClientKeyed, db.Model):
    """One event in the agency's books. Never changed; `(client_id, source, source_id, kind)` is unique."""

    __tablename__ = "agency_transactions"
    __table_args__ = (
        UniqueConstraint("client_id", "source", "source_id", "kind"),
        CheckConstraint(_in("kind", BooksKind), name="kind"),
        CheckConstraint(_in("source", Source), name="source"),
        Index(
            None,
            "client_id",
            "payment_id",
            postgresql_where=text("payment_id IS NOT NULL"),
            sqlite_where=text("payment_id IS NOT NULL"),
        ),
    )

    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(10))
    source_id: Mapped[int] = mapped_column(BigInteger)
    payment_id: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    occurred_on: Mapped[date] = mapped_column(Date)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_label: Mapped[str] = mapped_column(String(254))
    memo: Mapped[str] = mapped_column(String(300), default="")


@register_append_only
class AgencyEntry(ClientKeyed, db.Model):
    """One line of an agency transaction: debit +, credit -, on one account, traceable to its payment."""

    __tablename__ = "agency_entries"
    __table_args__ = (
        _fk("transaction_id", "agency_transactions"),
        CheckConstraint(_in("account", AgencyAccount), name="account"),
        CheckConstraint("amount_minor <> 0", name="amount_nonzero"),
        Index(None, "client_id", "transaction_id"),
        Index(None, "client_id", "account", "currency"),
    )

    transaction_id: Mapped[int] = mapped_column(BigInteger)
    account: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    payment_id: Mapped[int | None] = mapped_column(BigInteger)


class RemittanceRun(ClientKeyed, db.Model):
    """A remittance to one client in one currency, covering the agency transactions with id in
    (`from_tx_id`, `upto_tx_id`]. Status machine (`provider.books.remittance.TRANSITIONS`):
    draft -> approved -> paid; draft -> cancelled (superseded by a later run, or recalculated).

    brought_forward + the statement's lines = `net_minor` (the client's position in trust at `upto_tx_id`);
    at approval `remit_minor` = max(net, 0) is owed to the client and `carried_forward_minor` = min(net, 0)."""

    __tablename__ = "remittance_runs"
    __table_args__ = (
        CheckConstraint(_in("status", RunStatus), name="status"),
        CheckConstraint(_in("cycle", Cycle), name="cycle"),
        Index(
            "uq_remittance_runs_open_period",
            "client_id",
            "currency",
            "period_end",
            unique=True,
            postgresql_where=text("status <> 'cancelled'"),
            sqlite_where=text("status <> 'cancelled'"),
        ),
        Index(None, "client_id", "currency", "status"),
    )

    currency: Mapped[str] = mapped_column(String(3))
    cycle: Mapped[str] = mapped_column(String(10))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default=RunStatus.DRAFT.value)
    from_tx_id: Mapped[int] = mapped_column(BigInteger)
    upto_tx_id: Mapped[int] = mapped_column(BigInteger)
    brought_forward_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    collected_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    reversed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    fees_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    net_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    remit_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    carried_forward_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    netted_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # fees + tax kept from the trust money
    lines: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[created_at]
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    approved_by: Mapped[str] = mapped_column(String(254), default="")
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_on: Mapped[date | None] = mapped_column(Date)
    bank_reference: Mapped[str] = mapped_column(String(140), default="")
    status_reason: Mapped[str] = mapped_column(String(300), default="")


class FeeInvoice(ClientKeyed, db.Model):
    """A fee invoice to a client for the fees of payments made directly to it (and the month's flat fees),
    covering the agency transactions (`from_tx_id`, `upto_tx_id`]. `number` is the agency's own sequence, no
    gaps (taken from `agency_counters` in the issuing transaction)."""

    __tablename__ = "fee_invoices"
    __table_args__ = (
        UniqueConstraint("client_id", "number"),
        UniqueConstraint("client_id", "currency", "period_end"),
    )

    number: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    issued_on: Mapped[date] = mapped_column(Date)
    from_tx_id: Mapped[int] = mapped_column(BigInteger)
    upto_tx_id: Mapped[int] = mapped_column(BigInteger)
    fees_minor: Mapped[int] = mapped_column(BigInteger)
    tax_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    lines: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[created_at]


class FeeInvoicePayment(ClientKeyed, db.Model):
    """What the client paid against one fee invoice: a bank reference (unique per invoice, so the same payment
    recorded twice is recorded once), the day and the amount, in the invoice's currency. Posted to the books as
    `fee_settled`."""

    __tablename__ = "fee_invoice_payments"
    __table_args__ = (
        UniqueConstraint("client_id", "invoice_id", "reference"),
        _fk("invoice_id", "fee_invoices"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )

    invoice_id: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    paid_on: Mapped[date] = mapped_column(Date)
    reference: Mapped[str] = mapped_column(String(140))
    created_at: Mapped[created_at]
    created_by: Mapped[str] = mapped_column(String(254), default="")


class AgencyCounter(Base):
    """The agency's own sequences (not client-owned): `fee_invoice` numbers. Taken with a row lock in the
    transaction that uses the number, so a rolled-back transaction leaves no gap."""

    __tablename__ = "agency_counters"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)
