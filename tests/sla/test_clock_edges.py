"""SLA clock edge cases found by an independent audit (issue 27): late events while paused, exact business
time, the month a breach belongs to, reported months that never change, and breach history."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from provider.core.clock import frozen_time
from provider.extensions import db
from provider.reporting.reports import generate_report, reissue_report
from sla.calendars import Calendar, add_business_seconds, business_micros
from sla.clocks import pause_clock, resume_clock, start_clock, status_at, stop_clock
from sla.models import ClockStatus, SlaClock, SlaClockEvent, SlaNotification
from sla.months import close_month
from sla.queries import monthly_compliance, monthly_corrections
from sla.sweep import sweep
from tests.factories import make_client, make_contract_terms

BERLIN = Calendar("Europe/Berlin", "DE")
MONDAY_9 = datetime(2026, 5, 18, 7, 0, tzinfo=UTC)  # 9:00 in Berlin (CEST)
H = timedelta(hours=1)


@pytest.fixture
def client(db_session: Any) -> Any:
    client = make_client()
    make_contract_terms(client)
    return client


def _clock(client: Any, code: str = "dispute_ack", at: datetime = MONDAY_9, n: int = 1) -> SlaClock:
    clock = start_clock(db.session, BERLIN, client.id, code, ("dispute", n), at=at)
    assert clock is not None
    return clock


def _history(clock: SlaClock) -> list[tuple[str, datetime]]:
    rows = db.session.scalars(select(SlaClockEvent).where(SlaClockEvent.clock_id == clock.id).order_by("id"))
    return [(e.event, e.at) for e in rows]


# -- late events while paused ---------------------------------------------------------------------------------


def test_a_resume_stamped_before_the_pause_resumes_at_the_pause(client: Any) -> None:
    """Pause at 11:00, resume stamped 10:00: the hour 10-11 is counted once and the deadline does not move
    earlier (it used to be 16:00, and a stop at 16:30 was a false breach)."""
    clock = _clock(client)  # 1 business day: due 17:00
    pause_clock(db.session, clock, BERLIN, at=MONDAY_9 + 2 * H)  # 11:00
    resume_clock(db.session, clock, BERLIN, at=MONDAY_9 + 1 * H)  # stamped 10:00, arrives late
    assert clock.running_since == MONDAY_9 + 2 * H
    assert clock.deadline_at == MONDAY_9 + 8 * H  # 17:00, as if the pause had lasted no time
    stop_clock(db.session, clock, BERLIN, at=MONDAY_9 + 7.5 * H)  # 16:30
    assert clock.breached_at is None
    assert db.session.scalar(select(SlaNotification).where(SlaNotification.clock_id == clock.id)) is None
    assert clock.elapsed_s == int(7.5 * 3600)
    resume = db.session.scalars(
        select(SlaClockEvent).where(SlaClockEvent.clock_id == clock.id, SlaClockEvent.event == "resume")
    ).one()
    assert "stamped" in resume.note and resume.at == MONDAY_9 + 2 * H


def test_a_stop_stamped_before_the_pause_stops_at_the_pause(client: Any) -> None:
    clock = _clock(client)
    pause_clock(db.session, clock, BERLIN, at=MONDAY_9 + 2 * H)
    stop_clock(db.session, clock, BERLIN, at=MONDAY_9 + 1 * H)
    assert clock.stopped_at == MONDAY_9 + 2 * H
    assert clock.elapsed_s == 2 * 3600  # banked time is never taken back
    instants = [at for _event, at in _history(clock)]
    assert instants == sorted(instants)  # the history stays in order


def test_a_late_resume_after_the_pause_is_taken_as_stamped(client: Any) -> None:
    clock = _clock(client)
    pause_clock(db.session, clock, BERLIN, at=MONDAY_9 + 2 * H)
    resume_clock(db.session, clock, BERLIN, at=MONDAY_9 + 3 * H)  # stamped after the pause: as is
    assert clock.running_since == MONDAY_9 + 3 * H
    assert clock.deadline_at == MONDAY_9 + 9 * H + timedelta(hours=16)  # Tuesday 10:00


# -- a breach found by a pause or a stop --------------------------------------------------------------------


@pytest.mark.parametrize("move", [pause_clock, stop_clock])
def test_a_breach_found_by_a_pause_or_stop_is_in_the_history(client: Any, move: Any) -> None:
    clock = _clock(client)
    move(db.session, clock, BERLIN, at=MONDAY_9 + 9 * H)  # an hour after the 17:00 deadline
    assert clock.breached_at == MONDAY_9 + 8 * H
    history = _history(clock)
    assert ("breach", MONDAY_9 + 8 * H) in history
    assert [e for e, _at in history].count("breach") == 1
    assert db.session.scalars(select(SlaNotification).where(SlaNotification.clock_id == clock.id)).all()
    sweep(db.session, MONDAY_9 + 30 * H)  # the sweep finds nothing more
    assert [e for e, _at in _history(clock)].count("breach") == 1


# -- exact business time ---------------------------------------------------------------------------------------


def test_business_time_is_exact_over_many_working_days() -> None:
    start = datetime(2026, 1, 5, 8, 0, 0, 400_000, tzinfo=UTC)  # Monday 9:00:00.4 in Berlin
    due = add_business_seconds(BERLIN, start, 60 * 8 * 3600)  # 60 business days
    local = due.astimezone(BERLIN.tz)
    assert (local.hour, local.minute, local.second, local.microsecond) == (9, 0, 0, 400_000)
    assert business_micros(BERLIN, start, due) == 60 * 8 * 3600 * 1_000_000
    end = datetime(2026, 3, 27, 15, 59, 59, 700_000, tzinfo=UTC)  # Friday 16:59:59.7, before the DST change
    # 60 business days in [Jan 5, Mar 27], Good Friday is April 3: 59 full days less 0.4 s, plus 7:59:59.7
    assert business_micros(BERLIN, start, end) == (59 * 8 * 3600) * 1_000_000 - 400_000 + 28_799_700_000


def test_a_clock_paused_at_fractional_instants_keeps_exact_time(client: Any) -> None:
    start = MONDAY_9 + timedelta(microseconds=250_000)
    clock = _clock(client, "dispute_resolve", at=start)  # 10 business days
    at = start
    for _day in range(6):  # pause and resume each day at fractions of a second
        at += timedelta(days=1, microseconds=333_333)
        pause_clock(db.session, clock, BERLIN, at=at)
        at += timedelta(hours=2, microseconds=500_001)
        resume_clock(db.session, clock, BERLIN, at=at)
    used = clock.elapsed_us + business_micros(BERLIN, at, clock.deadline_at)
    assert used == 10 * 8 * 3600 * 1_000_000  # the deadline is exact to the microsecond


# -- the month a breach belongs to ------------------------------------------------------------------------------


MAY_29_9 = datetime(2026, 5, 29, 7, 0, tzinfo=UTC)  # Friday 9:00 in Berlin


def _rows(client: Any, month: int) -> dict[str, tuple[int, int]]:
    return {r.code: (r.decided, r.met) for r in monthly_compliance(db.session, client, 2026, month)}


def test_a_breach_belongs_to_the_month_it_happened_not_the_month_of_the_stop(client: Any) -> None:
    clock = _clock(client, at=MAY_29_9)  # due Friday 29 May 17:00
    sweep(db.session, MAY_29_9 + 9 * H)
    assert _rows(client, 5) == {"dispute_ack": (1, 0)}
    stop_clock(db.session, clock, BERLIN, at=datetime(2026, 6, 2, 8, tzinfo=UTC))
    assert _rows(client, 5) == {"dispute_ack": (1, 0)}  # May keeps its breach
    assert _rows(client, 6) == {}  # and June does not get it


def test_a_reported_month_never_changes_and_a_late_outcome_is_a_correction_counted_once(client: Any) -> None:
    met = _clock(client, at=MAY_29_9, n=1)
    stop_clock(db.session, met, BERLIN, at=MAY_29_9 + 1 * H)
    _clock(client, at=MAY_29_9, n=3)  # due 29 May 17:00, not yet swept when May is reported
    late = _clock(client, "dispute_resolve", at=MAY_29_9, n=2)  # due 12 June, still running at the close
    assert close_month(db.session, client, 2026, 5, at=datetime(2026, 6, 5, 8, tzinfo=UTC))
    assert not close_month(db.session, client, 2026, 5)  # closing twice changes nothing
    may = {"dispute_ack": (2, 1)}  # the close swept the overdue clock first: May's breach is in May
    assert _rows(client, 5) == may
    stop_clock(db.session, late, BERLIN, at=MAY_29_9 + 2 * H)  # recorded in June, back-dated into May
    assert _rows(client, 5) == may  # May as reported
    assert _rows(client, 6) == {}  # June's own compliance is June's
    pending = monthly_corrections(db.session, client, 2026, 6)
    assert [(c.code, c.belongs_to, c.decided, c.met) for c in pending] == [("dispute_resolve", "2026-05", 1, 1)]
    close_month(db.session, client, 2026, 6, at=datetime(2026, 7, 6, 8, tzinfo=UTC))
    shown = monthly_corrections(db.session, client, 2026, 6)
    assert [(c.code, c.belongs_to, c.decided, c.met) for c in shown] == [("dispute_resolve", "2026-05", 1, 1)]
    assert monthly_corrections(db.session, client, 2026, 7) == []  # counted once, in June's report
    assert _rows(client, 5) == may
    periods = dict(db.session.execute(select(SlaClock.subject_id, SlaClock.reported_period)).all())
    assert periods == {1: "2026-05", 2: "2026-06", 3: "2026-05"}


def test_the_monthly_report_closes_the_month_and_lists_corrections(client: Any) -> None:
    breached = _clock(client, at=MAY_29_9, n=1)  # due 29 May 17:00; the periodic sweep has not run
    late = _clock(client, "dispute_resolve", at=MAY_29_9, n=2)
    with frozen_time(datetime(2026, 6, 5, 8, tzinfo=UTC)):
        may = generate_report(db.session, client, "2026-05").report
    may_sla = [(r["term"], r["decided"], r["met"]) for r in may.figures["external"]["sla"]]
    assert may_sla == [("Dispute acknowledged", 1, 0)]
    with frozen_time(datetime(2026, 6, 9, 8, tzinfo=UTC)):
        stop_clock(db.session, breached, BERLIN)
        stop_clock(db.session, late, BERLIN, at=MAY_29_9 + 2 * H)  # back-dated into May, after its report
    with frozen_time(datetime(2026, 7, 6, 8, tzinfo=UTC)):
        june = generate_report(db.session, client, "2026-06").report
        again = reissue_report(db.session, client, "2026-05", "check").report
    assert june.figures["external"]["sla"] == []  # the May breach stopped in June is not June's
    assert [(r["month"], r["term"], r["met"]) for r in june.figures["external"]["sla_corrections"]] == [
        ("May 2026", "Dispute resolved", 1)
    ]
    assert [(r["term"], r["decided"], r["met"]) for r in again.figures["external"]["sla"]] == may_sla
    assert again.figures["external"]["sla_corrections"] == []


def test_status_of_a_breached_then_stopped_clock_stays_breached(client: Any) -> None:
    clock = _clock(client, at=MAY_29_9)
    stop_clock(db.session, clock, BERLIN, at=MAY_29_9 + 30 * H)
    assert status_at(clock, BERLIN, datetime.combine(date(2026, 7, 1), datetime.min.time(), UTC)) == (
        ClockStatus.BREACHED
    )
