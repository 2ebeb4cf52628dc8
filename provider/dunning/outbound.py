"""Where dunning meets the communications core (provider.comms) and the PDF renderer.

E-mails and letters are stored and delivered by provider.comms (`queue_email`, `queue_letter`,
`mark_letters_dispatched`); this module renders what dunning hands them: the consolidated statement and the
letters, as PDF with WeasyPrint (provider.reporting.render), with the client's letterhead.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from flask import current_app, render_template
from sqlalchemy import select
from sqlalchemy.orm import Session

from clients.models import Client


def agency_name() -> str:
    return str(current_app.config.get("AGENCY_NAME", "AR Ops Collections"))


def attach_statements() -> bool:
    return bool(current_app.config.get("DUNNING_ATTACH_STATEMENT", True))


def email_problems(session: Session, client_id: int, addresses: Sequence[str]) -> dict[str, str]:
    """{address: reason code of provider.dunning.decide.REASONS} for the addresses that cannot be written to
    (do not parse: "no_address"; bounced or unsubscribed in this client: "bounced"); one query for them all."""
    from provider.comms.models import SuppressedAddress
    from provider.comms.services import address_problem, normalise_address

    problems: dict[str, str] = {}
    normal: dict[str, str] = {}
    for address in set(addresses):
        if not address or address_problem(address) is not None:
            problems[address] = "no_address"
        else:
            normal[normalise_address(address)] = address  # the form comms stores and compares
    if normal:
        suppressed = session.scalars(
            select(SuppressedAddress.address).where(
                SuppressedAddress.client_id == client_id, SuppressedAddress.address.in_(sorted(normal))
            )
        )
        for address in suppressed:
            problems[normal[address]] = "bounced"
    return problems


def queue_email(
    session: Session,
    client_id: int,
    cand: Any,
    subject: str,
    text: str,
    html: str,
    key: str,
    stage_id: int,
    language: str,
    attachments: Sequence[Any],
) -> int:
    from provider.comms.services import Source
    from provider.comms.services import queue_email as comms_queue_email

    message = comms_queue_email(
        session,
        client_id=client_id,
        to=cand.email,
        to_name=cand.name,
        subject=subject,
        text=text,
        html=html,
        debtor_id=cand.debtor_id,
        purpose="dunning",
        dedupe_key=key,
        attachments=attachments,
        language=language,
        source=Source("dunning_stage", stage_id),
    )
    return int(message.id)


def queue_emails(session: Session, client_id: int, specs: Sequence[Any]) -> dict[str, int]:
    """Queue a chunk of dunning e-mails at once through provider.comms' batch path ({dedupe key: message id})."""
    from provider.comms.services import queue_emails as comms_queue_emails

    return comms_queue_emails(session, client_id, specs, purpose="dunning", source_type="dunning_stage")


def queue_letter(
    session: Session, client_id: int, cand: Any, subject: str, pdf: bytes, key: str, stage_id: int, language: str
) -> int:
    from provider.comms.services import Source
    from provider.comms.services import queue_letter as comms_queue_letter

    message = comms_queue_letter(
        session,
        client_id=client_id,
        debtor_id=cand.debtor_id,
        address_lines=[cand.name, *[line for line in cand.postal.replace(",", "\n").splitlines() if line.strip()]],
        subject=subject,
        pdf_bytes=pdf,
        dedupe_key=key,
        purpose="dunning",
        source=Source("dunning_stage", stage_id),
        language=language,
        to_name=cand.name,
    )
    return int(message.id)


def mark_dispatched(session: Session, client_id: int, message_ids: list[int], by: str) -> list[int]:
    from provider.comms.services import mark_letters_dispatched

    return mark_letters_dispatched(session, client_id, message_ids, by)


def letter_pdfs(session: Session, client_id: int, message_ids: list[int]) -> dict[int, bytes]:
    from provider.comms.models import MessageAttachment

    rows = session.execute(
        select(MessageAttachment.message_id, MessageAttachment.content).where(
            MessageAttachment.client_id == client_id, MessageAttachment.message_id.in_(message_ids or [-1])
        )
    )
    return {message_id: bytes(content) for message_id, content in rows}


def letter_addresses(session: Session, client_id: int, message_ids: list[int]) -> dict[int, str]:
    from provider.comms.models import Message

    rows = session.execute(
        select(Message.id, Message.address_lines).where(
            Message.client_id == client_id, Message.id.in_(message_ids or [-1])
        )
    )
    return {message_id: ", ".join(lines or []) for message_id, lines in rows}


def _pdf(html: str) -> tuple[bytes, int]:
    from provider.reporting.render import render_pdf

    return render_pdf(html)


def letterhead(client: Client) -> dict[str, Any]:
    return {"name": client.name, "country": client.country, "agency": agency_name()}


def letter_pdf(client: Client, cand: Any, subject: str, text: str, context: dict[str, Any], language: str) -> bytes:
    html = render_template(
        "dunning/letter_pdf.html",
        head=letterhead(client),
        address=[cand.name, *[line.strip() for line in cand.postal.replace(",", "\n").splitlines() if line.strip()]],
        subject=subject,
        paragraphs=[p for p in text.split("\n\n") if p.strip()],
        ctx=context,
        language=language,
    )
    return _pdf(html)[0]


def statement_pdf(client: Client, debtor_name: str, reference: str, context: dict[str, Any], language: str) -> bytes:
    html = render_template(
        "dunning/statement_pdf.html",
        head=letterhead(client),
        debtor_name=debtor_name,
        reference=reference,
        ctx=context,
        language=language,
    )
    return _pdf(html)[0]


def statement_attachment(client: Client, cand: Any, context: dict[str, Any], language: str) -> Any:
    from provider.comms.services import Attachment

    pdf = statement_pdf(client, cand.name, cand.reference, context, language)
    return Attachment(f"statement-{cand.reference}.pdf", pdf, "application/pdf")


def merge_pdfs(parts: list[bytes]) -> tuple[bytes, list[int]]:
    """One print file of every letter in order, and the page count of each (for the manifest)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    pages = []
    for part in parts:
        if not part:
            pages.append(0)
            continue
        reader = PdfReader(io.BytesIO(part))
        for page in reader.pages:
            writer.add_page(page)
        pages.append(len(reader.pages))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue(), pages
