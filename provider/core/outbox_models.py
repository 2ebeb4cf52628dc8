"""The record of background work: one row per piece of work to run (the job outbox), and the periodic slots.

A row is written in the same transaction as the business change that asks for the work, so the work exists
exactly when the change does. Redis only delivers it: a dispatcher hands pending rows to RQ and re-sends
what was never acknowledged; the run claims its row (one claim per attempt, so a second delivery is a no-op),
keeps a heartbeat while it works and settles the row (succeeded, failed with a reason, or cancelled).

The table is the agency's, not a client's: it holds the work of every client and of none (periodic jobs).
`client_id` says whose work it is, for the pages; row-level security does not apply (managers see it all;
client users see their own work through the pages of the things it belongs to).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from provider.core.clock import now_utc
from provider.core.db import Base, UTCDateTime, created_at, intpk

JSONType = JSON().with_variant(JSONB(), "postgresql")


class JobStatus(StrEnum):
    PENDING = "pending"  # written; not handed to the job service yet (or to be handed again)
    ENQUEUED = "enqueued"  # handed to the job service; waiting for a worker
    RUNNING = "running"  # a worker claimed it and keeps its heartbeat
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE = (JobStatus.PENDING.value, JobStatus.ENQUEUED.value, JobStatus.RUNNING.value)
ENDED = (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)

# What a person reads for each state (the pages never show the raw value).
STATUS_LABELS = {
    JobStatus.PENDING.value: "Waiting to start",
    JobStatus.ENQUEUED.value: "Queued",
    JobStatus.RUNNING.value: "Running",
    JobStatus.SUCCEEDED.value: "Done",
    JobStatus.FAILED.value: "Failed",
    JobStatus.CANCELLED.value: "Cancelled",
}


class BackgroundJob(Base):
    """One piece of background work and everything a person needs to follow it."""

    __tablename__ = "background_jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'enqueued', 'running', 'succeeded', 'failed', 'cancelled')", name="status"
        ),
        # the same named work is never waiting or running twice (`report:12:2026-11`)
        Index(
            "uq_background_jobs_active_key",
            "key",
            unique=True,
            postgresql_where=text("status IN ('pending', 'enqueued', 'running')"),
            sqlite_where=text("status IN ('pending', 'enqueued', 'running')"),
        ),
        Index(None, "status", "run_after"),
        Index(None, "client_id", "created_at"),
        Index(None, "key", "created_at"),
    )

    id: Mapped[intpk]
    key: Mapped[str | None] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(200))
    queue: Mapped[str] = mapped_column(String(20))
    args: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    kwargs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    client_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10), default=JobStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=1)
    timeout: Mapped[int] = mapped_column(Integer, default=600)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc)
    created_at: Mapped[created_at]
    created_by: Mapped[str] = mapped_column(String(254), default="")
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    progress: Mapped[int | None] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(200), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[str] = mapped_column(String(500), default="")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str] = mapped_column(String(200), default="")

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


class PeriodicSlot(Base):
    """The latest slot of each periodic job that was queued: a cron tick claims a slot by moving it forward,
    in the same transaction as the job's outbox row, so two cron processes never double a run and a Redis
    restart forgets nothing."""

    __tablename__ = "periodic_slots"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    last_slot: Mapped[datetime] = mapped_column(UTCDateTime())
