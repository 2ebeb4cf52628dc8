"""Tables of the API: tokens, the idempotency store, webhook endpoints, the outbox and its deliveries.

`api_tokens` is agency-level like `users` (it is looked up before the tenant is known, by the hash of the
presented secret); every other table is client-owned (row-level security on PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from provider.core.clock import now_utc
from provider.core.db import UTCDateTime, created_at, intpk
from provider.core.tenancy import ClientOwned
from provider.extensions import db

JSONType = JSON().with_variant(JSONB(), "postgresql")


class TokenAccess(StrEnum):
    READ = "read"
    READ_WRITE = "read_write"


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # due at next_attempt_at (first try or a retry)
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # gave up after the last retry; can be replayed from the UI


class EventType(StrEnum):
    INVOICE_PLACED = "invoice.placed"
    PAYMENT_POSTED = "payment.posted"
    PROMISE_MADE = "promise.made"
    PROMISE_BROKEN = "promise.broken"
    DISPUTE_UPDATED = "dispute.updated"
    SLA_BREACHED = "sla.breached"
    REPORT_READY = "report.ready"


def _in(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(v.value) for v in values)})"


class ApiToken(db.Model):
    """A bearer token: bound to one client (client_id set) or a staff integration (client_id NULL).

    Only the SHA-256 of the secret is stored (the secret is 256 random bits, so a slow hash adds nothing);
    the secret is shown once, at creation. `prefix` is the public, displayable part of the token.
    """

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint(_in("access", TokenAccess), name="access"),
        Index(None, "client_id"),
    )

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(80))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    access: Mapped[str] = mapped_column(String(12), default=TokenAccess.READ.value)
    client_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("clients.id", ondelete="RESTRICT"))
    created_by_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    AUDIT_FIELDS = ("name", "prefix", "access", "client_id")

    @property
    def can_write(self) -> bool:
        return self.access == TokenAccess.READ_WRITE.value

    @property
    def actor_label(self) -> str:
        return f"api-token:{self.prefix} ({self.name})"[:254]


class IdempotencyRecord(ClientOwned, db.Model):
    """One Idempotency-Key of one token: claimed (in flight) before the work, then the stored response."""

    __tablename__ = "api_idempotency_keys"
    __table_args__ = (UniqueConstraint("client_id", "token_id", "key"),)

    id: Mapped[intpk]
    token_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("api_tokens.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(300))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    response_location: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[created_at]
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookEndpoint(ClientOwned, db.Model):
    """A URL of the client's that receives the events it subscribed to, signed with its secret."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index(None, "client_id", "active"),)

    id: Mapped[intpk]
    url: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(String(200), default="")
    secret: Mapped[str] = mapped_column(String(80))
    # a rotated-out secret still signs (beside the new one) until `previous_secret_until`: receivers switch over
    previous_secret: Mapped[str | None] = mapped_column(String(80))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[created_at]
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    AUDIT_FIELDS = ("url", "description", "events", "active")


class WebhookEvent(ClientOwned, db.Model):
    """The outbox: an event, written in the transaction that caused it. `dedupe_key` makes it once-only."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        UniqueConstraint("client_id", "dedupe_key"),
        Index(None, "client_id", "created_at"),
    )

    id: Mapped[intpk]
    event_type: Mapped[str] = mapped_column(String(40))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[created_at]


class WebhookDelivery(ClientOwned, db.Model):
    """One event to one endpoint: retried with backoff until it succeeds or is given up (then replayable)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(_in("status", DeliveryStatus), name="status"),
        UniqueConstraint("client_id", "event_id", "endpoint_id"),
        ForeignKeyConstraint(["client_id", "event_id"], ["webhook_events.client_id", "webhook_events.id"]),
        ForeignKeyConstraint(
            ["client_id", "endpoint_id"], ["webhook_endpoints.client_id", "webhook_endpoints.id"], ondelete="CASCADE"
        ),
        Index(None, "status", "next_attempt_at"),
        Index(None, "client_id", "endpoint_id", "id"),
    )

    id: Mapped[intpk]
    event_id: Mapped[int] = mapped_column(BigInteger)
    endpoint_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=now_utc)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(String(300), default="")
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[created_at]


class WebhookAttempt(ClientOwned, db.Model):
    """The log of every HTTP attempt of a delivery: when, the response code (or the error), how long."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        ForeignKeyConstraint(
            ["client_id", "delivery_id"], ["webhook_deliveries.client_id", "webhook_deliveries.id"], ondelete="CASCADE"
        ),
        Index(None, "client_id", "delivery_id"),
    )

    id: Mapped[intpk]
    delivery_id: Mapped[int] = mapped_column(BigInteger)
    attempted_at: Mapped[created_at]
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String(300), default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    replay: Mapped[bool] = mapped_column(Boolean, default=False)
