"""Background jobs: enqueued only after commit, JSON arguments, deterministic ids, real RQ on Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from rq import SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer
from sqlalchemy import select

from clients.models import Client
from provider.core import jobs, outbox
from provider.core.audit import AuditEvent
from provider.core.outbox_models import BackgroundJob
from provider.extensions import db
from tests.factories import make_client
from tests.provider.jobs_sample import touch_client_job

# each xdist worker owns one Redis database (13, 14, ...), so flushing it never disturbs another worker
REDIS_URL = f"redis://127.0.0.1:6379/{13 + int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:] or 0)}"


def _touches(client_id: int) -> list[str]:
    rows = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "job.touch", AuditEvent.client_id == client_id)
    ).all()
    return [r.changes["after"]["note"] for r in rows]


def test_eager_job_runs_after_commit_and_not_after_rollback(db_session: Any) -> None:
    client = make_client()
    jobs.enqueue(touch_client_job, client.id, "rolled back")
    db.session.rollback()
    assert jobs.drain() == 0
    jobs.enqueue(touch_client_job, client.id, "committed")
    assert jobs.drain() == 0  # not before the commit
    db.session.commit()
    assert jobs.drain() == 1
    assert _touches(client.id) == ["committed"]


def test_job_arguments_must_be_json(db_session: Any) -> None:
    client = db.session.scalar(select(Client).limit(1)) or make_client()
    with pytest.raises(TypeError, match="JSON"):
        jobs.enqueue(touch_client_job, client, "an ORM object is not an id")


def test_undeclared_functions_cannot_be_enqueued(db_session: Any) -> None:
    with pytest.raises(TypeError, match="@job"):
        jobs.enqueue(print, 1)


@pytest.fixture
def rq_mode(app: Flask, db_session: Any) -> Iterator[Redis]:
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


def test_rq_job_is_queued_after_commit_once_per_id_and_runs_in_a_worker(app: Flask, rq_mode: Redis) -> None:
    client = make_client()
    job_id = f"touch:{client.id}:{uuid.uuid4().hex[:6]}"
    queue = jobs.rq_queue("default")

    row_id = jobs.enqueue(touch_client_job, client.id, "via rq", job_id=job_id)
    assert row_id is not None
    assert queue.count == 0  # nothing reaches Redis before the transaction commits
    db.session.commit()
    assert queue.job_ids == [jobs.rq_job_id(row_id, 1)]

    assert jobs.enqueue(touch_client_job, client.id, "via rq", job_id=job_id) is None  # the same work, waiting
    db.session.commit()
    assert queue.job_ids == [jobs.rq_job_id(row_id, 1)]

    stored = Job.fetch(jobs.rq_job_id(row_id, 1), connection=rq_mode, serializer=JSONSerializer)
    assert stored.func_name == jobs.RUN_FUNCTION
    assert list(stored.args) == [row_id, 1]
    row = db.session.get(BackgroundJob, row_id)
    assert row is not None
    assert (row.path, row.args, row.client_id, row.timeout) == (
        "tests.provider.jobs_sample.touch_client_job",
        [client.id, "via rq"],
        client.id,
        60,
    )

    worker = SimpleWorker([queue], connection=rq_mode, serializer=JSONSerializer)
    assert worker.work(burst=True) is True
    db.session.refresh(row)
    assert (row.status, row.attempts, row.result) == ("succeeded", 1, f"touched {client.id}")
    assert _touches(client.id) == ["via rq"]
    # a second delivery of the same attempt (RQ is at least once) claims nothing and runs nothing
    assert jobs.run_background_job(row_id, 1) == "not claimed"
    assert _touches(client.id) == ["via rq"]


def test_rolled_back_work_never_reaches_redis(rq_mode: Redis) -> None:
    client = make_client()
    jobs.enqueue(touch_client_job, client.id, "never")
    db.session.rollback()
    db.session.commit()
    assert jobs.rq_queue("default").count == 0
    assert db.session.scalar(select(BackgroundJob).where(BackgroundJob.client_id == client.id)) is None


def test_periodic_jobs_run_once_per_slot_and_catch_up_after_downtime(app: Flask, db_session: Any) -> None:
    client = make_client()
    nightly = jobs.Periodic(
        "tests.provider.jobs_sample.touch_client_job",
        "0 2 * * *",
        queue="default",
        kwargs={"client_id": client.id, "note": "nightly"},
    )
    day1 = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    assert outbox.periodic_tick(app, day1, [nightly]) == ["periodic:touch_client_job:20261120T0200"]
    assert outbox.periodic_tick(app, day1 + timedelta(minutes=30), [nightly]) == []  # same slot: not doubled
    # the clock was down for two days: the next tick catches up once, with the latest slot
    day3 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    assert outbox.periodic_tick(app, day3, [nightly]) == ["periodic:touch_client_job:20261122T0200"]
    assert outbox.periodic_tick(app, day3, [nightly]) == []
    keys = db.session.scalars(
        select(BackgroundJob.key).where(BackgroundJob.path == nightly.path).order_by(BackgroundJob.id)
    ).all()
    assert keys == ["periodic:touch_client_job:20261120T0200", "periodic:touch_client_job:20261122T0200"]
    jobs.drain()
    assert _touches(client.id) == ["nightly", "nightly"]


def test_flask_worker_command_runs_jobs_in_its_own_app_context(tmp_path: Any) -> None:
    """The real `flask worker --burst` process, on its own committed SQLite database."""
    import subprocess
    import sys
    from pathlib import Path

    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.core.tenancy import TenantScope, scoped

    environ = {"AR_ENV": "testing", "DATABASE_URL": f"sqlite:///{tmp_path / 'worker.db'}", "REDIS_URL": REDIS_URL}
    other = create_app(environ)
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    with other.app_context():
        upgrade()
        with scoped(TenantScope.agency(), db.session):
            client_id = make_client().id
            jobs.enqueue(touch_client_job, client_id, "from a worker process", job_id=f"touch:{client_id}")
            db.session.commit()  # handed to Redis here
        assert jobs.rq_queue("default", other).count == 1
        root = Path(__file__).resolve().parents[2]
        done = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "--burst", "-q", "default"],
            cwd=root,
            env={**os.environ, **environ},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        db.session.remove()
        with scoped(TenantScope.agency(), db.session):
            assert _touches(client_id) == ["from a worker process"]
        db.session.remove()
    redis.flushdb()
