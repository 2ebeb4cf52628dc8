"""SLA clocks: start on an event, pause while the client owns the next step, resume, stop on completion.

A clock counts *agency business time* in the client's calendar, exactly (integer microseconds, the
resolution of the stored timestamps). Its state machine:

    running --pause--> paused --resume--> running
    running --stop---> stopped <--stop--- paused

Anything else raises `ClockTransitionRefused`. While running, `deadline_at` (allowance used up) and
`at_risk_at` (the contract's at-risk share used up) are stored as UTC instants, so the breach sweep and the
dashboard compare timestamps in SQL instead of recomputing calendars. A clock is *breached* when it is still
running after `deadline_at` (or stopped/paused after it): `breached_at` then records `deadline_at`, and
the history gets a "breach" entry at that instant whoever finds it (the sweep, a pause or a stop). Every
change appends a `SlaClockEvent` with the agency time at that instant (the clock's explainable history).

Late (back-dated) events: the history is append-only and in order. An event stamped before the clock's last
change (its `running_since` while running, its `paused_at` while paused) takes effect at that change: a
resume stamped 10:00 on a clock paused at 11:00 resumes it at 11:00 (the pause lasted no time and the hour
10:00-11:00, already counted while running, is counted once), and a stop stamped before the pause stops it at
the pause instant. Agency time once banked is never taken back and a deadline never moves earlier because of
a late event. The event's note keeps the stamped time so the correction is visible.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, Select, exists, func, insert, literal, select
from sqlalchemy.orm import Session

from provider.core.audit import current_actor
from provider.core.clock import now_utc
from provider.core.db import UTCDateTime
from provider.core.errors import ServiceError
from sla.calendars import Calendar, add_business_micros, business_micros, nth_business_day_end
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


SECOND = 1_000_000  # microseconds


def allowance_micros(cal: Calendar, target: SlaTarget, start: datetime) -> int:
    """The agency time a target allows from `start`, in business microseconds of the calendar.

    Days: N nominal working days (N x the working window, e.g. 8 h). Hours: N hours. Day of month: the business
    time from `start` to the close of the month's N-th business day (a clock started after it is due at once)."""
    if target.unit == SlaUnit.BUSINESS_DAYS:
        return target.target * cal.day_seconds * SECOND
    if target.unit == SlaUnit.BUSINESS_HOURS:
        return target.target * 3600 * SECOND
    if target.unit == SlaUnit.BUSINESS_DAY_OF_MONTH:
        local = cal.local_date(start)
        due = nth_business_day_end(cal, local.year, local.month, target.target)
        return max(business_micros(cal, start, due), 1)
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
        allowance_us=allowance_micros(cal, target, at),
        at_risk_pct=terms.at_risk_pct,
        elapsed_us=0,
        started_at=at,
    )
    _run_from(clock, cal, at)
    session.add(clock)
    session.flush()
    _event(session, clock, "start", at)
    return clock


def elapsed_micros_at(clock: SlaClock, cal: Calendar, at: datetime) -> int:
    """Agency business time used by `at`, in microseconds (time while paused or after the stop never counts)."""
    if clock.state == ClockState.RUNNING and clock.running_since is not None:
        return clock.elapsed_us + business_micros(cal, clock.running_since, at)
    return clock.elapsed_us


def elapsed_at(clock: SlaClock, cal: Calendar, at: datetime) -> int:
    """Whole business seconds used by `at` (for display)."""
    return elapsed_micros_at(clock, cal, at) // SECOND


def status_at(clock: SlaClock, cal: Calendar, at: datetime) -> ClockStatus:
    if clock.breached_at is not None and clock.breached_at <= at:
        return ClockStatus.BREACHED
    if clock.state == ClockState.RUNNING and clock.deadline_at is not None and at > clock.deadline_at:
        return ClockStatus.BREACHED
    if clock.state == ClockState.STOPPED:
        return ClockStatus.ON_TIME
    if elapsed_micros_at(clock, cal, at) * 100 >= clock.allowance_us * clock.at_risk_pct:
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
    stamped = at or now_utc()
    last_change = clock.running_since if clock.state == ClockState.RUNNING else clock.paused_at
    at = max(stamped, last_change) if last_change is not None else stamped
    if at != stamped:  # a late event takes effect at the clock's last change (see the module docstring)
        note = f"{note} (stamped {stamped.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, counted from the last change)"
        note = note.strip()
    found_breach = False
    if clock.state == ClockState.RUNNING:
        late = clock.deadline_at is not None and at > clock.deadline_at
        if late and clock.breached_at is None:
            clock.breached_at = clock.deadline_at
            found_breach = True
        clock.elapsed_us = elapsed_micros_at(clock, cal, at)
    if found_breach:  # the history shows the breach at the instant it happened, before this move
        _event(session, clock, "breach", clock.breached_at or at, elapsed_us=clock.allowance_us)
    clock.state = target.value
    if target == ClockState.RUNNING:
        clock.paused_at = None
        _run_from(clock, cal, at)
    else:
        clock.running_since = clock.deadline_at = clock.at_risk_at = None
        clock.paused_at = at if target == ClockState.PAUSED else None
        if target == ClockState.STOPPED:
            clock.stopped_at = at
    session.flush()
    _event(session, clock, action, at, note)
    if clock.breached_at is not None and action in ("pause", "stop"):
        from sla.sweep import notify_breaches

        notify_breaches(session, [clock.id])


def _run_from(clock: SlaClock, cal: Calendar, at: datetime) -> None:
    clock.running_since = at
    remaining = max(clock.allowance_us - clock.elapsed_us, 0)
    clock.deadline_at = add_business_micros(cal, at, remaining)
    risk_share = -(-clock.allowance_us * clock.at_risk_pct // 100)  # ceiling
    clock.at_risk_at = add_business_micros(cal, at, max(risk_share - clock.elapsed_us, 0))


def _event(
    session: Session, clock: SlaClock, event: str, at: datetime, note: str = "", *, elapsed_us: int | None = None
) -> None:
    session.add(
        SlaClockEvent(
            client_id=clock.client_id,
            clock_id=clock.id,
            at=at,
            event=event,
            state=clock.state,
            elapsed_s=(clock.elapsed_us if elapsed_us is None else elapsed_us) // SECOND,
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
    shape = SlaClock(allowance_us=allowance_micros(cal, target, at), at_risk_pct=terms.at_risk_pct, elapsed_us=0)
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
                "allowance_us",
                "at_risk_pct",
                "elapsed_us",
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
                literal(shape.allowance_us, BigInteger),
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
