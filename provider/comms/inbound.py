"""Mail that comes back: bounces and replies, read from the signed address they were sent to.

`receive(session, mail_from, rcpt_to, raw)` stores every mail raw (`InboundMail`) and decides what it is:

- to a signed bounce address (`bounces+…`) and a delivery report (RFC 3464, read with the standard library's
  `email` package): a permanent failure (Action failed / Status 5.x.x) marks the message bounced and suppresses the
  address for that client, so nothing more is sent to it; a delay (4.x.x) is noted on the message's history.
- to a signed reply address (`reply+…`): the reply's excerpt joins the message's history (the debtor's
  timeline), `replied_at` is set, and the debtor's account surfaces in the owning collector's queue with the next
  action due today and the reason "Reply received".
- anything else (not our domain, a tampered or forged signature, a message that does not exist, a bounce that is
  not a delivery report): stored as *unmatched* with the reason in words, for the agency's Mail page.

Each mail is handled once: it is one row, written with its effects in one transaction.
`InboundListener` is the product's SMTP listener (aiosmtpd) that feeds `receive`; `flask mail-inbound` runs it.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.message import Message as RawMessage
from typing import Any

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from provider.comms import verp
from provider.comms.models import (
    EventKind,
    InboundKind,
    InboundMail,
    Message,
    MessageStatus,
    SuppressionKind,
)
from provider.comms.services import add_event, suppress_address
from provider.core.clock import now_utc

log = logging.getLogger(__name__)
MAX_INBOUND_BYTES = 10 * 1024 * 1024
_TAGS = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Delivery:
    """One recipient's line of a delivery report."""

    action: str
    status: str
    recipient: str
    diagnostic: str

    @property
    def permanent(self) -> bool:
        return self.action == "failed" or self.status.startswith("5.")

    @property
    def words(self) -> str:
        detail = self.diagnostic or self.status
        return f"The receiving server reported: {detail}"[:500] if detail else "The receiving server gave no reason."


def parse_dsn(mail: RawMessage) -> list[Delivery]:
    """The per-recipient lines of a delivery status notification; [] when `mail` is not one."""
    if mail.get_content_type() != "multipart/report":
        return []
    out: list[Delivery] = []
    for part in mail.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list):
            continue
        for block in blocks[1:]:  # the first block is about the report, the others about each recipient
            action = str(block.get("Action", "")).strip().lower()
            status = str(block.get("Status", "")).strip()
            if not action and not status:
                continue
            recipient = str(block.get("Final-Recipient", "") or block.get("Original-Recipient", ""))
            out.append(
                Delivery(
                    action=action,
                    status=status,
                    recipient=recipient.split(";", 1)[-1].strip(),
                    diagnostic=" ".join(str(block.get("Diagnostic-Code", "")).split(";", 1)[-1].split()),
                )
            )
    return out


def reply_excerpt(mail: EmailMessage, limit: int = 800) -> str:
    """The new text of a reply: the plain part (else the HTML part without tags), quoted lines and the quoted
    original after an "On … wrote:" line left out."""
    body = mail.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    try:
        text = body.get_content()
    except (LookupError, ValueError):
        return ""
    if body.get_content_type() == "text/html":
        text = _TAGS.sub(" ", text)
    kept = []
    for line in str(text).splitlines():
        if line.startswith(">"):
            continue
        if re.match(r"^On .+wrote:\s*$", line.strip()):
            break
        kept.append(line.rstrip())
    return "\n".join(kept).strip()[:limit]


def _store(session: Session, mail_from: str, rcpt_to: str, raw: bytes, mail: RawMessage) -> InboundMail:
    row = InboundMail(
        mail_from=(mail_from or "")[:320],
        rcpt_to=(rcpt_to or "")[:320],
        from_header=str(mail.get("From", ""))[:400],
        subject=" ".join(str(mail.get("Subject", "")).split())[:300],
        kind=InboundKind.UNMATCHED.value,
        reason="",
        size=len(raw),
        raw=raw,
        received_at=now_utc(),
    )
    session.add(row)
    session.flush()
    return row


def _unmatched(row: InboundMail, reason: str) -> InboundMail:
    row.kind, row.reason, row.processed_at = InboundKind.UNMATCHED.value, reason[:500], now_utc()
    return row


def receive(session: Session, mail_from: str, rcpt_to: str, raw: bytes, *, secret: str, domain: str) -> InboundMail:
    """Store one received mail for one envelope recipient and act on it (see the module's docstring). Flushes;
    the caller commits. Runs with agency-wide scope (it decides the client from the signed address)."""
    mail = email.message_from_bytes(raw, policy=email.policy.default)
    row = _store(session, mail_from, rcpt_to, raw, mail)
    address = verp.decode(rcpt_to, secret=secret, domain=domain)
    if address is None:
        if rcpt_to.strip().lower().startswith((verp.BOUNCE + "+", verp.REPLY + "+")):
            return _unmatched(
                row, "Sent to a return address of ours whose signature does not match (altered or forged)."
            )
        return _unmatched(row, f"Sent to {rcpt_to}, which is not a reply or bounce address of the platform.")
    message = session.scalar(
        select(Message).where(Message.client_id == address.client_id, Message.id == address.message_id)
    )
    if message is None:
        return _unmatched(row, "The signed address names a message that no longer exists.")
    row.client_id, row.message_id = message.client_id, message.id
    if address.kind == verp.BOUNCE:
        return _bounce(session, row, message, mail)
    return _reply(session, row, message, mail)


def _bounce(session: Session, row: InboundMail, message: Message, mail: RawMessage) -> InboundMail:
    deliveries = parse_dsn(mail)
    if not deliveries:
        return _unmatched(row, "Came back to a bounce address but is not a delivery report (perhaps an auto-reply).")
    row.kind, row.processed_at = InboundKind.BOUNCE.value, now_utc()
    failed = next((d for d in deliveries if d.permanent), None)
    if failed is None:
        row.reason = "Delivery delayed: the receiving side is still trying."
        add_event(session, message, EventKind.DELAYED.value, deliveries[0].words, inbound_id=row.id)
        return row
    now = now_utc()
    session.execute(
        update(Message)
        .where(
            Message.client_id == message.client_id,
            Message.id == message.id,
            Message.status.in_((MessageStatus.SENT.value, MessageStatus.SENDING.value)),
        )
        .values(status=MessageStatus.BOUNCED.value, bounced_at=now, last_error=failed.words, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.expire(message)
    add_event(session, message, EventKind.BOUNCED.value, failed.words, inbound_id=row.id)
    suppress_address(
        session,
        client_id=message.client_id,
        address=message.to_address,
        kind=SuppressionKind.BOUNCED.value,
        reason=failed.words,
        message_id=message.id,
    )
    row.reason = f"Bounced for good: {message.to_address} will not be written to again."[:500]
    return row


def _reply(session: Session, row: InboundMail, message: Message, mail: RawMessage) -> InboundMail:
    excerpt = reply_excerpt(mail) if isinstance(mail, EmailMessage) else ""
    sender = str(mail.get("From", "")).strip()
    now = now_utc()
    row.kind, row.processed_at = InboundKind.REPLY.value, now
    session.execute(
        update(Message)
        .where(Message.client_id == message.client_id, Message.id == message.id)
        .values(replied_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.expire(message)
    add_event(session, message, EventKind.REPLIED.value, f"From {sender}: {excerpt}", inbound_id=row.id)
    if message.debtor_id is None:
        row.reason = "Reply to a notice; attached to the message."
        return row
    from worklists.services import reply_received  # the worklists own their queue

    surfaced = reply_received(
        session, message.client_id, message.debtor_id, f"Reply received: {row.subject or '(no subject)'}"[:200]
    )
    row.reason = (
        "Reply attached to the debtor's timeline; the account is due for a collector today."
        if surfaced
        else "Reply attached to the debtor's timeline (the debtor has no account in a collector's queue)."
    )
    return row


# --- the listener ----------------------------------------------------------------------------------------------


class InboundHandler:
    """aiosmtpd handler: accepts mail for the return domain only (never a relay), stores and processes it."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    async def handle_RCPT(self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any) -> str:
        domain = self.app.config["MAIL_RETURN_DOMAIN"]
        if not address.lower().endswith("@" + domain.lower()):
            return "550 5.7.1 Relaying denied: this server only accepts mail for " + domain
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        raw = bytes(envelope.original_content or envelope.content)
        try:
            deliver(self.app, envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        except Exception:  # the database is away: the sending server keeps the mail and tries again
            log.exception("inbound mail not stored")
            return "451 4.3.0 Temporary failure: try again later"
        return "250 OK: received"


def deliver(app: Flask, mail_from: str, rcpt_tos: list[str], raw: bytes) -> list[int]:
    """Receive one mail for each envelope recipient, in one transaction; returns the inbound rows' ids."""
    from provider.core.audit import Actor, acting_as
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db

    with app.app_context(), acting_as(Actor.system("mail-inbound")), scoped(TenantScope.agency()):
        try:
            ids = [
                receive(
                    db.session,
                    mail_from,
                    rcpt,
                    raw,
                    secret=app.config["MAIL_VERP_SECRET"],
                    domain=app.config["MAIL_RETURN_DOMAIN"],
                ).id
                for rcpt in rcpt_tos
            ]
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
        finally:
            db.session.remove()
    return ids


class InboundListener:
    """The product's inbound SMTP listener (aiosmtpd in a thread)."""

    def __init__(self, app: Flask, host: str | None = None, port: int | None = None) -> None:
        self.app = app
        self.host = host or app.config.get("MAIL_INBOUND_HOST", "127.0.0.1")
        self.port = int(port if port is not None else app.config.get("MAIL_INBOUND_PORT", 2525))
        self._controller: Any = None

    def start(self) -> InboundListener:
        from aiosmtpd.controller import Controller

        self._controller = Controller(
            InboundHandler(self.app),
            hostname=self.host,
            port=self.port,
            data_size_limit=MAX_INBOUND_BYTES,
            decode_data=False,
            ready_timeout=10,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> InboundListener:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()
