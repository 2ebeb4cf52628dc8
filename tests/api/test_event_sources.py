"""Every webhook event type reaches a subscribed endpoint's outbox from the area that causes it (no HTTP here:
the endpoints point at a closed port and the delivery rows are what is checked)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select

from clients.imports import run_placement_import, start_placement_import
from provider.api.models import WebhookDelivery, WebhookEvent
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.factories import make_client, make_contract_terms, make_debtor, make_invoice, make_webhook_endpoint

NOWHERE = "http://127.0.0.1:9/hooks"  # deliveries fail there; these tests look at the outbox only
MONDAY_10 = datetime(2026, 5, 18, 8, 0, tzinfo=UTC)


def _outbox(client_id: int, event_type: str) -> list[tuple[str, dict[str, Any]]]:
    """(dedupe key, data) of the events of this type that have a delivery to the client's endpoint."""
    with scoped(TenantScope.agency(), db.session):
        rows = db.session.execute(
            select(WebhookEvent.dedupe_key, WebhookEvent.payload)
            .join(WebhookDelivery, WebhookDelivery.event_id == WebhookEvent.id)
            .where(WebhookEvent.client_id == client_id, WebhookEvent.event_type == event_type)
            .order_by(WebhookEvent.id)
        ).all()
    return [(key, payload["data"]) for key, payload in rows]


def test_a_posted_placement_file_emits_invoice_placed(db_session: Any) -> None:
    acme = make_client()
    make_webhook_endpoint(acme, NOWHERE, ["invoice.placed"])
    content = (
        b"invoice_number,debtor_ref,issue_date,due_date,amount,currency\nF-1,D-1,2026-01-05,2026-02-05,10.00,EUR\n"
    )
    with scoped(TenantScope.single(acme.id), db.session):
        batch = start_placement_import(db.session, acme, "one.csv", content)
        run_placement_import(db.session, batch)
        db.session.commit()
    assert _outbox(acme.id, "invoice.placed") == [
        (f"invoice.placed:import:{batch.id}", {"source": "placement_file", "import_id": batch.id, "status": "posted"})
    ]


def test_promises_made_and_broken_emit_their_events(db_session: Any) -> None:
    from tests.factories import make_team, make_user
    from tests.worklists.helpers import commercial_client, item_of, overdue_account, rebuild, working_day
    from worklists import promises

    made = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
    with working_day(made):
        client = commercial_client()
        collector = make_user("collector", team=make_team(client))
        debtor = overdue_account(client, 1_000_00)
        rebuild(client)
    make_webhook_endpoint(client, NOWHERE, ["promise.made", "promise.broken"])
    with working_day(made), scoped(TenantScope.agency(), db.session):
        promise = promises.record_promise(db.session, item_of(debtor), collector, 100_00, date(2026, 3, 20))
        db.session.commit()
    with working_day(datetime(2026, 3, 28, 12, 0, tzinfo=UTC)), scoped(TenantScope.agency(), db.session):
        promises.check_promises(db.session, as_of=date(2026, 3, 28))
        promises.check_promises(db.session, as_of=date(2026, 3, 29))  # again: nothing new
        db.session.commit()
    made_events = _outbox(client.id, "promise.made")
    broken_events = _outbox(client.id, "promise.broken")
    assert [k for k, _ in made_events] == [f"promise.made:{promise.id}"]
    assert made_events[0][1]["amount_minor"] == 100_00 and made_events[0][1]["due_on"] == "2026-03-20"
    assert [(k, d["status"]) for k, d in broken_events] == [(f"promise.broken:{promise.id}", "broken")]


def test_dispute_moves_emit_dispute_updated_once_per_status(db_session: Any) -> None:
    from sla import disputes
    from tests.factories import make_dispute

    acme = make_client()
    debtor = make_debtor(acme)
    invoice = make_invoice(acme, debtor, "DSP-1", 300_00)
    make_webhook_endpoint(acme, NOWHERE, ["dispute.updated"])
    dispute = make_dispute(acme, debtor, [invoice])
    with scoped(TenantScope.agency(), db.session):
        d = db.session.merge(dispute)
        disputes.acknowledge(db.session, d)
        disputes.withdraw(db.session, d, "paid after all")
        db.session.commit()
    events = _outbox(acme.id, "dispute.updated")
    assert [k for k, _ in events] == [
        f"dispute.updated:{dispute.id}:{s}" for s in ("open", "acknowledged", "withdrawn")
    ]
    assert events[0][1]["amount_minor"] == 300_00


def test_a_breach_found_by_the_sweep_emits_sla_breached_once(db_session: Any) -> None:
    from sla.sweep import sweep
    from tests.factories import make_dispute

    acme = make_client()
    make_contract_terms(acme)
    debtor = make_debtor(acme)
    invoice = make_invoice(acme, debtor, "SLA-1", 300_00)
    with frozen_time(MONDAY_10):
        make_webhook_endpoint(acme, NOWHERE, ["sla.breached"])
    quiet = make_client()  # no endpoint: nothing in its outbox
    make_contract_terms(quiet)
    quiet_debtor = make_debtor(quiet)
    with frozen_time(MONDAY_10):
        make_dispute(acme, debtor, [invoice])
        make_dispute(quiet, quiet_debtor, [make_invoice(quiet, quiet_debtor, "Q-1", 10_00)])
    for days in (2, 3):  # the second sweep finds nothing new
        with frozen_time(MONDAY_10 + timedelta(days=days)), scoped(TenantScope.agency(), db.session):
            sweep(db.session, MONDAY_10 + timedelta(days=days))
            db.session.commit()
    events = _outbox(acme.id, "sla.breached")
    assert len(events) >= 1 and all(k.startswith("sla.breached:") for k, _ in events)
    assert len({k for k, _ in events}) == len(events)
    assert any(d["sla"] == "dispute_ack" for _, d in events)
    assert _outbox(quiet.id, "sla.breached") == []


def _mark_and_notify_without_the_signal(client_id: int, at: datetime) -> list[int]:
    """What a path other than the sweep does: mark and notify a clock's breach, sending no signal."""
    from sqlalchemy import update

    from sla.models import SlaClock
    from sla.sweep import notify_breaches

    with frozen_time(at), scoped(TenantScope.agency(), db.session):
        ids = list(
            db.session.scalars(
                update(SlaClock)
                .where(SlaClock.client_id == client_id, SlaClock.deadline_at < at, SlaClock.breached_at.is_(None))
                .values(breached_at=SlaClock.deadline_at)
                .returning(SlaClock.id)
            )
        )
        notify_breaches(db.session, ids)
        db.session.commit()
    return sorted(ids)


def test_the_sweep_announces_breaches_notified_elsewhere_within_a_day(db_session: Any) -> None:
    from provider.api.event_sources import CATCH_UP
    from sla.sweep import sweep
    from tests.factories import make_dispute

    recent, old = make_client(), make_client()
    for company in (recent, old):
        make_contract_terms(company)
        debtor = make_debtor(company)
        with frozen_time(MONDAY_10):
            make_webhook_endpoint(company, NOWHERE, ["sla.breached"])
            make_dispute(company, debtor, [make_invoice(company, debtor, f"C-{company.id}", 50_00)])
    later = MONDAY_10 + timedelta(days=3)
    recent_ids = _mark_and_notify_without_the_signal(recent.id, later)
    old_ids = _mark_and_notify_without_the_signal(old.id, later - CATCH_UP - timedelta(hours=1))
    assert recent_ids and old_ids
    assert _outbox(recent.id, "sla.breached") == [] and _outbox(old.id, "sla.breached") == []

    for minutes in (5, 10):  # the next sweep announces each once; the one after finds nothing new
        with frozen_time(later + timedelta(minutes=minutes)), scoped(TenantScope.agency(), db.session):
            sweep(db.session, later + timedelta(minutes=minutes))
            db.session.commit()
    assert sorted(int(k.split(":")[1]) for k, _ in _outbox(recent.id, "sla.breached")) == recent_ids
    assert _outbox(old.id, "sla.breached") == []  # notified more than CATCH_UP ago: not re-read


def test_a_generated_report_emits_report_ready(db_session: Any) -> None:
    from provider.reporting import reports
    from tests.reports.ledger_world import at, march_world

    w = march_world(name="Webhook Freight Ltd")
    make_webhook_endpoint(w.client, NOWHERE, ["report.ready"])
    with frozen_time(at(date(2026, 4, 1), 12)), scoped(TenantScope.agency(), db.session):
        report = reports.generate_report(db.session, w.client, "2026-03").report
        reports.generate_report(db.session, w.client, "2026-03")  # the same report again: no new event
        db.session.commit()
    events = _outbox(w.client.id, "report.ready")
    assert events == [
        (
            f"report.ready:{report.id}",
            {"report_id": report.id, "period": "2026-03", "version": 1, "pages": report.pdf_pages},
        )
    ]
