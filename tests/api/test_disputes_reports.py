"""Disputes (open, comment, list, read) and monthly reports (list, figures, PDF) through the API."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select

from provider.api.models import WebhookDelivery, WebhookEvent
from provider.core.audit import AuditEvent
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from sla.models import Dispute, DisputeMessage
from tests.api.helpers import get, post
from tests.factories import (
    make_api_token,
    make_client,
    make_debtor,
    make_dispute,
    make_invoice,
    make_webhook_endpoint,
)

NOWHERE = "http://127.0.0.1:9/hooks"
MISSING = 987_654_321


def _count(model: Any) -> int:
    with scoped(TenantScope.agency(), db.session):
        return db.session.scalar(select(func.count()).select_from(model)) or 0


def _report(client_: Any, period: str = "2026-01", reissue: str | None = None) -> int:
    from provider.reporting.reports import generate_report, reissue_report

    with scoped(TenantScope.agency(), db.session):
        report = generate_report(db.session, client_, period).report
        if reissue:
            report = reissue_report(db.session, client_, period, reissue).report
        db.session.info.pop("pending_jobs", None)
        db.session.commit()
        return report.id


def _body(debtor_id: int | None, invoice_ids: list[int], amount: int, **kw: Any) -> dict[str, Any]:
    body = {"reason": "pricing", "summary": "Price differs", "amount_minor": amount, "invoice_ids": invoice_ids, **kw}
    if debtor_id is not None:
        body["debtor_id"] = debtor_id
    return body


# --- disputes -------------------------------------------------------------------------------------------


def test_open_read_comment_and_list_a_dispute(client: FlaskClient, db_session: Any) -> None:
    acme = make_client(base_currency="EUR")
    debtor = make_debtor(acme)
    one = make_invoice(acme, debtor, "D-1", 300_00)
    two = make_invoice(acme, debtor, "D-2", 200_00)
    make_webhook_endpoint(acme, NOWHERE, ["dispute.updated"])
    token = make_api_token(acme)
    opened = post(
        client,
        token,
        "/disputes",
        _body(None, [two.id, one.id], 450_00, reason="damaged", message="Half the pallet arrived broken"),
    )
    assert opened.status_code == 201, opened.get_json()
    dispute = opened.get_json()
    assert opened.headers["Location"].endswith(f"/api/v1/disputes/{dispute['id']}")
    assert (dispute["status"], dispute["reason"], dispute["debtor_id"]) == ("open", "damaged", debtor.id)
    assert (dispute["amount_minor"], dispute["amount"], dispute["currency"]) == (450_00, "450.00", "EUR")
    assert dispute["invoice_ids"] == sorted([one.id, two.id])
    assert [(m["body"], m["from_client"]) for m in dispute["messages"]] == [("Half the pallet arrived broken", True)]
    assert get(client, token, f"/invoices/{one.id}").get_json()["on_hold"] is True
    with scoped(TenantScope.agency(), db.session):
        record = db.session.get_one(Dispute, dispute["id"])
        assert record.opened_via == "api"
        events = db.session.scalars(
            select(WebhookEvent.dedupe_key)
            .join(WebhookDelivery, WebhookDelivery.event_id == WebhookEvent.id)
            .where(WebhookEvent.client_id == acme.id, WebhookEvent.event_type == "dispute.updated")
        ).all()
        assert events == [f"dispute.updated:{dispute['id']}:open"]
        actors = set(db.session.scalars(select(AuditEvent.actor_label).where(AuditEvent.client_id == acme.id)))
        assert any(a.startswith("api-token:") for a in actors)

    comment = post(client, token, f"/disputes/{dispute['id']}/messages", {"body": "  Photos follow by mail  "})
    assert comment.status_code == 201, comment.get_json()
    assert comment.get_json()["body"] == "Photos follow by mail" and comment.get_json()["from_client"] is True
    read = get(client, token, f"/disputes/{dispute['id']}").get_json()
    assert [m["body"] for m in read["messages"]] == ["Half the pallet arrived broken", "Photos follow by mail"]
    assert read["summary"] == "Price differs"

    listed = get(client, token, "/disputes").get_json()
    assert [d["id"] for d in listed["data"]] == [dispute["id"]] and listed["next_cursor"] is None
    assert "messages" not in listed["data"][0]
    assert get(client, token, "/disputes?status=open").get_json()["data"][0]["id"] == dispute["id"]
    assert get(client, token, "/disputes?status=resolved").get_json()["data"] == []
    assert get(client, token, f"/disputes?debtor_id={debtor.id}").get_json()["data"][0]["id"] == dispute["id"]
    assert get(client, token, f"/disputes?debtor_id={MISSING}").get_json()["data"] == []


def test_dispute_lists_page_with_cursors_and_sort(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtors = [make_debtor(acme), make_debtor(acme)]
    ids = []
    for n in range(5):
        d = debtors[n % 2]
        ids.append(make_dispute(acme, d, [make_invoice(acme, d, f"P-{n}", 10_00)]).id)
    token = make_api_token(acme)
    seen: list[int] = []
    cursor = None
    while True:
        page = get(client, token, "/disputes?limit=2&sort=-opened_at" + (f"&cursor={cursor}" if cursor else ""))
        assert page.status_code == 200, page.get_json()
        seen += [d["id"] for d in page.get_json()["data"]]
        cursor = page.get_json()["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 5
    by_id = [d["id"] for d in get(client, token, "/disputes?sort=-id").get_json()["data"]]
    assert by_id == sorted(ids, reverse=True)
    first = get(client, token, "/disputes?limit=2").get_json()["next_cursor"]
    other_sort = get(client, token, f"/disputes?sort=opened_at&cursor={first}")  # schema-valid, issued for another sort
    assert other_sort.status_code == 409 and other_sort.get_json()["type"].endswith("/invalid-cursor")
    bad = get(client, token, "/disputes?status=lost&sort=reason")
    assert bad.status_code == 422 and {"status", "sort"} <= set(bad.get_json()["errors"])


def test_bad_dispute_input_is_a_422_or_409_problem_and_writes_nothing(client: FlaskClient, db_session: Any) -> None:
    """A body that does not match the schema is a 422; a schema-valid body refused by a rule is a 409 naming it."""
    acme, other = make_client(), make_client(name="Other Co")
    debtor, second = make_debtor(acme), make_debtor(acme)
    invoice = make_invoice(acme, debtor, "X-1", 100_00)
    other_debtor = make_debtor(other)
    foreign = make_invoice(other, other_debtor, "F-1", 100_00)
    elsewhere = make_invoice(acme, second, "X-2", 100_00)
    dollars = make_invoice(acme, debtor, "X-3", 100_00, currency="USD")
    token = make_api_token(acme)
    before = _count(Dispute), _count(DisputeMessage), _count(AuditEvent)

    def refused(body: Any, *fields: str, rule: str | None = None) -> dict[str, Any]:
        response = post(client, token, "/disputes", body)
        assert response.status_code == (409 if rule else 422), (body, response.get_json())
        assert response.mimetype == "application/problem+json"
        problem = response.get_json()
        assert problem["type"].endswith(f"/{rule or 'validation'}"), problem
        assert set(fields) <= set(problem["errors"]), problem
        return problem

    refused({}, "reason", "amount_minor", "invoice_ids")
    refused(_body(debtor.id, [], 0, reason="too expensive", summary="x" * 301), "reason", "amount_minor", "invoice_ids")
    refused(_body(debtor.id, [invoice.id], 1.5, extra=1), "amount_minor", "extra")
    refused({**_body(debtor.id, [invoice.id], 10_00), "invoice_ids": ["a"]}, "invoice_ids.0")
    too_much = refused(_body(debtor.id, [invoice.id], 100_01), "amount_minor", rule="amount-rule")
    assert "100.00" in too_much["errors"]["amount_minor"][0]
    foreign_one = refused(_body(None, [foreign.id], 10_00), "invoice_ids", rule="unknown-reference")
    missing_one = refused(_body(None, [MISSING], 10_00), "invoice_ids", rule="unknown-reference")
    assert foreign_one["errors"]["invoice_ids"][0].replace(str(foreign.id), "N") == missing_one["errors"][
        "invoice_ids"
    ][0].replace(str(MISSING), "N")
    refused(_body(None, [invoice.id, elsewhere.id], 10_00), "invoice_ids", rule="ledger-rule")
    refused(_body(second.id, [invoice.id], 10_00), "debtor_id", rule="field-combination")
    refused(_body(other_debtor.id, [invoice.id], 10_00), "debtor_id", rule="unknown-reference")
    refused(_body(debtor.id, [invoice.id, dollars.id], 10_00), "invoice_ids", rule="currency-mismatch")
    assert post(client, token, "/disputes", None).status_code == 415  # no JSON body at all
    assert (_count(Dispute), _count(DisputeMessage), _count(AuditEvent)) == before
    assert get(client, token, f"/invoices/{invoice.id}").get_json()["on_hold"] is False
    assert post(client, token, "/disputes", _body(debtor.id, [invoice.id], 100_00)).status_code == 201


def test_a_closed_dispute_takes_no_messages_and_empty_ones_are_refused(client: FlaskClient, db_session: Any) -> None:
    from sla import disputes

    acme = make_client()
    debtor = make_debtor(acme)
    dispute = make_dispute(acme, debtor, [make_invoice(acme, debtor, "C-1", 50_00)])
    token = make_api_token(acme)
    empty = post(client, token, f"/disputes/{dispute.id}/messages", {"body": "   "})
    assert empty.status_code == 422 and "body" in empty.get_json()["errors"]
    assert post(client, token, f"/disputes/{dispute.id}/messages", {"text": "hi"}).status_code == 422
    with scoped(TenantScope.agency(), db.session):
        disputes.withdraw(db.session, db.session.merge(dispute), "paid")
        db.session.commit()
    closed = post(client, token, f"/disputes/{dispute.id}/messages", {"body": "one more thing"})
    assert closed.status_code == 409 and "body" in closed.get_json()["errors"]
    assert closed.get_json()["type"].endswith("/state-conflict")
    assert _count(DisputeMessage) == 0


def test_read_tokens_cannot_open_or_comment(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    invoice = make_invoice(acme, debtor, "R-1", 50_00)
    dispute = make_dispute(acme, debtor, [make_invoice(acme, debtor, "R-2", 50_00)])
    reader = make_api_token(acme, access="read")
    before = _count(Dispute), _count(DisputeMessage)
    opened = post(client, reader, "/disputes", _body(debtor.id, [invoice.id], 10_00))
    comment = post(client, reader, f"/disputes/{dispute.id}/messages", {"body": "hello"})
    assert opened.status_code == comment.status_code == 403
    assert opened.get_json()["type"].endswith("read-only")
    assert (_count(Dispute), _count(DisputeMessage)) == before
    assert get(client, reader, f"/disputes/{dispute.id}").status_code == 200
    assert get(client, reader, "/disputes").get_json()["data"][0]["id"] == dispute.id


def test_opening_with_an_idempotency_key_opens_once(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    invoice = make_invoice(acme, debtor, "I-1", 50_00)
    token = make_api_token(acme)
    body = _body(debtor.id, [invoice.id], 20_00)
    first = post(client, token, "/disputes", body, **{"Idempotency-Key": "dsp-1"})
    again = post(client, token, "/disputes", body, **{"Idempotency-Key": "dsp-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    other = post(client, token, "/disputes", {**body, "amount_minor": 30_00}, **{"Idempotency-Key": "dsp-1"})
    assert other.status_code == 422
    assert _count(Dispute) == 1
    path = f"/disputes/{first.get_json()['id']}/messages"
    assert post(client, token, path, {"body": "x"}, **{"Idempotency-Key": "m-1"}).status_code == 201
    assert post(client, token, path, {"body": "x"}, **{"Idempotency-Key": "m-1"}).status_code == 201
    assert _count(DisputeMessage) == 1


# --- monthly reports ------------------------------------------------------------------------------------


def test_reports_list_figures_and_pdf(client: FlaskClient, db_session: Any) -> None:
    acme = make_client(base_currency="EUR", code="ACME")
    debtor = make_debtor(acme)
    make_invoice(acme, debtor, "M-1", 100_00)
    january = _report(acme, "2026-01", reissue="late payment posted")
    february = _report(acme, "2026-02")
    token = make_api_token(acme, access="read")
    listed = get(client, token, "/reports").get_json()
    assert [(r["period"], r["version"], r["status"]) for r in listed["data"]] == [
        ("2026-01", 1, "superseded"),
        ("2026-01", 2, "current"),
        ("2026-02", 1, "current"),
    ]
    row = listed["data"][1]
    assert row["id"] == january and row["pages"] >= 1 and row["created_at"] and len(row["pdf_sha256"]) == 64
    assert "figures" not in row
    current = get(client, token, "/reports?status=current&sort=-period").get_json()["data"]
    assert [r["id"] for r in current] == [february, january]
    assert [r["version"] for r in get(client, token, "/reports?period=2026-01").get_json()["data"]] == [1, 2]
    page = get(client, token, "/reports?limit=2&sort=created_at").get_json()
    assert len(page["data"]) == 2 and page["next_cursor"]
    rest = get(client, token, f"/reports?limit=2&sort=created_at&cursor={page['next_cursor']}").get_json()
    assert len(rest["data"]) == 1 and rest["next_cursor"] is None
    bad = get(client, token, "/reports?period=2026-13&status=draft")
    assert bad.status_code == 422 and {"period", "status"} <= set(bad.get_json()["errors"])

    detail = get(client, token, f"/reports/{january}").get_json()
    assert detail["period"] == "2026-01" and detail["version"] == 2
    assert "EUR" in detail["figures"]["currencies"]
    assert detail["summary"] and all(isinstance(line, str) for line in detail["summary"])

    pdf = get(client, token, f"/reports/{january}/pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.get_data().startswith(b"%PDF")
    assert pdf.headers["Content-Disposition"] == 'attachment; filename="report-ACME-2026-01-v2.pdf"'


# --- another client's objects ---------------------------------------------------------------------------


def test_another_clients_disputes_and_reports_are_404_like_missing_ones(client: FlaskClient, db_session: Any) -> None:
    alpha, bravo = make_client(name="Alpha Co"), make_client(name="Bravo Hidden Co")
    b_debtor = make_debtor(bravo)
    b_dispute = make_dispute(bravo, b_debtor, [make_invoice(bravo, b_debtor, "B-1", 70_00)], summary="Bravo secret")
    b_report = _report(bravo)
    token = make_api_token(alpha)
    before = _count(DisputeMessage), _count(AuditEvent)
    for path in ("/disputes/{}", "/reports/{}", "/reports/{}/pdf"):
        theirs = b_dispute.id if path.startswith("/disputes") else b_report
        foreign, missing = get(client, token, path.format(theirs)), get(client, token, path.format(MISSING))
        assert foreign.status_code == missing.status_code == 404, path
        assert foreign.mimetype == "application/problem+json" and foreign.get_data() == missing.get_data()
    foreign = post(client, token, f"/disputes/{b_dispute.id}/messages", {"body": "let me in"})
    missing = post(client, token, f"/disputes/{MISSING}/messages", {"body": "let me in"})
    assert foreign.status_code == missing.status_code == 404 and foreign.get_data() == missing.get_data()
    assert (_count(DisputeMessage), _count(AuditEvent)) == before
    for path in ("/disputes", "/reports", f"/disputes?debtor_id={b_debtor.id}"):
        response = get(client, token, path)
        assert response.get_json()["data"] == [] and "Bravo" not in response.get_data(as_text=True), path


def test_id_filters_in_query_strings_are_read_as_integers(client: FlaskClient, db_session: Any) -> None:
    """Query strings are text: `?debtor_id=42` filters (it was refused as "not a valid integer")."""
    acme = make_client()
    mine, other = make_debtor(acme), make_debtor(acme)
    invoice = make_invoice(acme, mine, "Q-1", 10_00)
    make_invoice(acme, other, "Q-2", 10_00)
    token = make_api_token(acme)
    assert [i["id"] for i in get(client, token, f"/invoices?debtor_id={mine.id}").get_json()["data"]] == [invoice.id]
    for path in ("/payments", "/credit-notes", "/disputes"):
        assert get(client, token, f"{path}?debtor_id={mine.id}").status_code == 200, path
    assert get(client, token, f"/aging?as_of=2026-03-01&debtor_id={mine.id}").status_code == 200
    for bad in ("4.2", "x", "0", str(2**60)):
        assert get(client, token, f"/invoices?debtor_id={bad}").status_code == 422, bad


def _awaiting(acme: Any, amount: int, proposal: bool) -> Any:
    """A dispute the agency handed to the client: with a question, or with a proposed credit note."""
    from sla import disputes

    debtor = make_debtor(acme)
    dispute = make_dispute(acme, debtor, [make_invoice(acme, debtor, f"W-{amount}", amount)], amount_minor=amount)
    with scoped(TenantScope.agency(), db.session):
        d = db.session.merge(dispute)
        disputes.acknowledge(db.session, d)
        disputes.investigate(db.session, d)
        if proposal:
            disputes.propose(db.session, d, "credit_note", amount // 2, note="Damaged in transit: half credited")
        else:
            disputes.ask_client(db.session, d, "Can you send the delivery note?")
        db.session.commit()
        return d.id


def test_the_client_answers_the_agencys_question(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    asked = _awaiting(acme, 80_00, proposal=False)
    token = make_api_token(acme)
    empty = post(client, token, f"/disputes/{asked}/answer", {"body": "  "})
    assert empty.status_code == 422 and "body" in empty.get_json()["errors"]
    answered = post(client, token, f"/disputes/{asked}/answer", {"body": "Signed note attached in our ERP"})
    assert answered.status_code == 200, answered.get_json()
    body = answered.get_json()
    assert body["status"] == "investigating" and body["messages"][-1]["from_client"] is True
    again = post(client, token, f"/disputes/{asked}/answer", {"body": "and again"})
    assert again.status_code == 409  # no longer waiting for the client
    assert again.get_json()["type"].endswith("/state-conflict")


def test_the_client_approves_or_rejects_a_proposed_resolution(client: FlaskClient, db_session: Any) -> None:
    from clients.journal import CreditNote

    acme = make_client()
    first, second = _awaiting(acme, 60_00, proposal=True), _awaiting(acme, 90_00, proposal=True)
    token, reader = make_api_token(acme), make_api_token(acme, access="read")
    shown = get(client, token, f"/disputes/{first}").get_json()
    assert (shown["proposed_resolution"], shown["proposed_amount_minor"]) == ("credit_note", 30_00)
    assert post(client, token, f"/disputes/{first}/answer", {"body": "ok"}).status_code == 409  # decide it instead
    assert post(client, reader, f"/disputes/{first}/proposal", {"decision": "approve"}).status_code == 403
    assert post(client, token, f"/disputes/{first}/proposal", {"decision": "maybe"}).status_code == 422
    no_reason = post(client, token, f"/disputes/{second}/proposal", {"decision": "reject"})
    assert no_reason.status_code == 409 and "note" in no_reason.get_json()["errors"]
    assert no_reason.get_json()["type"].endswith("/field-combination")

    approved = post(client, token, f"/disputes/{first}/proposal", {"decision": "approve", "note": "fine"})
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["status"] == "resolved" and approved.get_json()["proposed_resolution"] is None
    with scoped(TenantScope.agency(), db.session):
        credited = db.session.scalars(select(CreditNote.amount_minor).where(CreditNote.client_id == acme.id)).all()
    assert credited == [30_00]
    rejected = post(client, token, f"/disputes/{second}/proposal", {"decision": "reject", "note": "not damaged"})
    assert rejected.status_code == 200 and rejected.get_json()["status"] == "investigating"
    twice = post(client, token, f"/disputes/{second}/proposal", {"decision": "approve"})
    assert twice.status_code == 409  # nothing pending any more
    assert twice.get_json()["type"].endswith("/state-conflict")


def test_another_clients_dispute_cannot_be_answered_or_decided(client: FlaskClient, db_session: Any) -> None:
    alpha, bravo = make_client(name="Alpha Co"), make_client(name="Bravo Hidden Co")
    theirs = _awaiting(bravo, 40_00, proposal=True)
    token = make_api_token(alpha)
    for path, body in (("answer", {"body": "hi"}), ("proposal", {"decision": "approve"})):
        foreign = post(client, token, f"/disputes/{theirs}/{path}", body)
        missing = post(client, token, f"/disputes/{MISSING}/{path}", body)
        assert foreign.status_code == missing.status_code == 404 and foreign.get_data() == missing.get_data()
    with scoped(TenantScope.agency(), db.session):
        assert db.session.get(Dispute, theirs).status == "awaiting_client"
