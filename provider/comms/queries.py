"""Tenant-scoped reads of the mail: lists for the pages, a debtor's timeline, a message with its history."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import Select, select

from provider.comms.models import (
    EMAIL_STATUSES,
    LETTER_STATUSES,
    PURPOSE_LABELS,
    STATUS_LABELS,
    InboundMail,
    Message,
    MessageAttachment,
    MessageEvent,
)
from provider.extensions import db

TIMELINE_LIMIT = 20


def status_choices() -> list[tuple[str, str]]:
    """(value, label) of every status, e-mail first; a value shared by both channels shows both labels."""
    out: dict[str, list[str]] = {}
    for channel, statuses in (("email", EMAIL_STATUSES), ("letter", LETTER_STATUSES)):
        for status in statuses:
            label = STATUS_LABELS[(channel, status)]
            if label not in out.setdefault(status, []):
                out[status].append(label)
    return [(status, " / ".join(labels)) for status, labels in out.items()]


def purpose_choices() -> list[tuple[str, str]]:
    return sorted(PURPOSE_LABELS.items(), key=lambda kv: kv[1])


def messages(
    *,
    client_id: int | None = None,
    status: str | None = None,
    purpose: str | None = None,
    channel: str | None = None,
    debtor_ids_only: bool = False,
) -> Select[Any]:
    """Messages the current scope may see, newest first (the tenant guard adds the client condition)."""
    stmt = select(Message)
    if client_id:
        stmt = stmt.where(Message.client_id == client_id)
    if status:
        stmt = stmt.where(Message.status == status)
    if purpose:
        stmt = stmt.where(Message.purpose == purpose)
    if channel:
        stmt = stmt.where(Message.channel == channel)
    if debtor_ids_only:
        stmt = stmt.where(Message.debtor_id.is_not(None))
    return stmt.order_by(Message.created_at.desc(), Message.id.desc())


@dataclass(frozen=True)
class TimelineEntry:
    message: Message
    last_event: MessageEvent | None


def debtor_timeline(client_id: int, debtor_id: int, limit: int = TIMELINE_LIMIT) -> list[TimelineEntry]:
    """The latest messages to a debtor with their latest history event (two queries)."""
    rows = list(
        db.session.scalars(
            select(Message)
            .where(Message.client_id == client_id, Message.debtor_id == debtor_id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(limit)
        )
    )
    latest: dict[int, MessageEvent] = {}
    if rows:
        for event in db.session.scalars(
            select(MessageEvent)
            .where(MessageEvent.client_id == client_id, MessageEvent.message_id.in_([m.id for m in rows]))
            .order_by(MessageEvent.occurred_at, MessageEvent.id)
        ):
            latest[event.message_id] = event
    return [TimelineEntry(m, latest.get(m.id)) for m in rows]


def history(message: Message) -> list[MessageEvent]:
    return list(
        db.session.scalars(
            select(MessageEvent)
            .where(MessageEvent.client_id == message.client_id, MessageEvent.message_id == message.id)
            .order_by(MessageEvent.occurred_at, MessageEvent.id)
        )
    )


def attachments(message: Message) -> list[MessageAttachment]:
    return list(
        db.session.scalars(
            select(MessageAttachment)
            .where(MessageAttachment.client_id == message.client_id, MessageAttachment.message_id == message.id)
            .order_by(MessageAttachment.id)
        )
    )


def inbound(kind: str | None = None) -> Select[Any]:
    stmt = select(InboundMail)
    if kind:
        stmt = stmt.where(InboundMail.kind == kind)
    return stmt.order_by(InboundMail.received_at.desc(), InboundMail.id.desc())


def demo_capture_dir() -> Path | None:
    """Where the demo's loopback mail server keeps what it received (None outside the demo)."""
    folder = current_app.config.get("DEMO_MAIL_DIR")
    return Path(folder) if folder else None


def received_by_demo_server(message: Message) -> bool:
    from provider.comms.loopback import captured_file

    folder = demo_capture_dir()
    return bool(folder and captured_file(folder, message.rfc_message_id))
