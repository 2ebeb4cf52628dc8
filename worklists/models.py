"""Worklist tables: one work item per overdue debtor account, its action history, promises and plans,
each client's strategy (score weights and contact rules) and the collectors' capacity.

Every client-owned table has `client_id NOT NULL` and reaches the debtor through the composite key
(client_id, debtor_id), so an item, an action or a promise can never point at another tenant's debtor.
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
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from provider.core.clock import now_utc
from provider.core.db import UTCDateTime, created_at, intpk
from provider.core.tenancy import ClientOwned
from provider.extensions import db


class ItemState(StrEnum):
    NEW = "new"
    IN_PROGRESS = "in_progress"
    PROMISED = "promised"
    PLAN = "plan"
    DISPUTED = "disputed"  # disputed or held: out of the queue until the hold is lifted
    ESCALATED = "escalated"
    CLOSED = "closed"


# States a collector's queue may offer (when the next action is due and the contact gate allows it).
WORKABLE_STATES = (ItemState.NEW, ItemState.IN_PROGRESS, ItemState.PROMISED, ItemState.PLAN)


class ActionKind(StrEnum):
    CALL = "call"
    EMAIL = "email"
    NOTE = "note"
    PROMISE = "promise"
    PLAN = "plan"
    ESCALATE = "escalate"
    NEXT_ACTION = "next_action"
    CEASE = "cease"
    ASSIGN = "assign"
    STATE = "state"  # system transitions: promise kept/broken, closed, reopened


class CallOutcome(StrEnum):
    """Outcome codes of a call. `RIGHT_PARTY` and `PROMISE` are conversations (they start the cool-down)."""

    NO_ANSWER = "no_answer"
    VOICEMAIL = "voicemail"
    BUSY = "busy"
    WRONG_NUMBER = "wrong_number"
    RIGHT_PARTY = "right_party"
    PROMISE = "promise_made"
    REFUSED = "refused_to_pay"
    DISPUTE = "disputes_debt"
    CALLBACK = "callback"  # someone answered and asked us to call back at another time


CONVERSATIONS = frozenset({CallOutcome.RIGHT_PARTY, CallOutcome.PROMISE, CallOutcome.REFUSED, CallOutcome.DISPUTE})


class PromiseStatus(StrEnum):
    OPEN = "open"
    KEPT = "kept"
    BROKEN = "broken"
    CANCELLED = "cancelled"


class PlanStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    BROKEN = "broken"
    CANCELLED = "cancelled"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


def _debtor_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["client_id", "debtor_id"], ["debtors.client_id", "debtors.id"], ondelete="RESTRICT")


def _item_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["client_id", "work_item_id"], ["work_items.client_id", "work_items.id"], ondelete="RESTRICT"
    )


class WorkItem(ClientOwned, db.Model):
    """A debtor account with an open overdue balance, as a collector works it.

    The score is the sum of the `term_*` columns ("why it is here"), all recomputed together by
    `worklists.scoring.rescore`. A claim (`claimed_by` + `claim_expires_at`) is the lease a collector
    holds while working the account between requests; an expired lease is free to be claimed again.
    """

    __tablename__ = "work_items"
    __table_args__ = (
        UniqueConstraint("client_id", "debtor_id"),
        _debtor_fk(),
        CheckConstraint(_in("state", ItemState), name="state"),
        CheckConstraint("contact_attempts >= 0", name="attempts_nonnegative"),
        Index(None, "client_id", "state", "score"),
        Index(None, "score"),  # the queue's order ("next account": score DESC, then id by incremental sort)
        Index(None, "owner_id", "state"),
        Index(None, "claimed_by"),
    )

    id: Mapped[intpk]
    debtor_id: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(12), default=ItemState.NEW.value)
    owner_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("teams.id", ondelete="SET NULL"))
    next_action_on: Mapped[date | None] = mapped_column(Date)
    next_action_note: Mapped[str] = mapped_column(String(200), default="")
    last_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_conversation_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    contact_attempts: Mapped[int] = mapped_column(Integer, default=0)
    ceased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # cease-communication request
    contact_tz: Mapped[str] = mapped_column(String(64), default="UTC")  # debtor's zone, else the client's
    currency: Mapped[str] = mapped_column(String(3))
    overdue_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    overdue_norm: Mapped[int] = mapped_column(BigInteger, default=0)  # whole reference units (see scoring)
    oldest_due_on: Mapped[date | None] = mapped_column(Date)  # of the oldest overdue open invoice
    broken_promises: Mapped[int] = mapped_column(Integer, default=0)
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # hook for the SLA issue
    term_amount: Mapped[int] = mapped_column(Integer, default=0)
    term_days: Mapped[int] = mapped_column(Integer, default=0)
    term_broken: Mapped[int] = mapped_column(Integer, default=0)
    term_promise_due: Mapped[int] = mapped_column(Integer, default=0)
    term_sla: Mapped[int] = mapped_column(Integer, default=0)
    term_segment: Mapped[int] = mapped_column(Integer, default=0)
    term_client: Mapped[int] = mapped_column(Integer, default=0)
    term_behaviour: Mapped[int] = mapped_column(Integer, default=0)
    behaviour_segment: Mapped[str] = mapped_column(String(24), default="")  # of the last forecast refit
    score: Mapped[int] = mapped_column(Integer, default=0)
    scored_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def days_past_due(self, today: date) -> int:
        return max((today - self.oldest_due_on).days, 0) if self.oldest_due_on else 0

    AUDIT_FIELDS = ("state", "owner_id", "team_id", "next_action_on", "next_action_note", "claimed_by")
    TERMS = ("amount", "days", "broken", "promise_due", "sla", "segment", "client", "behaviour")

    @property
    def behaviour_words(self) -> str:
        """The debtor's payment-behaviour segment in words, as the score's behaviour term explains it."""
        from provider.forecast.labels import SEGMENT_LABELS

        label = SEGMENT_LABELS.get(self.behaviour_segment)
        return f"{label} (learned from its payments)" if label else "not learned yet"

    def terms(self) -> dict[str, int]:
        return {name: getattr(self, f"term_{name}") for name in self.TERMS}


class WorkAction(ClientOwned, db.Model):
    """One entry of an account's history: a call, an e-mail, a note, a promise, a state change, ..."""

    __tablename__ = "work_actions"
    __table_args__ = (
        _item_fk(),
        _debtor_fk(),
        CheckConstraint(_in("kind", ActionKind), name="kind"),
        Index(None, "client_id", "work_item_id", "occurred_at"),
        Index(None, "client_id", "debtor_id", "kind", "occurred_at"),
        Index(None, "user_id", "occurred_at"),
        Index(None, "client_id", "updated_at", "id"),  # the API's change feed (0027)
    )

    id: Mapped[intpk]
    work_item_id: Mapped[int] = mapped_column(BigInteger)
    debtor_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(24), default="")
    note: Mapped[str] = mapped_column(String(1000), default="")
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc)
    # when the row last changed (the API's `updated_since`); set on insert and on every UPDATE through SQLAlchemy
    # NOT NULL; the server default (now, 0034) covers rows written by raw SQL
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)


class PaymentPlan(ClientOwned, db.Model):
    """An agreed schedule of instalments; each instalment is a `Promise` row checked like any promise."""

    __tablename__ = "payment_plans"
    __table_args__ = (
        _item_fk(),
        _debtor_fk(),
        CheckConstraint(_in("status", PlanStatus), name="status"),
        CheckConstraint("total_minor > 0", name="total_positive"),
        Index(None, "client_id", "debtor_id"),
    )

    id: Mapped[intpk]
    work_item_id: Mapped[int] = mapped_column(BigInteger)
    debtor_id: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    total_minor: Mapped[int] = mapped_column(BigInteger)
    instalments: Mapped[int] = mapped_column(Integer)
    every_days: Mapped[int] = mapped_column(Integer)
    first_due_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default=PlanStatus.ACTIVE.value)
    created_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]


class Promise(ClientOwned, db.Model):
    """A promise to pay (or one instalment of a plan).

    Kept when the money the debtor paid from `counted_from` up to `due_on` reaches `threshold_minor`
    (the promised amount; for an instalment, the plan's cumulative amount up to it). Broken when `due_on`
    passes first.
    """

    __tablename__ = "promises"
    __table_args__ = (
        _item_fk(),
        _debtor_fk(),
        ForeignKeyConstraint(["client_id", "plan_id"], ["payment_plans.client_id", "payment_plans.id"]),
        CheckConstraint(_in("status", PromiseStatus), name="status"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("threshold_minor >= amount_minor", name="threshold"),
        CheckConstraint("due_on >= counted_from", name="due_after_start"),
        Index(None, "client_id", "status", "due_on"),
        Index(None, "client_id", "debtor_id", "status"),
        Index(None, "client_id", "plan_id"),  # a plan's instalments, read each time one is resolved (0020)
    )

    id: Mapped[intpk]
    work_item_id: Mapped[int] = mapped_column(BigInteger)
    debtor_id: Mapped[int] = mapped_column(BigInteger)
    plan_id: Mapped[int | None] = mapped_column(BigInteger)
    sequence: Mapped[int] = mapped_column(Integer, default=1)
    currency: Mapped[str] = mapped_column(String(3))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    threshold_minor: Mapped[int] = mapped_column(BigInteger)
    counted_from: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(10), default=PromiseStatus.OPEN.value)
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)  # as of the last check
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]


class Strategy(ClientOwned, db.Model):
    """A client's worklist strategy: score weights and (for commercial clients) its contact rules.

    A client without a row gets the defaults of `worklists.scoring.DEFAULT_WEIGHTS` and the contact rules
    of its debt type (consumer rules are fixed by law; commercial ones may be relaxed or tightened here).
    """

    __tablename__ = "worklist_strategies"
    __table_args__ = (UniqueConstraint("client_id"),)

    id: Mapped[intpk]
    weight_amount: Mapped[int] = mapped_column(Integer, default=10)
    weight_days: Mapped[int] = mapped_column(Integer, default=10)
    weight_broken: Mapped[int] = mapped_column(Integer, default=15)
    weight_promise_due: Mapped[int] = mapped_column(Integer, default=25)
    weight_sla: Mapped[int] = mapped_column(Integer, default=20)
    client_boost: Mapped[int] = mapped_column(Integer, default=0)
    ref_rate_ppm: Mapped[int | None] = mapped_column(BigInteger)  # override: 1 major unit = x/1e6 reference units
    contact_start_hour: Mapped[int] = mapped_column(Integer, default=8)
    contact_end_hour: Mapped[int] = mapped_column(Integer, default=21)
    max_calls: Mapped[int] = mapped_column(Integer, default=7)
    calls_window_days: Mapped[int] = mapped_column(Integer, default=7)
    cooldown_days: Mapped[int] = mapped_column(Integer, default=7)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)


class SegmentWeight(ClientOwned, db.Model):
    """Points a debtor segment adds to the score, per client (e.g. 'high_risk' +15, 'key_account' -10)."""

    __tablename__ = "worklist_segment_weights"
    __table_args__ = (UniqueConstraint("client_id", "segment"),)

    id: Mapped[intpk]
    segment: Mapped[str] = mapped_column(String(40))
    points: Mapped[int] = mapped_column(Integer)


class CollectorSetting(db.Model):
    """A collector's capacity (accounts they can hold) and absence, for balancing. Agency-side, not tenant."""

    __tablename__ = "collector_settings"

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    capacity: Mapped[int] = mapped_column(Integer, default=150)
    away: Mapped[bool] = mapped_column(Boolean, default=False)  # away now, until a manager says otherwise
    away_from: Mapped[date | None] = mapped_column(Date)  # a planned absence (holiday), both days included
    away_until: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)

    def is_away(self, on: date) -> bool:
        planned = (
            self.away_from is not None and self.away_from <= on and (self.away_until is None or on <= self.away_until)
        )
        return self.away or planned


class AssignmentRule(db.Model):
    """A team's rule for new and orphaned work: items that match (every criterion set; an empty one matches
    anything) go to the team, whose present collectors then share them by capacity. Rules are tried in
    `position` order; the first that matches wins. Agency-side configuration (no tenant data)."""

    __tablename__ = "assignment_rules"
    __table_args__ = (
        CheckConstraint("min_overdue_minor IS NULL OR min_overdue_minor >= 0", name="min_nonnegative"),
        CheckConstraint(
            "max_overdue_minor IS NULL OR min_overdue_minor IS NULL OR max_overdue_minor >= min_overdue_minor",
            name="band_ordered",
        ),
        CheckConstraint(
            "(min_overdue_minor IS NULL AND max_overdue_minor IS NULL) OR currency IS NOT NULL", name="band_currency"
        ),
        Index(None, "position"),
    )

    id: Mapped[intpk]
    team_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("teams.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=100)
    client_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("clients.id", ondelete="CASCADE"))
    segment: Mapped[str | None] = mapped_column(String(40))
    language: Mapped[str | None] = mapped_column(String(8))
    currency: Mapped[str | None] = mapped_column(String(3))  # the balance band's currency
    min_overdue_minor: Mapped[int | None] = mapped_column(BigInteger)
    max_overdue_minor: Mapped[int | None] = mapped_column(BigInteger)  # inclusive
    created_at: Mapped[created_at]


class CollectorTarget(db.Model):
    """A collector's targets: accounts touched per day, promises per week, money collected per month (in one
    currency, on the accounts they own). Agency-side."""

    __tablename__ = "collector_targets"
    __table_args__ = (
        CheckConstraint("accounts_per_day >= 0", name="accounts_nonnegative"),
        CheckConstraint("promises_per_week >= 0", name="promises_nonnegative"),
        CheckConstraint("collected_per_month_minor >= 0", name="collected_nonnegative"),
    )

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    accounts_per_day: Mapped[int] = mapped_column(Integer, default=40)
    promises_per_week: Mapped[int] = mapped_column(Integer, default=15)
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    collected_per_month_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)
