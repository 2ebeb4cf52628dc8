"""What the nightly refit stores per client (DESIGN §6: client-keyed tables, migration 0028).

- `debtor_behaviours`: each debtor's segment with its reasons, the figures behind it, its risk grade and suggested
  credit limit, as of the last refit (one row per debtor, replaced by each refit);
- `segment_moves`: each change of a debtor's segment, with the day it was seen (kept for ever: "segment moves over
  time");
- `cash_forecasts`: the forecast made on a day per currency (weeks with their 80 % interval), the backtest beside
  it, and the point forecasts of past month-ends it was calibrated on (they never change, so the next refit reuses
  them instead of fitting every month-end again);
- `credit_policies`: the client's own limit policy per currency (months of average invoicing per grade, a cap).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Date, ForeignKeyConstraint, Integer, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from provider.core.clock import now_utc
from provider.core.db import UTCDateTime
from provider.core.tenancy import ClientKeyed
from provider.extensions import db

JSONType = JSON().with_variant(JSONB(), "postgresql")
SEGMENT_CHECK = "IN ('pays_on_time', 'pays_late', 'slow_and_partial', 'promises_and_breaks', 'silent', 'new')"


def _debtor_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(["client_id", "debtor_id"], ["debtors.client_id", "debtors.id"], ondelete="CASCADE")


class DebtorBehaviour(ClientKeyed, db.Model):
    """A debtor's behaviour as of the last refit."""

    __tablename__ = "debtor_behaviours"
    __table_args__ = (
        UniqueConstraint("client_id", "debtor_id"),
        _debtor_fk(),
        CheckConstraint(f"segment {SEGMENT_CHECK}", name="segment"),
        CheckConstraint("risk_grade IN ('A', 'B', 'C', 'D', 'E')", name="risk_grade"),
    )

    debtor_id: Mapped[int] = mapped_column(BigInteger)
    as_of: Mapped[date] = mapped_column(Date)
    segment: Mapped[str] = mapped_column(String(24))
    segment_since: Mapped[date] = mapped_column(Date)
    reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)
    due_invoices: Mapped[int] = mapped_column(Integer, default=0)
    paid_share_bp: Mapped[int] = mapped_column(Integer, default=0)  # basis points of what fell due
    mean_late_days: Mapped[int | None] = mapped_column(Integer)
    promises_kept: Mapped[int] = mapped_column(Integer, default=0)
    promises_broken: Mapped[int] = mapped_column(Integer, default=0)
    disputes: Mapped[int] = mapped_column(Integer, default=0)
    risk_grade: Mapped[str] = mapped_column(String(1))
    grade_reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)
    currency: Mapped[str] = mapped_column(String(3))
    exposure_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    monthly_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    credit_limit_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    worsened: Mapped[bool] = mapped_column(default=False)
    fitted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc)


class SegmentMove(ClientKeyed, db.Model):
    """A debtor's segment changed (seen by the refit of `on_day`)."""

    __tablename__ = "segment_moves"
    __table_args__ = (UniqueConstraint("client_id", "debtor_id", "on_day"), _debtor_fk())

    debtor_id: Mapped[int] = mapped_column(BigInteger)
    on_day: Mapped[date] = mapped_column(Date)
    from_segment: Mapped[str] = mapped_column(String(24))
    to_segment: Mapped[str] = mapped_column(String(24))


class CashForecast(ClientKeyed, db.Model):
    """The 13-week forecast of one currency made on `as_of`, its backtest and its calibration."""

    __tablename__ = "cash_forecasts"
    __table_args__ = (UniqueConstraint("client_id", "currency", "as_of"),)

    currency: Mapped[str] = mapped_column(String(3))
    as_of: Mapped[date] = mapped_column(Date)
    weeks: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    backtest: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    calibration: Mapped[str] = mapped_column(String(200), default="")
    origins: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc)


class CreditPolicy(ClientKeyed, db.Model):
    """How much a debtor of each risk grade may owe: months of its average invoicing, and a cap (0 = none)."""

    __tablename__ = "credit_policies"
    __table_args__ = (UniqueConstraint("client_id", "currency"), CheckConstraint("cap_minor >= 0", name="cap"))

    currency: Mapped[str] = mapped_column(String(3))
    months: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    cap_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)
