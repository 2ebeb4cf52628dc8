"""The audit log: every service write is recorded with actor, object, client and what changed; append-only."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import select, update

from clients import services as client_services
from provider.core.audit import Actor, AppendOnlyViolation, AuditEvent, acting_as
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.factories import make_client, make_user


def _events(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_create_and_update_record_actor_object_client_and_changes(db_session: Any) -> None:
    boss = make_user("manager")
    with acting_as(Actor(boss.id, boss.email)), scoped(TenantScope.agency(), db.session):
        client = client_services.create_client(
            db.session,
            {
                "name": "Acme",
                "code": "ACME",
                "base_currency": "USD",
                "timezone": "America/Chicago",
                "country": "US",
                "debt_type": "consumer",
                "status": "active",
            },
        )
        client_services.update_client(db.session, client, {"name": "Acme Corp", "status": "paused"})
        db.session.commit()

    created, updated = _events("client.create")[-1], _events("client.update")[-1]
    for event in (created, updated):
        assert (event.actor_user_id, event.actor_label) == (boss.id, boss.email)
        assert (event.object_type, event.object_id, event.client_id) == ("Client", str(client.id), client.id)
        assert event.occurred_at.tzinfo is not None
    assert created.changes["after"]["code"] == "ACME"
    assert updated.changes == {"name": ["Acme", "Acme Corp"], "status": ["active", "paused"]}


def test_an_update_that_changes_nothing_is_not_logged(db_session: Any) -> None:
    client = make_client(name="Same")
    before = len(_events("client.update"))
    client_services.update_client(db.session, client, {"name": "Same"})
    assert len(_events("client.update")) == before


def test_orm_refuses_to_change_or_delete_audit_rows(db_session: Any) -> None:
    make_client()
    event = _events("client.create")[-1]
    event.action = "forged"
    with pytest.raises(AppendOnlyViolation):
        db.session.flush()
    db.session.rollback()
    with pytest.raises(AppendOnlyViolation):
        db.session.execute(update(AuditEvent).values(action="forged"))
    db.session.rollback()
    db.session.delete(db.session.get(AuditEvent, event.id))
    with pytest.raises(AppendOnlyViolation):
        db.session.flush()
    db.session.rollback()


@pytest.mark.parametrize("statement", ["UPDATE audit_events SET action = 'forged'", "DELETE FROM audit_events"])
def test_database_refuses_to_change_or_delete_audit_rows(db_session: Any, statement: str) -> None:
    make_client()
    conn = db.session.connection()
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), conn.begin_nested():
        conn.execute(sa.text(statement))


def test_the_audit_page_reads_as_sentences_with_names_not_codes(client: Any) -> None:
    from tests.conftest import login
    from tests.factories import make_debtor

    acme = make_client(name="Lakeside Motors GmbH")
    admin = make_user("admin", name="Anna Weber")
    with acting_as(Actor(admin.id, admin.email)):
        make_debtor(acme, name="Harbour Freight Ltd")
    login(client, admin.email)
    page = client.get("/admin/audit?per_page=200").get_data(as_text=True)
    assert "<strong>Anna Weber</strong> added the debtor Harbour Freight Ltd" in page
    assert "debtor.create" not in page.split("<tbody>", 1)[1] and "set 3 fields" not in page
