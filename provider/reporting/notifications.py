"""Tell a client's contacts that their monthly report is ready.

One row per (report, recipient) in `report_notifications`, written in the same transaction as the report, for
the contacts who opted in to the monthly report (`portal.queries.recipient_emails`), and one e-mail per new
recipient queued through the platform's mail (`provider.comms.notices.queue_report_ready`: stored as rendered,
sent by the mail job, its delivery on the Mail page). The portal's reports page shows whom each report was sent
to. Idempotent: the unique (report, recipient) and the e-mail's dedupe key make a retried job, a second call or a
concurrent worker a no-op for the addresses already notified.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from clients.models import Client
from provider.core import audit
from provider.reporting.models import MonthlyReport, NotificationStatus, ReportNotification


def subject_line(client: Client, report: MonthlyReport) -> str:
    again = f" (version {report.version})" if report.version > 1 else ""
    return f"{client.name}: your monthly report for {report.period}{again} is ready"[:300]


def notify_report_ready(session: Session, client: Client, report: MonthlyReport) -> list[str]:
    """Record one notification per opted-in contact of the client; returns the addresses newly recorded."""
    from portal.queries import recipient_emails  # portal reads reporting too: import at call time

    emails = sorted({e.strip().lower() for e in recipient_emails(client.id) if e and e.strip()})
    if not emails:
        return []
    already = set(
        session.scalars(select(ReportNotification.recipient).where(ReportNotification.report_id == report.id))
    )
    fresh = [e for e in emails if e not in already]
    if not fresh:
        return []
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    subject = subject_line(client, report)
    rows = [
        {
            "client_id": client.id,
            "report_id": report.id,
            "recipient": email,
            "channel": "email",
            "subject": subject,
            "status": NotificationStatus.RECORDED.value,
        }
        for email in fresh
    ]
    # once per report and recipient: (client_id, report_id, recipient) on PostgreSQL (migration 0040), SQLite keeps
    # its older (report_id, recipient); either way the only unique key besides the row's own id
    key = ["client_id", "report_id", "recipient"] if insert is pg_insert else None
    session.execute(insert(ReportNotification).values(rows).on_conflict_do_nothing(index_elements=key))
    audit.record(session, "report.notify", report, after={"period": report.period, "recipients": fresh})
    from provider.comms.notices import queue_report_ready

    queue_report_ready(session, client, report, fresh, subject)
    return fresh


def recipients_by_report(session: Session, report_ids: list[int]) -> dict[int, list[str]]:
    """{report id: [recipient, ...]} of the given reports (one query, for the portal's list)."""
    out: dict[int, list[str]] = {}
    if not report_ids:
        return out
    rows = session.execute(
        select(ReportNotification.report_id, ReportNotification.recipient)
        .where(ReportNotification.report_id.in_(report_ids))
        .order_by(ReportNotification.report_id, ReportNotification.recipient)
    )
    for report_id, recipient in rows:
        out.setdefault(report_id, []).append(recipient)
    return out
