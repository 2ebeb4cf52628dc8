"""SLA clocks: start on an event, pause while the client owns the next step, resume, stop on completion.

A clock counts *agency business seconds* in the client's calendar. Its state machine:

    running --pause--> paused --resume--> running
    running --stop---> stopped <--stop--- paused

Anything else raises `ClockTransitionRefused`. While running, `deadline_at` (allowance used up) and
`at_risk_at` (the contract's at-risk share used up) are stored as UTC instants, so the breach sweep and the
dashboard compare timestamps in SQL instead of recomputing calendars. A clock is *breached* when it is still
running after `deadline_at` (or stopped/paused after it): `breached_at` then records `deadline_at`. Every
change appends a `SlaClockEvent` with the agency time at that instant (the clock's explainable history).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, Select, exists, func, insert, literal, select
from sqlalchemy.orm import Session

from provider.core.audit import current_actor
from provider.core.clock import now_utc
from provider.core.db import UTCDateTime
from provider.core.errors import ServiceError
from sla.calendars import Calendar, add_business_seconds, business_seconds, nth_business_day_end
from sla.models import (
    ClockState,
    ClockStatus,
    ContractTerms,
    SlaClock,
    SlaClockEvent,
    SlaTarget,
    SlaUnit,
)

ALLOWED = {
    ("pause", ClockState.RUNNING): ClockState.PAUSED,
    ("resume", ClockState.PAUSED): ClockState.RUNNING,
    ("stop", ClockState.RUNNING): ClockState.STOPPED,
    ("stop", ClockState.PAUSED): ClockState.STOPPED,
}


class ClockTransitionRefused(ServiceError):
    """The clock cannot make that move from its current state (e.g. resume a running clock)."""

    def __init__(self, clock: SlaClock, action: str) -> None:
        super().__init__(f"cannot {action} an SLA clock that is {clock.state}")
        self.action, self.state = action, clock.state


def terms_in_force(session: Session, client_id: int, on: date) -> ContractTerms | None:
    """The contract version in force on a day: the latest `effective_from` on or before it."""
    return session.scalar(
        select(ContractTerms)
        .where(ContractTerms.client_id == client_id, ContractTerms.effective_from <= on)
        .order_by(ContractTerms.effective_from.desc())
        .limit(1)
    )


def allowance_seconds(cal: Calendar, target: SlaTarget, start: datetime) -> int:
    """The agency time a target allows from `start`, in business seconds of the calendar."""
    if target.unit == SlaUnit.BUSINESS_DAYS:
        return target.target * cal.day_seconds
    if target.unit == SlaUnit.BUSINESS_HOURS:
        return target.target * 3600
    if target.unit == SlaUnit.BUSINESS_DAY_OF_MONTH:
        local = cal.local_date(start)
        due = nth_business_day_end(cal, local.year, local.month, target.target)
        return max(business_seconds(cal, start, due), 1)
    raise ServiceError(f"{target.code} is an outcome target; it has no clock")


def start_clock(
    session: Session,
    cal: Calendar,
    client_id: int,
    code: str,
    subject: tuple[str, int],
    *,
    at: datetime | None = None,
    dispute_id: int | None = None,
) -> SlaClock | None:
    """Start the clock of SLA `code` for a subject if the contract in force has that (clocked) target.

    Returns None when the client's contract does not promise it. Idempotent per (subject, code)."""
    at = at or now_utc()
    existing = session.scalar(
        select(SlaClock).where(
            SlaClock.client_id == client_id,
            SlaClock.subject_type == subject[0],
            SlaClock.subject_id == subject[1],
            SlaClock.code == code,
        )
    )
    if existing is not None:
        return existing
    terms = terms_in_force(session, client_id, cal.local_date(at))
    target = next((t for t in terms.targets if t.code == code), None) if terms else None
    if terms is None or target is None or not target.clocked:
        return None
    clock = SlaClock(
        client_id=client_id,
        code=code,
        terms_id=terms.id,
        subject_type=subject[0],
        subject_id=subject[1],
        dispute_id=dispute_id,
        state=ClockState.RUNNING.value,
        allowance_s=allowance_seconds(cal, target, at),
        at_risk_pct=terms.at_risk_pct,
        elapsed_s=0,
        started_at=at,
    )
    _run_from(clock, cal, at)
    session.add(clock)
    session.flush()
    _event(session, clock, "start", at)
    return clock


def elapsed_at(clock: SlaClock, cal: Calendar, at: datetime) -> int:
    """Agency business seconds used by `at` (time while paused or after the stop never counts)."""
    if clock.state == ClockState.RUNNING and clock.running_since is not None:
        return clock.elapsed_s + business_seconds(cal, clock.running_since, at)
    return clock.elapsed_s


def status_at(clock: SlaClock, cal: Calendar, at: datetime) -> ClockStatus:
    if clock.breached_at is not None and clock.breached_at <= at:
        return ClockStatus.BREACHED
    if clock.state == ClockState.RUNNING and clock.deadline_at is not None and at > clock.deadline_at:
        return ClockStatus.BREACHED
    if clock.state == ClockState.STOPPED:
        return ClockStatus.ON_TIME
    if elapsed_at(clock, cal, at) * 100 >= clock.allowance_s * clock.at_risk_pct:
        return ClockStatus.AT_RISK
    return ClockStatus.ON_TIME


def pause_clock(session: Session, clock: SlaClock, cal: Calendar, at: datetime | None = None, note: str = "") -> None:
    """Stop counting (the client owns the next step); the agency time so far is banked."""
    _move(session, clock, cal, "pause", at, note)


def resume_clock(session: Session, clock: SlaClock, cal: Calendar, at: datetime | None = None, note: str = "") -> None:
    """Count again from `at` with what is left of the allowance."""
    _move(session, clock, cal, "resume", at, note)


def stop_clock(session: Session, clock: SlaClock, cal: Calendar, at: datetime | None = None, note: str = "") -> None:
    """The commitment is met (or moot): the clock is frozen for good."""
    _move(session, clock, cal, "stop", at, note)


def _move(session: Session, clock: SlaClock, cal: Calendar, action: str, at: datetime | None, note: str) -> None:
    target = ALLOWED.get((action, ClockState(clock.state)))
    if target is None:
        raise ClockTransitionRefused(clock, action)
    at = at or now_utc()
    if clock.running_since is not None and at < clock.running_since:
        at = clock.running_since  # a late-arriving event never takes agency time back
    if clock.state == ClockState.RUNNING:
        late = clock.deadline_at is not None and at > clock.deadline_at
        if late and clock.breached_at is None:
            clock.breached_at = clock.deadline_at
        clock.elapsed_s = elapsed_at(clock, cal, at)
    if target == ClockState.RUNNING:
        clock.state = target.value
        _run_from(clock, cal, at)
    else:
        clock.state = target.value
        clock.running_since = clock.deadline_at = clock.at_risk_at = None
        if target == ClockState.STOPPED:
            clock.stopped_at = at
    session.flush()
    _event(session, clock, action, at, note)
    if clock.breached_at is not None and action in ("pause", "stop"):
        from sla.sweep import notify_breaches

        notify_breaches(session, [clock.id])


def _run_from(clock: SlaClock, cal: Calendar, at: datetime) -> None:
    clock.running_since = at
    remaining = max(clock.allowance_s - clock.elapsed_s, 0)
    clock.deadline_at = add_business_seconds(cal, at, remaining)
    risk_share = -(-clock.allowance_s * clock.at_risk_pct // 100)  # ceiling
    clock.at_risk_at = add_business_seconds(cal, at, max(risk_share - clock.elapsed_s, 0))


def _event(session: Session, clock: SlaClock, event: str, at: datetime, note: str = "") -> None:
    session.add(
        SlaClockEvent(
            client_id=clock.client_id,
            clock_id=clock.id,
            at=at,
            event=event,
            state=clock.state,
            elapsed_s=clock.elapsed_s,
            deadline_at=clock.deadline_at,
            actor_label=current_actor().label,
            note=note[:200],
        )
    )


def start_clocks_bulk(
    session: Session,
    cal: Calendar,
    client_id: int,
    code: str,
    subject_type: str,
    subject_ids: Select[Any],
    *,
    at: datetime | None = None,
) -> int:
    """`start_clock` for many subjects that start together (e.g. first contact for every account of a
    placement file): one INSERT ... SELECT for the clocks and one for their history, skipping subjects that
    already have this clock. All share the start instant, so the deadline is computed once. Returns how
    many clocks started (0 when the contract in force has no such clocked target)."""
    at = at or now_utc()
    terms = terms_in_force(session, client_id, cal.local_date(at))
    target = next((t for t in terms.targets if t.code == code), None) if terms else None
    if terms is None or target is None or not target.clocked:
        return 0
    shape = SlaClock(allowance_s=allowance_seconds(cal, target, at), at_risk_pct=terms.at_risk_pct, elapsed_s=0)
    _run_from(shape, cal, at)
    clocks = SlaClock.__table__
    subjects = subject_ids.subquery()
    subject = subjects.c[0]
    other = SlaClock.__table__.alias("other")
    has_clock = exists().where(
        other.c.client_id == client_id,
        other.c.subject_type == subject_type,
        other.c.code == code,
        other.c.subject_id == subject,
    )
    when = literal(at, UTCDateTime())
    before = session.scalar(select(func.count()).select_from(clocks).where(clocks.c.client_id == client_id)) or 0
    session.execute(
        insert(clocks).from_select(
            [
                "client_id",
                "code",
                "terms_id",
                "subject_type",
                "subject_id",
                "state",
                "allowance_s",
                "at_risk_pct",
                "elapsed_s",
                "started_at",
                "running_since",
                "deadline_at",
                "at_risk_at",
            ],
            select(
                literal(client_id, BigInteger),
                literal(code),
                literal(terms.id, BigInteger),
                literal(subject_type),
                subject,
                literal(ClockState.RUNNING.value),
                literal(shape.allowance_s, Integer),
                literal(shape.at_risk_pct, Integer),
                literal(0, Integer),
                when,
                when,
                literal(shape.deadline_at, UTCDateTime()),
                literal(shape.at_risk_at, UTCDateTime()),
            )
            .distinct()
            .where(~has_clock),
        )
    )
    after = session.scalar(select(func.count()).select_from(clocks).where(clocks.c.client_id == client_id)) or 0
    started = after - before
    if started:
        events = SlaClockEvent.__table__
        logged = exists().where(events.c.client_id == clocks.c.client_id, events.c.clock_id == clocks.c.id)
        session.execute(
            insert(events).from_select(
                ["client_id", "clock_id", "at", "event", "state", "elapsed_s", "deadline_at", "actor_label", "note"],
                select(
                    clocks.c.client_id,
                    clocks.c.id,
                    when,
                    literal("start"),
                    literal(ClockState.RUNNING.value),
                    literal(0, Integer),
                    clocks.c.deadline_at,
                    literal(current_actor().label),
                    literal(""),
                ).where(
                    clocks.c.client_id == client_id,
                    clocks.c.code == code,
                    clocks.c.subject_type == subject_type,
                    clocks.c.started_at == when,
                    ~logged,
                ),
            )
        )
    return started
