"""Sending queued e-mail: claim a batch, send it over one reused SMTP connection, record each answer.

States: queued → sending (claimed by one sender) → sent | failed, or back to queued with a later
`next_attempt_at` after a temporary refusal. Every move is a conditional UPDATE (`WHERE status = <expected>`),
so two senders never both claim or settle a message.

At most once. A message is claimed (committed as `sending`, durably) before it is handed to the server, and marked
`sent` right after the server accepted it; those answers are committed every `SETTLE_EVERY` messages (`Settler`).
If the process dies between the server's acceptance and that commit, the message stays `sending`; the mail sweep
does **not** send it again: after `STALE_SENDING` it is marked failed with the reason "delivery not confirmed",
and a person may resend it. We chose at most once because a duplicate reminder to a debtor is a compliance problem
(contact limits), a missing one is visible and repairable. The window is at most `SETTLE_EVERY` messages (one on
SQLite). A copy sent by hand keeps the stored Message-ID, so the recipient's side can tell it is the same message.

Temporary failures (no server, connection refused or lost, 4xx) put the message back in the queue with a growing
delay (`BACKOFF`); after `MAX_ATTEMPTS` it fails with the last reason. A lost connection also fails the job run,
so the job outbox retries it with its own delay. Permanent refusals (5xx) fail the message at once. Nothing is
lost to a crash, a Redis outage or a database fault: the messages are rows, and the periodic sweep re-drives the
queue.

No transaction is open while the network is used (SQLite would hold its write lock meanwhile): the batch is
claimed and read in one transaction, sent, then each answer is recorded in its own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, insert, or_, select, text, update
from sqlalchemy.orm import Session

from provider.comms.models import Channel, EventKind, Message, MessageAttachment, MessageEvent, MessageStatus
from provider.comms.transport import Connection, Outgoing, PermanentFailure, SmtpSettings, TemporaryFailure
from provider.comms.unsubscribe import unsubscribe_url
from provider.core.audit import current_actor
from provider.core.clock import now_utc

log = logging.getLogger(__name__)

BATCH = 100
SETTLE_EVERY = 10  # answers recorded per commit (PostgreSQL); see Settler
MAX_ATTEMPTS = 8
BACKOFF = (60, 300, 900, 1800, 3600, 7200, 14400)  # seconds before the 2nd, 3rd, ... attempt
STALE_SENDING = timedelta(minutes=30)
RUN_BUDGET_SECONDS = 600  # one job run stops after this; the sweep starts the next run for what is left


@dataclass
class SendResult:
    sent: int = 0
    failed: int = 0
    deferred: int = 0

    def __str__(self) -> str:
        return f"{self.sent} sent, {self.failed} not sent, {self.deferred} to try again"


def _due(now: Any) -> Any:
    return and_(
        Message.channel == Channel.EMAIL.value,
        Message.status == MessageStatus.QUEUED.value,
        or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= now),
    )


def claim_batch(session: Session, client_id: int, limit: int = BATCH) -> list[Outgoing]:
    """Claim up to `limit` due messages of one client (queued → sending) and read what sending them needs.
    Commits the claim. Messages another sender claimed meanwhile are skipped (the UPDATE's condition)."""
    now = now_utc()
    ids = list(
        session.scalars(
            select(Message.id).where(Message.client_id == client_id, _due(now)).order_by(Message.id).limit(limit)
        )
    )
    if not ids:
        session.commit()
        return []
    claimed = list(
        session.execute(
            update(Message)
            .where(Message.client_id == client_id, Message.id.in_(ids), Message.status == MessageStatus.QUEUED.value)
            .values(
                status=MessageStatus.SENDING.value,
                sending_since=now,
                attempts=Message.attempts + 1,
                updated_at=now,
            )
            .returning(Message.id)
            .execution_options(synchronize_session=False)
        ).scalars()
    )
    batch = _read(session, client_id, claimed) if claimed else []
    session.commit()
    return batch


def _read(session: Session, client_id: int, ids: list[int]) -> list[Outgoing]:
    from sqlalchemy.orm import undefer

    rows = session.scalars(
        select(Message)
        .where(Message.client_id == client_id, Message.id.in_(ids))
        .options(undefer(Message.text_body), undefer(Message.html_body))
        .order_by(Message.id)
        .execution_options(populate_existing=True)
    ).all()
    files: dict[int, list[tuple[str, str, bytes]]] = {}
    for message_id, filename, mimetype, content in session.execute(
        select(
            MessageAttachment.message_id,
            MessageAttachment.filename,
            MessageAttachment.mimetype,
            MessageAttachment.content,
        )
        .where(MessageAttachment.client_id == client_id, MessageAttachment.message_id.in_(ids))
        .order_by(MessageAttachment.id)
    ):
        files.setdefault(message_id, []).append((filename, mimetype, bytes(content)))
    out = [
        Outgoing(
            id=m.id,
            client_id=m.client_id,
            debtor_id=m.debtor_id,
            purpose=m.purpose,
            to_address=m.to_address,
            to_name=m.to_name,
            from_address=m.from_address,
            from_name=m.from_name,
            reply_to=m.reply_to,
            subject=m.subject,
            text_body=m.text_body,
            html_body=m.html_body,
            rfc_message_id=m.rfc_message_id,
            language=m.language,
            unsubscribe_url=unsubscribe_url(m),
            attempts=m.attempts,
            attachments=files.get(m.id, []),
        )
        for m in rows
    ]
    return out  # the claim's commit expires the rows: nothing stale stays cached


_PG_SETTLE = text(
    """
WITH moved AS (
    UPDATE comm_messages SET status = :status, updated_at = :now, sent_at = COALESCE(:sent_at, sent_at),
           last_error = :last_error, next_attempt_at = :next_attempt_at, sending_since = NULL
    WHERE client_id = :client_id AND id = :id AND status = 'sending'
    RETURNING client_id, id
)
INSERT INTO comm_events (client_id, message_id, kind, detail, actor, occurred_at)
SELECT client_id, id, :event, :detail, :actor, :now FROM moved
"""
)


class Settler:
    """Records the server's answers: sending → sent/failed/queued, with the history event, committing every
    `every` answers (and at the end of each batch). A crash loses at most the uncommitted answers: those messages
    stay `sending` and become "delivery not confirmed", never sent twice. On PostgreSQL one statement per answer,
    committed without waiting for the disk (`synchronous_commit = off`: a commit lost to a crash has the same
    effect as the crash itself); on SQLite, whose commits are cheap and whose write lock must not be held while the
    network is used, each answer commits at once."""

    def __init__(self, session: Session, every: int = SETTLE_EVERY) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"
        self.every = every if self.postgres else 1
        self.pending = 0

    def settle(self, out: Outgoing, status: str, event: str, detail: str = "", **values: Any) -> None:
        now = now_utc()
        actor = current_actor().label[:254]
        if self.postgres:
            if self.pending == 0:
                self.session.execute(text("SET LOCAL synchronous_commit = off"))
            params = {
                "status": status,
                "now": now,
                "sent_at": values.get("sent_at"),
                "last_error": values.get("last_error", ""),
                "next_attempt_at": values.get("next_attempt_at"),
                "client_id": out.client_id,
                "id": out.id,
                "event": event,
                "detail": detail[:1000],
                "actor": actor,
            }
            self.session.execute(_PG_SETTLE, params)
        else:
            moved = self.session.execute(
                update(Message)
                .where(
                    Message.client_id == out.client_id,
                    Message.id == out.id,
                    Message.status == MessageStatus.SENDING.value,
                )
                .values(status=status, updated_at=now, sending_since=None, **values)
                .execution_options(synchronize_session=False)
            ).rowcount
            if moved:
                self.session.execute(
                    insert(MessageEvent).values(
                        client_id=out.client_id,
                        message_id=out.id,
                        kind=event,
                        detail=detail[:1000],
                        actor=actor,
                        occurred_at=now,
                    )
                )
        self.pending += 1
        if self.pending >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.session.commit()
            self.pending = 0


def _defer(settler: Settler, out: Outgoing, reason: str) -> str:
    if out.attempts >= MAX_ATTEMPTS:
        words = f"Not sent after {out.attempts} attempts. Last answer: {reason}"
        settler.settle(out, MessageStatus.FAILED.value, EventKind.FAILED.value, words, last_error=words[:500])
        return "failed"
    delay = BACKOFF[min(out.attempts - 1, len(BACKOFF) - 1)]
    settler.settle(
        out,
        MessageStatus.QUEUED.value,
        EventKind.DEFERRED.value,
        f"{reason} Next attempt in {delay // 60} minute{'s' if delay >= 120 else ''}.",
        last_error=reason[:500],
        next_attempt_at=now_utc() + timedelta(seconds=delay),
    )
    return "deferred"


def send_queued(
    session: Session, client_id: int, *, batch: int = BATCH, budget_seconds: float = RUN_BUDGET_SECONDS
) -> SendResult:
    """Send every due queued e-mail of one client over one connection. Raises TemporaryFailure (after putting the
    unsent messages back in the queue) when the server cannot be reached, so the job is retried."""
    settings = SmtpSettings.from_config(current_app.config)
    connection = Connection(settings)
    settler = Settler(session)
    result = SendResult()
    started = time.monotonic()
    try:
        while time.monotonic() - started < budget_seconds:
            outgoing = claim_batch(session, client_id, batch)
            if not outgoing:
                break
            for index, out in enumerate(outgoing):
                try:
                    connection.send(out)
                except PermanentFailure as exc:
                    words = str(exc)
                    settler.settle(out, MessageStatus.FAILED.value, EventKind.FAILED.value, words, last_error=words)
                    result.failed += 1
                except TemporaryFailure as exc:
                    away = connection.smtp is None  # the server is away: everything not sent waits for the retry
                    for item in outgoing[index:] if away else [out]:
                        outcome = _defer(settler, item, str(exc))
                        result.deferred += outcome == "deferred"
                        result.failed += outcome == "failed"
                    if away:
                        settler.flush()
                        raise
                else:
                    settler.settle(
                        out,
                        MessageStatus.SENT.value,
                        EventKind.SENT.value,
                        sent_at=now_utc(),
                        last_error="",
                        next_attempt_at=None,
                    )
                    result.sent += 1
            settler.flush()
    finally:
        connection.close()
    return result


def sweep(session: Session) -> dict[str, int]:
    """Every minute: settle messages a dead sender left `sending` (at most once: not resent, marked "delivery not
    confirmed"), and return {client id: due messages} for the clients whose queue needs a sending run."""
    now = now_utc()
    words = (
        "Delivery not confirmed: the sender stopped after handing this message to the mail server and before it "
        "recorded the answer. It was not sent again automatically, to avoid a duplicate; resend it if needed."
    )
    stale = session.execute(
        select(Message.client_id, Message.id).where(
            Message.status == MessageStatus.SENDING.value, Message.sending_since < now - STALE_SENDING
        )
    ).all()
    for client_id, message_id in stale:
        moved = session.execute(
            update(Message)
            .where(Message.id == message_id, Message.status == MessageStatus.SENDING.value)
            .values(status=MessageStatus.FAILED.value, last_error=words[:500], updated_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved:
            session.add(
                MessageEvent(
                    client_id=client_id,
                    message_id=message_id,
                    kind=EventKind.UNCONFIRMED.value,
                    detail=words,
                    actor=current_actor().label[:254],
                    occurred_at=now,
                )
            )
    from sqlalchemy import func

    due = session.execute(select(Message.client_id, func.count()).where(_due(now)).group_by(Message.client_id)).all()
    return {int(client_id): int(count) for client_id, count in due}
