"""The AR journal: documents (invoices, payments, credit notes) and the append-only double-entry journal.

Every business event posts one `JournalTransaction` whose `JournalEntry` rows sum to zero per currency.
Amounts are integer minor units (debit positive, credit negative). The chart of accounts is the same small
set for every client; each entry carries the client and the debtor (and the document it concerns), so a
client's ledger is a filter on `client_id` and a balance is a sum of entries:

    RECEIVABLE   what a debtor owes, per invoice            (invoice placed +, paid / credited / written off -)
    UNAPPLIED    cash received but not yet allocated         (payment received -, allocated +)
    CREDITS      credit notes not yet allocated              (credit note issued -, allocated +)
    CASH_AGENCY  money the agency received for the client    (payment received +)
    CASH_CLIENT  money the debtor paid the client directly   (payment received +)
    SALES        credit sales placed with the agency         (invoice placed -, credit note +)
    WRITE_OFF    bad debt written off                        (write-off +)
    ADJUSTMENT   corrections of an invoice amount            (adjustment +/-)
    INTEREST_DUE late-payment interest and compensation a debtor owes, per invoice (charged +, waived -)
    LATE_CHARGES the client's income from those charges      (charged -, waived +)

Late-payment charges (clients.interest) never touch RECEIVABLE: principal, aging, DSO and CEI read RECEIVABLE and
the cash accounts only, and `journal_month_totals` keeps neither of the two charge accounts.

`Invoice.open_minor`, `Payment.unapplied_minor` and `CreditNote.unapplied_minor` are cached sums of the
entries above, changed only by the posting code in the same transaction and proven equal to the recomputed
sums by the tests. Journal rows refuse UPDATE and DELETE (ORM guard; triggers from the migrations).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provider.core.audit import register_append_only
from provider.core.clock import now_utc
from provider.core.db import UTCDateTime, created_at, intpk
from provider.core.tenancy import ClientOwned, client_id_without_fk
from provider.extensions import db


class Account(StrEnum):
    RECEIVABLE = "receivable"
    UNAPPLIED = "unapplied"
    CREDITS = "credits"
    CASH_AGENCY = "cash_agency"
    CASH_CLIENT = "cash_client"
    SALES = "sales"
    WRITE_OFF = "write_off"
    ADJUSTMENT = "adjustment"
    INTEREST_DUE = "interest_due"
    LATE_CHARGES = "late_charges"


class TxKind(StrEnum):
    INVOICE = "invoice_placed"
    PAYMENT = "payment_received"
    ALLOCATION = "allocation"
    CREDIT_NOTE = "credit_note_issued"
    WRITE_OFF = "write_off"
    ADJUSTMENT = "adjustment"
    REVERSAL = "reversal"
    INTEREST = "interest_charged"  # late-payment interest (clients.interest)
    COMPENSATION = "late_fee_charged"  # fixed compensation per overdue invoice
    WAIVER = "charges_waived"  # interest or compensation waived, with a reason


class ReceivedBy(StrEnum):
    AGENCY = "agency"
    CLIENT = "client"


class PaymentMethod(StrEnum):
    BANK_TRANSFER = "bank_transfer"
    CARD = "card"
    DIRECT_DEBIT = "direct_debit"
    CHEQUE = "cheque"
    CASH = "cash"
    OTHER = "other"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def _document_index(column: str) -> Index:
    """A (client_id, document) index without the rows that name no such document."""
    where = text(f"{column} IS NOT NULL")
    return Index(None, "client_id", column, postgresql_where=where, sqlite_where=where)


def _debtor_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["client_id", "debtor_id"], ["debtors.client_id", "debtors.id"], ondelete="RESTRICT")


class Invoice(ClientOwned, db.Model):
    """An invoice a client placed with the agency for collection."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("client_id", "number"),
        _debtor_fk(),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("open_minor >= 0 AND open_minor <= amount_minor + adjusted_minor", name="open_in_range"),
        CheckConstraint("due_date >= issue_date", name="due_after_issue"),
        CheckConstraint("length(currency) = 3", name="currency_len"),
        Index(None, "client_id", "debtor_id", "due_date"),
        Index(None, "client_id", "due_date"),
        # the open invoices alone, with what aging and top debtors read: both are index-only scans (0016)
        Index(
            "ix_invoices_open_by_due",
            "client_id",
            "due_date",
            "currency",
            "debtor_id",
            "open_minor",
            postgresql_where=text("open_minor > 0"),
            sqlite_where=text("open_minor > 0"),
        ),
        Index(None, "client_id", "updated_at", "id"),  # the API's change feed (0027)
    )

    id: Mapped[intpk]
    debtor_id: Mapped[int] = mapped_column(BigInteger)
    number: Mapped[str] = mapped_column(String(64))
    issue_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    adjusted_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    open_minor: Mapped[int] = mapped_column(BigInteger)
    po_reference: Mapped[str] = mapped_column(String(64), default="")
    on_hold: Mapped[bool] = mapped_column(default=False)
    placed_at: Mapped[created_at]
    # when the row last changed (the API's `updated_since`); set on insert and on every UPDATE through SQLAlchemy
    # NOT NULL; the server default (now, 0034) covers rows written by raw SQL
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)
    client_id: Mapped[int] = client_id_without_fk()  # last, where the mixin puts it

    debtor = relationship("Debtor", viewonly=True)

    AUDIT_FIELDS = ("number", "debtor_id", "issue_date", "due_date", "currency", "amount_minor", "po_reference")


class Payment(ClientOwned, db.Model):
    """Money a debtor paid, to the agency or directly to the client."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("client_id", "external_ref"),
        UniqueConstraint("client_id", "idempotency_key"),
        _debtor_fk(),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("unapplied_minor >= 0 AND unapplied_minor <= amount_minor", name="unapplied_in_range"),
        CheckConstraint(_in("received_by", ReceivedBy), name="received_by"),
        CheckConstraint(_in("method", PaymentMethod), name="method"),
        Index(None, "client_id", "debtor_id", "received_on"),
        Index(None, "client_id", "updated_at", "id"),  # the API's change feed (0027)
    )

    id: Mapped[intpk]
    debtor_id: Mapped[int] = mapped_column(BigInteger)
    external_ref: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    request_hash: Mapped[str] = mapped_column(String(64))
    received_on: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    unapplied_minor: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(20), default=PaymentMethod.BANK_TRANSFER.value)
    received_by: Mapped[str] = mapped_column(String(10), default=ReceivedBy.AGENCY.value)
    reference: Mapped[str] = mapped_column(String(140), default="")
    recorded_at: Mapped[created_at]
    # when the row last changed (the API's `updated_since`); set on insert and on every UPDATE through SQLAlchemy
    # NOT NULL; the server default (now, 0034) covers rows written by raw SQL
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)


class CreditNote(ClientOwned, db.Model):
    """A credit the client granted a debtor; allocated to invoices like a payment."""

    __tablename__ = "credit_notes"
    __table_args__ = (
        UniqueConstraint("client_id", "number"),
        _debtor_fk(),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("unapplied_minor >= 0 AND unapplied_minor <= amount_minor", name="unapplied_in_range"),
        Index(None, "client_id", "debtor_id"),
        Index(None, "client_id", "updated_at", "id"),  # the API's change feed (0027)
    )

    id: Mapped[intpk]
    debtor_id: Mapped[int] = mapped_column(BigInteger)
    number: Mapped[str] = mapped_column(String(64))
    issued_on: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    unapplied_minor: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(200), default="")
    recorded_at: Mapped[created_at]
    # when the row last changed (the API's `updated_since`); set on insert and on every UPDATE through SQLAlchemy
    # NOT NULL; the server default (now, 0034) covers rows written by raw SQL
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)


@register_append_only
class JournalTransaction(ClientOwned, db.Model):
    """One business event. Never changed; a correction is a new transaction that reverses it."""

    __tablename__ = "journal_transactions"
    __table_args__ = (
        UniqueConstraint("client_id", "reverses_id"),  # a transaction is reversed at most once
        ForeignKeyConstraint(
            ["client_id", "reverses_id"], ["journal_transactions.client_id", "journal_transactions.id"]
        ),
        CheckConstraint(_in("kind", TxKind), name="kind"),
        Index(None, "client_id", "posted_at"),
        Index(None, "client_id", "occurred_on"),  # what happened after a date (KPIs as of a past date, 0017)
        Index(  # the reversals alone: the agency's books look for those they have not posted (0036)
            "ix_journal_transactions_reversals",
            "client_id",
            "id",
            postgresql_where=text("kind = 'reversal'"),
            sqlite_where=text("kind = 'reversal'"),
        ),
    )

    id: Mapped[intpk]
    kind: Mapped[str] = mapped_column(String(24))
    occurred_on: Mapped[date] = mapped_column(Date)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(String(254))
    memo: Mapped[str] = mapped_column(String(300), default="")
    reverses_id: Mapped[int | None] = mapped_column(BigInteger)

    entries: Mapped[list[JournalEntry]] = relationship(
        back_populates="transaction", order_by="JournalEntry.id", viewonly=True
    )


@register_append_only
class JournalEntry(ClientOwned, db.Model):
    """One line of a journal transaction: an amount (debit +, credit -) on an account, for a debtor."""

    __tablename__ = "journal_entries"
    __table_args__ = (
        ForeignKeyConstraint(
            ["client_id", "transaction_id"], ["journal_transactions.client_id", "journal_transactions.id"]
        ),
        _debtor_fk(),
        ForeignKeyConstraint(["client_id", "invoice_id"], ["invoices.client_id", "invoices.id"]),
        ForeignKeyConstraint(["client_id", "payment_id"], ["payments.client_id", "payments.id"]),
        ForeignKeyConstraint(["client_id", "credit_note_id"], ["credit_notes.client_id", "credit_notes.id"]),
        CheckConstraint(_in("account", Account), name="account"),
        CheckConstraint("amount_minor <> 0", name="amount_nonzero"),
        Index(None, "client_id", "transaction_id"),
        _document_index("invoice_id"),
        _document_index("payment_id"),
        _document_index("credit_note_id"),
        Index(None, "client_id", "debtor_id", "account"),
    )

    id: Mapped[intpk]
    transaction_id: Mapped[int] = mapped_column(BigInteger)
    account: Mapped[str] = mapped_column(String(16))
    debtor_id: Mapped[int] = mapped_column(BigInteger)
    invoice_id: Mapped[int | None] = mapped_column(BigInteger)
    payment_id: Mapped[int | None] = mapped_column(BigInteger)
    credit_note_id: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    client_id: Mapped[int] = client_id_without_fk()  # last, where the mixin puts it

    transaction: Mapped[JournalTransaction] = relationship(back_populates="entries", viewonly=True)


class JournalMonthTotal(ClientOwned, db.Model):
    """What the KPIs need of the journal, summed by calendar month: maintained by the database, not by Python.

    A trigger on `journal_entries` (migration 0015) adds, for every statement that inserts entries, one row per
    (currency, account, transaction kind, month the transaction occurred, month after the invoice's due date,
    month the invoice was placed) with the sum and count of the entries it inserted. Only what the KPIs read is
    kept: receivable, both cash accounts, write-off, and the sales entries of credit notes.
    Writers only ever insert, so posting never waits on a shared row; `month_totals.compact()` folds a
    client's rows into one per key (a job, nightly and after bulk loads). Readers always group by the key.

    `due_month` is the month of (due date + 1 day): an entry is still current at the end of month M exactly
    when M < due_month. `placed_month` is set on receivable entries of a payment (allocations and their
    reversals): the month of the invoice's placement, which the recovery stair groups by.
    """

    __tablename__ = "journal_month_totals"
    __table_args__ = (Index(None, "client_id", "month"),)

    id: Mapped[intpk]
    currency: Mapped[str] = mapped_column(String(3))
    account: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(24))
    month: Mapped[date] = mapped_column(Date)
    due_month: Mapped[date | None] = mapped_column(Date)
    placed_month: Mapped[date | None] = mapped_column(Date)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    entries: Mapped[int] = mapped_column(BigInteger)
    last_occurred_on: Mapped[date] = mapped_column(Date)
    client_id: Mapped[int] = client_id_without_fk()  # last, where the mixin puts it
