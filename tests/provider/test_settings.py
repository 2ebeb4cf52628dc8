"""A staff user's own time zone: chosen on the settings page (validated, audited), used wherever a time is shown;
without one the agency's (AGENCY_TIMEZONE). Client users read their client's zone and have no such page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from provider.core.audit import AuditEvent
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.models import User
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_user

WINTER = datetime(2026, 1, 15, 15, 0, tzinfo=UTC)


def _hint(page: str) -> str:
    return page.split('id="f-timezone-hint"')[1].split("</p>")[0]


def test_a_staff_user_reads_times_in_their_own_zone(client: FlaskClient, app: Any, db_session: Any) -> None:
    user = make_user("manager", name="Nia Okafor")
    login(client, user.email)
    agency = app.config["AGENCY_TIMEZONE"]
    with frozen_time(WINTER):
        before = client.get("/account/settings").get_data(as_text=True)
        assert f"The agency&#39;s ({agency})" in before or f"The agency's ({agency})" in before
        saved = client.post(
            "/account/settings",
            data={"csrf_token": fresh_csrf(client, "/account/settings"), "timezone": "America/New_York"},
        )
        assert saved.status_code == 302
        page = client.get("/account/settings").get_data(as_text=True)
    assert "10:00 EST" in _hint(page)  # 15:00 UTC in New York in January
    assert '<option value="America/New_York" selected>' in page
    with scoped(TenantScope.agency(), db.session):
        db.session.expire_all()
        assert db.session.get(User, user.id).timezone == "America/New_York"
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "user.settings")).one()
        assert event.changes["timezone"] == [None, "America/New_York"]

    refused = client.post(
        "/account/settings", data={"csrf_token": fresh_csrf(client, "/account/settings"), "timezone": "Mars/Olympus"}
    )
    assert refused.status_code == 422 and "Choose a time zone from the list" in refused.get_data(as_text=True)
    with scoped(TenantScope.agency(), db.session):
        db.session.expire_all()
        assert db.session.get(User, user.id).timezone == "America/New_York"  # nothing changed

    client.post("/account/settings", data={"csrf_token": fresh_csrf(client, "/account/settings"), "timezone": ""})
    with frozen_time(WINTER):
        back = client.get("/account/settings").get_data(as_text=True)
    assert "EST" not in _hint(back)  # the agency's zone again


def test_client_users_have_no_settings_page(client: FlaskClient, db_session: Any) -> None:
    portal_user = make_user("client_admin", client=make_client())
    login(client, portal_user.email)
    assert client.get("/account/settings").status_code == 404
