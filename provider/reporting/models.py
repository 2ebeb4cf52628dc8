"""Frozen monthly reports (with their PDF), the runs that made them, and daily KPI snapshots."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
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
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, deferred, mapped_column

from provider.core.clock import now_utc
from provider.core.db import UTCDateTime, created_at, intpk
from provider.core.tenancy import ClientOwned
from provider.extensions import db

JSONType = JSON().with_variant(JSONB(), "postgresql")


class ReportStatus(StrEnum):
    CURRENT = "current"
    SUPERSEDED = "superseded"


class ReportRun(db.Model):
    """One scheduling of monthly reports (by the periodic job or a manager): which clients, which month.

    Progress is read from the reports that exist for those clients and month, and from RQ job statuses.
    """

    __tablename__ = "report_runs"
    __table_args__ = (Index(None, "period"),)

    id: Mapped[intpk]
    period: Mapped[str] = mapped_column(String(7))
    client_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    trigger: Mapped[str] = mapped_column(String(20), default="schedule")
    created_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[created_at]


class MonthlyReport(ClientOwned, db.Model):
    """A client's report for one month: frozen inputs, derived figures and the PDF, written in one transaction.

    Version 1 is made once (by the job or on request); making it again returns it unchanged. A manager's
    re-issue adds version n+1 and marks the older one superseded; both stay.
    """

    __tablename__ = "monthly_reports"
    __table_args__ = (
        UniqueConstraint("client_id", "period", "version"),
        CheckConstraint("status IN ('current', 'superseded')", name="status"),
        CheckConstraint("version >= 1", name="version_positive"),
        Index(None, "client_id", "period", "status"),
        Index(None, "client_id", "updated_at", "id"),  # the API's change feed (0027)
    )

    id: Mapped[intpk]
    period: Mapped[str] = mapped_column(String(7))
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(12), default=ReportStatus.CURRENT.value)
    as_of: Mapped[date] = mapped_column(Date)
    posted_by: Mapped[datetime] = mapped_column(UTCDateTime())
    inputs: Mapped[dict[str, Any]] = deferred(mapped_column(JSONType, nullable=False))
    figures: Mapped[dict[str, Any]] = mapped_column(JSONType)
    summary: Mapped[str] = mapped_column(Text, default="")
    pdf: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    pdf_pages: Mapped[int] = mapped_column(Integer, default=0)
    pdf_sha256: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("report_runs.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(300), default="")
    generated_by: Mapped[str] = mapped_column(String(254), default="")
    generated_at: Mapped[created_at]
    # when the row last changed (the API's `updated_since`); set on insert and on every UPDATE through SQLAlchemy
    # NOT NULL; the server default (now, 0034) covers rows written by raw SQL
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)


class KpiSnapshot(ClientOwned, db.Model):
    """A client's KPIs as of one day (the daily job), so dashboards do not rescan the journal."""

    __tablename__ = "kpi_snapshots"
    __table_args__ = (UniqueConstraint("client_id", "as_of"),)

    id: Mapped[intpk]
    as_of: Mapped[date] = mapped_column(Date)
    figures: Mapped[dict[str, Any]] = mapped_column(JSONType)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)


class NotificationStatus(StrEnum):
    RECORDED = "recorded"  # waiting for an outbox to send it (the platform has no mail transport yet)
    SENT = "sent"
    FAILED = "failed"


class ReportNotification(ClientOwned, db.Model):
    """One "your monthly report is ready" message to one client contact: the minimal outbox of reporting.

    Written when a report version is made, one row per recipient who opted in (portal.queries.
    recipient_emails); unique on (report, recipient), so a retried job never notifies anyone twice. A mail
    transport, when the platform has one, sends the `recorded` rows and marks them `sent`.
    """

    __tablename__ = "report_notifications"
    __table_args__ = (
        UniqueConstraint("client_id", "report_id", "recipient"),
        ForeignKeyConstraint(
            ["client_id", "report_id"], ["monthly_reports.client_id", "monthly_reports.id"], ondelete="CASCADE"
        ),
        CheckConstraint("status IN ('recorded', 'sent', 'failed')", name="status"),
        Index(None, "client_id", "report_id"),
    )

    id: Mapped[intpk]
    report_id: Mapped[int] = mapped_column(BigInteger)
    recipient: Mapped[str] = mapped_column(String(254))
    channel: Mapped[str] = mapped_column(String(10), default="email")
    subject: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(10), default=NotificationStatus.RECORDED.value)
    created_at: Mapped[created_at]
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
