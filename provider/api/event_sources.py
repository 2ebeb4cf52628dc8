"""Webhook events from the other areas, by subscription to their signals (they import nothing of the API).

    clients.imports.placement_processed   -> invoice.placed   (a placement file posted; one event per import)
    clients.ledger.payments_posted        -> payment.posted   (provider.api.webhooks)
    worklists.promises.promise_changed    -> promise.made / promise.broken
    sla.disputes.dispute_changed          -> dispute.updated  (opened and every move of its state machine)
    sla.sweep.breaches_notified           -> sla.breached     (each breach notified by the sweep, once)
    provider.reporting.reports.report_ready -> report.ready   (a month's report generated or re-issued)

Every subscriber writes into the outbox inside the sender's transaction (`emit_event`), with a dedupe key
that makes a repeated signal a no-op.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import String, cast, literal, select
from sqlalchemy.orm import Session

from provider.api.models import EventType, WebhookEndpoint, WebhookEvent
from provider.api.webhooks import emit_event
from provider.core.clock import now_utc


def _on_placement_processed(
    session: Session, *, client_id: int, batch_id: int, status: str, debtor_ids: Any = None, **_: Any
) -> None:
    if status not in ("posted", "partial") or debtor_ids is None:
        return
    emit_event(
        session,
        client_id,
        EventType.INVOICE_PLACED.value,
        {"source": "placement_file", "import_id": batch_id, "status": status},
        dedupe_key=f"invoice.placed:import:{batch_id}",
    )


def _on_promise_changed(session: Session, *, promises: list[Any], **_: Any) -> None:
    for p in promises:
        kind = {"open": EventType.PROMISE_MADE, "broken": EventType.PROMISE_BROKEN}.get(p.status)
        if kind is None:
            continue
        emit_event(
            session,
            p.client_id,
            kind.value,
            {
                "promise_id": p.id,
                "debtor_id": p.debtor_id,
                "plan_id": p.plan_id,
                "currency": p.currency,
                "amount_minor": p.amount_minor,
                "paid_minor": p.paid_minor,
                "due_on": p.due_on.isoformat(),
                "status": p.status,
            },
            dedupe_key=f"{kind.value}:{p.id}",
        )


def _on_dispute_changed(session: Session, *, dispute: Any, **_: Any) -> None:
    emit_event(
        session,
        dispute.client_id,
        EventType.DISPUTE_UPDATED.value,
        {
            "dispute_id": dispute.id,
            "debtor_id": dispute.debtor_id,
            "status": dispute.status,
            "reason": dispute.reason,
            "currency": dispute.currency,
            "amount_minor": dispute.amount_minor,
            "resolution": dispute.resolution,
        },
        dedupe_key=f"dispute.updated:{dispute.id}:{dispute.status}",
    )


# A breach is announced by the sweep that notified it. The sweep also picks up the breaches notified by other
# paths (a clock paused or stopped after its deadline) since CATCH_UP ago; older ones are not re-read, so a
# sweep's cost does not grow with the history of breaches.
CATCH_UP = timedelta(days=1)


def _on_breaches_notified(session: Session, **_: Any) -> None:
    """Each breach notification not announced yet, for clients with an endpoint subscribed to it (only
    breaches notified since that endpoint was registered, and within CATCH_UP)."""
    from sla.models import SlaClock, SlaNotification

    kind = EventType.SLA_BREACHED.value
    since: dict[int, Any] = {}
    floor = now_utc() - CATCH_UP
    for e in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.active.is_(True))):
        if kind in (e.events or []):
            since[e.client_id] = max(floor, min(since.get(e.client_id, e.created_at), e.created_at))
    for client_id, first in sorted(since.items()):
        announced = (
            select(WebhookEvent.id)
            .where(
                WebhookEvent.client_id == client_id,
                WebhookEvent.dedupe_key == literal(f"{kind}:") + cast(SlaClock.id, String),
            )
            .exists()
        )
        rows = session.execute(
            select(SlaClock.id, SlaClock.code, SlaClock.subject_type, SlaClock.subject_id, SlaClock.deadline_at)
            .join(
                SlaNotification,
                (SlaNotification.client_id == SlaClock.client_id) & (SlaNotification.clock_id == SlaClock.id),
            )
            .where(
                SlaNotification.client_id == client_id,
                SlaNotification.kind == "breach",
                SlaNotification.created_at >= first,
                ~announced,
            )
            .order_by(SlaClock.id)
        ).all()
        for r in rows:
            emit_event(
                session,
                client_id,
                kind,
                {
                    "clock_id": r.id,
                    "sla": r.code,
                    "subject_type": r.subject_type,
                    "subject_id": r.subject_id,
                    "deadline_at": r.deadline_at.isoformat() if r.deadline_at else None,
                },
                dedupe_key=f"{kind}:{r.id}",
            )


def _on_report_ready(session: Session, *, report: Any, **_: Any) -> None:
    emit_event(
        session,
        report.client_id,
        EventType.REPORT_READY.value,
        {"report_id": report.id, "period": report.period, "version": report.version, "pages": report.pdf_pages},
        dedupe_key=f"report.ready:{report.id}",
    )


def connect() -> None:
    from clients.imports import placement_processed
    from provider.reporting.reports import report_ready
    from sla.disputes import dispute_changed
    from sla.sweep import breaches_notified
    from worklists.promises import promise_changed

    placement_processed.connect(_on_placement_processed, weak=False)
    promise_changed.connect(_on_promise_changed, weak=False)
    dispute_changed.connect(_on_dispute_changed, weak=False)
    breaches_notified.connect(_on_breaches_notified, weak=False)
    report_ready.connect(_on_report_ready, weak=False)
