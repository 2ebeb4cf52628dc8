"""Sending over a real SMTP server on loopback: what arrives (parts, headers, return paths), one connection for
a batch, refusals for now and for good, a server that is down, and never a second copy."""

from __future__ import annotations

import smtplib
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from provider.comms import Attachment, Message, MessageEvent, queue_email, verp
from provider.comms.jobs import send_mail_job, sweep_mail_job
from provider.comms.loopback import CaptureServer, free_port
from provider.comms.models import SendingIdentity
from provider.comms.sender import BACKOFF, STALE_SENDING, send_queued
from provider.comms.transport import TemporaryFailure
from provider.core import jobs
from provider.core.clock import frozen_time, now_utc
from provider.core.outbox_models import BackgroundJob
from provider.core.tenancy import TenantScope, scoped
from tests.factories import make_client, make_debtor


def _queue(session: Any, client_id: int, key: str, to: str, **kw: Any) -> Message:
    kw.setdefault("purpose", "dunning")
    return queue_email(
        session, client_id=client_id, to=to, subject=f"About {key}", text=f"Text of {key}", dedupe_key=key, **kw
    )


def _events(session: Any, message_id: int) -> list[str]:
    return list(
        session.scalars(
            select(MessageEvent.kind).where(MessageEvent.message_id == message_id).order_by(MessageEvent.id)
        )
    )


def test_queued_mail_arrives_as_rendered_with_signed_return_paths(
    app: Any, db_session: Any, smtp_server: CaptureServer
) -> None:
    client = make_client()
    debtor = make_debtor(client)
    with scoped(TenantScope.single(client.id), db_session):
        db_session.add(SendingIdentity(client_id=client.id, from_name="Acme Credit", from_address="ar@acme.example"))
        db_session.flush()
        first = _queue(
            db_session,
            client.id,
            "a",
            "ana@example.test",
            debtor_id=debtor.id,
            to_name="Ana Ltd",
            html="<p>Hello <b>Ana</b></p>",
            attachments=[Attachment("statement.pdf", b"%PDF-1.4 s")],
        )
        second = _queue(db_session, client.id, "b", "bob@example.test", purpose="report_ready")
        db_session.commit()
    assert jobs.drain() == 1  # one sending run for the client's batch

    assert len(smtp_server.received) == 2
    by_rcpt = {r.rcpt_tos[0]: r for r in smtp_server.received}
    mail = by_rcpt["ana@example.test"].message
    assert mail["From"] == "Acme Credit <ar@acme.example>" and mail["To"] == "Ana Ltd <ana@example.test>"
    assert mail["Message-ID"] == first.rfc_message_id and mail["Date"]
    assert mail.get_body(("plain",)).get_content().strip() == "Text of a"
    assert "<b>Ana</b>" in mail.get_body(("html",)).get_content()
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename() == "statement.pdf" and attachment.get_content() == b"%PDF-1.4 s"
    assert str(mail["List-Unsubscribe"]).strip().startswith("<http") and "/d/unsubscribe/" in mail["List-Unsubscribe"]
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    secret, domain = app.config["MAIL_VERP_SECRET"], app.config["MAIL_RETURN_DOMAIN"]
    bounce = verp.decode(by_rcpt["ana@example.test"].mail_from, secret=secret, domain=domain)
    reply = verp.decode(str(mail["Reply-To"]), secret=secret, domain=domain)
    assert bounce == verp.ReturnAddress("bounces", client.id, first.id)
    assert reply == verp.ReturnAddress("reply", client.id, first.id)
    assert "List-Unsubscribe" not in by_rcpt["bob@example.test"].message  # a notice to a client user

    with scoped(TenantScope.single(client.id), db_session):
        for message in (first, second):
            db_session.refresh(message)
            assert message.status == "sent" and message.sent_at and message.attempts == 1
            assert _events(db_session, message.id) == ["queued", "sent"]
        # sending again sends nothing: every message is settled
        assert send_queued(db_session, client.id).sent == 0
    assert len(smtp_server.received) == 2


def test_one_connection_carries_the_whole_batch(app: Any, db_session: Any, smtp_server: CaptureServer) -> None:
    client = make_client()
    connects = []
    original = smtplib.SMTP.connect

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        connects.append(args)
        return original(self, *args, **kwargs)

    with scoped(TenantScope.single(client.id), db_session):
        for n in range(7):
            _queue(db_session, client.id, f"m{n}", f"p{n}@example.test")
        db_session.commit()
        smtplib.SMTP.connect = counting  # type: ignore[method-assign]
        try:
            result = send_queued(db_session, client.id, batch=3)
        finally:
            smtplib.SMTP.connect = original  # type: ignore[method-assign]
    assert result.sent == 7 and len(connects) == 1 and len(smtp_server.received) == 7


def test_refusals_for_now_are_retried_later_and_for_good_fail_with_the_reason(
    app: Any, db_session: Any, smtp_server: CaptureServer
) -> None:
    client = make_client()
    smtp_server.refuse = {"gone@example.test": "550 5.1.1 No such user here", "busy@example.test": "451 4.3.0 Busy"}
    with scoped(TenantScope.single(client.id), db_session):
        gone = _queue(db_session, client.id, "gone", "gone@example.test")
        busy = _queue(db_session, client.id, "busy", "busy@example.test")
        fine = _queue(db_session, client.id, "fine", "fine@example.test")
        db_session.commit()
        with frozen_time(now_utc()) as sent_at:
            result = send_queued(db_session, client.id)
        assert (result.sent, result.failed, result.deferred) == (1, 1, 1)
        for m in (gone, busy, fine):
            db_session.refresh(m)
        assert gone.status == "failed" and "No such user here" in gone.last_error and gone.status_label == "Not sent"
        assert busy.status == "queued" and "Busy" in busy.last_error and busy.next_attempt_at > now_utc()
        assert _events(db_session, busy.id) == ["queued", "deferred"]
        # the first retry comes a minute after the refusal, later ones wait longer
        assert busy.next_attempt_at == sent_at + timedelta(seconds=BACKOFF[0]) == sent_at + timedelta(minutes=1)
        assert fine.status == "sent"
        # not due yet: nothing happens; once due and the server agrees, it goes
        assert send_queued(db_session, client.id).deferred == 0
        smtp_server.refuse = {}
        db_session.execute(
            Message.__table__.update().where(Message.__table__.c.id == busy.id).values(next_attempt_at=now_utc())
        )
        db_session.commit()
        assert send_queued(db_session, client.id).sent == 1
        db_session.refresh(busy)
        assert busy.status == "sent" and busy.attempts == 2
    assert sorted(r.rcpt_tos[0] for r in smtp_server.received) == ["busy@example.test", "fine@example.test"]


def test_a_server_that_is_down_keeps_the_mail_queued_and_the_job_retries(app: Any, db_session: Any) -> None:
    client = make_client()
    port = free_port()  # nobody listens here yet
    saved = app.config["SMTP_HOST"], app.config["SMTP_PORT"]
    app.config.update(SMTP_HOST="127.0.0.1", SMTP_PORT=port, JOBS_EAGER_RAISE=False)
    try:
        with scoped(TenantScope.single(client.id), db_session):
            message = _queue(db_session, client.id, "down", "ana@example.test")
            db_session.commit()
        jobs.drain()
        row = db_session.scalar(select(BackgroundJob).where(BackgroundJob.key == f"mail:{client.id}"))
        assert row.status == "pending" and row.attempts == 1 and "could not be reached" in row.error
        with scoped(TenantScope.single(client.id), db_session):
            db_session.refresh(message)
            assert message.status == "queued" and "could not be reached" in message.last_error
            # the server comes back; the message is due again: the sweep starts a run and it is sent, once
            with CaptureServer(port=port) as server:
                db_session.execute(
                    Message.__table__.update()
                    .where(Message.__table__.c.id == message.id)
                    .values(next_attempt_at=now_utc())
                )
                db_session.commit()
                assert send_queued(db_session, client.id).sent == 1
                assert send_queued(db_session, client.id).sent == 0
            assert len(server.received) == 1
    finally:
        app.config.update(SMTP_HOST=saved[0], SMTP_PORT=saved[1], JOBS_EAGER_RAISE=True)


def test_a_message_left_half_sent_is_not_sent_again_but_marked_unconfirmed(
    app: Any, db_session: Any, smtp_server: CaptureServer
) -> None:
    client = make_client()
    with scoped(TenantScope.single(client.id), db_session):
        message = _queue(db_session, client.id, "crash", "ana@example.test")
        db_session.commit()
        # a sender claimed it and died before recording the server's answer, long ago
        db_session.execute(
            Message.__table__.update()
            .where(Message.__table__.c.id == message.id)
            .values(status="sending", sending_since=now_utc() - STALE_SENDING * 2, attempts=1)
        )
        db_session.commit()
        assert send_queued(db_session, client.id).sent == 0  # a claimed message is nobody else's
    sweep_mail_job()
    with scoped(TenantScope.single(client.id), db_session):
        db_session.refresh(message)
        assert message.status == "failed" and "not confirmed" in message.last_error
        assert _events(db_session, message.id) == ["queued", "unconfirmed"]
    assert smtp_server.received == []


def test_no_mail_server_configured_waits_in_the_queue(app: Any, db_session: Any) -> None:
    client = make_client()
    saved = app.config["SMTP_HOST"]
    app.config["SMTP_HOST"] = None
    try:
        with scoped(TenantScope.single(client.id), db_session):
            message = _queue(db_session, client.id, "nohost", "ana@example.test")
            db_session.commit()
        # nothing to run: no sending job is queued, and a run (or the sweep) says the mail waits
        assert db_session.scalar(select(BackgroundJob).where(BackgroundJob.key == f"mail:{client.id}")) is None
        assert "No outgoing mail server" in send_mail_job(client.id)
        assert "wait" in sweep_mail_job()
        with scoped(TenantScope.single(client.id), db_session):
            db_session.refresh(message)
            assert message.status == "queued" and message.attempts == 0 and message.last_error == ""
            with pytest.raises(TemporaryFailure, match="No outgoing mail server"):
                send_queued(db_session, client.id)  # the sender itself refuses (and gives the mail back)
            db_session.refresh(message)
            assert message.status == "queued"
    finally:
        app.config["SMTP_HOST"] = saved


def test_names_subjects_and_text_outside_ascii_arrive_intact(
    app: Any, db_session: Any, smtp_server: CaptureServer
) -> None:
    client = make_client()
    with scoped(TenantScope.single(client.id), db_session):
        queue_email(
            db_session,
            client_id=client.id,
            to="juergen@example.test",
            to_name="Jürgen Größe",
            subject="Überfällig: 5 €",
            text="Grüße aus Köln\n.a line starting with a dot\n",
            purpose="dunning",
            dedupe_key="utf8",
        )
        refused = queue_email(
            db_session,
            client_id=client.id,
            to="jürgen@example.test",
            subject="s",
            text="t",
            purpose="dunning",
            dedupe_key="utf8-local",
        )
        assert refused.status == "failed" and "cannot receive e-mail" in refused.last_error
        db_session.commit()
        assert send_queued(db_session, client.id).sent == 1
    mail = smtp_server.received[0].message
    assert str(mail["To"]) == "Jürgen Größe <juergen@example.test>" and str(mail["Subject"]) == "Überfällig: 5 €"
    assert mail.get_body(("plain",)).get_content().replace("\r\n", "\n") == (
        "Grüße aus Köln\n.a line starting with a dot\n"
    )


def test_mail_whose_sending_run_was_lost_is_sent_by_the_sweep_once(
    app: Any, db_session: Any, smtp_server: CaptureServer
) -> None:
    client = make_client()
    with scoped(TenantScope.single(client.id), db_session):
        _queue(db_session, client.id, "lost-1", "ana@example.test")
        db_session.info.pop("pending_jobs", None)  # the sending run never reached the outbox (or was lost)
        db_session.info.pop("comms_send_enqueued", None)
        db_session.commit()
    assert db_session.scalar(select(BackgroundJob).where(BackgroundJob.key == f"mail:{client.id}")) is not None
    db_session.execute(BackgroundJob.__table__.delete().where(BackgroundJob.__table__.c.key == f"mail:{client.id}"))
    db_session.commit()
    sweep_mail_job()  # the minute sweep finds the due mail and starts a run
    jobs.drain()
    sweep_mail_job()
    jobs.drain()
    assert [r.rcpt_tos for r in smtp_server.received] == [("ana@example.test",)]
