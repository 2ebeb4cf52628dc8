"""E-mails and letters of a run, through provider.comms: one message per debtor and stage, the statement attached,
texts in the debtor's language, letters in one print file with a manifest, dispatched as a batch."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

from pypdf import PdfReader
from sqlalchemy import select

from clients.models import DebtorContact
from provider.comms.models import Message, MessageAttachment
from provider.comms.services import suppress_address
from provider.core.tenancy import TenantScope, scoped
from provider.dunning import services
from provider.dunning.models import DunningDecision, LetterBatch
from provider.dunning.run import run_client
from provider.extensions import db
from tests.dunning.helpers import approved_policy
from tests.factories import make_client, make_debtor, make_invoice, make_work_items


def _run(client: Any, day: date, **kwargs: Any) -> None:
    with scoped(TenantScope.single(client.id), db.session):
        run_client(db.session, client.id, day, now=_noon(), **kwargs)
        db.session.info.pop("pending_jobs", None)  # no sending in these tests: the messages are what is checked
        db.session.commit()


def _noon() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 3, 2, 11, 0, tzinfo=UTC)


def _messages(client_id: int) -> list[Message]:
    with scoped(TenantScope.agency(), db.session):
        return list(db.session.scalars(select(Message).where(Message.client_id == client_id).order_by(Message.id)))


def test_one_email_per_debtor_and_stage_with_all_invoices_and_the_statement(db_session: Any) -> None:
    client = make_client(country="DE")
    approved_policy(client)
    debtor = make_debtor(client, name="Müller KG", email="ap@mueller.test")
    make_invoice(client, debtor, "M-1", 123_450, due_date=date(2026, 2, 1))
    make_invoice(client, debtor, "M-2", 10_000, due_date=date(2026, 2, 10))
    make_work_items(client)
    _run(client, date(2026, 2, 20))  # 19 days: stage "Second reminder" (14), never the first
    _run(client, date(2026, 2, 20))
    _run(client, date(2026, 2, 21))
    (message,) = _messages(client.id)
    assert message.to_address == "ap@mueller.test" and message.language == "de"
    assert "M-1" in message.text_body and "M-2" in message.text_body
    assert "1.334,50\xa0€" in message.text_body  # the German locale formats the total
    assert "/d/" in message.text_body and message.html_body and "<a href=" in message.html_body
    with scoped(TenantScope.agency(), db.session):
        (attachment,) = db.session.scalars(select(MessageAttachment).where(MessageAttachment.message_id == message.id))
        text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(attachment.content)).pages)
        assert "M-1" in text and "M-2" in text
        decision = db.session.scalars(select(DunningDecision).where(DunningDecision.debtor_id == debtor.id)).one()
        assert decision.message_id == message.id and decision.stage_days == 14


def test_a_bounced_address_is_skipped_with_its_reason(db_session: Any) -> None:
    client = make_client()
    approved_policy(client)
    debtor = make_debtor(client, email="gone@bounce.test")
    make_invoice(client, debtor, "B-1", 10_000, due_date=date(2026, 2, 1))
    with scoped(TenantScope.agency(), db.session):
        suppress_address(db.session, client_id=client.id, address="gone@bounce.test", kind="bounced", reason="550")
        db.session.commit()
    _run(client, date(2026, 2, 5), attach_statement=False)
    assert _messages(client.id) == []
    with scoped(TenantScope.agency(), db.session):
        decision = db.session.scalars(select(DunningDecision).where(DunningDecision.debtor_id == debtor.id)).one()
        assert (decision.outcome, decision.reason) == ("skipped", "bounced")


def test_letters_make_one_print_file_and_a_manifest_and_count_when_dispatched(db_session: Any) -> None:
    client = make_client()
    approved_policy(client)
    debtors = []
    for n in range(2):
        debtor = make_debtor(client, name=f"Letter Debtor {n}")
        with scoped(TenantScope.agency(), db.session):
            db.session.add(DebtorContact(client_id=client.id, debtor_id=debtor.id, kind="postal",
                                         value=f"Hauptstraße {n}, 10115 Berlin", is_primary=True))  # fmt: skip
            db.session.commit()
        make_invoice(client, debtor, f"LT-{n}", 50_000, due_date=date(2026, 1, 6))
        debtors.append(debtor)
    _run(client, date(2026, 2, 10))  # 35 days: the letter stage (30)
    with scoped(TenantScope.agency(), db.session):
        batch = db.session.scalars(select(LetterBatch).where(LetterBatch.client_id == client.id)).one()
        assert batch.letters == 2 and batch.pages >= 2
        pdf_text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(batch.pdf)).pages)
        assert "LT-0" in pdf_text and "LT-1" in pdf_text
        lines = batch.manifest.splitlines()
        assert lines[0].startswith("Sequence,Letter reference") and len(lines) == 3
        assert "Hauptstraße 0" in batch.manifest
        assert {m.status for m in _messages(client.id)} == {"queued"}
        assert services.mark_batch_dispatched(db.session, batch) == 2
        db.session.commit()
    assert {m.status for m in _messages(client.id)} == {"dispatched"}
