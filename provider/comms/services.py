"""Queue what the platform says to people: e-mails and letters, stored as rendered, sent by the mail job.

Callers render content (dunning templates, report notices, SLA alerts) and hand it here; this module stores it
and arranges delivery. Every function flushes and never commits: the message, its first history event and the
outbox row of the sending job commit with the caller's business change, or not at all.

Guarantees
- Idempotent: `dedupe_key` is unique per client. Queueing a key that exists returns the existing message
  unchanged (whatever the new call's content), so a re-run, a retried job or a concurrent worker never makes a
  second message. Pick keys that name the decision: `dunning:<debtor>:<stage>:<policy version>`,
  `report:<report id>:<recipient>`.
- Immutable: once queued, a message's rendered fields never change (provider.comms.models refuses it); its
  delivery moves through `MessageStatus`, each move an append-only `MessageEvent`.
- Bad addresses do not raise: an address that does not parse (email-validator) or that is suppressed for the
  client (it bounced for good, or the debtor unsubscribed) gives a message stored with status `failed` and a
  reason in words (`last_error`), never sent. Callers read `message.status` / `message.last_error` to record
  why a step was skipped. ValueError is kept for programming errors (unknown purpose shape, empty key).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import current_app, has_app_context
from sqlalchemy import event, func, select, update
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from provider.comms.models import (
    Channel,
    EventKind,
    Message,
    MessageAttachment,
    MessageEvent,
    MessageStatus,
    SendingIdentity,
    SuppressedAddress,
    SuppressionKind,
)
from provider.core import audit
from provider.core.audit import current_actor
from provider.core.clock import now_utc

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Attachment:
    """A file to send with a message."""

    filename: str
    content: bytes
    mimetype: str = "application/pdf"


@dataclass(frozen=True)
class Source:
    """What a message was sent for (a dunning stage decision, a report, an SLA breach), for its page and stats."""

    type: str
    id: Any


def _config(name: str, default: Any = None) -> Any:
    return current_app.config.get(name, default) if has_app_context() else default


def normalise_address(address: str) -> str:
    """The address as stored and compared: trimmed, the domain lower-cased (email-validator's normal form when it
    parses, otherwise just lower-cased)."""
    return _normal_form((address or "").strip())


def address_problem(address: str) -> str | None:
    """Why `address` cannot receive mail, in words; None when it looks deliverable. Outside production the
    reserved test domains (example.test, .localhost) are accepted so the demo and tests can send."""
    address = (address or "").strip()
    if not address:
        return "No e-mail address was given."
    return _problem(address, _config("AR_ENV", "testing") != "production")


# Both are pure functions of the address; a dunning run checks tens of thousands and a day's runs meet the same
# addresses again, so each is worked out once per process (bounded caches).
@lru_cache(maxsize=65_536)
def _normal_form(address: str) -> str:
    try:
        valid = validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError:
        return address.lower()
    return str(valid.ascii_email or valid.normalized).lower()


@lru_cache(maxsize=65_536)
def _problem(address: str, relaxed: bool) -> str | None:
    try:
        # SMTPUTF8 (a non-ASCII local part) is refused: few servers accept it; an IDN domain is sent as punycode
        validate_email(address, check_deliverability=False, test_environment=relaxed, allow_smtputf8=False)
    except EmailNotValidError as exc:
        return f"The address {address!r} cannot receive e-mail: {exc}"
    return None


def suppression_of(session: Session, client_id: int, address: str) -> SuppressedAddress | None:
    """The suppression (bounced / unsubscribed) of `address` in this client, if any."""
    return session.scalar(
        select(SuppressedAddress).where(
            SuppressedAddress.client_id == client_id, SuppressedAddress.address == normalise_address(address)
        )
    )


def is_undeliverable(session: Session, client_id: int, address: str) -> bool:
    """True when nothing may be sent to `address` for this client (it bounced for good or was unsubscribed)."""
    return suppression_of(session, client_id, address) is not None


def suppression_reason(row: SuppressedAddress) -> str:
    when = row.created_at.strftime("%d %b %Y")
    if row.kind == SuppressionKind.BOUNCED.value:
        return f"Not sent: this address bounced on {when} and cannot receive mail (address bounced)."
    return f"Not sent: the recipient unsubscribed from e-mail on {when}."


def suppress_address(
    session: Session, *, client_id: int, address: str, kind: str, reason: str = "", message_id: int | None = None
) -> SuppressedAddress:
    """Stop all future e-mail to `address` in this client (idempotent: an existing suppression is kept)."""
    if kind not in {k.value for k in SuppressionKind}:
        raise ValueError(f"unknown suppression kind {kind!r}")
    existing = suppression_of(session, client_id, address)
    if existing is not None:
        return existing
    row = SuppressedAddress(
        client_id=client_id, address=normalise_address(address), kind=kind, reason=reason[:500], message_id=message_id
    )
    session.add(row)
    session.flush()
    audit.record(session, f"mail.suppress.{kind}", row, after={"address": row.address, "reason": row.reason})
    return row


def identity_for(session: Session, client_id: int) -> tuple[str, str, str]:
    """(from name, from address, fixed reply-to or "") of a client: its own identity, else the platform's. Read
    once per transaction and client (a dunning run queues thousands of messages of one client)."""
    cache: dict[int, tuple[str, str, str]] = session.info.setdefault("comms_identities", {})
    if client_id in cache:
        return cache[client_id]
    row = session.scalar(select(SendingIdentity).where(SendingIdentity.client_id == client_id))
    name = (row.from_name if row and row.from_name else None) or _config("MAIL_DEFAULT_FROM_NAME", "")
    address = (row.from_address if row and row.from_address else None) or _config("MAIL_DEFAULT_FROM", "")
    cache[client_id] = (name, address, (row.reply_to if row else "") or "")
    return cache[client_id]


def add_event(
    session: Session, message: Message, kind: str, detail: str = "", *, inbound_id: int | None = None
) -> MessageEvent:
    event = MessageEvent(
        client_id=message.client_id,
        message_id=message.id,
        kind=kind,
        detail=detail[:1000],
        inbound_id=inbound_id,
        actor=current_actor().label[:254],
        occurred_at=now_utc(),
    )
    session.add(event)
    return event


def _existing(session: Session, client_id: int, dedupe_key: str) -> Message | None:
    return session.scalar(select(Message).where(Message.client_id == client_id, Message.dedupe_key == dedupe_key))


def _insert(session: Session, values: dict[str, Any]) -> Message | None:
    """INSERT … ON CONFLICT DO NOTHING on (client_id, dedupe_key) RETURNING the row: the new message, or None when
    the key exists (also when a concurrent transaction inserted it a moment ago: the conflict waits for it)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        insert(Message)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["client_id", "dedupe_key"])
        .returning(Message)
    )
    return session.scalars(stmt).one_or_none()


def _check_key(dedupe_key: str, purpose: str) -> None:
    if not dedupe_key or len(dedupe_key) > 200:
        raise ValueError("dedupe_key is required (at most 200 characters): it is what makes queueing idempotent")
    if not purpose or len(purpose) > 40:
        raise ValueError("purpose is required (at most 40 characters), e.g. 'dunning'")


def _base_values(
    *, client_id: int, debtor_id: int | None, purpose: str, dedupe_key: str, subject: str, language: str, source: Any
) -> dict[str, Any]:
    now = now_utc()
    domain = _config("MAIL_RETURN_DOMAIN", "mail.localhost")
    source_type, source_id = ("", "")
    if source is not None:
        source_type, source_id = (source.type, source.id) if isinstance(source, Source) else source
    return {
        "client_id": client_id,
        "debtor_id": debtor_id,
        "purpose": purpose,
        "dedupe_key": dedupe_key,
        "subject": (subject or "").strip()[:300],
        "language": (language or "en")[:12],
        "status": MessageStatus.QUEUED.value,
        "attempts": 0,
        "last_error": "",
        "rfc_message_id": f"<{uuid.uuid4().hex}.{client_id}@{domain}>",
        "source_type": str(source_type)[:40],
        "source_id": str(source_id)[:80],
        "created_by": current_actor().label[:254],
        "created_at": now,
        "updated_at": now,
        "to_address": "",
        "to_name": "",
        "from_address": "",
        "from_name": "",
        "reply_to": "",
        "text_body": "",
    }


def _attach(session: Session, message: Message, attachments: Iterable[Attachment | tuple[str, bytes, str]]) -> None:
    for item in attachments:
        att = item if isinstance(item, Attachment) else Attachment(item[0], item[1], item[2])
        if len(att.content) > MAX_ATTACHMENT_BYTES:
            raise ValueError(f"attachment {att.filename!r} is larger than {MAX_ATTACHMENT_BYTES // 1048576} MB")
        session.add(
            MessageAttachment(
                client_id=message.client_id,
                message_id=message.id,
                filename=att.filename[:200],
                mimetype=att.mimetype[:100],
                size=len(att.content),
                content=att.content,
            )
        )


def queue_email(
    session: Session,
    *,
    client_id: int,
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    debtor_id: int | None = None,
    purpose: str,
    dedupe_key: str,
    attachments: Sequence[Attachment | tuple[str, bytes, str]] = (),
    language: str = "en",
    source: Source | tuple[str, Any] | None = None,
    to_name: str = "",
) -> Message:
    """Store one rendered e-mail and arrange its sending; returns the message.

    Idempotent by (client, dedupe_key): an existing message with that key is returned as it is. The sender is
    the client's identity (`SendingIdentity`, else MAIL_DEFAULT_FROM); the Reply-To is the client's fixed one, or
    a signed reply address that brings replies back to the debtor's timeline. An address that does not parse, or
    that bounced before / was unsubscribed in this client, gives a `failed` message with the reason in
    `last_error` (never sent, never raised). Otherwise the message is `queued` and the sending job is put in the
    outbox in the caller's transaction (it runs after the commit).
    """
    _check_key(dedupe_key, purpose)
    from_name, from_address, fixed_reply_to = identity_for(session, client_id)
    values = _base_values(
        client_id=client_id,
        debtor_id=debtor_id,
        purpose=purpose,
        dedupe_key=dedupe_key,
        subject=subject,
        language=language,
        source=source,
    )
    problem = address_problem(to)
    address = normalise_address(to) if problem is None else (to or "").strip()[:320]
    if problem is None:
        suppressed = suppression_of(session, client_id, address)
        if suppressed is not None:
            problem = suppression_reason(suppressed)
    values.update(
        channel=Channel.EMAIL.value,
        to_address=address,
        to_name=(to_name or "").strip()[:200],
        from_address=from_address,
        from_name=from_name,
        reply_to=fixed_reply_to,
        text_body=text or "",
        html_body=html,
    )
    if problem is not None:
        values.update(status=MessageStatus.FAILED.value, last_error=problem[:500])
    message = _insert(session, values)
    if message is None:  # a concurrent transaction queued the same key first
        return _existing(session, client_id, dedupe_key)  # type: ignore[return-value]
    _attach(session, message, attachments)
    add_event(session, message, EventKind.QUEUED.value)
    if problem is not None:
        add_event(session, message, EventKind.FAILED.value, problem)
    else:
        _enqueue_sending(session, client_id)
    session.flush()
    return message


@dataclass(frozen=True)
class EmailSpec:
    debtor_id: int
    to: str
    to_name: str
    subject: str
    text: str
    html: str
    dedupe_key: str
    source_id: Any  # what it was sent for (a dunning stage's id, ...), with the batch's `source_type`
    language: str
    attachments: tuple[Any, ...] = ()


def queue_emails(
    session: Session, client_id: int, specs: Sequence[EmailSpec], *, purpose: str, source_type: str
) -> dict[str, int]:
    """Queue a chunk of e-mails at once: {dedupe key: message id}, for new and already queued keys alike.

    The same rows and guarantees as `queue_email` one by one (idempotent by (client, dedupe key) with INSERT …
    ON CONFLICT DO NOTHING, a `queued` history event each, attachments, one sending job), in a few statements per
    chunk instead of seven round trips per message: the daily dunning run queues tens of thousands. The callers
    have already refused addresses that do not parse or are suppressed (`address_problem`, `suppression_of`)."""
    if not specs:
        return {}

    def known() -> dict[str, int]:
        keys = [s.dedupe_key for s in specs]
        found = session.execute(
            select(Message.dedupe_key, Message.id).where(Message.client_id == client_id, Message.dedupe_key.in_(keys))
        )
        return {key: message_id for key, message_id in found}

    for spec in specs:
        _check_key(spec.dedupe_key, purpose)
    before = known()
    from_name, from_address, reply_to = identity_for(session, client_id)
    rows = []
    for spec in specs:
        if spec.dedupe_key in before:
            continue
        values = _base_values(
            client_id=client_id, debtor_id=spec.debtor_id, purpose=purpose, dedupe_key=spec.dedupe_key,
            subject=spec.subject, language=spec.language, source=Source(source_type, spec.source_id),
        )  # fmt: skip
        values.update(
            channel="email", to_address=normalise_address(spec.to), to_name=spec.to_name.strip()[:200],
            from_address=from_address, from_name=from_name, reply_to=reply_to, text_body=spec.text,
            html_body=spec.html,
        )  # fmt: skip
        rows.append(values)
    columns = set(Message.__table__.c.keys())
    rows = [{k: v for k, v in row.items() if k in columns} for row in rows]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    if rows:  # executemany without RETURNING (the driver's fast path); a concurrent run's rows are left alone
        session.execute(
            insert(Message.__table__).on_conflict_do_nothing(index_elements=["client_id", "dedupe_key"]), rows
        )
    ids = known()
    mine = {r["rfc_message_id"] for r in rows}
    new = {key: mid for key, mid in ids.items() if key not in before}
    if new and len(new) != len(mine):  # another transaction queued some of these keys meanwhile: not ours
        owned = session.execute(
            select(Message.dedupe_key, Message.id).where(
                Message.client_id == client_id, Message.rfc_message_id.in_(sorted(mine))
            )
        )
        new = {key: mid for key, mid in owned}
    if new:
        now, actor = now_utc(), current_actor().label[:254]
        session.execute(
            sa_insert(MessageEvent.__table__),
            [{"client_id": client_id, "message_id": mid, "kind": EventKind.QUEUED.value, "detail": "",
              "inbound_id": None, "actor": actor, "occurred_at": now} for mid in new.values()],
        )  # fmt: skip
        attachments = [
            {"client_id": client_id, "message_id": new[s.dedupe_key], "filename": a.filename[:200],
             "mimetype": a.mimetype[:100], "size": len(a.content), "content": a.content}
            for s in specs if s.dedupe_key in new for a in s.attachments
        ]  # fmt: skip
        if any(a["size"] > MAX_ATTACHMENT_BYTES for a in attachments):
            raise ValueError("an attachment is larger than the limit")
        if attachments:
            session.execute(sa_insert(MessageAttachment.__table__), attachments)
        _enqueue_sending(session, client_id)
    return ids


def _enqueue_sending(session: Session, client_id: int) -> None:
    """One sending job per client and transaction (a batch job sends every queued message of the client). With no
    outgoing server configured there is nothing to run: the mail waits, and the minute sweep starts the runs once
    SMTP_HOST is set."""
    done: set[int] = session.info.setdefault("comms_send_enqueued", set())
    if client_id in done or not _config("SMTP_HOST"):
        return
    from provider.comms.jobs import send_mail_job
    from provider.core import jobs

    jobs.enqueue(send_mail_job, client_id, job_id=f"mail:{client_id}")
    done.add(client_id)


def queue_letter(
    session: Session,
    *,
    client_id: int,
    debtor_id: int,
    address_lines: Sequence[str],
    subject: str,
    pdf_bytes: bytes,
    dedupe_key: str,
    purpose: str,
    source: Source | tuple[str, Any] | None = None,
    language: str = "en",
    to_name: str = "",
) -> Message:
    """Store one rendered letter (its PDF as the attachment `letter.pdf`); returns the message, status `queued`
    ("waiting to be printed"). Idempotent by (client, dedupe_key) like `queue_email`. A letter without a postal
    address is stored `failed` with the reason. It counts as sent when its batch is marked dispatched."""
    _check_key(dedupe_key, purpose)
    existing = _existing(session, client_id, dedupe_key)
    if existing is not None:
        return existing
    lines = [str(line).strip()[:200] for line in address_lines if str(line).strip()]
    if not pdf_bytes:
        raise ValueError("a letter needs its PDF")
    values = _base_values(
        client_id=client_id,
        debtor_id=debtor_id,
        purpose=purpose,
        dedupe_key=dedupe_key,
        subject=subject,
        language=language,
        source=source,
    )
    values.update(channel=Channel.LETTER.value, address_lines=lines, to_name=(to_name or "").strip()[:200])
    if not lines:
        values.update(status=MessageStatus.FAILED.value, last_error="Not printed: the debtor has no postal address.")
    message = _insert(session, values)
    if message is None:
        return _existing(session, client_id, dedupe_key)  # type: ignore[return-value]
    _attach(session, message, [Attachment("letter.pdf", pdf_bytes, "application/pdf")])
    add_event(session, message, EventKind.QUEUED.value)
    if not lines:
        add_event(session, message, EventKind.FAILED.value, message.last_error)
    session.flush()
    return message


def _move_letters(
    session: Session, client_id: int, message_ids: Iterable[int], *, frm: tuple[str, ...], to: str, note: str
) -> list[int]:
    ids = sorted({int(i) for i in message_ids})
    if not ids:
        return []
    now = now_utc()
    values: dict[str, Any] = {"status": to, "updated_at": now}
    if to == MessageStatus.DISPATCHED.value:
        values["dispatched_at"] = now
    moved = list(
        session.execute(
            update(Message)
            .where(
                Message.client_id == client_id,
                Message.id.in_(ids),
                Message.channel == Channel.LETTER.value,
                Message.status.in_(frm),
            )
            .values(**values)
            .returning(Message.id)
            .execution_options(synchronize_session=False)
        ).scalars()
    )
    actor = current_actor().label[:254]
    for message_id in moved:
        session.add(
            MessageEvent(
                client_id=client_id, message_id=message_id, kind=to, detail=note[:1000], actor=actor, occurred_at=now
            )
        )
    session.flush()
    session.expire_all()
    return sorted(moved)


def mark_letters_printed(session: Session, client_id: int, message_ids: Iterable[int], batch: str = "") -> list[int]:
    """Letters put in a print file (`batch` names it): queued → printed. Returns the ids that moved (a letter
    already printed or posted is left as it is, so a re-run of the print step moves nothing twice)."""
    note = f"In print file {batch}" if batch else ""
    return _move_letters(session, client_id, message_ids, frm=(MessageStatus.QUEUED.value,), to="printed", note=note)


def mark_letters_dispatched(session: Session, client_id: int, message_ids: Iterable[int], by: str) -> list[int]:
    """Letters handed to the mail house (`by` names who or which batch): queued/printed → dispatched, the moment
    they count as sent. Returns the ids that moved; letters of other clients, e-mails and letters already posted
    are left alone. Audited once per call."""
    moved = _move_letters(
        session,
        client_id,
        message_ids,
        frm=(MessageStatus.QUEUED.value, MessageStatus.PRINTED.value),
        to=MessageStatus.DISPATCHED.value,
        note=f"Posted ({by})" if by else "Posted",
    )
    if moved:
        audit.record(
            session,
            "mail.letters_dispatched",
            "Message",
            client_id=client_id,
            object_id="batch",
            after={"messages": moved, "by": by},
        )
    return moved


def count_by_status(session: Session, client_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Message.status, func.count()).where(Message.client_id == client_id).group_by(Message.status)
    )
    return {status: count for status, count in rows}


def unsubscribe_message(session: Session, client_id: int, message_id: int) -> SuppressedAddress | None:
    """The debtor asked, from the link in `message`, for no more e-mail: suppress the address it went to, in that
    client. None when the message is not an e-mail of this client (the page then shows a 404)."""
    message = session.scalar(
        select(Message).where(
            Message.client_id == client_id, Message.id == message_id, Message.channel == Channel.EMAIL.value
        )
    )
    if message is None or not message.to_address:
        return None
    return suppress_address(
        session,
        client_id=client_id,
        address=message.to_address,
        kind=SuppressionKind.UNSUBSCRIBED.value,
        reason="Unsubscribed with the link in an e-mail.",
        message_id=message.id,
    )


_TRANSACTION_CACHES = ("comms_identities", "comms_send_enqueued")


@event.listens_for(Session, "after_commit")
def _forget_after_commit(session: Session) -> None:
    for key in _TRANSACTION_CACHES:
        session.info.pop(key, None)


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_rollback(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        for key in _TRANSACTION_CACHES:
            session.info.pop(key, None)
