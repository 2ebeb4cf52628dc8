"""Notices the platform writes to people who are not debtors: "your monthly report is ready" to a client's
contacts and SLA breach alerts to the agency's managers. Both go out through `queue_email` (stored as rendered,
sent by the mail job), and both are idempotent by their dedupe keys:

    report-ready:<report id>:<address>         one per report version and recipient
    sla-breach:<notification id>:<user id>     one per breach notification and manager

The breach alerts follow the SLA sweep's `breaches_notified` signal, in the sweep's transaction: every breach
notification of the last day that has no alert yet gets one per active manager (a missed sweep is caught up, an
alert is never doubled).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.comms.models import Message
from provider.comms.services import Source, queue_email
from provider.core.clock import now_utc

CATCH_UP = timedelta(days=1)


def _base_url() -> str:
    return str(current_app.config.get("PUBLIC_BASE_URL", "")) if has_app_context() else ""


def queue_report_ready(session: Session, client: Any, report: Any, emails: list[str], subject: str) -> list[Message]:
    """One "report ready" e-mail per address (provider.reporting.notifications records who; this sends it)."""
    again = f" (version {report.version})" if report.version > 1 else ""
    link = f"{_base_url()}/portal/reports/{report.id}"
    text = (
        f"Hello,\n\nthe monthly collections report of {client.name} for {report.period}{again} is ready.\n\n"
        f"Read it in the portal: {link}\n\nYou receive this because you asked for the monthly report; you can "
        "change that on the People page of the portal.\n"
    )
    return [
        queue_email(
            session,
            client_id=client.id,
            to=email,
            subject=subject,
            text=text,
            purpose="report_ready",
            dedupe_key=f"report-ready:{report.id}:{email}"[:200],
            source=Source("monthly_report", report.id),
        )
        for email in emails
    ]


def _managers(session: Session) -> list[tuple[int, str, str]]:
    from provider.core.permissions import Role
    from provider.models import User

    rows = session.execute(
        select(User.id, User.email, User.name)
        .where(User.role.in_((Role.MANAGER.value, Role.ADMIN.value)), User.active.is_(True))
        .order_by(User.id)
    )
    return [(user_id, email, name) for user_id, email, name in rows]


def queue_breach_alerts(session: Session, **_: Any) -> int:
    """Alert every active manager of each breach notified since CATCH_UP that has no alert yet. Returns how many
    alerts were queued."""
    from clients.models import Client
    from sla.models import SlaClock, SlaNotification

    managers = _managers(session)
    if not managers:
        return 0
    since = now_utc() - CATCH_UP
    alerted = (
        select(Message.id)
        .where(
            Message.client_id == SlaNotification.client_id,
            Message.source_type == "sla_notification",
            Message.source_id == SlaNotification.id.cast(Message.source_id.type),
        )
        .exists()
    )
    rows = session.execute(
        select(SlaNotification, SlaClock.deadline_at, Client.name)
        .join(SlaClock, (SlaClock.client_id == SlaNotification.client_id) & (SlaClock.id == SlaNotification.clock_id))
        .join(Client, Client.id == SlaNotification.client_id)
        .where(SlaNotification.created_at >= since, SlaNotification.kind == "breach", ~alerted)
        .order_by(SlaNotification.id)
    ).all()
    if not rows:
        return 0
    queued = 0
    for notification, deadline, client_name in rows:
        for user_id, email, name in managers:
            queue_email(
                session,
                client_id=notification.client_id,
                to=email,
                to_name=name,
                subject=f"SLA breached for {client_name}: {notification.message}"[:300],
                text=(
                    f"Hello {name},\n\nan SLA commitment to {client_name} was breached: {notification.message}.\n"
                    f"Its deadline was {deadline:%Y-%m-%d %H:%M} UTC.\n\n"
                    f"See the SLA dashboard: {_base_url()}/slas\n"
                ),
                purpose="sla_alert",
                dedupe_key=f"sla-breach:{notification.id}:{user_id}",
                source=Source("sla_notification", notification.id),
            )
            queued += 1
    return queued


def connect() -> None:
    from sla.sweep import breaches_notified

    breaches_notified.connect(queue_breach_alerts, weak=False)
