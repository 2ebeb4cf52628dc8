"""The Mail pages as people use them: the agency's list and a message as sent, the debtor's timeline, replies and
bounces, the sending identity form, and the portal's messages limited to the client's own debtors."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from provider.comms import Attachment, InboundMail, queue_email, queue_letter
from provider.comms.models import SendingIdentity
from provider.core.tenancy import TenantScope, scoped
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_debtor, make_user


def _mail(db_session: Any, client: Any, debtor: Any, key: str, subject: str, **kw: Any) -> Any:
    with scoped(TenantScope.agency(), db_session):
        message = queue_email(
            db_session,
            client_id=client.id,
            to=kw.pop("to", "ana@example.test"),
            subject=subject,
            text=f"Body of {subject}",
            debtor_id=debtor.id if debtor else None,
            purpose=kw.pop("purpose", "dunning"),
            dedupe_key=key,
            **kw,
        )
        db_session.info.pop("pending_jobs", None)  # no sending here: the pages show what is queued
        db_session.commit()
        return message


def test_the_agency_mail_page_lists_filters_and_shows_a_message_as_sent(client: Any, db_session: Any) -> None:
    acme, other = make_client(name="Acme Mail Ltd"), make_client(name="Other Mail Ltd")
    debtor = make_debtor(acme, name="Ana Debtor")
    manager = make_user("manager")
    html = _mail(
        db_session,
        acme,
        debtor,
        "k1",
        "Friendly reminder",
        html="<p>Hello <b>Ana</b></p>",
        attachments=[Attachment("statement.pdf", b"%PDF-1.4 test")],
    )
    _mail(db_session, other, None, "k2", "Report ready", purpose="report_ready", to="boss@example.test")
    bad = _mail(db_session, acme, debtor, "k3", "Broken address", to="not-an-address")
    login(client, manager.email)

    page = client.get("/mail").get_data(as_text=True)
    assert "Friendly reminder" in page and "Report ready" in page and "Waiting to be sent" in page
    assert "<td>Reminder<br>" in page and "<td>dunning" not in page  # purposes in words, not codes
    only_failed = client.get("/mail?status=failed").get_data(as_text=True)
    assert "Broken address" in only_failed and "Friendly reminder" not in only_failed
    assert "cannot receive e-mail" in only_failed
    only_other = client.get(f"/mail?client={other.id}").get_data(as_text=True)
    assert "Report ready" in only_other and "Friendly reminder" not in only_other

    detail = client.get(f"/mail/messages/{html.id}").get_data(as_text=True)
    assert "Body of Friendly reminder" in detail and "statement.pdf" in detail and "Queued" in detail
    frame = client.get(f"/mail/messages/{html.id}/html")
    assert frame.status_code == 200 and b"<b>Ana</b>" in frame.data
    assert "sandbox" in frame.headers["Content-Security-Policy"]
    file_id = detail.split(f"/mail/messages/{html.id}/attachments/")[1].split('"')[0]
    download = client.get(f"/mail/messages/{html.id}/attachments/{file_id}")
    assert download.data == b"%PDF-1.4 test" and "attachment" in download.headers["Content-Disposition"]
    assert client.get(f"/mail/messages/{bad.id}/html").status_code == 404  # no HTML part

    timeline = client.get(f"/clients/{acme.id}/debtors/{debtor.id}").get_data(as_text=True)
    assert 'data-timeline="messages"' in timeline and "Friendly reminder" in timeline and "Not sent" in timeline


def test_a_collector_sees_only_the_mail_of_the_clients_they_work(client: Any, db_session: Any) -> None:
    from tests.factories import make_team

    mine, theirs = make_client(), make_client()
    team = make_team(mine)
    collector = make_user("collector", team=team)
    _mail(db_session, mine, make_debtor(mine), "a", "Mine to see")
    secret = _mail(db_session, theirs, make_debtor(theirs), "b", "Not for this collector")
    login(client, collector.email)
    page = client.get("/mail").get_data(as_text=True)
    assert "Mine to see" in page and "Not for this collector" not in page
    assert client.get(f"/mail/messages/{secret.id}").status_code == 404
    assert client.get("/mail/inbound").status_code == 404  # managers only
    assert client.get(f"/mail/identity/{mine.id}").status_code == 404


def test_the_sending_identity_is_validated_saved_and_used(client: Any, db_session: Any) -> None:
    acme = make_client()
    login(client, make_user("manager").email)
    token = fresh_csrf(client, f"/mail/identity/{acme.id}")
    refused = client.post(
        f"/mail/identity/{acme.id}",
        data={"csrf_token": token, "from_name": "Acme", "from_address": "not an address", "reply_to": ""},
    )
    assert refused.status_code == 422 and "cannot receive e-mail" in refused.get_data(as_text=True)
    saved = client.post(
        f"/mail/identity/{acme.id}",
        data={"csrf_token": token, "from_name": "Acme Accounts", "from_address": "ar@acme.example", "reply_to": ""},
    )
    assert saved.status_code == 302
    with scoped(TenantScope.single(acme.id), db_session):
        row = db_session.scalar(select(SendingIdentity).where(SendingIdentity.client_id == acme.id))
        assert (row.from_name, row.from_address) == ("Acme Accounts", "ar@acme.example")
    message = _mail(db_session, acme, None, "id", "With identity")
    assert (message.from_name, message.from_address) == ("Acme Accounts", "ar@acme.example")


def test_the_inbound_page_shows_unmatched_mail_with_its_reason(client: Any, db_session: Any, app: Any) -> None:
    from provider.comms.inbound import receive

    with scoped(TenantScope.agency(), db_session):
        row = receive(
            db_session,
            "x@example.org",
            f"reply+1-2-{'0' * 16}@{app.config['MAIL_RETURN_DOMAIN']}",
            b"From: x@example.org\r\nSubject: Who am I\r\n\r\nHello there\r\n",
            secret=app.config["MAIL_VERP_SECRET"],
            domain=app.config["MAIL_RETURN_DOMAIN"],
        )
        db_session.commit()
    login(client, make_user("manager").email)
    page = client.get("/mail/inbound?kind=unmatched").get_data(as_text=True)
    assert "Who am I" in page and "Not matched" in page and "forged" in page
    detail = client.get(f"/mail/inbound/{row.id}").get_data(as_text=True)
    assert "Hello there" in detail and "x@example.org" in detail
    assert db_session.get(InboundMail, row.id).kind == "unmatched"


def test_the_portal_shows_messages_to_its_own_debtors_only(client: Any, db_session: Any) -> None:
    acme, other = make_client(), make_client()
    debtor = make_debtor(acme, name="Portal Debtor")
    mine = _mail(db_session, acme, debtor, "p1", "Reminder to my debtor")
    notice = _mail(db_session, acme, None, "p2", "Notice to our own staff", purpose="report_ready")
    foreign = _mail(db_session, other, make_debtor(other), "p3", "Someone else's reminder")
    with scoped(TenantScope.agency(), db_session):
        letter = queue_letter(
            db_session,
            client_id=acme.id,
            debtor_id=debtor.id,
            address_lines=["Portal Debtor", "1 St"],
            subject="Final demand letter",
            pdf_bytes=b"%PDF-1.4",
            dedupe_key="l1",
            purpose="dunning",
        )
        db_session.commit()
    login(client, make_user("client_viewer", client=acme).email)
    page = client.get("/portal/messages").get_data(as_text=True)
    assert "Reminder to my debtor" in page and "Final demand letter" in page and "Waiting to be printed" in page
    assert "Notice to our own staff" not in page and "Someone else" not in page
    assert client.get(f"/portal/messages/{mine.id}").status_code == 200
    assert client.get(f"/portal/messages/{letter.id}").status_code == 200
    assert client.get(f"/portal/messages/{notice.id}").status_code == 404
    assert client.get(f"/portal/messages/{foreign.id}").status_code == 404
    assert client.get("/mail").status_code == 404  # the agency's page is not the client's
    debtor_page = client.get(f"/portal/debtors/{debtor.id}").get_data(as_text=True)
    assert "Reminder to my debtor" in debtor_page and f"/portal/messages/{mine.id}" in debtor_page


def test_a_manager_sends_an_unconfirmed_message_again_and_a_suppressed_one_is_refused(
    client: Any, db_session: Any
) -> None:
    from provider.comms import suppress_address
    from provider.comms.models import Message as M

    acme = make_client()
    debtor = make_debtor(acme)
    again = _mail(db_session, acme, debtor, "r1", "Unconfirmed one", to="ok@example.test")
    blocked = _mail(db_session, acme, debtor, "r2", "Bounced address", to="gone@example.test")
    with scoped(TenantScope.agency(), db_session):
        for message in (again, blocked):
            db_session.execute(
                M.__table__.update().where(M.__table__.c.id == message.id).values(status="failed", last_error="x")
            )
        suppress_address(db_session, client_id=acme.id, address="gone@example.test", kind="bounced")
        db_session.commit()
    login(client, make_user("manager").email)
    token = fresh_csrf(client, f"/mail/messages/{again.id}")
    assert "Send again" in client.get(f"/mail/messages/{again.id}").get_data(as_text=True)
    client.post(f"/mail/messages/{again.id}/resend", data={"csrf_token": token})
    refused = client.post(f"/mail/messages/{blocked.id}/resend", data={"csrf_token": token}, follow_redirects=True)
    assert "bounced" in refused.get_data(as_text=True)
    with scoped(TenantScope.agency(), db_session):
        db_session.expire_all()
        assert db_session.get(M, again.id).status == "queued"  # no mail server in this test: it waits
        assert db_session.get(M, blocked.id).status == "failed"
