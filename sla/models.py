"""SLA tables: contract terms (versioned), business calendars, SLA clocks with their history, disputes,
and breach notifications. Every table is client-owned (client_id NOT NULL, composite FKs to the tenant's rows).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provider.core.audit import register_append_only
from provider.core.clock import now_utc
from provider.core.db import UTCDateTime, created_at, intpk
from provider.core.tenancy import ClientKeyed, ClientOwned, client_id_without_fk
from provider.extensions import db

MICROS = BigInteger().with_variant(Integer(), "sqlite")  # SQLite's INTEGER holds 64 bits


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def _fk(column: str, table: str, ondelete: str = "CASCADE") -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["client_id", column], [f"{table}.client_id", f"{table}.id"], ondelete=ondelete)


class SlaCode(StrEnum):
    PLACEMENT_ACK = "placement_ack"
    FIRST_CONTACT = "first_contact"
    DISPUTE_ACK = "dispute_ack"
    DISPUTE_RESOLVE = "dispute_resolve"
    QUERY_ANSWER = "query_answer"
    MONTHLY_REPORT = "monthly_report"
    RECOVERY_RATE = "recovery_rate"
    DSO = "dso"


class SlaUnit(StrEnum):
    BUSINESS_DAYS = "business_days"
    BUSINESS_HOURS = "business_hours"
    BUSINESS_DAY_OF_MONTH = "business_day_of_month"  # "by the 5th business day of the month"
    PERCENT = "percent"  # outcome target, reported not clocked
    DAYS = "days"  # outcome target (DSO), reported not clocked


CLOCKED_UNITS = frozenset({SlaUnit.BUSINESS_DAYS, SlaUnit.BUSINESS_HOURS, SlaUnit.BUSINESS_DAY_OF_MONTH})


class ContractTerms(ClientOwned, db.Model):
    """One version of a client's contract terms, in force from `effective_from` (inclusive) until the next
    version's `effective_from`. A clock uses the version in force on the day it starts."""

    __tablename__ = "contract_terms"
    __table_args__ = (
        UniqueConstraint("client_id", "version"),
        UniqueConstraint("client_id", "effective_from"),
        CheckConstraint("at_risk_pct > 0 AND at_risk_pct < 100", name="at_risk_pct"),
    )

    id: Mapped[intpk]
    version: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[date] = mapped_column(Date)
    at_risk_pct: Mapped[int] = mapped_column(Integer, default=75)
    notes: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[created_at]

    targets: Mapped[list[SlaTarget]] = relationship(order_by="SlaTarget.code", viewonly=True)


class SlaTarget(ClientOwned, db.Model):
    """One SLA of a contract version: a clocked allowance (business days/hours, business day of month) or an
    outcome target (recovery %, DSO days) that is reported but not clocked."""

    __tablename__ = "sla_targets"
    __table_args__ = (
        UniqueConstraint("client_id", "terms_id", "code"),
        _fk("terms_id", "contract_terms"),
        CheckConstraint(_in("code", SlaCode), name="code"),
        CheckConstraint(_in("unit", SlaUnit), name="unit"),
        CheckConstraint("target > 0", name="target_positive"),
    )

    id: Mapped[intpk]
    terms_id: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(24))
    unit: Mapped[str] = mapped_column(String(24))
    target: Mapped[int] = mapped_column(Integer)

    @property
    def clocked(self) -> bool:
        return self.unit in CLOCKED_UNITS


class BusinessCalendarRow(ClientOwned, db.Model):
    """A client's working week. Time zone and country come from the client; public holidays from `holidays`."""

    __tablename__ = "business_calendars"
    __table_args__ = (
        UniqueConstraint("client_id"),
        CheckConstraint("work_start_min >= 0 AND work_start_min < work_end_min AND work_end_min <= 1440", name="hours"),
    )

    id: Mapped[intpk]
    work_start_min: Mapped[int] = mapped_column(Integer, default=9 * 60)  # minutes after local midnight
    work_end_min: Mapped[int] = mapped_column(Integer, default=17 * 60)
    workdays: Mapped[str] = mapped_column(String(13), default="0,1,2,3,4")  # Monday = 0
    subdivision: Mapped[str] = mapped_column(String(10), default="")  # e.g. "BY" (Bavaria), "NSW"
    updated_at: Mapped[created_at]


class ClosedDay(ClientOwned, db.Model):
    """An extra day the client (or the agency for that client) does not work: a company holiday."""

    __tablename__ = "calendar_closed_days"
    __table_args__ = (UniqueConstraint("client_id", "day"),)

    id: Mapped[intpk]
    day: Mapped[date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(120), default="")


class ClockState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"


class ClockStatus(StrEnum):
    ON_TIME = "on_time"
    AT_RISK = "at_risk"
    BREACHED = "breached"


class SlaClock(ClientOwned, db.Model):
    """A running SLA commitment. Business seconds are counted in the client's calendar.

    `elapsed_us` is the agency time banked before `running_since` (or `paused_at`), in microseconds, exact;
    `allowance_us` the agency time the target allows. While running, `deadline_at` and `at_risk_at` are the
    UTC instants at which the allowance (and the at-risk share of it) run out, so the breach sweep is a plain
    comparison. Paused and stopped clocks have no deadline. `reported_period` ("2026-05") is the month whose
    monthly report counted the clock's outcome (NULL until a report counts it); see `sla.months`.
    """

    __tablename__ = "sla_clocks"
    __table_args__ = (
        UniqueConstraint("client_id", "subject_type", "subject_id", "code"),
        _fk("terms_id", "contract_terms", "RESTRICT"),
        _fk("dispute_id", "disputes"),
        CheckConstraint(_in("state", ClockState), name="state"),
        CheckConstraint(_in("code", SlaCode), name="code"),
        CheckConstraint("allowance_us > 0 AND elapsed_us >= 0", name="seconds"),
        CheckConstraint("(state = 'running') = (running_since IS NOT NULL)", name="running_since"),
        Index(None, "client_id", "state", "deadline_at"),
        Index(  # the sweep's index: only clocks that can still breach
            None,
            "deadline_at",
            postgresql_where=text("state = 'running' AND breached_at IS NULL"),
            sqlite_where=text("state = 'running' AND breached_at IS NULL"),
        ),
        Index(None, "client_id", "stopped_at"),
    )

    id: Mapped[intpk]
    code: Mapped[str] = mapped_column(String(24))
    terms_id: Mapped[int | None] = mapped_column(BigInteger)
    subject_type: Mapped[str] = mapped_column(String(20))  # dispute, debtor, placement, report, query
    subject_id: Mapped[int] = mapped_column(BigInteger)
    dispute_id: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(10), default=ClockState.RUNNING.value)
    allowance_us: Mapped[int] = mapped_column(MICROS)
    at_risk_pct: Mapped[int] = mapped_column(Integer, default=75)
    elapsed_us: Mapped[int] = mapped_column(MICROS, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    running_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    at_risk_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reported_period: Mapped[str | None] = mapped_column(String(7))

    @property
    def elapsed_s(self) -> int:
        """Whole seconds of agency time banked (for display)."""
        return self.elapsed_us // 1_000_000

    @property
    def allowance_s(self) -> int:
        """Whole seconds of agency time allowed (for display)."""
        return self.allowance_us // 1_000_000

    AUDIT_FIELDS = ("code", "state", "elapsed_us", "deadline_at", "breached_at", "stopped_at")


@register_append_only
class SlaClockEvent(ClientOwned, db.Model):
    """The history of a clock: every start, pause, resume, stop and breach, with the agency time at that
    instant, so any past status can be explained. Append-only."""

    __tablename__ = "sla_clock_events"
    __table_args__ = (_fk("clock_id", "sla_clocks"), Index(None, "client_id", "clock_id", "at"))

    id: Mapped[intpk]
    clock_id: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    event: Mapped[str] = mapped_column(String(12))
    state: Mapped[str] = mapped_column(String(10))
    elapsed_s: Mapped[int] = mapped_column(Integer)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    actor_label: Mapped[str] = mapped_column(String(254), default="")
    note: Mapped[str] = mapped_column(String(200), default="")
    client_id: Mapped[int] = client_id_without_fk()  # (client_id, clock_id) -> sla_clocks proves the client


class DisputeReason(StrEnum):
    PRICING = "pricing"
    QUANTITY = "quantity"
    NOT_RECEIVED = "not_received"
    DAMAGED = "damaged"
    DUPLICATE_BILLING = "duplicate_billing"
    ALREADY_PAID = "already_paid"
    SERVICE_QUALITY = "service_quality"
    OTHER = "other"


class DisputeStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    INVESTIGATING = "investigating"
    AWAITING_CLIENT = "awaiting_client"
    RESOLVED = "resolved"
    WITHDRAWN = "withdrawn"


ACTIVE_DISPUTE = (
    DisputeStatus.OPEN,
    DisputeStatus.ACKNOWLEDGED,
    DisputeStatus.INVESTIGATING,
    DisputeStatus.AWAITING_CLIENT,
)


class Resolution(StrEnum):
    CREDIT_NOTE = "credit_note"  # the debtor is right: a credit note for the disputed amount
    UPHELD = "upheld"  # the invoice is upheld: owed as billed
    PARTIALLY_UPHELD = "partially_upheld"  # part credited (credit note), the rest stands
    WRITTEN_OFF = "written_off"  # the disputed amount is written off


class Dispute(ClientOwned, db.Model):
    """A debtor's dispute of one or more invoices of one client."""

    __tablename__ = "disputes"
    __table_args__ = (
        _fk("debtor_id", "debtors", "RESTRICT"),
        _fk("credit_note_id", "credit_notes", "RESTRICT"),
        CheckConstraint(_in("reason", DisputeReason), name="reason"),
        CheckConstraint(_in("status", DisputeStatus), name="status"),
        CheckConstraint(f"resolution IS NULL OR {_in('resolution', Resolution)}", name="resolution"),
        CheckConstraint(
            f"proposed_resolution IS NULL OR {_in('proposed_resolution', Resolution)}", name="proposed_resolution"
        ),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        Index(None, "client_id", "debtor_id", "status"),
        Index(None, "client_id", "status", "opened_at"),
        Index(None, "client_id", "updated_at", "id"),  # the API's change feed (0027)
    )

    id: Mapped[intpk]
    debtor_id: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16), default=DisputeStatus.OPEN.value)
    summary: Mapped[str] = mapped_column(String(300))
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    owner_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    opened_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    opened_via: Mapped[str] = mapped_column(String(10), default="staff")  # staff | portal
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolution: Mapped[str | None] = mapped_column(String(20))
    # when the row last changed (the API's `updated_since`); set on insert and on every UPDATE through SQLAlchemy
    # NOT NULL; the server default (now, 0034) covers rows written by raw SQL
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)
    resolution_note: Mapped[str] = mapped_column(String(500), default="")
    credited_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_note_id: Mapped[int | None] = mapped_column(BigInteger)
    # a resolution the agency proposed and the client must approve (it costs the client money); None = none pending
    proposed_resolution: Mapped[str | None] = mapped_column(String(20))
    proposed_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    proposal_note: Mapped[str] = mapped_column(String(500), default="", server_default="")
    proposed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    proposed_by_label: Mapped[str] = mapped_column(String(254), default="", server_default="")

    debtor = relationship("Debtor", viewonly=True)
    owner = relationship("User", foreign_keys=[owner_id], viewonly=True)

    AUDIT_FIELDS = (
        "status",
        "reason",
        "amount_minor",
        "owner_id",
        "resolution",
        "credited_minor",
        "proposed_resolution",
        "proposed_amount_minor",
    )

    @property
    def proposal_pending(self) -> bool:
        return self.proposed_resolution is not None and self.status == DisputeStatus.AWAITING_CLIENT.value


class DisputeInvoice(ClientOwned, db.Model):
    __tablename__ = "dispute_invoices"
    __table_args__ = (
        _fk("dispute_id", "disputes"),
        _fk("invoice_id", "invoices", "RESTRICT"),
        Index(None, "client_id", "invoice_id"),
    )

    dispute_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class DisputeMessage(ClientOwned, db.Model):
    """The conversation thread of a dispute (agency and client side)."""

    __tablename__ = "dispute_messages"
    __table_args__ = (_fk("dispute_id", "disputes"), Index(None, "client_id", "dispute_id", "created_at"))

    id: Mapped[intpk]
    dispute_id: Mapped[int] = mapped_column(BigInteger)
    author_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    author_label: Mapped[str] = mapped_column(String(254))
    from_client: Mapped[bool] = mapped_column(Boolean, default=False)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[created_at]


class DisputeEvidence(ClientOwned, db.Model):
    """An uploaded file, stored in the database (every host sees it); always served as a download."""

    __tablename__ = "dispute_evidence"
    __table_args__ = (
        _fk("dispute_id", "disputes"),
        Index(None, "client_id", "dispute_id"),
    )

    id: Mapped[intpk]
    dispute_id: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by_label: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[created_at]


class SlaNotification(ClientOwned, db.Model):
    """A notice to managers (shown on the SLA dashboard). One per (clock, kind): a breach is notified once."""

    __tablename__ = "sla_notifications"
    __table_args__ = (
        UniqueConstraint("client_id", "clock_id", "kind"),
        _fk("clock_id", "sla_clocks"),
        Index(None, "created_at"),
    )

    id: Mapped[intpk]
    clock_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(12), default="breach")
    message: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[created_at]
    client_id: Mapped[int] = client_id_without_fk()  # (client_id, clock_id) -> sla_clocks proves the client


class SlaMonthClose(ClientOwned, db.Model):
    """A month whose SLA compliance has been reported (its monthly report was produced): from `closed_at` on,
    the clocks it counted carry its period in `sla_clocks.reported_period` and its figures never change. An
    outcome recorded later for that month is counted, shown as a correction, in the next report."""

    __tablename__ = "sla_month_closes"

    client_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("clients.id", ondelete="RESTRICT"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)  # "2026-05"
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())  # the month in the client's zone, [starts, ends)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class QueryStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"


class ClientQuery(ClientOwned, db.Model):
    """A question a client user asks the agency from the portal; the agency's first answer meets the
    "query answered within N business hours" SLA (clock subject ("query", id))."""

    __tablename__ = "client_queries"
    __table_args__ = (
        CheckConstraint(_in("status", QueryStatus), name="status"),
        Index(None, "client_id", "status", "asked_at"),
        Index(None, "status", "asked_at"),
    )

    id: Mapped[intpk]
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default=QueryStatus.OPEN.value)
    asked_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    asked_by_label: Mapped[str] = mapped_column(String(254))
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answer: Mapped[str] = mapped_column(Text, default="")
    answered_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    answered_by_label: Mapped[str] = mapped_column(String(254), default="")
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    AUDIT_FIELDS = ("subject", "status", "answered_by_label", "answered_at")


class SlaDailySnapshot(ClientKeyed, db.Model):
    """One client's SLA clocks at the end of one of its days (its calendar day, in its zone): how many were open,
    at risk (the contract's at-risk share used up, not breached) and breached but still open. Written once per
    day by `sla.snapshots` (the at-risk trend of the SLA dashboard); a day already written is never rewritten."""

    __tablename__ = "sla_daily_snapshots"
    __table_args__ = (
        UniqueConstraint("client_id", "day"),
        CheckConstraint(
            "open_clocks >= 0 AND at_risk >= 0 AND breached_open >= 0 AND at_risk + breached_open <= open_clocks",
            name="counts",
        ),
    )

    day: Mapped[date] = mapped_column(Date)
    open_clocks: Mapped[int] = mapped_column(Integer)
    at_risk: Mapped[int] = mapped_column(Integer)
    breached_open: Mapped[int] = mapped_column(Integer)
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime())
