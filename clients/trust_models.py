"""The agency's trust bank accounts and what their statements say (agency-level tables, no client_id, like
`background_jobs`), and remittance payouts (client-keyed).

- `trust_accounts`: one per currency, identified by its IBAN (or US account number); the account payout files
  are paid from and whose statements the trust reconciliation reads.
- `trust_statement_balances`: the closing booked balance of a trust account on a day, from an imported
  statement (a later import of the same day replaces it).
- `trust_bank_lines`: every booked line of an imported trust statement (credits and debits), with the
  remittance a debit paid once it is matched.
- `trust_reconciliations`: the three-way check per currency and day (the nightly job keeps one per day).
- `run_payouts`: the four-eyes record and payout file of a remittance run (prepared by one person, approved
  by another; the file is made once, at approval, and every download returns its bytes).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from provider.core.db import UTCDateTime, created_at, intpk
from provider.core.tenancy import ClientKeyed
from provider.extensions import db


class TrustAccount(db.Model):
    """The agency's trust bank account for one currency."""

    __tablename__ = "trust_accounts"
    __table_args__ = (UniqueConstraint("currency"), UniqueConstraint("account"))

    id: Mapped[intpk]
    currency: Mapped[str] = mapped_column(String(3))
    name: Mapped[str] = mapped_column(String(70))  # the account holder, as on payout files
    account: Mapped[str] = mapped_column(String(34))  # compact IBAN, or the US account number
    bic: Mapped[str] = mapped_column(String(11), default="")
    routing_number: Mapped[str] = mapped_column(String(9), default="")
    ach_company_id: Mapped[str] = mapped_column(String(10), default="")
    created_at: Mapped[created_at]


class TrustStatementBalance(db.Model):
    __tablename__ = "trust_statement_balances"
    __table_args__ = (UniqueConstraint("trust_account_id", "on_day"),)

    id: Mapped[intpk]
    trust_account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("trust_accounts.id", ondelete="RESTRICT"))
    on_day: Mapped[date] = mapped_column(Date)
    balance_minor: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(255), default="")
    imported_at: Mapped[created_at]
    imported_by: Mapped[str] = mapped_column(String(254), default="")


class TrustBankLine(db.Model):
    __tablename__ = "trust_bank_lines"
    __table_args__ = (
        UniqueConstraint("line_ref"),
        Index("ix_trust_bank_lines_bank_ref", "bank_ref"),  # a payment's line by the bank's reference (0036)
    )

    id: Mapped[intpk]
    trust_account_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("trust_accounts.id", ondelete="RESTRICT"))
    line_ref: Mapped[str] = mapped_column(String(64))  # = the payment reference the client's import gives a credit
    bank_ref: Mapped[str] = mapped_column(String(64), default="")  # the bank's own reference (a payment may carry it)
    booked_on: Mapped[date] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # credit +, debit -
    currency: Mapped[str] = mapped_column(String(3))
    refs: Mapped[str] = mapped_column(String(500), default="")
    run_client_id: Mapped[int | None] = mapped_column(BigInteger)  # the remittance a debit paid, once matched
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    imported_at: Mapped[created_at]


class TrustReconciliation(db.Model):
    __tablename__ = "trust_reconciliations"
    __table_args__ = (
        UniqueConstraint("on_day", "currency"),
        CheckConstraint("status IN ('agrees', 'differs', 'no_statement')", name="status"),
    )

    id: Mapped[intpk]
    on_day: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(12))
    bank_minor: Mapped[int | None] = mapped_column(BigInteger)
    bank_on: Mapped[date | None] = mapped_column(Date)  # the day of the statement balance used
    ledger_minor: Mapped[int] = mapped_column(BigInteger)
    clients_minor: Mapped[int] = mapped_column(BigInteger)  # sum of what the clients' trust balances explain
    held_minor: Mapped[int] = mapped_column(BigInteger)  # trust held for the clients (trust_liability)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunPayout(ClientKeyed, db.Model):
    """Four eyes over a remittance run and its payout file."""

    __tablename__ = "run_payouts"
    __table_args__ = (
        UniqueConstraint("client_id", "run_id"),
        UniqueConstraint("client_id", "end_to_end_id"),
        ForeignKeyConstraint(["client_id", "run_id"], ["remittance_runs.client_id", "remittance_runs.id"]),
        CheckConstraint("kind IN ('sepa', 'nacha', 'csv', 'none')", name="kind"),
    )

    run_id: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    payee_name: Mapped[str] = mapped_column(String(70), default="")
    payee_account: Mapped[str] = mapped_column(String(40), default="")  # masked
    prepared_by_id: Mapped[int | None] = mapped_column(BigInteger)
    prepared_by: Mapped[str] = mapped_column(String(254))
    prepared_at: Mapped[datetime] = mapped_column(UTCDateTime())
    approved_by_id: Mapped[int | None] = mapped_column(BigInteger)
    approved_by: Mapped[str] = mapped_column(String(254), default="")
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(5), default="none")
    message_id: Mapped[str] = mapped_column(String(35))
    end_to_end_id: Mapped[str] = mapped_column(String(35))
    file_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    filename: Mapped[str] = mapped_column(String(120), default="")
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    digest: Mapped[str] = mapped_column(String(64), default="")
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    paid_via: Mapped[str] = mapped_column(String(10), default="")  # statement | manual
    bank_line_ref: Mapped[str] = mapped_column(String(64), default="")
