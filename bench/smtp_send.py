"""E-mail delivered per second by one sending worker, against raw smtplib on one connection, in the same run.

    python -m bench.smtp_send [--quick] [--db postgresql|sqlite] [--messages N]

Builds a fresh database from the migrations, queues N e-mails of one client (default 5,000, --quick 1,000; each a
text part, an HTML part and for one in ten a 30 KB PDF attachment) through `provider.comms.queue_email`, and starts
an SMTP server (aiosmtpd) in a separate process that counts what it accepts.

  product   `send_mail_job(client_id)`: the real path of one worker: claim a batch (conditional UPDATE + commit),
            read it, build each MIME message (signed return path, Reply-To, List-Unsubscribe), send it over one
            reused SMTP connection, and record `sent` plus its history event in its own commit, per message;
  baseline  raw smtplib: the same messages, built beforehand, sent over one connection (`send_message` in a loop),
            no database.

value = messages/s accepted by the server through the product (goal >= 200 with one worker);
ratio = value / baseline messages/s. The server's own count is checked against N for both.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import smtplib
import tempfile
import time
from typing import Any

from bench.pages import _environ


def _serve(port: int, counter: Any, ready: Any) -> None:
    """The SMTP server process: accepts everything, counts the messages."""
    import asyncio

    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
            with counter.get_lock():
                counter.value += 1
            return "250 OK"

    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    try:
        asyncio.run(asyncio.sleep(10**6))
    finally:
        controller.stop()


def _queue(n: int) -> int:
    from provider.comms import Attachment, queue_email
    from tests.factories import make_client, make_debtor

    client = make_client(name="Bench Mail Ltd")
    debtor = make_debtor(client, name="Bench Debtor")
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 120
    from provider.extensions import db

    for i in range(n):
        queue_email(
            db.session,
            client_id=client.id,
            to=f"debtor{i}@example.com",
            to_name=f"Debtor {i}",
            subject=f"Your account {i}: invoices past due",
            text=f"Dear customer {i},\n\nplease pay the invoices listed below.\n" + "INV-0001  120.00 EUR\n" * 20,
            html=f"<p>Dear customer {i},</p><p>please pay the invoices below.</p>" + "<p>INV-0001 120.00</p>" * 20,
            debtor_id=debtor.id,
            purpose="dunning",
            dedupe_key=f"bench:{i}",
            attachments=[Attachment("statement.pdf", pdf)] if i % 10 == 0 else (),
        )
        if i % 1000 == 999:
            db.session.info.pop("pending_jobs", None)
            db.session.commit()
    db.session.info.pop("pending_jobs", None)
    db.session.commit()
    return client.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 messages instead of 5,000")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--messages", type=int, default=None)
    args = parser.parse_args()
    n = args.messages or (1_000 if args.quick else 5_000)
    if args.db == "sqlite" and not args.messages:
        n //= 10 if not args.quick else 1

    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from provider.app import create_app
    from provider.comms import Message
    from provider.comms.jobs import send_mail_job
    from provider.comms.loopback import free_port
    from provider.comms.sender import _read
    from provider.comms.transport import SmtpSettings, build_mime
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db

    port = free_port()
    counter = multiprocessing.Value("i", 0)
    ready = multiprocessing.Event()
    server = multiprocessing.Process(target=_serve, args=(port, counter, ready), daemon=True)
    server.start()
    ready.wait(20)
    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        try:
            app = create_app(environ, SMTP_HOST="127.0.0.1", SMTP_PORT=port, JOBS_MODE="eager")
            with app.app_context():
                upgrade()
                with scoped(TenantScope.agency(), db.session):
                    t = time.perf_counter()
                    client_id = _queue(n)
                    queue_s = time.perf_counter() - t
                    ids = list(db.session.scalars(select(Message.id).where(Message.client_id == client_id)))
                    outgoing = _read(db.session, client_id, ids)
                    db.session.commit()
                db.session.remove()

                # baseline: the same messages, built beforehand, raw smtplib on one connection
                settings = SmtpSettings.from_config(app.config)
                prepared = [(build_mime(o, settings), o.bounce_address(settings), o.to_address) for o in outgoing]
                before = counter.value
                t = time.perf_counter()
                with smtplib.SMTP("127.0.0.1", port) as smtp:
                    for mime, sender, rcpt in prepared:
                        smtp.send_message(mime, from_addr=sender, to_addrs=[rcpt])
                baseline_s = time.perf_counter() - t
                baseline_count = counter.value - before

                # product: one worker's sending run, the real path
                before = counter.value
                t = time.perf_counter()
                result = send_mail_job(client_id)
                product_s = time.perf_counter() - t
                product_count = counter.value - before
                with scoped(TenantScope.agency(), db.session):
                    sent = db.session.scalar(select(func.count()).select_from(Message).where(Message.status == "sent"))
                db.session.remove()
        finally:
            drop()
            server.terminate()

    value, baseline = product_count / product_s, baseline_count / baseline_s
    print(f"\nE-mail sending on {args.db}: {n:,} messages queued in {queue_s:.1f}s; one SMTP server process.\n")
    print(f"{'path':<52}{'seconds':>10}{'accepted':>10}{'msg/s':>10}")
    print(f"{'raw smtplib, one connection (baseline)':<52}{baseline_s:>10.2f}{baseline_count:>10}{baseline:>10,.0f}")
    print(f"{'send_mail_job, one worker (product)':<52}{product_s:>10.2f}{product_count:>10}{value:>10,.0f}")
    print(f"\nsending run: {result}; messages marked sent: {sent}")
    print(f"ratio (product / raw smtplib): {value / baseline:.2f}; goal: >= 200 messages/s ({value:,.0f})\n")
    ok = product_count == n == sent and baseline_count == n
    print(
        json.dumps(
            {
                "bench": "smtp_send",
                "db": args.db,
                "size": n,
                "value": round(value, 1),
                "unit": "messages/s",
                "baseline": round(baseline, 1),
                "ratio": round(value / baseline, 4),
                "goal": 200,
                "all_delivered": ok,
            }
        )
    )


if __name__ == "__main__":
    main()
