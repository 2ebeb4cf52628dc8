"""Tables of late-payment charges: reference rates (agency-wide), the late-payment settings of a contract terms
version, one row per charge posted (the accrual's idempotency key) and one per waiver."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from clients.interest_rules import Compensation, DayCount, InterestBasis, LateTerms, RateSeries
from provider.core.db import UTCDateTime, created_at, intpk
from provider.core.tenancy import ClientKeyed
from provider.extensions import db


def _in(column: str, values: type) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class ChargeKind:
    INTEREST = "interest"
    COMPENSATION = "compensation"


class ReferenceRate(db.Model):
    """A central bank's reference rate from `effective_from` on (agency-wide; agency admins keep it up to date)."""

    __tablename__ = "reference_rates"
    __table_args__ = (
        UniqueConstraint("series", "effective_from"),
        CheckConstraint(_in("series", RateSeries), name="series"),
        CheckConstraint("rate_bp > -10000 AND rate_bp < 100000", name="rate_range"),
    )

    id: Mapped[intpk]
    series: Mapped[str] = mapped_column(String(16))
    effective_from: Mapped[date] = mapped_column(Date)
    rate_bp: Mapped[int] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[created_at]

    AUDIT_FIELDS = ("series", "effective_from", "rate_bp", "note")


class LatePaymentTerms(ClientKeyed, db.Model):
    """The late-payment settings of one contract terms version, in force from `effective_from` (the version's
    start, or the day they were recorded when the version was already in force) until the next row's start."""

    __tablename__ = "late_payment_terms"
    __table_args__ = (
        UniqueConstraint("client_id", "terms_id"),
        UniqueConstraint("client_id", "effective_from"),
        ForeignKeyConstraint(["client_id", "terms_id"], ["contract_terms.client_id", "contract_terms.id"]),
        CheckConstraint(_in("basis", InterestBasis), name="basis"),
        CheckConstraint(_in("day_count", DayCount), name="day_count"),
        CheckConstraint(_in("compensation", Compensation), name="compensation"),
        CheckConstraint("contract_rate_bp >= 0 AND contract_rate_bp <= 10000", name="contract_rate_range"),
        CheckConstraint("fixed_minor >= 0", name="fixed_not_negative"),
    )

    terms_id: Mapped[int] = mapped_column(BigInteger)
    effective_from: Mapped[date] = mapped_column(Date)
    basis: Mapped[str] = mapped_column(String(16))
    contract_rate_bp: Mapped[int] = mapped_column(Integer, default=0)
    day_count: Mapped[str] = mapped_column(String(8), default=DayCount.ACT_365.value)
    compensation: Mapped[str] = mapped_column(String(12), default=Compensation.NONE.value)
    fixed_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    fixed_currency: Mapped[str] = mapped_column(String(3), default="")
    created_at: Mapped[created_at]

    AUDIT_FIELDS = (
        "terms_id",
        "effective_from",
        "basis",
        "contract_rate_bp",
        "day_count",
        "compensation",
        "fixed_minor",
        "fixed_currency",
    )

    def rules(self) -> LateTerms:
        return LateTerms(
            self.effective_from,
            InterestBasis(self.basis),
            self.contract_rate_bp,
            DayCount(self.day_count),
            Compensation(self.compensation),
            self.fixed_minor,
            self.fixed_currency,
        )


class ChargeAccrual(ClientKeyed, db.Model):
    """One posting of interest or compensation to an invoice, through a date: unique per (invoice, kind, date),
    which is what makes an accrual run idempotent (a second run, or a re-driven one, finds its rows)."""

    __tablename__ = "charge_accruals"
    __table_args__ = (
        UniqueConstraint("client_id", "invoice_id", "kind", "through_date"),
        ForeignKeyConstraint(["client_id", "invoice_id"], ["invoices.client_id", "invoices.id"]),
        ForeignKeyConstraint(
            ["client_id", "transaction_id"], ["journal_transactions.client_id", "journal_transactions.id"]
        ),
        CheckConstraint("kind IN ('interest', 'compensation')", name="kind"),
        CheckConstraint("amount_minor <> 0", name="amount_nonzero"),
    )

    invoice_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(12))
    through_date: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    transaction_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[created_at]


class ChargeWaiver(ClientKeyed, db.Model):
    """Late-payment charges of an invoice waived (a reversing posting), with the reason and who waived them."""

    __tablename__ = "charge_waivers"
    __table_args__ = (
        ForeignKeyConstraint(["client_id", "invoice_id"], ["invoices.client_id", "invoices.id"]),
        ForeignKeyConstraint(
            ["client_id", "transaction_id"], ["journal_transactions.client_id", "journal_transactions.id"]
        ),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        Index(None, "client_id", "invoice_id"),
    )

    invoice_id: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(300))
    stops_accrual: Mapped[bool] = mapped_column(Boolean, default=False)
    transaction_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    waived_at: Mapped[datetime] = mapped_column(UTCDateTime())
