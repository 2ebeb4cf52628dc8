"""The communications API other packages build on: idempotent by dedupe key, immutable once queued, bad and
suppressed addresses stored as not sent with a reason, letters moving to posted once, each client apart."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from provider.comms import (
    Attachment,
    Message,
    MessageEvent,
    is_undeliverable,
    mark_letters_dispatched,
    mark_letters_printed,
    queue_email,
    queue_letter,
    suppress_address,
    unsubscribe_message,
)
from provider.comms.models import ImmutableMessage, MessageAttachment
from provider.core.audit import AppendOnlyViolation
from provider.core.outbox_models import BackgroundJob
from provider.core.tenancy import TenantScope, scoped
from tests.factories import make_client, make_debtor


def _email(session: Any, client_id: int, key: str, to: str = "ana@example.test", **kw: Any) -> Message:
    return queue_email(
        session,
        client_id=client_id,
        to=to,
        subject="Your account",
        text="Hello",
        purpose="dunning",
        dedupe_key=key,
        **kw,
    )


def test_same_key_gives_the_same_message_and_one_sending_job(db_session: Any, smtp_server: Any) -> None:
    client = make_client()
    debtor = make_debtor(client)
    with scoped(TenantScope.single(client.id), db_session):
        first = _email(
            db_session,
            client.id,
            "dunning:1:friendly",
            debtor_id=debtor.id,
            attachments=[Attachment("statement.pdf", b"%PDF-1.4 x")],
            source=("stage", 7),
        )
        again = _email(db_session, client.id, "dunning:1:friendly", to="other@example.test", debtor_id=debtor.id)
        other = _email(db_session, client.id, "dunning:1:second", debtor_id=debtor.id)
        assert again.id == first.id and again.to_address == "ana@example.test"
        assert other.id != first.id
        assert first.status == "queued" and first.status_label == "Waiting to be sent"
        assert first.rfc_message_id.startswith("<") and first.rfc_message_id != other.rfc_message_id
        assert (first.source_type, first.source_id) == ("stage", "7")
        count = db_session.scalar(select(func.count()).select_from(Message).where(Message.client_id == client.id))
        assert count == 2
        sizes = db_session.scalars(select(MessageAttachment.size).where(MessageAttachment.message_id == first.id))
        assert list(sizes) == [len(b"%PDF-1.4 x")]
    keys = db_session.scalars(select(BackgroundJob.key).where(BackgroundJob.client_id == client.id)).all()
    assert keys == [f"mail:{client.id}"]  # one sending run for the client's batch


def test_the_same_key_in_another_client_is_another_message(db_session: Any) -> None:
    one, two = make_client(), make_client()
    with scoped(TenantScope.agency(), db_session):
        a = _email(db_session, one.id, "report:1")
        b = _email(db_session, two.id, "report:1")
    assert a.id != b.id and (a.client_id, b.client_id) == (one.id, two.id)


@pytest.mark.parametrize("bad", ["", "not an address", "ana@@example.test", "ana@"])
def test_an_address_that_does_not_parse_is_stored_not_sent_with_a_reason(db_session: Any, bad: str) -> None:
    client = make_client()
    with scoped(TenantScope.single(client.id), db_session):
        message = _email(db_session, client.id, f"k:{bad}", to=bad)
        assert message.status == "failed" and message.status_label == "Not sent"
        assert message.last_error and "Traceback" not in message.last_error
        kinds = db_session.scalars(select(MessageEvent.kind).where(MessageEvent.message_id == message.id)).all()
        assert sorted(kinds) == ["failed", "queued"]
    assert (
        db_session.scalar(select(func.count()).select_from(BackgroundJob).where(BackgroundJob.client_id == client.id))
        == 0
    )


def test_a_bounced_or_unsubscribed_address_is_not_sent_to_again_in_that_client_only(db_session: Any) -> None:
    one, two = make_client(), make_client()
    debtor = make_debtor(one)
    with scoped(TenantScope.agency(), db_session):
        suppress_address(
            db_session, client_id=one.id, address="Ana@Example.TEST", kind="bounced", reason="550 no such user"
        )
        assert is_undeliverable(db_session, one.id, "ana@example.test")
        refused = _email(db_session, one.id, "after-bounce")
        assert refused.status == "failed" and "address bounced" in refused.last_error
        assert _email(db_session, two.id, "other-client").status == "queued"

        sent = _email(db_session, one.id, "to-bob", to="bob@example.test", debtor_id=debtor.id)
        assert unsubscribe_message(db_session, one.id, sent.id) is not None
        assert unsubscribe_message(db_session, two.id, sent.id) is None  # another client's message: nothing
        later = _email(db_session, one.id, "to-bob-2", to="bob@example.test")
        assert later.status == "failed" and "unsubscribed" in later.last_error


def test_a_queued_message_cannot_be_edited_or_deleted_and_its_history_is_append_only(db_session: Any) -> None:
    client = make_client()
    with scoped(TenantScope.single(client.id), db_session):
        message = _email(db_session, client.id, "immutable")
        db_session.commit()
        message.text_body = "something else"
        with pytest.raises(ImmutableMessage):
            db_session.flush()
        db_session.rollback()
        message = db_session.scalar(select(Message).where(Message.dedupe_key == "immutable"))
        assert message.text_body == "Hello"
        db_session.delete(message)
        with pytest.raises(ImmutableMessage):
            db_session.flush()
        db_session.rollback()
        message = db_session.scalar(select(Message).where(Message.dedupe_key == "immutable"))
        message.status = "sent"  # delivery fields move (through the sender's guarded updates)
        db_session.flush()
        event = db_session.scalar(select(MessageEvent).where(MessageEvent.message_id == message.id))
        event.detail = "rewritten"
        with pytest.raises(AppendOnlyViolation):
            db_session.flush()
        db_session.rollback()


def test_letters_move_from_waiting_to_printed_to_posted_once(db_session: Any) -> None:
    one, two = make_client(), make_client()
    debtor = make_debtor(one)
    with scoped(TenantScope.agency(), db_session):
        letter = queue_letter(
            db_session,
            client_id=one.id,
            debtor_id=debtor.id,
            address_lines=["Ana Ltd", "1 Main St", "Berlin"],
            subject="Final demand",
            pdf_bytes=b"%PDF-1.4 letter",
            dedupe_key="letter:1",
            purpose="dunning",
        )
        nowhere = queue_letter(
            db_session,
            client_id=one.id,
            debtor_id=debtor.id,
            address_lines=["  "],
            subject="Final demand",
            pdf_bytes=b"%PDF",
            dedupe_key="letter:2",
            purpose="dunning",
        )
        assert letter.status == "queued" and letter.status_label == "Waiting to be printed"
        assert nowhere.status == "failed" and "postal address" in nowhere.last_error
        assert mark_letters_printed(db_session, one.id, [letter.id, nowhere.id], "P-1") == [letter.id]
        assert mark_letters_dispatched(db_session, two.id, [letter.id], by="someone") == []  # not that client's
        assert mark_letters_dispatched(db_session, one.id, [letter.id], by="Mail house batch 1") == [letter.id]
        assert mark_letters_dispatched(db_session, one.id, [letter.id], by="again") == []
        reloaded = db_session.get(Message, letter.id)
        assert reloaded.status == "dispatched" and reloaded.status_label == "Posted" and reloaded.dispatched_at


def test_a_batch_queues_each_key_once_with_its_history_attachments_and_one_sending_job(
    db_session: Any, smtp_server: Any
) -> None:
    from provider.comms.models import MessageEvent
    from provider.comms.services import EmailSpec, queue_emails

    client = make_client()
    debtors = [make_debtor(client) for _ in range(3)]
    specs = [
        EmailSpec(d.id, f"Debtor{n}@Example.TEST", f"Debtor {n}", "Your statement", "Hello", "<p>Hello</p>",
                  f"report:{d.id}", 42, "en", (Attachment("s.pdf", b"%PDF-1.4 s"),) if n == 0 else ())
        for n, d in enumerate(debtors)
    ]  # fmt: skip
    with scoped(TenantScope.single(client.id), db_session):
        single = _email(db_session, client.id, "report:" + str(debtors[2].id), debtor_id=debtors[2].id)
        first = queue_emails(db_session, client.id, specs, purpose="report", source_type="report")
        again = queue_emails(db_session, client.id, specs, purpose="report", source_type="report")
        assert first == again and len(first) == 3 and first[f"report:{debtors[2].id}"] == single.id
        rows = db_session.execute(
            select(Message.dedupe_key, Message.to_address, Message.purpose, Message.source_type, Message.source_id)
            .where(Message.client_id == client.id)
            .order_by(Message.id)
        ).all()
        assert len(rows) == 3  # the key queued one by one before is not queued again
        batch = {r.dedupe_key: r for r in rows if r.dedupe_key != f"report:{debtors[2].id}"}
        assert {r.to_address for r in batch.values()} == {"debtor0@example.test", "debtor1@example.test"}
        assert {(r.purpose, r.source_type, r.source_id) for r in batch.values()} == {("report", "report", "42")}
        events = db_session.scalar(
            select(func.count()).select_from(MessageEvent).where(MessageEvent.client_id == client.id)
        )
        assert events == 3  # one "queued" each
        sizes = db_session.scalars(select(MessageAttachment.size).where(MessageAttachment.client_id == client.id))
        assert list(sizes) == [len(b"%PDF-1.4 s")]
    keys = db_session.scalars(select(BackgroundJob.key).where(BackgroundJob.client_id == client.id)).all()
    assert keys == [f"mail:{client.id}"]
