"""SLA clocks: start/pause/resume/stop, their history, and properties under any sequence of events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from provider.extensions import db
from sla.calendars import Calendar
from sla.clocks import (
    ClockTransitionRefused,
    elapsed_at,
    pause_clock,
    resume_clock,
    start_clock,
    status_at,
    stop_clock,
)
from sla.models import ClockStatus, SlaClockEvent
from tests.factories import make_client, make_contract_terms

BERLIN = Calendar("Europe/Berlin", "DE")
MONDAY_9 = datetime(2026, 5, 18, 7, 0, tzinfo=UTC)  # 9:00 in Berlin (CEST)
H = 3600


@pytest.fixture
def client_with_terms(db_session: Any) -> Any:
    client = make_client()
    make_contract_terms(client)
    return client


def _start(client: Any, code: str = "dispute_resolve", at: datetime = MONDAY_9, subject_id: int = 1) -> Any:
    return start_clock(db.session, BERLIN, client.id, code, ("dispute", subject_id), at=at)


def test_a_clock_runs_on_business_time_and_pauses_while_the_client_owns_it(client_with_terms: Any) -> None:
    clock = _start(client_with_terms, "dispute_ack")
    assert clock.allowance_s == 8 * H
    assert clock.deadline_at == MONDAY_9 + timedelta(hours=8)
    assert status_at(clock, BERLIN, MONDAY_9 + timedelta(hours=5)) == ClockStatus.ON_TIME
    assert status_at(clock, BERLIN, MONDAY_9 + timedelta(hours=6)) == ClockStatus.AT_RISK  # 75 % used
    pause_clock(db.session, clock, BERLIN, at=MONDAY_9 + timedelta(hours=2))
    week_later = MONDAY_9 + timedelta(days=8)  # Tuesday 9:00 (Monday the 25th is Pentecost Monday)
    assert elapsed_at(clock, BERLIN, week_later) == 2 * H
    assert status_at(clock, BERLIN, week_later) == ClockStatus.ON_TIME
    resume_clock(db.session, clock, BERLIN, at=week_later)
    assert clock.deadline_at == week_later + timedelta(hours=6)
    stop_clock(db.session, clock, BERLIN, at=week_later + timedelta(hours=7))
    assert clock.breached_at == week_later + timedelta(hours=6)
    assert status_at(clock, BERLIN, week_later + timedelta(days=30)) == ClockStatus.BREACHED
    events = db.session.scalars(select(SlaClockEvent).where(SlaClockEvent.clock_id == clock.id).order_by("id"))
    assert [(e.event, e.elapsed_s) for e in events] == [
        ("start", 0),
        ("pause", 2 * H),
        ("resume", 2 * H),
        ("breach", 8 * H),  # found by the stop, shown at the instant it happened
        ("stop", 9 * H),
    ]


def test_clocks_follow_the_terms_in_force_on_the_day_they_start(db_session: Any) -> None:
    client = make_client()
    make_contract_terms(client, date(2025, 1, 1), targets={"dispute_ack": ("business_days", 1)})
    make_contract_terms(client, date(2026, 5, 1), targets={"dispute_ack": ("business_hours", 2)})
    old = start_clock(
        db.session, BERLIN, client.id, "dispute_ack", ("dispute", 1), at=datetime(2026, 4, 1, 8, tzinfo=UTC)
    )
    new = start_clock(db.session, BERLIN, client.id, "dispute_ack", ("dispute", 2), at=MONDAY_9)
    assert (old.allowance_s, new.allowance_s) == (8 * H, 2 * H)
    assert start_clock(db.session, BERLIN, client.id, "dispute_resolve", ("dispute", 2), at=MONDAY_9) is None
    assert start_clock(db.session, BERLIN, client.id, "dispute_ack", ("dispute", 2), at=MONDAY_9) is new  # idempotent


@pytest.mark.parametrize(
    ("moves", "refused"),
    [
        (["resume"], "resume"),
        (["pause", "pause"], "pause"),
        (["stop", "resume"], "resume"),
        (["stop", "pause"], "pause"),
        (["stop", "stop"], "stop"),
    ],
)
def test_refused_clock_moves_are_typed_errors(client_with_terms: Any, moves: list[str], refused: str) -> None:
    clock = _start(client_with_terms)
    funcs = {"pause": pause_clock, "resume": resume_clock, "stop": stop_clock}
    at = MONDAY_9
    for move in moves[:-1]:
        at += timedelta(hours=1)
        funcs[move](db.session, clock, BERLIN, at=at)
    with pytest.raises(ClockTransitionRefused) as err:
        funcs[moves[-1]](db.session, clock, BERLIN, at=at + timedelta(hours=1))
    assert err.value.action == refused


events = st.lists(
    st.tuples(st.sampled_from(["pause", "resume", "stop", "look"]), st.integers(min_value=0, max_value=5 * 24 * 60)),
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=events)
def test_clock_properties(client_with_terms: Any, steps: list[tuple[str, int]]) -> None:
    """Elapsed agency time never decreases; paused time never counts; a stopped clock never changes."""
    nested = db.session.begin_nested()
    try:
        clock = _start(client_with_terms)
        at, last_elapsed, paused_since = MONDAY_9, 0, None
        stopped: tuple[Any, ...] | None = None
        for action, minutes in steps:
            at += timedelta(minutes=minutes)
            elapsed = elapsed_at(clock, BERLIN, at)
            assert elapsed >= last_elapsed
            if paused_since is not None:
                assert elapsed == last_elapsed  # nothing counted while paused
            last_elapsed = elapsed
            move = {"pause": pause_clock, "resume": resume_clock, "stop": stop_clock}.get(action)
            if move is None:
                continue
            try:
                move(db.session, clock, BERLIN, at=at)
            except ClockTransitionRefused:
                assert stopped is not None or (action, clock.state) in {("pause", "paused"), ("resume", "running")}
                continue
            assert clock.elapsed_s == last_elapsed  # banking the time changes nothing
            paused_since = at if clock.state == "paused" else None
            if clock.state == "stopped":
                stopped = (clock.elapsed_s, clock.breached_at, clock.stopped_at)
        if stopped is not None:
            assert (clock.elapsed_s, clock.breached_at, clock.stopped_at) == stopped
            assert elapsed_at(clock, BERLIN, at + timedelta(days=90)) == stopped[0]
    finally:
        nested.rollback()
