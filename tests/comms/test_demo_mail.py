"""The demo sends its mail to a real SMTP server it starts on loopback, and the pages say what that server got."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from provider.comms import Message
from provider.comms.demo import seed_demo_mail, start_demo_mail
from provider.comms.jobs import send_mail_job
from provider.core.tenancy import TenantScope, scoped
from tests.conftest import login
from tests.factories import make_client, make_debtor, make_user


def test_the_demo_mail_server_receives_what_the_demo_sends(
    app: Any, client: Any, db_session: Any, tmp_path: Any
) -> None:
    from clients.models import DebtorContact

    acme = make_client(name="Demo Mail Ltd")
    debtor = make_debtor(acme, name="Demo Debtor")
    with scoped(TenantScope.agency(), db_session):
        db_session.add(
            DebtorContact(
                client_id=acme.id,
                debtor_id=debtor.id,
                kind="email",
                value="dd@example.com",
                label="billing",
                is_primary=True,
            )
        )
        db_session.flush()
        assert seed_demo_mail([acme.id]) == 1
        assert seed_demo_mail([acme.id]) == 1  # idempotent: the same reminder, not a second
        db_session.info.pop("pending_jobs", None)
        db_session.commit()

    keys = ("SMTP_HOST", "SMTP_PORT", "DEMO_MAIL_DIR", "MAIL_INBOUND_PORT")
    saved = {k: app.config.get(k) for k in keys}
    app.config.update(SMTP_HOST=None, DEMO_MAIL_DIR=str(tmp_path / "demo-mail"), MAIL_INBOUND_PORT=0)
    app.extensions.pop("ar_demo_mail", None)
    try:
        start_demo_mail(app)
        assert app.config["SMTP_HOST"] == "127.0.0.1" and app.config["SMTP_PORT"]
        send_mail_job(acme.id)
        assert len(list((tmp_path / "demo-mail").glob("*.eml"))) == 1
        with scoped(TenantScope.single(acme.id), db_session):
            message = db_session.scalar(select(Message).where(Message.client_id == acme.id))
            assert message.status == "sent"
        login(client, make_user("manager").email)
        page = client.get(f"/mail/messages/{message.id}").get_data(as_text=True)
        assert "Received by the demo mail server" in page
    finally:
        for server in app.extensions.pop("ar_demo_mail", []):
            server.stop()
        app.config.update(saved)
