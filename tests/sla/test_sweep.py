"""The breach sweep: breaches are marked in one set-based pass and notified once — run twice, by two
workers at once, or through RQ on the real Redis."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import func, select, text

from provider.core import jobs
from provider.core.audit import AuditEvent
from provider.core.clock import frozen_time
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from sla.calendars import Calendar
from sla.clocks import ClockTransitionRefused, pause_clock, resume_clock, start_clock, status_at, stop_clock
from sla.jobs import commit_asynchronously, sweep_sla_clocks_job
from sla.models import ClockStatus, SlaClock, SlaClockEvent, SlaNotification
from sla.sweep import sweep
from tests.conftest import Database
from tests.factories import make_client, make_contract_terms

BERLIN = Calendar("Europe/Berlin", "DE")
MONDAY_9 = datetime(2026, 5, 18, 7, 0, tzinfo=UTC)
REDIS_URL = "redis://127.0.0.1:6379/11"  # not the db the job tests flush


def _count(model: Any, *where: Any) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _clocks(client_id: int, n: int, code: str = "dispute_ack", first: int = 1) -> list[SlaClock]:
    return [start_clock(db.session, BERLIN, client_id, code, ("dispute", first + i), at=MONDAY_9) for i in range(n)]


@pytest.fixture
def client_with_terms(db_session: Any) -> Any:
    client = make_client()
    make_contract_terms(client, targets={"dispute_ack": ("business_days", 1), "query_answer": ("business_hours", 4)})
    return client


def test_the_sweep_marks_breaches_and_notifies_once_when_run_twice(client_with_terms: Any) -> None:
    late = _clocks(client_with_terms.id, 3)  # due Monday 17:00
    fine = _clocks(client_with_terms.id, 2, code="query_answer", first=10)  # due Monday 13:00
    stop_clock(db.session, fine[0], BERLIN, at=MONDAY_9 + timedelta(hours=1))
    tuesday = MONDAY_9 + timedelta(days=1)
    assert sweep(db.session, tuesday) == {"breached": 4, "notified": 4}  # 3 acks + the running query
    assert sweep(db.session, tuesday) == {"breached": 0, "notified": 0}
    assert sweep(db.session, tuesday + timedelta(days=3)) == {"breached": 0, "notified": 0}
    assert _count(SlaNotification, SlaNotification.client_id == client_with_terms.id) == 4
    assert _count(AuditEvent, AuditEvent.action == "sla.breach", AuditEvent.client_id == client_with_terms.id) == 4
    assert _count(SlaClockEvent, SlaClockEvent.event == "breach") == 4
    db.session.refresh(late[0])
    assert late[0].breached_at == MONDAY_9 + timedelta(hours=8)
    # completing a breached clock later neither un-breaches it nor notifies again
    stop_clock(db.session, late[0], BERLIN, at=tuesday + timedelta(hours=1))
    assert late[0].breached_at == MONDAY_9 + timedelta(hours=8)
    assert _count(SlaNotification, SlaNotification.client_id == client_with_terms.id) == 4


def test_a_breach_found_when_the_clock_stops_is_notified_once_too(client_with_terms: Any) -> None:
    (clock,) = _clocks(client_with_terms.id, 1)
    stop_clock(db.session, clock, BERLIN, at=MONDAY_9 + timedelta(days=1))  # late, before any sweep ran
    assert clock.breached_at == MONDAY_9 + timedelta(hours=8)
    assert sweep(db.session, MONDAY_9 + timedelta(days=2)) == {"breached": 0, "notified": 0}
    assert _count(SlaNotification, SlaNotification.clock_id == clock.id) == 1


def test_a_paused_clock_never_breaches_in_the_sweep(client_with_terms: Any) -> None:
    from sla.clocks import pause_clock

    (clock,) = _clocks(client_with_terms.id, 1)
    pause_clock(db.session, clock, BERLIN, at=MONDAY_9 + timedelta(hours=7))
    assert sweep(db.session, MONDAY_9 + timedelta(days=30)) == {"breached": 0, "notified": 0}


def test_a_clock_notified_already_is_marked_but_not_notified_again(client_with_terms: Any) -> None:
    first, second = _clocks(client_with_terms.id, 2)
    db.session.add(SlaNotification(client_id=client_with_terms.id, clock_id=first.id, kind="breach", message="x"))
    db.session.flush()
    tuesday = MONDAY_9 + timedelta(days=1)
    assert sweep(db.session, tuesday) == {"breached": 2, "notified": 1}
    assert _count(SlaNotification, SlaNotification.clock_id.in_([first.id, second.id])) == 2
    assert _count(AuditEvent, AuditEvent.action == "sla.breach", AuditEvent.client_id == client_with_terms.id) == 1


MOVES = {"pause": pause_clock, "resume": resume_clock, "stop": stop_clock}
moves = st.tuples(st.sampled_from(sorted(MOVES)), st.integers(min_value=0, max_value=2 * 24 * 60))  # minutes later
clock_stories = st.lists(
    st.tuples(
        st.sampled_from(["dispute_ack", "query_answer"]),  # 1 business day, 4 business hours
        st.integers(min_value=0, max_value=3 * 24 * 60),  # started, minutes after Monday 9:00
        st.lists(moves, max_size=3),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stories=clock_stories, sweeps=st.lists(st.integers(min_value=0, max_value=6 * 24 * 60), min_size=1, max_size=3))
def test_the_sweep_agrees_with_each_clocks_own_status(
    client_with_terms: Any, stories: list[tuple[str, int, list[tuple[str, int]]]], sweeps: list[int]
) -> None:
    """Whatever the clocks went through, after a sweep at `now` a clock is breached exactly when its status,
    computed on its own in the client's calendar, says so; each breach has one notification and one "breach"
    entry in the clock's history, whether the sweep, a pause or a stop found it."""
    nested = db.session.begin_nested()
    try:
        clocks, last = [], MONDAY_9
        for i, (code, start, moves) in enumerate(stories):
            at = MONDAY_9 + timedelta(minutes=start)
            clock = start_clock(db.session, BERLIN, client_with_terms.id, code, ("dispute", 100 + i), at=at)
            for action, minutes in moves:
                at += timedelta(minutes=minutes)
                with contextlib.suppress(ClockTransitionRefused):  # e.g. resume a running clock
                    MOVES[action](db.session, clock, BERLIN, at=at)
            clocks.append(clock)
            last = max(last, at)
        found: set[int] = set()
        for minutes in sorted(sweeps):
            now = last + timedelta(minutes=minutes)
            before = {c.id: status_at(c, BERLIN, now) for c in clocks}
            fresh = {c.id for c in clocks if before[c.id] == ClockStatus.BREACHED and c.breached_at is None}
            assert sweep(db.session, now) == {"breached": len(fresh), "notified": len(fresh)}
            db.session.expire_all()
            found |= fresh
            for c in clocks:
                assert status_at(c, BERLIN, now) == before[c.id]
                assert (c.breached_at is not None) == (before[c.id] == ClockStatus.BREACHED)
                assert _count(SlaNotification, SlaNotification.clock_id == c.id) == int(c.breached_at is not None)
                history = _count(SlaClockEvent, SlaClockEvent.clock_id == c.id, SlaClockEvent.event == "breach")
                assert history == int(c.breached_at is not None)  # found by the sweep, a pause or a stop
    finally:
        nested.rollback()


def test_the_sweep_commits_without_waiting_for_the_disk_unless_jobs_wait_for_it(
    backend: str, client_with_terms: Any
) -> None:
    def synchronous_commit() -> str:
        return str(db.session.scalar(text("SHOW synchronous_commit")))

    if backend == "sqlite":
        assert commit_asynchronously() is False
        return
    assert synchronous_commit() == "on"
    jobs.enqueue(sweep_sla_clocks_job, job_id="sla-sweep:pending")  # dropped with the test's rollback
    assert commit_asynchronously() is False
    assert synchronous_commit() == "on"
    db.session().info.pop("pending_jobs")
    assert commit_asynchronously() is True
    assert synchronous_commit() == "off"  # SET LOCAL: this transaction only


@pytest.fixture
def rq_redis(app: Flask, db_session: Any) -> Iterator[Redis]:
    redis = Redis.from_url(REDIS_URL)
    redis.ping()
    previous = {k: app.config[k] for k in ("JOBS_MODE", "REDIS_URL")}
    app.config.update(JOBS_MODE="rq", REDIS_URL=REDIS_URL)
    app.extensions.pop("ar_redis", None)
    redis.flushdb()
    try:
        yield redis
    finally:
        redis.flushdb()
        app.config.update(previous)
        app.extensions.pop("ar_redis", None)


def test_the_periodic_sweep_through_rq_notifies_once(app: Flask, rq_redis: Redis, client_with_terms: Any) -> None:
    _clocks(client_with_terms.id, 2)
    db.session.commit()
    with frozen_time(MONDAY_9 + timedelta(days=1)):
        jobs.enqueue(sweep_sla_clocks_job, job_id="sla-sweep:a")
        jobs.enqueue(sweep_sla_clocks_job, job_id="sla-sweep:b")  # a retry or a second scheduler
        db.session.commit()
        queue = jobs.rq_queue("high")
        assert queue.count == 2
        worker = SimpleWorker([queue], connection=rq_redis, serializer=JSONSerializer)
        assert worker.work(burst=True) is True
    assert _count(SlaNotification, SlaNotification.client_id == client_with_terms.id) == 2
    assert "sla.jobs.sweep_sla_clocks_job" in {p.path for p in jobs.PERIODIC_JOBS}


@pytest.fixture(scope="module")
def live_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    from flask_migrate import upgrade

    from provider.app import create_app

    if request.config.getoption("--db") == "sqlite":
        pytest.skip("two concurrent workers run on PostgreSQL")
    database = Database("postgresql", request.config.getoption("--pg-admin-url"), tmp_path_factory.mktemp("sweep"))
    app = create_app(database.environ)
    try:
        with app.app_context():
            upgrade()
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()


def test_two_workers_sweeping_at_once_notify_once(live_app: Flask) -> None:
    with live_app.app_context(), scoped(TenantScope.agency(), db.session):
        client = make_client()
        make_contract_terms(client, date(2025, 1, 1), targets={"dispute_ack": ("business_days", 1)})
        client_id = client.id
        _clocks(client_id, 300)
        db.session.commit()
        db.session.remove()
    barrier = threading.Barrier(2)

    def worker(_: int) -> dict[str, int]:
        with live_app.app_context():
            barrier.wait(timeout=30)
            try:
                return sweep_sla_clocks_job()
            finally:
                db.session.remove()

    with frozen_time(MONDAY_9 + timedelta(days=1)), ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(worker, range(2)))
    assert sum(r["notified"] for r in results) == 300, results
    assert sum(r["breached"] for r in results) == 300, results
    with live_app.app_context(), scoped(TenantScope.agency(), db.session):
        assert _count(SlaNotification, SlaNotification.client_id == client_id) == 300
        assert _count(AuditEvent, AuditEvent.action == "sla.breach", AuditEvent.client_id == client_id) == 300
        assert _count(SlaClockEvent, SlaClockEvent.client_id == client_id, SlaClockEvent.event == "breach") == 300
        db.session.remove()
