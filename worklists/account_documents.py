"""The documents of one account: the dispute evidence its disputes hold, the files sent with its messages (letters'
own PDFs, statements sent by e-mail) and its statement as of today, for the account view and the client's copy.

Listed in two queries (no file contents read); each file is downloaded through the route of its owner (the
dispute's evidence route, the message's attachment route), which checks the tenant again: another client's file
is a 404. The client's copy lists the same files: the portal shows a client every dispute and every message to its
debtors, and nothing internal is kept as a document.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from provider.comms.models import Message, MessageAttachment
from provider.extensions import db
from sla.models import Dispute, DisputeEvidence

LIMIT = 100


@dataclass(frozen=True)
class Document:
    kind: str  # evidence | attachment
    filename: str
    size: int
    added_at: datetime
    source: str  # what it belongs to, in words ("Dispute no. 12: pricing", "Letter: Payment reminder")
    owner_id: int  # the dispute's or the message's id
    file_id: int
    by: str = ""


def documents(client_id: int, debtor_id: int, *, for_client: bool = False) -> list[Document]:
    """The account's files, newest first (at most `LIMIT`)."""
    evidence = db.session.execute(
        select(
            DisputeEvidence.id,
            DisputeEvidence.dispute_id,
            DisputeEvidence.filename,
            DisputeEvidence.size,
            DisputeEvidence.created_at,
            DisputeEvidence.uploaded_by_label,
            Dispute.summary,
        )
        .join(Dispute, (Dispute.client_id == DisputeEvidence.client_id) & (Dispute.id == DisputeEvidence.dispute_id))
        .where(DisputeEvidence.client_id == client_id, Dispute.debtor_id == debtor_id)
        .order_by(DisputeEvidence.created_at.desc(), DisputeEvidence.id.desc())
        .limit(LIMIT)
    ).all()
    attachments = db.session.execute(
        select(
            MessageAttachment.id,
            MessageAttachment.message_id,
            MessageAttachment.filename,
            MessageAttachment.size,
            MessageAttachment.created_at,
            Message.channel,
            Message.subject,
        )
        .join(
            Message, (Message.client_id == MessageAttachment.client_id) & (Message.id == MessageAttachment.message_id)
        )
        .where(MessageAttachment.client_id == client_id, Message.debtor_id == debtor_id)
        .order_by(MessageAttachment.created_at.desc(), MessageAttachment.id.desc())
        .limit(LIMIT)
    ).all()
    docs = [
        Document(
            "evidence",
            r.filename,
            r.size,
            r.created_at,
            f"Dispute evidence: {r.summary}",
            r.dispute_id,
            r.id,
            "" if for_client else r.uploaded_by_label,
        )
        for r in evidence
    ] + [
        Document(
            "attachment",
            r.filename,
            r.size,
            r.created_at,
            f"{'Letter' if r.channel == 'letter' else 'E-mail'}: {r.subject or 'no subject'}",
            r.message_id,
            r.id,
        )
        for r in attachments
    ]
    return sorted(docs, key=lambda d: (d.added_at, d.file_id), reverse=True)[:LIMIT]
