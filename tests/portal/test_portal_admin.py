"""What only a client admin may do (recall an account, change roles, read the audit trail), report opt-ins,
and that a client user reaches no staff page."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from clients.journal import Invoice
from portal.queries import RECALL_ACTION, recipient_emails, report_recipients
from provider.core.audit import AuditEvent
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.models import User
from tests.conftest import fresh_csrf, login
from tests.portal.conftest import INTERNAL_NOTE, Company
from worklists.models import WorkAction, WorkItem
from worklists.scoring import rescore

PORTAL_BLUEPRINTS = (
    "portal",
    "portal_ledger",
    "portal_payments",
    "sla_portal",
    "portal_reports",
    "books_portal",
    "comms_portal",
    "dunning_portal",
    "forecast_portal",
)
# the second sign-in step and every signed-in user's own account pages (two-factor, sessions), like logout
ACCOUNT_ENDPOINTS = {"two_factor.verify", "two_factor.setup", "two_factor.sessions", "two_factor.end_session"}
PUBLIC = {"static", "auth.login", "auth.logout", "provider.home", "provider.healthz", *ACCOUNT_ENDPOINTS}


def _recall(client: FlaskClient, debtor_id: int, **form: str) -> Any:
    data = {"csrf_token": fresh_csrf(client, f"/portal/debtors/{debtor_id}"), **form}
    return client.post(f"/portal/debtors/{debtor_id}/recall", data=data)


def _held(company: Company) -> list[bool]:
    with scoped(TenantScope.agency(), db.session):
        return list(
            db.session.scalars(
                select(Invoice.on_hold).where(
                    Invoice.client_id == company.client.id, Invoice.debtor_id == company.late.id
                )
            )
        )


def test_client_admin_recalls_an_account_with_confirmation_and_reason(client: FlaskClient, company: Company) -> None:
    login(client, company.admin.email)
    page = client.get(f"/portal/debtors/{company.late.id}/recall")
    assert page.status_code == 200 and "go on hold" in page.get_data(as_text=True)

    unconfirmed = _recall(client, company.late.id, reason="Settled with us directly", confirm="0")
    assert unconfirmed.status_code == 422 and _held(company) == [False, False]
    no_reason = _recall(client, company.late.id, reason="  ", confirm="1")
    assert no_reason.status_code == 422 and "say why" in no_reason.get_data(as_text=True)
    assert _held(company) == [False, False]

    done = _recall(client, company.late.id, reason="Settled with us directly", confirm="1")
    assert done.status_code == 302
    assert _held(company) == [True, True]
    with scoped(TenantScope.agency(), db.session):
        item = db.session.get(WorkItem, company.item_id)
        db.session.refresh(item)
        assert item.state == "closed"
        # the nightly rebuild does not bring it back: held invoices are not collectable
        rescore(db.session, [company.client.id])
        db.session.refresh(item)
        assert item.state == "closed"
        history = db.session.scalar(
            select(func.count()).select_from(WorkAction).where(WorkAction.work_item_id == company.item_id)
        )
        assert history >= 6  # the five earlier actions stay, plus the closing
        events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == RECALL_ACTION)).all()
        assert [e.client_id for e in events] == [company.client.id]
        assert events[0].actor_user_id == company.admin.id
        assert events[0].changes["after"]["reason"] == "Settled with us directly"

    body = client.get(f"/portal/debtors/{company.late.id}").get_data(as_text=True)
    assert "recalled" in body and "Settled with us directly" in body and "spoke to the debtor" in body
    assert "Recall account" not in body  # nothing left to recall: the button is gone
    trail = client.get("/portal/audit?per_page=200").get_data(as_text=True)
    sentence = f"<strong>{company.admin.name}</strong> recalled {company.late.name} (reason: Settled with us directly)"
    assert sentence in trail and RECALL_ACTION not in trail
    again = _recall(client, company.late.id, reason="Once more", confirm="1")
    assert again.status_code == 422 and "nothing on this account" in again.get_data(as_text=True)

    recalled = client.get("/portal/debtors?status=recalled").get_data(as_text=True)
    assert ">recalled</span>" in recalled
    assert company.late.name in recalled and company.fresh.name not in recalled


def test_a_viewer_cannot_recall_change_roles_or_read_the_audit_trail(client: FlaskClient, company: Company) -> None:
    login(client, company.viewer.email)
    token = fresh_csrf(client, "/portal/users")
    assert client.get(f"/portal/debtors/{company.late.id}/recall").status_code == 404
    response = client.post(
        f"/portal/debtors/{company.late.id}/recall", data={"csrf_token": token, "reason": "x", "confirm": "1"}
    )
    assert response.status_code == 404 and _held(company) == [False, False]
    assert (
        client.post(
            f"/portal/users/{company.admin.id}/role", data={"csrf_token": token, "role": "client_viewer"}
        ).status_code
        == 404
    )
    assert (
        client.post(f"/portal/users/{company.admin.id}/access", data={"csrf_token": token, "active": "0"}).status_code
        == 404
    )
    assert (
        client.post(
            f"/portal/users/{company.admin.id}/reports", data={"csrf_token": token, "receives": "1"}
        ).status_code
        == 404
    )
    assert client.get("/portal/audit").status_code == 404
    assert client.get("/portal/users/new").status_code == 404
    people = client.get("/portal/users").get_data(as_text=True)
    assert "Invite a colleague" not in people and "Audit trail" not in people
    with scoped(TenantScope.agency(), db.session):
        db.session.refresh(company.admin)
        assert (company.admin.role, company.admin.active) == ("client_admin", True)


def test_client_admin_changes_roles_within_the_company_only(client: FlaskClient, company: Company) -> None:
    login(client, company.admin.email)
    token = fresh_csrf(client, "/portal/users")

    def role(user: User, value: str) -> int:
        return client.post(f"/portal/users/{user.id}/role", data={"csrf_token": token, "role": value}).status_code

    assert role(company.viewer, "client_admin") == 302
    assert role(company.viewer, "manager") == 302  # refused with a message, nothing changes
    assert role(company.admin, "client_viewer") == 302  # not oneself
    assert role(company.b_admin, "client_viewer") == 404
    with scoped(TenantScope.agency(), db.session):
        for user in (company.viewer, company.admin, company.b_admin):
            db.session.refresh(user)
        assert (company.viewer.role, company.admin.role, company.b_admin.role) == ("client_admin",) * 3


def test_report_opt_in_for_oneself_and_by_an_admin(client: FlaskClient, company: Company) -> None:
    login(client, company.viewer.email)
    token = fresh_csrf(client, "/portal/users")
    assert (
        client.post(
            f"/portal/users/{company.viewer.id}/reports", data={"csrf_token": token, "receives": "1"}
        ).status_code
        == 302
    )
    assert report_recipients(company.client.id) == {company.viewer.id: True}
    client.post("/logout", data={"csrf_token": token})

    login(client, company.admin.email)
    token = fresh_csrf(client, "/portal/users")
    assert (
        client.post(
            f"/portal/users/{company.admin.id}/reports", data={"csrf_token": token, "receives": "1"}
        ).status_code
        == 302
    )
    assert (
        client.post(
            f"/portal/users/{company.viewer.id}/reports", data={"csrf_token": token, "receives": "0"}
        ).status_code
        == 302
    )
    assert (
        client.post(
            f"/portal/users/{company.b_admin.id}/reports", data={"csrf_token": token, "receives": "1"}
        ).status_code
        == 404
    )
    assert recipient_emails(company.client.id) == ["boss@acme.test"]
    assert recipient_emails(company.b.id) == []
    page = client.get("/portal/users").get_data(as_text=True)
    assert page.count('badge badge-ok">receives') == 1


def test_audit_trail_shows_only_my_companys_data_events(client: FlaskClient, company: Company) -> None:
    login(client, company.admin.email)
    body = client.get("/portal/audit?per_page=200").get_data(as_text=True)
    assert "placed invoice" in body and "added the debtor" in body
    assert "invoice.place" not in body and "debtor.create" not in body and "Invoice *" not in body
    assert INTERNAL_NOTE not in body and "worklist." not in body and "set 3 fields" not in body
    assert "bravo" not in body.lower()
    users = client.get("/portal/audit?family=user&per_page=200").get_data(as_text=True)
    assert "added the user" in users and "placed invoice" not in users


@pytest.mark.parametrize("role", ["client_admin", "client_viewer"])
def test_a_client_user_reaches_no_staff_url(app: Flask, client: FlaskClient, company: Company, role: str) -> None:
    login(client, (company.admin if role == "client_admin" else company.viewer).email)
    checked = 0
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.rsplit(".", 1)[0] if "." in rule.endpoint else ""
        if rule.endpoint in PUBLIC or blueprint in PORTAL_BLUEPRINTS or "GET" not in rule.methods:
            continue
        if blueprint.startswith("api"):
            continue  # the REST API authenticates by token, not by the portal session
        path = rule.rule
        for arg in rule.arguments:
            path = path.replace(f"<int:{arg}>", "1").replace(f"<{arg}>", "1")
        assert client.get(path).status_code == 404, f"{role} reached {rule.rule}"
        checked += 1
    assert checked >= 15
