"""Entry points for other packages whose events start or complete an SLA (placements, first contact,
client queries, monthly reports). Each is a no-op when the client's contract has no such clocked target.

    from sla.hooks import sla_started, sla_completed
    sla_started(session, client, "placement_ack", ("placement", batch.id))     # when the placement arrives
    sla_completed(session, client, "placement_ack", ("placement", batch.id))   # when it is acknowledged

Both flush, never commit; the clock history records every step.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from clients.models import Client
from sla.calendars import calendar_for
from sla.clocks import start_clock, stop_clock
from sla.models import ClockState, SlaClock


def sla_started(
    session: Session, client: Client, code: str, subject: tuple[str, int], at: datetime | None = None
) -> SlaClock | None:
    """Start the clock of `code` for `subject` (idempotent)."""
    return start_clock(session, calendar_for(session, client), client.id, code, subject, at=at)


def sla_completed(
    session: Session, client: Client, code: str, subject: tuple[str, int], at: datetime | None = None
) -> SlaClock | None:
    """Stop the clock of `code` for `subject` if one runs (or is paused); returns it, or None."""
    clock = session.scalar(
        select(SlaClock).where(
            SlaClock.client_id == client.id,
            SlaClock.subject_type == subject[0],
            SlaClock.subject_id == subject[1],
            SlaClock.code == code,
        )
    )
    if clock is None or clock.state == ClockState.STOPPED:
        return clock
    stop_clock(session, clock, calendar_for(session, client), at=at)
    return clock
