"""Communications tables: every message the platform sends (e-mail or letter) stored as rendered, its delivery
history, its attachments, the mail that comes back (replies, bounces, the unmatched), the addresses that bounced
and each client's sending identity.

Client-owned tables are client-keyed (DESIGN §6: `client_id` leads every key; composite foreign keys between them).
`inbound_mail` is the agency's: mail that matches nothing has no client, so it cannot be client-owned; managers
see it on the Mail page and clients never read it (a reply's excerpt reaches the client's data as a
`MessageEvent`).

A message is immutable once queued: the ORM refuses a change of any rendered field (`RENDERED_FIELDS`); only the
delivery fields (status, attempts, errors, times) move, each move recorded as an append-only `MessageEvent`.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    event,
    inspect,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, deferred, mapped_column

from provider.core.audit import register_append_only
from provider.core.clock import now_utc
from provider.core.db import UTCDateTime, created_at, intpk
from provider.core.tenancy import ClientKeyed
from provider.extensions import db

JSONType = JSON().with_variant(JSONB(), "postgresql")


class Channel(StrEnum):
    EMAIL = "email"
    LETTER = "letter"


class MessageStatus(StrEnum):
    QUEUED = "queued"  # e-mail: waiting for the sender; letter: waiting to be printed
    SENDING = "sending"  # e-mail: handed to the mail server right now (claimed by one sender)
    SENT = "sent"  # e-mail: the mail server accepted it
    FAILED = "failed"  # e-mail: not sent (bad address, refused for good, address bounced before)
    BOUNCED = "bounced"  # e-mail: accepted, then returned as undeliverable
    PRINTED = "printed"  # letter: in a print file
    DISPATCHED = "dispatched"  # letter: handed to the mail house / post (counts as sent)


STATUS_LABELS = {
    (Channel.EMAIL.value, MessageStatus.QUEUED.value): "Waiting to be sent",
    (Channel.EMAIL.value, MessageStatus.SENDING.value): "Being sent",
    (Channel.EMAIL.value, MessageStatus.SENT.value): "Sent",
    (Channel.EMAIL.value, MessageStatus.FAILED.value): "Not sent",
    (Channel.EMAIL.value, MessageStatus.BOUNCED.value): "Bounced",
    (Channel.LETTER.value, MessageStatus.QUEUED.value): "Waiting to be printed",
    (Channel.LETTER.value, MessageStatus.PRINTED.value): "Printed",
    (Channel.LETTER.value, MessageStatus.DISPATCHED.value): "Posted",
}
EMAIL_STATUSES = ("queued", "sending", "sent", "failed", "bounced")
LETTER_STATUSES = ("queued", "printed", "dispatched")

# Purposes known to the pages (a new purpose works without being listed; it is then shown capitalised).
PURPOSE_LABELS = {
    "dunning": "Reminder",
    "report_ready": "Report ready",
    "sla_alert": "SLA alert",
    "manual": "Written by a collector",
    "reply_ack": "Reply acknowledgement",
}


class EventKind(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"  # a temporary refusal: tried again later
    FAILED = "failed"
    BOUNCED = "bounced"
    DELAYED = "delayed"  # a delay notice came back (the receiving side is still trying)
    REPLIED = "replied"
    PRINTED = "printed"
    DISPATCHED = "dispatched"
    UNCONFIRMED = "unconfirmed"  # the sender stopped between handing it over and recording the answer


EVENT_LABELS = {
    "queued": "Queued",
    "sending": "Handed to the mail server",
    "sent": "Accepted by the mail server",
    "deferred": "Refused for now; will try again",
    "failed": "Not sent",
    "bounced": "Bounced",
    "delayed": "Delivery delayed",
    "replied": "Reply received",
    "printed": "Printed",
    "dispatched": "Posted",
    "unconfirmed": "Delivery not confirmed",
}

# What a message says once queued; changing any of these is refused (the message is a record of what was sent).
RENDERED_FIELDS = (
    "channel",
    "purpose",
    "debtor_id",
    "to_address",
    "to_name",
    "from_address",
    "from_name",
    "reply_to",
    "subject",
    "text_body",
    "html_body",
    "language",
    "address_lines",
    "dedupe_key",
    "rfc_message_id",
    "source_type",
    "source_id",
)


class ImmutableMessage(RuntimeError):
    """A rendered field of a queued message was changed; queue a new message instead."""


def _in(column: str, values: Any) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


def _message_fk() -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["client_id", "message_id"], ["comm_messages.client_id", "comm_messages.id"], ondelete="CASCADE"
    )


class Message(ClientKeyed, db.Model):
    """One e-mail or letter, stored as rendered. `dedupe_key` is the caller's idempotency key: queueing the same
    key again returns this message, never a second one."""

    __tablename__ = "comm_messages"
    __table_args__ = (
        UniqueConstraint("client_id", "dedupe_key"),
        ForeignKeyConstraint(["client_id", "debtor_id"], ["debtors.client_id", "debtors.id"], ondelete="RESTRICT"),
        CheckConstraint(_in("channel", Channel), name="channel"),
        CheckConstraint(_in("status", MessageStatus), name="status"),
        Index(None, "client_id", "debtor_id", "created_at"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "client_id", "status", "created_at"),
        Index(None, "created_at"),
        Index(None, "client_id", "source_type", "source_id"),  # what a decision (a stage, a breach) sent
    )

    debtor_id: Mapped[int | None] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(10))
    purpose: Mapped[str] = mapped_column(String(40))
    to_address: Mapped[str] = mapped_column(String(320), default="")
    to_name: Mapped[str] = mapped_column(String(200), default="")
    from_address: Mapped[str] = mapped_column(String(320), default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    reply_to: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = deferred(mapped_column(Text, default="", nullable=False))
    html_body: Mapped[str | None] = deferred(mapped_column(Text))
    language: Mapped[str] = mapped_column(String(12), default="en")
    address_lines: Mapped[list[str] | None] = mapped_column(JSONType)  # letters: the postal address
    status: Mapped[str] = mapped_column(String(12), default=MessageStatus.QUEUED.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(String(500), default="")  # words for a person
    sending_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dedupe_key: Mapped[str] = mapped_column(String(200))
    rfc_message_id: Mapped[str] = mapped_column(String(250))  # the Message-ID header, fixed when queued
    source_type: Mapped[str] = mapped_column(String(40), default="")
    source_id: Mapped[str] = mapped_column(String(80), default="")
    created_by: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[created_at]
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get((self.channel, self.status), self.status.capitalize())

    @property
    def purpose_label(self) -> str:
        return PURPOSE_LABELS.get(self.purpose, self.purpose.replace("_", " ").capitalize())

    @property
    def channel_label(self) -> str:
        return "E-mail" if self.channel == Channel.EMAIL.value else "Letter"


class MessageAttachment(ClientKeyed, db.Model):
    """A file sent with a message (a statement PDF; a letter's own PDF)."""

    __tablename__ = "comm_attachments"
    __table_args__ = (_message_fk(), Index(None, "client_id", "message_id"))

    message_id: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(200))
    mimetype: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    created_at: Mapped[created_at]


@register_append_only
class MessageEvent(ClientKeyed, db.Model):
    """One step of a message's delivery history (append-only): queued, sent, refused, bounced, replied, posted."""

    __tablename__ = "comm_events"
    __table_args__ = (_message_fk(), Index(None, "client_id", "message_id", "occurred_at"))

    message_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(1000), default="")
    inbound_id: Mapped[int | None] = mapped_column(BigInteger)  # the inbound mail that caused it (reply, bounce)
    actor: Mapped[str] = mapped_column(String(254), default="")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc)

    @property
    def label(self) -> str:
        return EVENT_LABELS.get(self.kind, self.kind.capitalize())


class SuppressionKind(StrEnum):
    BOUNCED = "bounced"  # a permanent bounce: the address does not work
    UNSUBSCRIBED = "unsubscribed"  # the debtor asked for no more e-mail (the self-service page)


class SuppressedAddress(ClientKeyed, db.Model):
    """An address of one client that is sent nothing more: it bounced for good, or its owner unsubscribed."""

    __tablename__ = "comm_suppressed_addresses"
    __table_args__ = (
        UniqueConstraint("client_id", "address"),
        CheckConstraint(_in("kind", SuppressionKind), name="kind"),
    )

    address: Mapped[str] = mapped_column(String(320))  # lower-cased
    kind: Mapped[str] = mapped_column(String(14))
    reason: Mapped[str] = mapped_column(String(500), default="")
    message_id: Mapped[int | None] = mapped_column(BigInteger)  # the message whose bounce told us
    created_at: Mapped[created_at]


class SendingIdentity(ClientKeyed, db.Model):
    """How a client's mail presents itself: the From name and address and an optional fixed Reply-To (empty: replies
    come back to the platform through a signed reply address, and reach the collector's queue)."""

    __tablename__ = "comm_identities"
    __table_args__ = (UniqueConstraint("client_id"),)

    from_name: Mapped[str] = mapped_column(String(200), default="")
    from_address: Mapped[str] = mapped_column(String(320), default="")
    reply_to: Mapped[str] = mapped_column(String(320), default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now_utc, onupdate=now_utc)

    AUDIT_FIELDS = ("from_name", "from_address", "reply_to")


class InboundKind(StrEnum):
    REPLY = "reply"
    BOUNCE = "bounce"
    UNMATCHED = "unmatched"


INBOUND_LABELS = {"reply": "Reply", "bounce": "Bounce", "unmatched": "Not matched"}


class InboundMail(db.Model):
    """A mail received by the product's listener, stored raw, with what it was taken for."""

    __tablename__ = "inbound_mail"
    __table_args__ = (
        CheckConstraint(_in("kind", InboundKind), name="kind"),
        Index(None, "kind", "received_at"),
        Index(None, "client_id", "received_at"),
    )

    id: Mapped[intpk]
    received_at: Mapped[created_at]
    mail_from: Mapped[str] = mapped_column(String(320), default="")  # the envelope sender
    rcpt_to: Mapped[str] = mapped_column(String(320), default="")  # the envelope recipient it was accepted for
    from_header: Mapped[str] = mapped_column(String(400), default="")
    subject: Mapped[str] = mapped_column(String(300), default="")
    kind: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(500), default="")  # why it was matched, or not, in words
    client_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("clients.id", ondelete="RESTRICT"))
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    size: Mapped[int] = mapped_column(Integer, default=0)
    raw: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))

    @property
    def kind_label(self) -> str:
        return INBOUND_LABELS.get(self.kind, self.kind)


@event.listens_for(Session, "before_flush")
def _refuse_rendered_changes(session: Session, _ctx: Any, _instances: Any) -> None:
    for obj in session.dirty:
        if not isinstance(obj, Message):
            continue
        state = inspect(obj)
        changed = [name for name in RENDERED_FIELDS if state.attrs[name].history.has_changes()]
        if changed:
            raise ImmutableMessage(f"message {obj.id} was queued as rendered; refused change of {', '.join(changed)}")
    for obj in session.deleted:
        if isinstance(obj, Message):
            raise ImmutableMessage(f"message {obj.id} is a record of what was sent and cannot be deleted")
