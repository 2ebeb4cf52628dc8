"""The job outbox: work is recorded with the business change, survives Redis being away or losing everything,
is retried and settled with a reason a person can read, is reaped when its worker dies, and can be retried or
cancelled by people (pages and their access rules included)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import SimpleWorker
from rq.serializers import JSONSerializer
from sqlalchemy import select, update

from clients.imports import BatchStatus, ImportBatch, start_placement_import
from provider.core import jobs, outbox
from provider.core.audit import AuditEvent
from provider.core.clock import now_utc
from provider.core.outbox_models import BackgroundJob
from provider.extensions import db
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_team, make_user
from tests.provider.jobs_sample import cancellable_job, failing_job, touch_client_job

REDIS_URL = f"redis://127.0.0.1:6379/{13 + int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:] or 0)}"
NOBODY_LISTENS = "redis://127.0.0.1:1/0"  # a port where no Redis runs: the job service is "down"
PYTHON_WORDS = ("Error", "Traceback", "object at 0x", "KeyError", "Exception", "provider.", "_job")


def _actions(client_id: int, prefix: str) -> list[str]:
    rows = db.session.scalars(
        select(AuditEvent.action)
        .where(AuditEvent.client_id == client_id, AuditEvent.action.like(f"{prefix}%"))
        .order_by(AuditEvent.id)
    )
    return list(rows)


@pytest.fixture
def redis_mode(app: Flask, db_session: Any) -> Iterator[Any]:
    """RQ mode; `switch(url)` points the app at a Redis (or at a port where none listens)."""
    previous = {k: app.config[k] for k in ("JOBS_MODE", "REDIS_URL")}
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()

    def switch(url: str) -> None:
        app.config.update(JOBS_MODE="rq", REDIS_URL=url)
        app.extensions.pop("ar_redis", None)
        app.extensions.pop("ar_redis_blocking", None)

    switch(REDIS_URL)
    try:
        yield switch
    finally:
        redis.flushdb()
        app.config.update(previous)
        app.extensions.pop("ar_redis", None)
        app.extensions.pop("ar_redis_blocking", None)


def _work(redis: Redis) -> None:
    queue = jobs.rq_queue("default")
    assert SimpleWorker([queue], connection=redis, serializer=JSONSerializer).work(burst=True) is True


def test_a_commit_while_redis_is_away_keeps_the_work_and_the_dispatcher_delivers_it_once(
    app: Flask, redis_mode: Any
) -> None:
    client = make_client()
    redis_mode(NOBODY_LISTENS)
    row_id = jobs.enqueue(touch_client_job, client.id, "after the outage", job_id=f"touch:{client.id}")
    db.session.commit()  # no exception: the row is the record, Redis only delivers
    row = db.session.get_one(BackgroundJob, row_id)
    assert row.status == "pending"
    with pytest.raises(Exception):  # noqa: B017 - the dispatcher cannot deliver either, and says so to its loop
        outbox.dispatch(app, db.session())
    assert db.session.get_one(BackgroundJob, row_id).status == "pending"

    redis_mode(REDIS_URL)  # Redis is back
    assert outbox.dispatch(app, db.session()) == 1
    assert outbox.dispatch(app, db.session()) == 0  # handed over once
    redis = Redis.from_url(REDIS_URL)
    assert jobs.rq_queue("default").job_ids == [jobs.rq_job_id(row_id, 1)]
    _work(redis)
    db.session.refresh(row)
    assert row.status == "succeeded"
    assert _actions(client.id, "job.touch") == ["job.touch"]


def test_work_lost_by_a_redis_restart_without_persistence_is_handed_over_again(app: Flask, redis_mode: Any) -> None:
    client = make_client()
    row_id = jobs.enqueue(touch_client_job, client.id, "survives", job_id=f"touch:{client.id}")
    db.session.commit()
    redis = Redis.from_url(REDIS_URL)
    assert outbox.dispatch(app, db.session()) == 0  # already delivered after the commit: not twice
    row = db.session.get_one(BackgroundJob, row_id)
    assert row.status == "enqueued"
    redis.flushdb()  # Redis restarted with nothing on disk
    # a minute later the dispatcher finds the row handed over but unknown to Redis, and hands it over again
    db.session.execute(
        update(BackgroundJob).where(BackgroundJob.id == row_id).values(enqueued_at=now_utc() - timedelta(minutes=2))
    )
    assert outbox.dispatch(app, db.session()) == 1
    _work(redis)
    db.session.refresh(row)
    assert (row.status, row.attempts) == ("succeeded", 1)
    assert _actions(client.id, "job.touch") == ["job.touch"]


def test_a_failing_job_is_retried_later_then_fails_with_a_reason_people_can_read(app: Flask, db_session: Any) -> None:
    app.config["JOBS_EAGER_RAISE"] = False
    try:
        client = make_client()
        row_id = jobs.enqueue(failing_job, client.id, "")
        db.session.commit()
        jobs.drain()
        row = db.session.get_one(BackgroundJob, row_id)
        assert (row.status, row.attempts) == ("pending", 1)  # one retry left: waits before it
        assert row.run_after > now_utc() + timedelta(seconds=5)
        assert "attempt 2 of 2" in row.error
        assert outbox.dispatch(app, db.session()) == 0  # not before its time
        db.session.execute(update(BackgroundJob).where(BackgroundJob.id == row_id).values(run_after=now_utc()))
        assert jobs.run_background_job(row_id, 2) == "failed"
        db.session.refresh(row)
        assert (row.status, row.attempts) == ("failed", 2)
        assert row.error.startswith("An unexpected error stopped this work")
        assert not any(word in row.error for word in PYTHON_WORDS)
        # the job's owner heard once; the job's own writes were rolled back each time
        assert _actions(client.id, "job.sample") == ["job.sample.failed"]
        assert _actions(client.id, "job.touch") == []
    finally:
        app.config["JOBS_EAGER_RAISE"] = True


def test_a_job_that_explains_itself_fails_with_its_own_words(app: Flask, db_session: Any) -> None:
    app.config["JOBS_EAGER_RAISE"] = False
    try:
        client = make_client()
        row_id = jobs.enqueue(failing_job, client.id, "The client's contract has ended.")
        row = db.session.get_one(BackgroundJob, row_id)
        row.max_attempts = 1
        db.session.commit()
        jobs.drain()
        db.session.refresh(row)
        assert (row.status, row.error) == ("failed", "The client's contract has ended.")
    finally:
        app.config["JOBS_EAGER_RAISE"] = True


def test_abandoned_work_is_run_again_while_attempts_last_then_failed(app: Flask, db_session: Any) -> None:
    client = make_client()
    row_id = jobs.enqueue(failing_job, client.id, "")  # 2 attempts
    db.session.info.pop("ready_jobs", None)
    db.session.commit()
    db.session.info.pop("ready_jobs", None)
    assert outbox.claim(db.session(), row_id, 1, "a worker that will die")
    old = now_utc() - timedelta(minutes=5)
    db.session.execute(update(BackgroundJob).where(BackgroundJob.id == row_id).values(heartbeat_at=old))
    assert outbox.reap(db.session()) == 1
    row = db.session.get_one(BackgroundJob, row_id)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "started again automatically (attempt 2 of 2)" in row.error

    assert outbox.claim(db.session(), row_id, 2, "another worker that dies")
    assert not outbox.claim(db.session(), row_id, 2, "a second delivery")  # one claim per attempt
    db.session.execute(update(BackgroundJob).where(BackgroundJob.id == row_id).values(heartbeat_at=old))
    assert outbox.reap(db.session()) == 1
    db.session.refresh(row)
    assert row.status == "failed" and "retry it" in row.error
    assert _actions(client.id, "job.sample") == ["job.sample.failed"]
    # fresh heartbeats are left alone
    other = jobs.enqueue(touch_client_job, client.id, "alive")
    db.session.commit()
    db.session.info.pop("ready_jobs", None)
    assert outbox.claim(db.session(), other, 1, "a live worker")
    assert outbox.reap(db.session()) == 0


def test_cancel_and_retry_are_idempotent_audited_and_tell_the_owner(app: Flask, db_session: Any) -> None:
    client = make_client()
    row_id = jobs.enqueue(touch_client_job, client.id, "never runs")
    db.session.commit()
    db.session.info.pop("ready_jobs", None)
    row = db.session.get_one(BackgroundJob, row_id)
    assert outbox.cancel(db.session(), row) == "cancelled"
    assert outbox.cancel(db.session(), row) == "already cancelled"
    assert jobs.run_background_job(row_id, 1) == "not claimed"  # a delivery after the cancel does nothing
    assert _actions(client.id, "job.touch") == []
    assert outbox.retry(db.session(), row) == "queued"
    assert outbox.retry(db.session(), row) == "already waiting"
    db.session.commit()
    jobs.drain()
    db.session.refresh(row)
    assert row.status == "succeeded"
    assert _actions(client.id, "job.touch") == ["job.touch"]
    with pytest.raises(outbox.NotPossible, match="nothing to retry"):
        outbox.retry(db.session(), row)
    with pytest.raises(outbox.NotPossible, match="already finished"):
        outbox.cancel(db.session(), row)
    actions = db.session.scalars(
        select(AuditEvent.action).where(AuditEvent.object_type == "BackgroundJob", AuditEvent.object_id == str(row_id))
    ).all()
    assert sorted(actions) == ["job.cancel", "job.retry"]


def test_running_work_stops_at_its_checkpoint_when_cancelled(app: Flask, db_session: Any) -> None:
    client = make_client()
    row_id = jobs.enqueue(cancellable_job, client.id, True)
    db.session.commit()
    jobs.drain()
    row = db.session.get_one(BackgroundJob, row_id)
    assert row.status == "cancelled"
    assert _actions(client.id, "job.touch") == []  # what it did before the checkpoint was rolled back
    assert _actions(client.id, "job.sample") == ["job.sample.cancelled"]


def test_an_import_that_failed_shows_why_and_retrying_it_posts_once(
    app: Flask, client: FlaskClient, db_session: Any
) -> None:
    tenant = make_client(code="RETRY")
    make_user("manager", email="mgr@example.test")
    content = (
        b"invoice_number,debtor_ref,debtor_name,issue_date,due_date,amount,currency\n"
        b"R-1,D-1,Debtor One,2026-01-05,2026-02-04,100.00,EUR\nR-2,D-1,Debtor One,2026-01-06,2026-02-05,50.00,EUR\n"
    )
    batch = start_placement_import(db.session, tenant, "retry.csv", content)
    db.session.commit()
    db.session.info.pop("ready_jobs", None)  # the worker "died" before running it
    row = outbox.latest_for(db.session(), f"import:{tenant.id}:{batch.id}")
    assert row is not None and row.client_id == tenant.id
    assert outbox.claim(db.session(), row.id, 1, "dead worker")
    db.session.execute(
        update(BackgroundJob).where(BackgroundJob.id == row.id).values(heartbeat_at=now_utc() - timedelta(minutes=5))
    )
    outbox.reap(db.session())
    db.session.refresh(batch)
    assert batch.status == BatchStatus.FAILED.value  # imports are not re-run by themselves: a person decides

    login(client, "mgr@example.test")
    page = client.get(f"/clients/{tenant.id}/imports/{batch.id}").get_data(as_text=True)
    assert "Failed" in page and "stopped without finishing" in page and ">Retry</button>" in page
    assert "failed" not in page.split("<h1>")[1].split("</h1>")[0] or "badge" in page
    token = fresh_csrf(client)
    back = client.post(
        f"/background-work/{row.id}/retry",
        data={"csrf_token": token, "next": f"/clients/{tenant.id}/imports/{batch.id}"},
    )
    assert back.status_code == 302 and back.headers["Location"].endswith(f"/imports/{batch.id}")
    db.session.refresh(batch)
    assert batch.status == BatchStatus.POSTED.value and batch.posted_rows == 2
    again = client.post(f"/background-work/{row.id}/retry", data={"csrf_token": token}, follow_redirects=True)
    assert "nothing to retry" in again.get_data(as_text=True)
    numbers = db.session.scalars(
        select(ImportBatch.posted_rows).where(ImportBatch.client_id == tenant.id, ImportBatch.id == batch.id)
    ).all()
    assert numbers == [2]


def test_background_work_page_lists_work_across_clients_for_managers_only(
    app: Flask, client: FlaskClient, db_session: Any
) -> None:
    a, b = make_client(code="BGA"), make_client(code="BGB")
    make_user("manager", email="mgr2@example.test")
    make_user("collector", team=make_team(a, name="Team A"), email="col2@example.test")
    make_user("client_admin", client=a, email="a-admin@example.test")
    jobs.enqueue(touch_client_job, a.id, "waits")
    failed = jobs.enqueue(touch_client_job, b.id, "failed")
    db.session.commit()
    db.session.info.pop("ready_jobs", None)
    row = db.session.get_one(BackgroundJob, failed)
    outbox.end(db.session(), row, outbox.JobStatus.FAILED, "The database could not be reached.")
    db.session.commit()

    login(client, "mgr2@example.test")
    page = client.get("/background-work").get_data(as_text=True)
    assert a.name in page and b.name in page
    assert "The database could not be reached." in page and "Oldest waiting" in page
    assert "pending" not in page and "touch_client_job" not in page  # people's words, not code names
    only_b = client.get(f"/background-work?client={b.id}&show=failed").get_data(as_text=True)
    assert b.name in only_b and "Touch client" in only_b
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})

    login(client, "col2@example.test")
    assert client.get("/background-work").status_code == 404
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})

    login(client, "a-admin@example.test")  # a client user: another client's work, or a non-import job, is a 404
    token = fresh_csrf(client)
    assert client.post(f"/portal/background-work/{failed}/retry", data={"csrf_token": token}).status_code == 404
    assert client.get("/background-work").status_code == 404


def test_a_write_while_redis_is_away_succeeds_and_says_the_work_will_start_later(
    app: Flask, client: FlaskClient, redis_mode: Any
) -> None:
    tenant = make_client(code="NOREDIS")
    make_user("manager", email="mgr3@example.test")
    db.session.commit()
    redis_mode(NOBODY_LISTENS)
    assert login(client, "mgr3@example.test").status_code == 302  # sign-in works: rate limits fall back to memory
    token = fresh_csrf(client)
    content = (
        b"invoice_number,debtor_ref,debtor_name,issue_date,due_date,amount,currency\n"
        b"N-1,D-1,One,2026-01-05,2026-02-04,10.00,EUR\n"
    )
    from io import BytesIO

    response = client.post(
        f"/clients/{tenant.id}/imports",
        data={"csrf_token": token, "file": (BytesIO(content), "later.csv")},
        content_type="multipart/form-data",
        follow_redirects=True,
    )
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "will start as soon as it is back" in text
    batch = db.session.scalars(select(ImportBatch).where(ImportBatch.client_id == tenant.id)).one()
    assert batch.status == BatchStatus.QUEUED.value
    row = outbox.latest_for(db.session(), f"import:{tenant.id}:{batch.id}")
    assert row is not None and row.status == "pending"
    assert client.get(f"/clients/{tenant.id}").status_code == 200  # reads work
    assert client.get("/api/v1/openapi.json").status_code in (200, 401, 404)  # never a 500


def test_finished_work_is_forgotten_after_its_time_and_failed_work_later(app: Flask, db_session: Any) -> None:
    client = make_client()
    ids = {}
    for name, status, age in [
        ("old done", "succeeded", 40),
        ("recent done", "succeeded", 10),
        ("old cancelled", "cancelled", 40),
        ("failed a while ago", "failed", 40),
        ("failed long ago", "failed", 100),
        ("waiting", "pending", 100),
    ]:
        row_id = jobs.enqueue(touch_client_job, client.id, name)
        db.session.execute(
            update(BackgroundJob)
            .where(BackgroundJob.id == row_id)
            .values(
                status=status, finished_at=now_utc() - timedelta(days=age), created_at=now_utc() - timedelta(days=age)
            )
        )
        ids[name] = row_id
    db.session.info.pop("pending_jobs", None)
    assert outbox.purge_finished_jobs_job() == 3
    left = set(db.session.scalars(select(BackgroundJob.id).where(BackgroundJob.id.in_(ids.values()))))
    assert left == {ids["recent done"], ids["failed a while ago"], ids["waiting"]}
    assert "provider.core.outbox.purge_finished_jobs_job" in {p.path for p in jobs.PERIODIC_JOBS}
