"""The demo's mail: with no SMTP_HOST configured, the demo web process starts a real SMTP server on loopback
(aiosmtpd) and sends its mail there, so the Mail pages show delivered mail ("Received by the demo mail server";
what it got is kept in instance/demo-mail/ as .eml files). It also starts the inbound listener on
MAIL_INBOUND_PORT (127.0.0.1:2525 by default), so replies and bounces can be sent back by hand:

    swaks --server 127.0.0.1:2525 --to 'reply+<client>-<message>-<signature>@mail.localhost' --body 'I paid'

With SMTP_HOST set (an independent server), the demo sends there and starts no capture server.
"""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Flask

from provider.config import INSTANCE_DIR

log = logging.getLogger(__name__)


def start_demo_mail(app: Flask) -> None:
    """Once per process: the capture server (when no SMTP_HOST) and the inbound listener (when its port is free)."""
    if app.extensions.get("ar_demo_mail") is not None:
        return
    app.extensions["ar_demo_mail"] = started = []
    from provider.comms.inbound import InboundListener
    from provider.comms.loopback import CaptureServer

    if not app.config.get("SMTP_HOST"):
        folder = Path(app.config.get("DEMO_MAIL_DIR") or INSTANCE_DIR / "demo-mail")
        server = CaptureServer(directory=folder).start()
        app.config.update(SMTP_HOST=server.host, SMTP_PORT=server.port, SMTP_STARTTLS=False, SMTP_SSL=False)
        app.config["DEMO_MAIL_DIR"] = str(folder)
        started.append(server)
        log.info("demo mail server on %s:%s keeps what it receives in %s", server.host, server.port, folder)
    try:
        started.append(InboundListener(app).start())
        log.info("replies and bounces: SMTP on %s:%s", app.config["MAIL_INBOUND_HOST"], app.config["MAIL_INBOUND_PORT"])
    except Exception as exc:  # the port is taken (another demo, or `flask mail-inbound` runs)
        log.warning("inbound mail listener not started here (%s); run `flask mail-inbound` for it", exc)


def seed_demo_mail(client_ids: list[int], per_client: int = 3) -> int:
    """A few reminders written by a collector to debtors with an e-mail address, so the demo's Mail page and the
    debtors' timelines have mail to show (idempotent by their dedupe keys). Returns how many exist."""
    from sqlalchemy import select

    from clients.models import Client, ContactKind, Debtor, DebtorContact
    from provider.comms.services import queue_email
    from provider.extensions import db

    total = 0
    for client_id in client_ids:
        client = db.session.get(Client, client_id)
        rows = db.session.execute(
            select(Debtor.id, Debtor.name, DebtorContact.value)
            .join(DebtorContact, (DebtorContact.client_id == Debtor.client_id) & (DebtorContact.debtor_id == Debtor.id))
            .where(Debtor.client_id == client_id, DebtorContact.kind == ContactKind.EMAIL.value)
            .order_by(Debtor.id)
            .limit(per_client)
        ).all()
        for debtor_id, name, address in rows:
            queue_email(
                db.session,
                client_id=client_id,
                to=address,
                to_name=name,
                subject=f"{client.name if client else 'Your supplier'}: your account is overdue",
                text=(
                    f"Dear {name},\n\nour records show invoices on your account with "
                    f"{client.name if client else 'us'} that are past their due date. Please pay them, or reply to "
                    "this e-mail if something is wrong with them.\n\nKind regards,\nThe accounts team\n"
                ),
                html=(
                    f"<p>Dear {name},</p><p>our records show invoices on your account that are <b>past their due "
                    "date</b>. Please pay them, or reply to this e-mail if something is wrong with them.</p>"
                    "<p>Kind regards,<br>The accounts team</p>"
                ),
                debtor_id=debtor_id,
                purpose="manual",
                dedupe_key=f"demo:reminder:{debtor_id}",
            )
            total += 1
    return total
