"""The debtor's self-service page: signed, expiring, single-debtor; real promises, disputes and unsubscribes."""

from __future__ import annotations

import time
from datetime import date, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from provider.core.clock import today_utc
from provider.core.tenancy import TenantScope, scoped
from provider.dunning.links import make_token, read_link
from provider.extensions import db
from sla.models import Dispute, DisputeEvidence
from tests.factories import make_client, make_debtor, make_invoice, make_work_items
from worklists.models import Promise


def _world(language: str = "en") -> tuple[Any, Any, Any, Any]:
    client = make_client()
    debtor = make_debtor(client, name="Self Service GmbH", email="me@self.test", language=language)
    invoice = make_invoice(client, debtor, "SS-1", 40_000, due_date=date(2026, 2, 4))
    other = make_debtor(client, name="Someone Else AG")
    make_invoice(client, other, "OTHER-9", 70_000, due_date=date(2026, 2, 4))
    make_work_items(client)
    return client, debtor, invoice, other


def _csrf(page: str) -> str:
    from tests.conftest import csrf_token

    return csrf_token(page)


def test_the_link_shows_one_debtor_and_nothing_else(client: FlaskClient) -> None:
    c, debtor, _invoice, _other = _world()
    token = make_token(c.id, debtor.id)
    page = client.get(f"/d/{token}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Self Service GmbH" in body and "SS-1" in body
    assert "OTHER-9" not in body and "Someone Else" not in body
    pdf = client.get(f"/d/{token}/statement.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_tampered_expired_and_garbage_links_are_a_plain_404(app: Flask, client: FlaskClient) -> None:
    c, debtor, _invoice, other = _world()
    token = make_token(c.id, debtor.id)
    missing = client.get("/d/this-is-not-a-token")
    assert missing.status_code == 404
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(f"/d/{tampered}").status_code == 404
    assert client.get(f"/d/{tampered}").data == missing.data
    # a token for another debtor only opens that debtor; swapping the payload breaks the signature
    other_token = make_token(c.id, other.id)
    assert token.split(".")[0] != other_token.split(".")[0]
    forged = other_token.split(".")[0] + "." + ".".join(token.split(".")[1:])
    assert client.get(f"/d/{forged}").status_code == 404
    # expired: read with a max age already passed
    time.sleep(1.1)
    assert read_link(token, max_age=0) is None
    app.config["DUNNING_LINK_MAX_AGE_DAYS"] = 0
    try:
        assert client.get(f"/d/{token}").status_code == 404
    finally:
        app.config.pop("DUNNING_LINK_MAX_AGE_DAYS")
    assert client.get(f"/d/{token}").status_code == 200


def test_a_link_of_another_client_opens_only_its_own_debtor(client: FlaskClient) -> None:
    a, debtor_a, _i, _o = _world()
    b = make_client(name="Bravo Secret Holdings")
    # a token made for (A, debtor of A) cannot be bent to B: the pair is signed together
    token = make_token(b.id, debtor_a.id)
    assert client.get(f"/d/{token}").status_code == 404
    assert client.get(f"/d/{make_token(a.id, debtor_a.id)}").status_code == 200


def test_promise_to_pay_creates_a_real_promise(client: FlaskClient) -> None:
    c, debtor, _invoice, _other = _world()
    token = make_token(c.id, debtor.id)
    csrf = _csrf(client.get(f"/d/{token}").get_data(as_text=True))
    due = (today_utc() + timedelta(days=10)).isoformat()
    bad = client.post(
        f"/d/{token}/promise", data={"csrf_token": csrf, "amount": "abc", "due_on": due}, follow_redirects=True
    )
    assert "amount" in bad.get_data(as_text=True)
    done = client.post(
        f"/d/{token}/promise", data={"csrf_token": csrf, "amount": "250.00", "due_on": due}, follow_redirects=True
    )
    assert "promise to pay is recorded" in done.get_data(as_text=True)
    with scoped(TenantScope.agency(), db.session):
        promise = db.session.scalars(select(Promise).where(Promise.debtor_id == debtor.id)).one()
        assert promise.amount_minor == 25_000 and promise.status == "open"


def test_dispute_opens_a_real_dispute_with_the_file(client: FlaskClient) -> None:
    import io

    c, debtor, invoice, _other = _world()
    token = make_token(c.id, debtor.id)
    csrf = _csrf(client.get(f"/d/{token}").get_data(as_text=True))
    data = {
        "csrf_token": csrf,
        "invoice_ids": [str(invoice.id)],
        "reason": "not_received",
        "summary": "The pallets never arrived",
        "file": (io.BytesIO(b"delivery note: nothing signed"), "note.txt"),
    }
    page = client.post(f"/d/{token}/dispute", data=data, content_type="multipart/form-data", follow_redirects=True)
    assert "dispute is recorded" in page.get_data(as_text=True)
    with scoped(TenantScope.agency(), db.session):
        dispute = db.session.scalars(select(Dispute).where(Dispute.debtor_id == debtor.id)).one()
        assert dispute.reason == "not_received" and dispute.amount_minor == 40_000
        evidence = db.session.scalars(select(DisputeEvidence).where(DisputeEvidence.dispute_id == dispute.id)).one()
        assert evidence.filename == "note.txt"


def test_stop_email_and_the_one_click_unsubscribe(client: FlaskClient) -> None:
    from provider.comms.services import is_undeliverable, queue_email
    from provider.comms.unsubscribe import unsubscribe_token

    c, debtor, _invoice, other = _world()
    token = make_token(c.id, debtor.id)
    csrf = _csrf(client.get(f"/d/{token}").get_data(as_text=True))
    client.post(f"/d/{token}/stop-email", data={"csrf_token": csrf})
    with scoped(TenantScope.agency(), db.session):
        assert is_undeliverable(db.session, c.id, "me@self.test")
        other_email = "other@self.test"
        message = queue_email(
            db.session, client_id=c.id, to=other_email, subject="s", text="t", debtor_id=other.id,
            purpose="dunning", dedupe_key="test:1",
        )  # fmt: skip
        db.session.info.pop("pending_jobs", None)
        db.session.commit()
        message_id = message.id
    one_click = unsubscribe_token(c.id, other.id, message_id)
    assert client.get(f"/d/unsubscribe/{one_click}").status_code == 200
    assert client.get(f"/d/unsubscribe/{one_click[:-3]}xyz").status_code == 404
    done = client.post(f"/d/unsubscribe/{one_click}", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    with scoped(TenantScope.agency(), db.session):
        assert is_undeliverable(db.session, c.id, other_email)


def test_the_page_speaks_the_debtors_language_and_reads_its_amounts(client: FlaskClient) -> None:
    c, debtor, invoice, _other = _world(language="de")
    token = make_token(c.id, debtor.id)
    page = client.get(f"/d/{token}").get_data(as_text=True)
    assert '<html lang="de">' in page and "Offene Rechnungen" in page and "Zahlung zusagen" in page
    assert "Überfällig" in page and "Open invoices" not in page and "Promise to pay" not in page
    csrf = _csrf(page)
    due = (today_utc() + timedelta(days=7)).isoformat()
    wrong = client.post(
        f"/d/{token}/promise", data={"csrf_token": csrf, "amount": "250.00.1", "due_on": due}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Geben Sie den Betrag als Zahl an, zum Beispiel 120,50" in wrong
    past = (today_utc() - timedelta(days=1)).isoformat()
    late = client.post(
        f"/d/{token}/promise", data={"csrf_token": csrf, "amount": "250,00", "due_on": past}, follow_redirects=True
    ).get_data(as_text=True)
    assert "nicht in der Vergangenheit" in late
    done = client.post(
        f"/d/{token}/promise", data={"csrf_token": csrf, "amount": "1.250,50", "due_on": due}, follow_redirects=True
    ).get_data(as_text=True)
    assert "Ihre Zahlungszusage ist gespeichert" in done
    with scoped(TenantScope.agency(), db.session):
        promise = db.session.scalars(select(Promise).where(Promise.debtor_id == debtor.id)).one()
        assert promise.amount_minor == 125_050  # the German decimal comma and thousands dot
    no_invoice = client.post(
        f"/d/{token}/dispute", data={"csrf_token": csrf, "reason": "pricing", "summary": "zu teuer"},
        follow_redirects=True,
    ).get_data(as_text=True)  # fmt: skip
    assert "Wählen Sie die betroffenen Rechnungen" in no_invoice
    with scoped(TenantScope.agency(), db.session):
        assert db.session.scalars(select(Dispute).where(Dispute.debtor_id == debtor.id)).first() is None
    assert invoice.number in no_invoice


def test_every_text_of_the_debtor_pages_has_a_translation_in_each_language() -> None:
    import re
    from pathlib import Path

    from provider.dunning.debtor_i18n import catalog_ids, gettext_for, languages

    root = Path(__file__).resolve().parents[2] / "provider" / "dunning"
    sources = [root / "debtor_views.py", root / "templates" / "dunning" / "debtor.html",
               root / "templates" / "dunning" / "unsubscribed.html"]  # fmt: skip
    used = set()
    for path in sources:
        used |= set(re.findall(r'_\(\s*"((?:[^"\\]|\\.)+)"', path.read_text()))
    used.discard("")
    assert len(used) > 40  # the pages' texts were found
    assert set(languages()) == {"de", "es", "fr"}
    for language in languages():
        missing = used - catalog_ids(language)
        assert not missing, f"{language}: no translation for {sorted(missing)}"
        assert gettext_for(language)("Open invoices") != "Open invoices"
    assert gettext_for("ja")("Open invoices") == "Open invoices"  # no catalogue: English
