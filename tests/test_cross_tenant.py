"""Walk every URL rule of the app as people who must not see client B, and prove they cannot.

- A client user of A and a collector whose team works only A ask for B's objects: 404, with the same
  body as an id that does not exist, for GET and for POST (with a valid CSRF token).
- List pages (rules without ids) never show B's rows.
- A new URL rule with an id this crawler does not know fails the test until it is added here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from flask import Flask, current_app
from flask.testing import FlaskClient
from sqlalchemy import func, select

from provider.core.audit import AuditEvent
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.conftest import fresh_csrf, login
from tests.factories import (
    make_client,
    make_debtor,
    make_dispute,
    make_invoice,
    make_payment,
    make_team,
    make_user,
    make_work_items,
)

MISSING_ID = 987_654_321
SKIP_ENDPOINTS = {"static"}


@dataclass
class World:
    a: Any
    b: Any
    b_objects: dict[str, Any]
    b_markers: list[str]
    viewers: dict[str, str]


@pytest.fixture
def world(db_session: Any) -> World:
    a = make_client(name="Alpha Shipping GmbH", code="ALPHA")
    b = make_client(
        name="Bravo Secret Holdings", code="BRAVO", base_currency="GBP", country="GB", timezone="Europe/London"
    )
    make_debtor(a, name="Alpha Debtor One", external_ref="A-REF-1")
    b_debtor = make_debtor(b, name="Bravo Hidden Debtor", external_ref="B-SECRET-REF", email="hidden@bravo.test")
    team_a = make_team(a, name="Team A only")
    team_b = make_team(b, name="Team B only")
    b_user = make_user("client_admin", client=b, name="Bravo Person", email="person@bravo.test")
    client_a_user = make_user("client_admin", client=a, email="alpha.admin@example.test")
    collector_a = make_user("collector", team=team_a, email="collector.a@example.test")
    from clients.imports import start_placement_import
    from provider.extensions import db as _db

    b_batch = start_placement_import(_db.session, b, "bravo-secret.csv", b"invoice_number\n")
    from clients.payment_imports import start_payment_import

    b_payment = make_payment(b, b_debtor, "B-SECRET-PAY", 1234, currency="GBP")
    b_invoice = make_invoice(b, b_debtor, "BRAVO-INV-7734", 123_45, currency="GBP")
    b_payment_batch = start_payment_import(_db.session, b, "bravo-payments.csv", b"payment_ref\n")
    _db.session.commit()
    from provider.reporting.jobs import start_run
    from provider.reporting.reports import generate_report

    with scoped(TenantScope.agency(), _db.session):
        b_report = generate_report(_db.session, b, "2026-01").report
        b_run = start_run("2026-01", [b.id], trigger="manual")
        _db.session.info.pop("pending_jobs", None)  # the crawler needs the run row, not its jobs
        _db.session.commit()
    b_item = make_work_items(b)[b_debtor.id]  # B's debtor is overdue: a work item of B's worklist
    from sla.evidence import add_evidence

    b_disputed = make_invoice(b, b_debtor, "BRAVO-INV-7735", 50_00, currency="GBP")
    b_dispute = make_dispute(b, b_debtor, [b_disputed], summary="Bravo secret dispute summary")
    b_evidence = add_evidence(_db.session, b_dispute, "bravo-evidence.txt", b"bravo secret evidence")
    _db.session.commit()
    b_remittance, b_fee_invoice = _books_objects_of_b(b, b_debtor)
    b_api = _api_objects_of_b(b, b_debtor, b_invoice, b_user.id)
    b_closed_day, b_query = _sla_objects_of_b(b)
    b_dunning = _dunning_objects_of_b(a, b, b_debtor)
    b_mail = _mail_objects_of_b(b, b_debtor)
    from worklists.models import AssignmentRule

    b_rule = AssignmentRule(team_id=team_b.id, client_id=b.id, position=1)  # B's team's rule for B's accounts
    _db.session.add(b_rule)
    _db.session.commit()
    return World(
        a=a,
        b=b,
        b_objects={
            "client_id": b.id,
            "debtor_id": b_debtor.id,
            "user_id": b_user.id,
            "session_id": _session_of(b_user),  # a sign-in session of B's user (/account/sessions/<id>/end)
            "team_id": team_b.id,
            "batch_id": b_batch.id,
            "job_id": _job_of(f"import:{b.id}:{b_batch.id}"),  # the background work of B's placement file
            "payment_id": b_payment.id,
            "payment_batch_id": b_payment_batch.id,
            "line": 1,  # a line of B's payment file (a bank line waiting for its debtor)
            "invoice_id": b_invoice.id,
            "transaction_id": _transaction_of(b_payment),  # reversals of an allocation or write-off
            "report_id": b_report.id,
            "run_id": b_run.id,
            "item_id": b_item,
            "dispute_id": b_dispute.id,
            "evidence_id": b_evidence.id,
            "closed_day_id": b_closed_day,
            "query_id": b_query,
            "remittance_id": b_remittance,
            "fee_invoice_id": b_fee_invoice,
            "rule_id": b_rule.id,
            **b_api,
            **b_dunning,
            **b_mail,
        },
        b_markers=[
            "Bravo Secret Holdings",
            "Bravo Hidden Debtor",
            "B-SECRET-REF",
            "hidden@bravo.test",
            "person@bravo.test",
            "bravo-secret.csv",
            "B-SECRET-PAY",
            "bravo-payments.csv",
            "BRAVO-INV-7734",
            "Bravo secret dispute summary",
            "bravo-evidence.txt",
            "BRAVO-CN-55",
            "bravo-hooks.test",
            "Bravo ERP token",
            "Bravo secret closure",
            "Bravo secret question",
            "Bravo dunning note",
            "Bravo secret reminder text",
            "Bravo secret reminder",
            "bravo-statement.pdf",
        ],
        viewers={"client user of A": client_a_user.email, "collector of A": collector_a.email},
    )


def _job_of(key: str) -> int:
    from provider.core.outbox import latest_for

    row = latest_for(db.session(), key)
    assert row is not None
    return row.id


def _sla_objects_of_b(b: Any) -> tuple[int, int]:
    """B's closed calendar day and B's client query (the calendar and query pages' URL arguments)."""
    from datetime import date

    from sla.client_queries import ask_query
    from sla.services import add_closed_day

    with scoped(TenantScope.agency(), db.session):
        closed = add_closed_day(db.session, b, date(2026, 8, 3), "Bravo secret closure")
        query = ask_query(db.session, b, "Bravo secret question", "Bravo secret question body")
        db.session.commit()
        return closed.id, query.id


def _dunning_objects_of_b(a: Any, b: Any, b_debtor: Any) -> dict[str, Any]:
    """B's dunning policy, stage, template and letter batch; and, as the debtor-link argument, a link signed for
    client A naming B's debtor (a bearer link of B itself opens B's debtor page to whoever holds it, by design:
    tests/dunning/test_debtor_page.py covers those links)."""
    from datetime import date

    from provider.dunning import services
    from provider.dunning.links import make_token
    from provider.dunning.models import DunningRun, LetterBatch

    with scoped(TenantScope.agency(), db.session):
        policy = services.propose_policy(db.session, b, effective_from=date(2026, 1, 1), notes="Bravo dunning note")
        stage = policy.stages[0]
        template = services.save_template(
            db.session, stage, policy, language="en", segment="vip", tone="firm", subject="Bravo",
            body="Bravo secret reminder text {{ debtor_name }}",
        )  # fmt: skip
        batch = LetterBatch(client_id=b.id, run_date=date(2026, 2, 1), status="ready", pdf=b"%PDF-", manifest="x")
        db.session.add(batch)
        run = DunningRun(client_id=b.id, run_date=date(2026, 2, 1), status="done", note="Bravo dunning note")
        db.session.add(run)
        db.session.commit()
        return {
            "dunning_run_id": run.id,
            "policy_id": policy.id,
            "stage_id": stage.id,
            "template_id": template.id,
            "letter_batch_id": batch.id,
            "token": make_token(a.id, b_debtor.id),
        }


def _mail_objects_of_b(b: Any, b_debtor: Any) -> dict[str, int]:
    """B's message to its debtor (with an attachment and an HTML part) and the reply that came back to it."""
    from provider.comms import Attachment, MessageAttachment, queue_email, verp
    from provider.comms.inbound import receive

    with scoped(TenantScope.agency(), db.session):
        message = queue_email(
            db.session,
            client_id=b.id,
            to="hidden@bravo.test",
            subject="Bravo secret reminder",
            text="pay",
            html="<p>pay</p>",
            debtor_id=b_debtor.id,
            purpose="dunning",
            dedupe_key="bravo:reminder",
            attachments=[Attachment("bravo-statement.pdf", b"%PDF-1.4")],
        )
        db.session.info.pop("pending_jobs", None)  # nothing is sent: the crawler needs the rows
        config = current_app.config
        secret, domain = config["MAIL_VERP_SECRET"], config["MAIL_RETURN_DOMAIN"]
        inbound = receive(
            db.session,
            "hidden@bravo.test",
            verp.encode("reply", b.id, message.id, secret=secret, domain=domain),
            b"From: hidden@bravo.test\r\nSubject: Re: Bravo secret reminder\r\n\r\nno\r\n",
            secret=secret,
            domain=domain,
        )
        db.session.commit()
        attachment_id = db.session.scalar(
            select(MessageAttachment.id).where(MessageAttachment.message_id == message.id)
        )
    return {"message_id": message.id, "attachment_id": attachment_id, "inbound_id": inbound.id}


def _books_objects_of_b(b: Any, b_debtor: Any) -> tuple[int, int]:
    """An approved remittance of B (with B's payment on its statement) and a fee invoice of B."""
    from provider.books.invoices import issue_fee_invoice
    from provider.books.remittance import approve_run, draft_runs
    from tests.books.helpers import give_schedule

    give_schedule(b, currency="GBP")
    make_payment(b, b_debtor, "B-SECRET-DIRECT", 999, currency="GBP", received_by="client")
    with scoped(TenantScope.single(b.id), db.session):
        (run,) = draft_runs(db.session, b.id, "monthly", date(2026, 3, 1), date(2026, 3, 31))
        approve_run(db.session, run, "approver")
        invoice = issue_fee_invoice(db.session, b.id, "GBP", date(2026, 3, 1), date(2026, 3, 31))
        db.session.commit()
        assert invoice is not None
        return run.id, invoice.id


def _transaction_of(payment: Any) -> int:
    from clients.journal import JournalEntry
    from provider.extensions import db as _db

    with scoped(TenantScope.agency(), _db.session):
        return _db.session.scalars(
            select(JournalEntry.transaction_id).where(JournalEntry.payment_id == payment.id).limit(1)
        ).one()


def _session_of(user: Any) -> str:
    from provider.core.clock import now_utc
    from provider.extensions import db as _db
    from provider.models import AuthSession

    row = AuthSession(token_hash="b" * 64, user_id=user.id, last_seen_at=now_utc(), ip="198.51.100.7", user_agent="x")
    _db.session.add(row)
    _db.session.commit()
    return row.token_hash


def _api_objects_of_b(b: Any, b_debtor: Any, b_invoice: Any, b_user_id: int) -> dict[str, int]:
    """B's API token, credit note, webhook endpoint and delivery (the API and webhook pages' URL arguments)."""
    from datetime import date

    from sqlalchemy import select as _select

    from clients.ledger import issue_credit_note
    from provider.api.models import ApiToken, WebhookDelivery, WebhookEvent
    from provider.api.webhooks import emit_event
    from tests.factories import make_api_token, make_webhook_endpoint

    make_api_token(b, name="Bravo ERP token")
    endpoint = make_webhook_endpoint(b, "https://bravo-hooks.test/ar", ["report.ready"])
    with scoped(TenantScope.agency(), db.session):
        note = issue_credit_note(
            db.session,
            b,
            {
                "debtor_id": b_debtor.id,
                "number": "BRAVO-CN-55",
                "issued_on": date(2026, 1, 6),
                "currency": "GBP",
                "amount_minor": 1_00,
            },
        )
        emit_event(db.session, b.id, "report.ready", {"period": "2026-01"}, dedupe_key="bravo:report")
        db.session.info.pop("pending_jobs", None)  # no delivery to the fake host
        db.session.commit()
        token_id = db.session.scalar(_select(ApiToken.id).where(ApiToken.client_id == b.id))
        delivery_id = db.session.scalar(_select(WebhookDelivery.id).where(WebhookDelivery.client_id == b.id))
        event_id = db.session.scalar(_select(WebhookEvent.id).where(WebhookEvent.client_id == b.id))
    return {
        "token_id": token_id,
        "credit_note_id": note.id,
        "endpoint_id": endpoint.id,
        "delivery_id": delivery_id,
        "event_id": event_id,  # the API's events (GET /events/{event_id}, replay)
    }


def _is_api(rule: Any) -> bool:
    """Token-authenticated API rules: a session gets 401 there; they are crawled with A's token below."""
    return rule.rule.startswith("/api/v1/") and rule.endpoint not in ("api.openapi_json", "api.docs")


def _rules(app: Flask) -> list[Any]:
    return sorted(
        (r for r in app.url_map.iter_rules() if r.endpoint not in SKIP_ENDPOINTS and not _is_api(r)),
        key=lambda r: r.rule,
    )


def _api_rules(app: Flask) -> list[Any]:
    return sorted((r for r in app.url_map.iter_rules() if _is_api(r)), key=lambda r: r.rule)


_TOKEN = re.compile(r'value="[^"]+"(?=[^>]*name="csrf_token")|(?<=name="csrf_token" value=")[^"]+')


def _body(response: Any) -> str:
    """The page without its CSRF token (signed per request, so it differs between any two pages)."""
    return _TOKEN.sub("", response.get_data(as_text=True))


def _text_of(response: Any) -> str:
    """A page or download as text; an XLSX workbook as the text of all its cells (checked by content)."""
    if response.mimetype.endswith("spreadsheetml.sheet"):
        import io

        from openpyxl import load_workbook

        book = load_workbook(io.BytesIO(response.get_data()), read_only=True)
        return " ".join(str(v) for sheet in book for row in sheet.iter_rows(values_only=True) for v in row)
    return response.get_data(as_text=True)


def _url(rule: Any, values: dict[str, Any]) -> str:
    path = rule.rule
    for arg in rule.arguments:
        path = path.replace(f"<int:{arg}>", str(values[arg])).replace(f"<{arg}>", str(values[arg]))
    return path


def test_the_crawler_knows_every_id_in_every_rule(app: Flask, world: World) -> None:
    unknown = {(r.rule, a) for r in _rules(app) for a in r.arguments if a not in world.b_objects}
    assert not unknown, f"teach the cross-tenant crawler these URL arguments: {sorted(unknown)}"


@pytest.mark.parametrize("viewer", ["client user of A", "collector of A"])
def test_every_object_url_of_b_is_a_404_like_a_missing_id(
    app: Flask, client: FlaskClient, world: World, viewer: str
) -> None:
    assert login(client, world.viewers[viewer]).status_code == 302
    token = fresh_csrf(client)
    with scoped(TenantScope.agency(), db.session):
        audit_before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    checked = 0
    for rule in _rules(app):
        if not rule.arguments:
            continue
        missing = {k: MISSING_ID for k in rule.arguments}
        for method in sorted(rule.methods & {"GET", "POST", "PATCH", "PUT"}):
            data = {"csrf_token": token} if method == "POST" else None
            foreign = client.open(_url(rule, world.b_objects), method=method, data=data)
            absent = client.open(_url(rule, missing), method=method, data=data)
            assert foreign.status_code == 404, f"{viewer}: {method} {rule.rule} gave {foreign.status_code}"
            assert _body(foreign) == _body(absent), f"{viewer}: {method} {rule.rule} reveals existence"
            checked += 1
    assert checked >= 8
    with scoped(TenantScope.agency(), db.session):
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == audit_before


@pytest.mark.parametrize("viewer", ["client user of A", "collector of A"])
def test_list_pages_never_show_b(app: Flask, client: FlaskClient, world: World, viewer: str) -> None:
    assert login(client, world.viewers[viewer]).status_code == 302
    seen_ok = 0
    for rule in _rules(app):
        if rule.arguments or "GET" not in rule.methods:
            continue
        for query in ("", "?q=Bravo", "?q=B-SECRET", "?per_page=200"):
            response = client.get(rule.rule + query, follow_redirects=True)
            assert response.status_code in (200, 404), f"{viewer}: GET {rule.rule}{query} gave {response.status_code}"
            body = _text_of(response)
            leaked = [m for m in world.b_markers if m in body]
            assert not leaked, f"{viewer}: GET {rule.rule}{query} shows {leaked}"
            seen_ok += response.status_code == 200
    assert seen_ok >= 3


def test_collector_sees_own_clients_and_client_user_sees_own_portal(client: FlaskClient, world: World) -> None:
    login(client, world.viewers["collector of A"])
    assert "Alpha Shipping GmbH" in client.get("/clients").get_data(as_text=True)
    assert client.get(f"/clients/{world.a.id}").status_code == 200
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})
    login(client, world.viewers["client user of A"])
    page = client.get("/portal/debtors").get_data(as_text=True)
    assert "Alpha Debtor One" in page


def test_the_crawler_knows_every_id_in_every_api_rule(app: Flask, world: World) -> None:
    unknown = {(r.rule, a) for r in _api_rules(app) for a in r.arguments if a not in world.b_objects}
    assert not unknown, f"teach the cross-tenant crawler these URL arguments: {sorted(unknown)}"


def test_api_rules_with_a_session_but_no_token_are_401(app: Flask, client: FlaskClient, world: World) -> None:
    assert login(client, world.viewers["client user of A"]).status_code == 302
    for rule in _api_rules(app):
        for method in sorted(rule.methods & {"GET", "POST", "PATCH", "PUT"}):
            response = client.open(_url(rule, world.b_objects), method=method, json={})
            assert response.status_code == 401, f"{method} {rule.rule} gave {response.status_code} to a session"


def test_every_api_url_of_b_is_a_404_like_a_missing_id_for_a_token_of_a(
    app: Flask, client: FlaskClient, world: World
) -> None:
    from tests.factories import make_api_token

    headers = {"Authorization": f"Bearer {make_api_token(world.a, name='Alpha ERP')}"}
    client.get("/api/v1/openapi.json")  # the fixture's queued import jobs run (eagerly) after a first request
    with scoped(TenantScope.agency(), db.session):
        audit_before = db.session.scalar(select(func.count()).select_from(AuditEvent))
    checked = 0
    for rule in _api_rules(app):
        for method in sorted(rule.methods & {"GET", "POST", "PATCH", "PUT"}):
            if rule.arguments:
                missing = {k: MISSING_ID for k in rule.arguments}
                foreign = client.open(_url(rule, world.b_objects), method=method, json={}, headers=headers)
                absent = client.open(_url(rule, missing), method=method, json={}, headers=headers)
                assert foreign.status_code == 404, f"{method} {rule.rule} gave {foreign.status_code}"
                assert foreign.get_data() == absent.get_data(), f"{method} {rule.rule} reveals existence"
                checked += 1
            elif method == "GET":
                for query in ("", "?q=Bravo", "?external_ref=B-SECRET-REF", "?limit=200", "?as_of=2026-06-30"):
                    body = client.get(rule.rule + query, headers=headers).get_data(as_text=True)
                    leaked = [m for m in world.b_markers if m in body]
                    assert not leaked, f"GET {rule.rule}{query} shows {leaked}"
    assert checked >= 6
    with scoped(TenantScope.agency(), db.session):
        assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == audit_before
