"""Dunning tables. Every one is client-keyed (DESIGN §6): `client_id` leads the primary key and every unique
key, foreign keys between them carry `client_id`.

dunning_policies      one version of a client's dunning policy, effective-dated; proposed by the agency,
                      approved (or rejected) by a client admin in the portal; only an approved version runs
dunning_stages        the steps of a version: days past due, channel (e-mail, letter, collector task)
dunning_templates     the text of a stage, per language and per debtor segment ('' = every segment), with a tone
dunning_runs          one daily run of one client (unique per client and run date)
dunning_decisions     what the run decided for each debtor due a stage: sent, or skipped with the reason
letter_batches        the letters of one run: one print file and a CSV manifest for the mail house
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
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from provider.core.db import UTCDateTime, created_at
from provider.core.tenancy import ClientKeyed
from provider.extensions import db


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def _fk(column: str, table: str, ondelete: str = "CASCADE") -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["client_id", column], [f"{table}.client_id", f"{table}.id"], ondelete=ondelete)


class PolicyStatus(StrEnum):
    PROPOSED = "proposed"
    APPROVED = "approved"
    REJECTED = "rejected"


class Channel(StrEnum):
    EMAIL = "email"
    LETTER = "letter"
    TASK = "task"  # hand to a collector for a call


class Tone(StrEnum):
    FRIENDLY = "friendly"
    NEUTRAL = "neutral"
    FIRM = "firm"


class Outcome(StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"


class RunStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class BatchStatus(StrEnum):
    READY = "ready"
    DISPATCHED = "dispatched"


CHANNEL_LABELS = {Channel.EMAIL: "E-mail", Channel.LETTER: "Letter", Channel.TASK: "Call by a collector"}
STATUS_LABELS = {
    PolicyStatus.PROPOSED: "Waiting for the client's approval",
    PolicyStatus.APPROVED: "Approved",
    PolicyStatus.REJECTED: "Rejected",
}
TONE_LABELS = {Tone.FRIENDLY: "Friendly", Tone.NEUTRAL: "Neutral", Tone.FIRM: "Firm"}


class DunningPolicy(ClientKeyed, db.Model):
    """One version of a client's dunning policy, in force from `effective_from` (client-local date) until the
    next approved version's. Amounts under `min_amount_minor` (in the client's base currency, or the same
    number of minor units of the debtor's currency) are not chased; `min_gap_days` is the least time between
    two reminders to one debtor (the per-period limit of the contact gate for dunning)."""

    __tablename__ = "dunning_policies"
    __table_args__ = (
        UniqueConstraint("client_id", "version"),
        CheckConstraint(_in("status", PolicyStatus), name="status"),
        CheckConstraint("min_amount_minor >= 0", name="min_amount"),
        CheckConstraint("min_gap_days >= 0", name="min_gap"),
        Index(None, "client_id", "status", "effective_from"),
    )

    version: Mapped[int] = mapped_column(Integer)
    effective_from: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default=PolicyStatus.PROPOSED.value)
    min_amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    min_gap_days: Mapped[int] = mapped_column(Integer, default=7)
    notes: Mapped[str] = mapped_column(String(500), default="")
    proposed_by_label: Mapped[str] = mapped_column(String(254), default="")
    decided_by_label: Mapped[str] = mapped_column(String(254), default="")
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[created_at]

    stages: Mapped[list[DunningStage]] = relationship(
        order_by="DunningStage.days_past_due",
        primaryjoin="and_(DunningPolicy.client_id == foreign(DunningStage.client_id), "
        "DunningPolicy.id == foreign(DunningStage.policy_id))",
        viewonly=True,
    )

    AUDIT_FIELDS = ("version", "effective_from", "status", "min_amount_minor", "min_gap_days", "notes")

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[PolicyStatus(self.status)]


class DunningStage(ClientKeyed, db.Model):
    """A step of a policy version: due once the debtor's oldest overdue invoice is `days_past_due` days late."""

    __tablename__ = "dunning_stages"
    __table_args__ = (
        UniqueConstraint("client_id", "policy_id", "position"),
        UniqueConstraint("client_id", "policy_id", "days_past_due"),
        _fk("policy_id", "dunning_policies"),
        CheckConstraint(_in("channel", Channel), name="channel"),
        CheckConstraint("days_past_due >= 0", name="days"),
    )

    policy_id: Mapped[int] = mapped_column(BigInteger)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(80))
    days_past_due: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(10))

    templates: Mapped[list[DunningTemplate]] = relationship(
        order_by="(DunningTemplate.language, DunningTemplate.segment)",
        primaryjoin="and_(DunningStage.client_id == foreign(DunningTemplate.client_id), "
        "DunningStage.id == foreign(DunningTemplate.stage_id))",
        viewonly=True,
    )

    @property
    def channel_label(self) -> str:
        return CHANNEL_LABELS[Channel(self.channel)]


class DunningTemplate(ClientKeyed, db.Model):
    """The words of one stage in one language for one debtor segment ('' = every segment)."""

    __tablename__ = "dunning_templates"
    __table_args__ = (
        UniqueConstraint("client_id", "stage_id", "language", "segment"),
        _fk("stage_id", "dunning_stages"),
        CheckConstraint(_in("tone", Tone), name="tone"),
    )

    stage_id: Mapped[int] = mapped_column(BigInteger)
    language: Mapped[str] = mapped_column(String(8))
    segment: Mapped[str] = mapped_column(String(40), default="")
    tone: Mapped[str] = mapped_column(String(10), default=Tone.NEUTRAL.value)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    updated_by_label: Mapped[str] = mapped_column(String(254), default="")
    updated_at: Mapped[created_at]

    AUDIT_FIELDS = ("language", "segment", "tone", "subject", "body")


class DunningRun(ClientKeyed, db.Model):
    """One client's run for one (client-local) date: at most one per day, whatever triggers it."""

    __tablename__ = "dunning_runs"
    __table_args__ = (
        UniqueConstraint("client_id", "run_date"),
        CheckConstraint(_in("status", RunStatus), name="status"),
    )

    run_date: Mapped[date] = mapped_column(Date)
    policy_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), default=RunStatus.RUNNING.value)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str] = mapped_column(String(300), default="")
    started_at: Mapped[created_at]
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


SENT_ONCE = text("outcome = 'sent'")


class DunningDecision(ClientKeyed, db.Model):
    """What a run decided for one debtor that was due a stage. At most one decision per debtor and run date;
    at most one `sent` per (debtor, policy version, stage, episode) where the episode is anchored on the due
    date of the debtor's oldest overdue invoice when the stage went out."""

    __tablename__ = "dunning_decisions"
    __table_args__ = (
        UniqueConstraint("client_id", "run_date", "debtor_id"),
        Index(
            "uq_dunning_decisions_sent_once",
            "client_id",
            "debtor_id",
            "policy_id",
            "stage_position",
            "anchor_due",
            unique=True,
            postgresql_where=SENT_ONCE,
            sqlite_where=SENT_ONCE,
        ),
        _fk("run_id", "dunning_runs"),
        _fk("debtor_id", "debtors", "RESTRICT"),
        _fk("policy_id", "dunning_policies", "RESTRICT"),
        CheckConstraint(_in("outcome", Outcome), name="outcome"),
        Index(None, "client_id", "debtor_id", "outcome", "run_date"),
        Index(None, "client_id", "run_id", "outcome"),
        Index(None, "client_id", "letter_batch_id"),
    )

    run_id: Mapped[int] = mapped_column(BigInteger)
    debtor_id: Mapped[int] = mapped_column(BigInteger)
    policy_id: Mapped[int] = mapped_column(BigInteger)
    stage_id: Mapped[int] = mapped_column(BigInteger)
    stage_position: Mapped[int] = mapped_column(Integer)
    stage_days: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(10))
    run_date: Mapped[date] = mapped_column(Date)
    anchor_due: Mapped[date] = mapped_column(Date)
    outcome: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(24), default="")
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    invoice_count: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[int | None] = mapped_column(BigInteger)  # the comms message (e-mail or letter)
    letter_batch_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[created_at]


class LetterBatch(ClientKeyed, db.Model):
    """The letters of one client's run: one merged print file and the mail house's CSV manifest."""

    __tablename__ = "letter_batches"
    __table_args__ = (
        UniqueConstraint("client_id", "run_date"),
        CheckConstraint(_in("status", BatchStatus), name="status"),
    )

    run_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(12), default=BatchStatus.READY.value)
    letters: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    manifest: Mapped[str] = mapped_column(Text)
    created_at: Mapped[created_at]
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dispatched_by_label: Mapped[str] = mapped_column(String(254), default="")
