"""Templates refused before saving (syntax, unknown variables, attribute access), the editor's live preview,
and the client's approval in the portal (only a client admin, only its own client, audited)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from provider.core.audit import AuditEvent
from provider.core.errors import ServiceError
from provider.core.tenancy import TenantScope, scoped
from provider.dunning import services, templating
from provider.dunning.models import DunningPolicy, DunningTemplate
from provider.extensions import db
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_debtor, make_invoice, make_user


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        ("Hi", "Dear {{ debtor_name }", "Body, line 1"),
        ("Hi", "Line one\n{% if total_due %}open", "not closed"),
        ("Hi", "ok\n{{ password }}", "Body, line 2: “password” is not a variable"),
        ("Hi", "{% for i in invoices %}{{ i.secret }}{% endfor %}", "“i.secret” is not allowed"),
        ("Hi", "{{ debtor_name.__class__ }}", "is not allowed"),
        ("Hi", "{{ debtor_name.upper() }}", "calling functions is not allowed"),
        ("Hi {{ nope }}", "fine", "Subject, line 1: “nope”"),
        ("", "fine", "write a subject"),
    ],
)
def test_validation_names_the_line_and_the_problem(subject: str, body: str, expected: str) -> None:
    problems = [str(p) for p in templating.validate(subject, body)]
    assert problems and any(expected in p for p in problems), problems


def test_a_good_template_passes_and_renders_in_the_debtors_locale() -> None:
    body = (
        "{{ total_due }} seit {{ oldest_due_date }}\n"
        "{% for invoice in invoices %}{{ invoice.number }}: {{ invoice.amount }}\n{% endfor %}"
    )
    assert templating.validate("Mahnung {{ total_due }}", body) == []
    context = templating.build_context(
        debtor_name="X", reference="R", client_name="C", agency_name="A", stage_name="S",
        invoices=[("I-1", date(2026, 1, 2), "EUR", 123_456)], today=date(2026, 2, 1), locale="de_DE", link="L",
    )  # fmt: skip
    subject, text, _html = templating.render("Mahnung {{ total_due }}", body, context)
    assert subject == "Mahnung 1.234,56\xa0€" and "2. Januar 2026" in text and "I-1: 1.234,56\xa0€" in text
    evil = templating.render("s", "{{ debtor_name }}", {**context, "debtor_name": "<script>x</script>"})[2]
    assert "<script>" not in evil


def test_a_refused_template_changes_nothing(db_session: Any) -> None:
    client = make_client()
    with scoped(TenantScope.agency(), db.session):
        policy = services.propose_policy(db.session, client, effective_from=date(2026, 1, 1))
        db.session.commit()
        stage = policy.stages[0]
        before = [(t.language, t.body) for t in stage.templates]
        with pytest.raises(ServiceError, match="not a variable"):
            services.save_template(
                db.session, stage, policy, language="en", segment="", tone="friendly", subject="x", body="{{ iban }}"
            )
        db.session.rollback()
        after = list(db.session.scalars(select(DunningTemplate).where(DunningTemplate.stage_id == stage.id)))
        assert sorted((t.language, t.body) for t in after) == sorted(before)


def test_editor_preview_and_save_through_the_pages(client: FlaskClient) -> None:
    c = make_client(country="DE")
    debtor = make_debtor(c, name="Preview Debtor")
    make_invoice(c, debtor, "PV-1", 10_000, due_date=date(2026, 2, 4))
    manager = make_user("manager")
    with scoped(TenantScope.agency(), db.session):
        policy = services.propose_policy(db.session, c, effective_from=date(2026, 1, 1))
        db.session.commit()
        stage = policy.stages[0]
    login(client, manager.email)
    page = client.get(f"/dunning/policies/{policy.id}?stage_id={stage.id}&debtor_id={debtor.id}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "Preview Debtor" in body and "PV-1" in body and "debtor_name" in body
    csrf = fresh_csrf(client, f"/dunning/policies/{policy.id}")
    bad = client.post(
        f"/dunning/stages/{stage.id}/templates",
        data={"csrf_token": csrf, "language": "fr", "segment": "", "tone": "friendly", "subject": "Rappel",
              "body": "Bonjour {{ debtor_nom }}"},
        follow_redirects=True,
    )  # fmt: skip
    assert "“debtor_nom” is not a variable" in bad.get_data(as_text=True)
    good = client.post(
        f"/dunning/stages/{stage.id}/templates",
        data={"csrf_token": csrf, "language": "fr", "segment": "vip", "tone": "friendly", "subject": "Rappel",
              "body": "Bonjour {{ debtor_name }}, {{ total_due }}"},
        follow_redirects=True,
    )  # fmt: skip
    assert "saved" in good.get_data(as_text=True)
    with scoped(TenantScope.agency(), db.session):
        saved = db.session.scalars(
            select(DunningTemplate).where(DunningTemplate.stage_id == stage.id, DunningTemplate.language == "fr")
        ).one()
        assert saved.segment == "vip"


def test_only_the_clients_admin_approves_in_the_portal_and_it_is_audited(client: FlaskClient) -> None:
    c = make_client()
    other = make_client()
    viewer = make_user("client_viewer", client=c)
    admin = make_user("client_admin", client=c)
    with scoped(TenantScope.agency(), db.session):
        policy = services.propose_policy(db.session, c, effective_from=date(2026, 1, 1), notes="Gentle first")
        foreign = services.propose_policy(db.session, other, effective_from=date(2026, 1, 1))
        db.session.commit()
    login(client, viewer.email)
    page = client.get("/portal/dunning").get_data(as_text=True)
    assert "Gentle first" in page and "Approve version" not in page
    csrf = fresh_csrf(client, "/portal/dunning")
    assert client.post(f"/portal/dunning/policies/{policy.id}/approve", data={"csrf_token": csrf}).status_code == 404
    client.post("/logout", data={"csrf_token": csrf})
    login(client, admin.email)
    csrf = fresh_csrf(client, "/portal/dunning")
    assert client.post(f"/portal/dunning/policies/{foreign.id}/approve", data={"csrf_token": csrf}).status_code == 404
    client.post(f"/portal/dunning/policies/{policy.id}/approve", data={"csrf_token": csrf, "note": "ok"})
    with scoped(TenantScope.agency(), db.session):
        assert db.session.get(DunningPolicy, policy.id).status == "approved"  # type: ignore[union-attr]
        assert db.session.get(DunningPolicy, foreign.id).status == "proposed"  # type: ignore[union-attr]
        events = db.session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "DunningPolicy")).all()
        assert "dunning.policy_approved" in events
    with scoped(TenantScope.agency(), db.session), pytest.raises(ServiceError, match="already decided"):
        services.approve_policy(db.session, db.session.get_one(DunningPolicy, policy.id), admin)
