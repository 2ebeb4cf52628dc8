"""Replies and bounces come back through the product's own SMTP listener, end to end over real SMTP on loopback:
a message goes out to one aiosmtpd, and the answers are sent with smtplib to our listener."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from provider.comms import Message, MessageEvent, is_undeliverable, queue_email, verp
from provider.comms.inbound import InboundListener
from provider.comms.loopback import CaptureServer, Received, free_port
from provider.comms.models import InboundMail
from provider.comms.sender import send_queued
from provider.core.clock import today_utc
from provider.core.tenancy import TenantScope, scoped
from tests.factories import make_client, make_debtor, make_invoice, make_work_items
from worklists.models import WorkAction, WorkItem


@pytest.fixture
def listener(app: Any, db_session: Any) -> Any:
    with InboundListener(app, "127.0.0.1", free_port()) as running:
        yield running


def _send_to(listener: InboundListener, rcpt: str, mail: EmailMessage, mail_from: str = "") -> None:
    with smtplib.SMTP(listener.host, listener.port, timeout=10) as smtp:
        smtp.send_message(mail, from_addr=mail_from, to_addrs=[rcpt])


def _sent_one(db_session: Any, client: Any, debtor: Any, server: CaptureServer, to: str) -> tuple[Message, Received]:
    with scoped(TenantScope.single(client.id), db_session):
        message = queue_email(
            db_session,
            client_id=client.id,
            to=to,
            subject="Your overdue invoices",
            text="Please pay.",
            debtor_id=debtor.id,
            purpose="dunning",
            dedupe_key=f"d:{to}",
        )
        db_session.commit()
        assert send_queued(db_session, client.id).sent == 1
    return message, server.received[-1]


def _dsn(original: Received, action: str, status: str, diagnostic: str) -> EmailMessage:
    report = EmailMessage()
    report["From"] = "MAILER-DAEMON@mx.example.org"
    report["To"] = original.mail_from
    report["Subject"] = "Undelivered Mail Returned to Sender"
    report.set_content("This is the mail system. Your message could not be delivered.")
    report.make_mixed()
    report.set_type("multipart/report")
    report.set_param("report-type", "delivery-status")
    status_part = EmailMessage()
    status_part.set_type("message/delivery-status")
    per_message = EmailMessage()
    per_message["Reporting-MTA"] = "dns; mx.example.org"
    per_recipient = EmailMessage()
    per_recipient["Final-Recipient"] = f"rfc822; {original.rcpt_tos[0]}"
    per_recipient["Action"] = action
    per_recipient["Status"] = status
    per_recipient["Diagnostic-Code"] = f"smtp; {diagnostic}"
    status_part.set_payload([per_message, per_recipient])
    report.attach(status_part)
    return report


def _events(db_session: Any, message_id: int) -> list[tuple[str, str]]:
    rows = db_session.execute(
        select(MessageEvent.kind, MessageEvent.detail)
        .where(MessageEvent.message_id == message_id)
        .order_by(MessageEvent.id)
    )
    return [(k, d) for k, d in rows]


def test_a_permanent_bounce_marks_the_message_and_stops_mail_to_the_address(
    app: Any, db_session: Any, smtp_server: CaptureServer, listener: InboundListener
) -> None:
    client, other = make_client(), make_client()
    debtor = make_debtor(client)
    message, delivered = _sent_one(db_session, client, debtor, smtp_server, "gone@example.test")

    _send_to(listener, delivered.mail_from, _dsn(delivered, "failed", "5.1.1", "550 5.1.1 User unknown"))

    with scoped(TenantScope.single(client.id), db_session):
        db_session.refresh(message)
        assert message.status == "bounced" and message.status_label == "Bounced" and message.bounced_at
        assert "User unknown" in message.last_error
        assert _events(db_session, message.id)[-1][0] == "bounced"
        assert is_undeliverable(db_session, client.id, "gone@example.test")
        again = queue_email(
            db_session,
            client_id=client.id,
            to="gone@example.test",
            subject="s",
            text="t",
            purpose="dunning",
            dedupe_key="after",
        )
        assert again.status == "failed" and "address bounced" in again.last_error
    with scoped(TenantScope.single(other.id), db_session):
        assert not is_undeliverable(db_session, other.id, "gone@example.test")
    inbound = db_session.scalar(select(InboundMail).order_by(InboundMail.id.desc()))
    assert (inbound.kind, inbound.client_id, inbound.message_id) == ("bounce", client.id, message.id)
    assert inbound.raw.startswith(b"") and len(inbound.raw) == inbound.size > 0


def test_a_delay_notice_is_noted_without_stopping_anything(
    app: Any, db_session: Any, smtp_server: CaptureServer, listener: InboundListener
) -> None:
    client = make_client()
    debtor = make_debtor(client)
    message, delivered = _sent_one(db_session, client, debtor, smtp_server, "slow@example.test")
    _send_to(listener, delivered.mail_from, _dsn(delivered, "delayed", "4.4.7", "451 4.4.7 Mailbox busy"))
    with scoped(TenantScope.single(client.id), db_session):
        db_session.refresh(message)
        assert message.status == "sent"
        assert _events(db_session, message.id)[-1][0] == "delayed"
        assert not is_undeliverable(db_session, client.id, "slow@example.test")


def test_a_reply_joins_the_timeline_and_puts_the_account_in_the_collectors_queue_today(
    app: Any, db_session: Any, smtp_server: CaptureServer, listener: InboundListener
) -> None:
    client = make_client()
    debtor = make_debtor(client)
    make_invoice(client, debtor, "INV-1", 12_000)
    item_id = make_work_items(client)[debtor.id]
    message, delivered = _sent_one(db_session, client, debtor, smtp_server, "ana@example.test")
    reply_to = str(delivered.message["Reply-To"])

    reply = EmailMessage()
    reply["From"] = "Ana <ana@example.test>"
    reply["To"] = reply_to
    reply["Subject"] = "Re: Your overdue invoices"
    reply["In-Reply-To"] = message.rfc_message_id
    reply.set_content("I paid this last week, see the bank reference 4711.\n\nOn Monday you wrote:\n> Please pay.")
    _send_to(listener, reply_to, reply, mail_from="ana@example.test")

    with scoped(TenantScope.single(client.id), db_session):
        db_session.refresh(message)
        assert message.replied_at and message.status == "sent"
        kind, detail = _events(db_session, message.id)[-1]
        assert kind == "replied" and "bank reference 4711" in detail and "Please pay" not in detail
        item = db_session.get(WorkItem, item_id)
        db_session.refresh(item)
        assert item.next_action_on == today_utc() and item.next_action_note.startswith("Reply received")
        action = db_session.scalar(
            select(WorkAction).where(WorkAction.work_item_id == item_id).order_by(WorkAction.id.desc())
        )
        assert (action.kind, action.outcome) == ("email", "reply_received")


@pytest.mark.parametrize("tamper", ["signature", "message", "client"])
def test_a_forged_or_altered_return_address_is_unmatched_and_changes_nothing(
    app: Any, db_session: Any, smtp_server: CaptureServer, listener: InboundListener, tamper: str
) -> None:
    client, other = make_client(), make_client()
    debtor = make_debtor(client)
    message, delivered = _sent_one(db_session, client, debtor, smtp_server, f"{tamper}@example.test")
    real = verp.decode(
        str(delivered.message["Reply-To"]),
        secret=app.config["MAIL_VERP_SECRET"],
        domain=app.config["MAIL_RETURN_DOMAIN"],
    )
    assert real is not None
    local, domain = str(delivered.message["Reply-To"]).split("@")
    kind, numbers = local.split("+")
    c, m, sig = numbers.split("-")
    forged = {
        "signature": f"{kind}+{c}-{m}-{'0' * 16}@{domain}",
        "message": f"{kind}+{c}-{int(m) + 1}-{sig}@{domain}",
        "client": f"{kind}+{other.id}-{m}-{sig}@{domain}",
    }[tamper]
    reply = EmailMessage()
    reply["From"] = "someone@example.test"
    reply["Subject"] = "Re: hello"
    reply.set_content("Attach me to somebody's account")
    _send_to(listener, forged, reply)

    inbound = db_session.scalar(select(InboundMail).order_by(InboundMail.id.desc()))
    assert inbound.kind == "unmatched" and inbound.client_id is None and inbound.message_id is None
    assert "signature" in inbound.reason
    with scoped(TenantScope.single(client.id), db_session):
        db_session.refresh(message)
        assert message.replied_at is None
        assert [k for k, _d in _events(db_session, message.id)] == ["queued", "sent"]


def test_the_listener_is_not_a_relay_and_keeps_other_mail_for_our_domain_as_unmatched(
    app: Any, db_session: Any, listener: InboundListener
) -> None:
    mail = EmailMessage()
    mail["From"] = "spam@example.org"
    mail["Subject"] = "Hello"
    mail.set_content("hi")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        _send_to(listener, "victim@example.org", mail)
    assert next(iter(refused.value.recipients.values()))[0] == 550
    _send_to(listener, f"info@{app.config['MAIL_RETURN_DOMAIN']}", mail, mail_from="spam@example.org")
    inbound = db_session.scalar(select(InboundMail).order_by(InboundMail.id.desc()))
    assert inbound.kind == "unmatched" and "not a reply or bounce address" in inbound.reason
    assert inbound.subject == "Hello" and inbound.mail_from == "spam@example.org"
