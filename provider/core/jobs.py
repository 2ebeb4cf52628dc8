"""Background jobs on RQ (JSON serializer, named queues), enqueued only after the transaction commits.

    @job(queue="imports", timeout=1800)
    def import_placements_job(batch_id: int) -> None: ...

    jobs.enqueue(import_placements_job, batch.id, job_id=f"import:{client.id}:{batch.id}")
    db.session.commit()          # the job is handed to RQ here, not before

Jobs take ids, never ORM objects (arguments must be JSON). They run inside an app context and commit
once at the end; RQ delivers at least once, so every job is idempotent. A job id names its work
(`report:{client}:{yyyy-mm}`): while a job with that id is queued or running, enqueueing it again does
nothing.

Modes (config JOBS_MODE, derived from REDIS_URL in provider.config):
  rq      REDIS_URL set: RQ queues; `flask worker` runs a worker with the scheduler.
  thread  no Redis (embedded demo): a small in-process thread pool, each job in its own app context.
  eager   tests: runs in the same thread and session right after the request or job that queued it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

QUEUES = ("high", "default", "imports", "reports", "low")
ACTIVE_STATUSES = frozenset({"queued", "started", "scheduled", "deferred"})


@dataclass(frozen=True)
class JobSpec:
    path: str
    queue: str
    timeout: int
    retries: int


@dataclass(frozen=True)
class PendingJob:
    spec: JobSpec
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    job_id: str | None


@dataclass(frozen=True)
class Periodic:
    """A periodic job: `cron` is evaluated in UTC. Every one is declared in PERIODIC_JOBS."""

    path: str
    cron: str
    queue: str = "low"
    kwargs: dict[str, Any] = field(default_factory=dict)


# Every periodic job of the platform, in one table (domain packages append at import time).
PERIODIC_JOBS: list[Periodic] = [
    Periodic("worklists.jobs.rebuild_worklists_job", "30 1 * * *"),  # promises kept/broken, then rescoring
    Periodic("provider.reporting.jobs.snapshot_kpis_job", "15 2 * * *"),  # daily KPI snapshots for dashboards
    Periodic("provider.reporting.jobs.schedule_reports_job", "0 * * * *"),  # monthly reports due (Nth business day)
    Periodic("sla.jobs.sweep_sla_clocks_job", "*/5 * * * *", queue="high"),  # SLA breaches, notified once
]

REGISTRY: dict[str, JobSpec] = {}
F = TypeVar("F", bound=Callable[..., Any])


def job(queue: str = "default", timeout: int = 600, retries: int = 3) -> Callable[[F], F]:
    """Declare a background job. Calling the function directly runs it in the current app context."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; queues are {QUEUES}")

    def decorator(func: F) -> F:
        spec = JobSpec(f"{func.__module__}.{func.__qualname__}", queue, timeout, retries)

        @wraps(func)
        def runner(*args: Any, **kwargs: Any) -> Any:
            if has_app_context():
                return _run(func, spec, args, kwargs)
            with worker_app().app_context():
                return _run(func, spec, args, kwargs)

        runner.job_spec = spec  # type: ignore[attr-defined]
        REGISTRY[spec.path] = spec
        return runner  # type: ignore[return-value]

    return decorator


def _run(func: Callable[..., Any], spec: JobSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    from provider.core.audit import Actor, acting_as
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db

    with acting_as(Actor.system(f"job:{spec.path.rsplit('.', 1)[-1]}")), scoped(TenantScope.nothing()):
        try:
            result = func(*args, **kwargs)
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    drain()
    return result


_worker_app: Flask | None = None


def worker_app() -> Flask:
    """The app used by RQ worker processes (created once per process)."""
    global _worker_app
    if _worker_app is None:
        from provider.app import create_app

        _worker_app = create_app()
    return _worker_app


def enqueue(func: Callable[..., Any], *args: Any, job_id: str | None = None, **kwargs: Any) -> None:
    """Queue `func(*args, **kwargs)` to run after the current transaction commits (dropped on rollback)."""
    from provider.extensions import db

    spec: JobSpec | None = getattr(func, "job_spec", None)
    if spec is None:
        raise TypeError(f"{func!r} is not declared with @job")
    try:
        json.dumps([args, kwargs])
    except TypeError as exc:
        raise TypeError(f"job arguments must be JSON (pass ids, not objects): {exc}") from None
    pending = db.session().info.setdefault("pending_jobs", [])
    if job_id is not None and any(p.job_id == job_id for p in pending):
        return  # the same deterministic job is already waiting for this commit
    pending.append(PendingJob(spec, tuple(args), dict(kwargs), job_id))


@event.listens_for(Session, "after_commit")
def _dispatch_after_commit(session: Session) -> None:
    pending: list[PendingJob] = session.info.pop("pending_jobs", [])
    if not pending or not has_app_context():
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    mode = app.config.get("JOBS_MODE", "eager")
    for item in pending:
        if mode == "rq":
            _to_rq(app, item)
        elif mode == "thread":
            _executor().submit(_run_in_thread, app, item)
        else:
            ready = session.info.setdefault("ready_jobs", [])
            if item.job_id is None or all(r.job_id != item.job_id for r in ready):  # queued once, like RQ
                ready.append(item)


@event.listens_for(Session, "after_soft_rollback")
def _drop_on_rollback(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:
        session.info.pop("pending_jobs", None)


def drain() -> int:
    """Eager mode: run the jobs whose transaction has committed. Returns how many ran."""
    from provider.extensions import db

    ran = 0
    session = db.session()
    while session.info.get("ready_jobs"):
        item: PendingJob = session.info["ready_jobs"].pop(0)
        func = _resolve(item.spec.path)
        func(*item.args, **item.kwargs)
        ran += 1
    return ran


def _resolve(path: str) -> Callable[..., Any]:
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ar-job")
    return _pool


def _run_in_thread(app: Flask, item: PendingJob) -> None:
    try:
        with app.app_context():
            _resolve(item.spec.path)(*item.args, **item.kwargs)
    except Exception:
        log.exception("in-process job %s failed", item.spec.path)


# --- RQ ---------------------------------------------------------------------------------------------


def redis_connection(app: Flask | None = None) -> Any:
    from redis import Redis

    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    conn = app.extensions.get("ar_redis")
    if conn is None:
        url = app.config.get("REDIS_URL")
        if not url:
            raise RuntimeError("REDIS_URL is not set: jobs run in-process")
        conn = app.extensions["ar_redis"] = Redis.from_url(url)
    return conn


def rq_queue(name: str, app: Flask | None = None) -> Any:
    from rq import Queue
    from rq.serializers import JSONSerializer

    return Queue(name, connection=redis_connection(app), serializer=JSONSerializer)


def rq_job_id(job_id: str) -> str:
    """RQ allows letters, digits, `_` and `-` in ids: `report:12:2026-11` is stored as `report-12-2026-11`."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", job_id)


def _to_rq(app: Flask, item: PendingJob) -> Any:
    from rq import Retry
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from rq.serializers import JSONSerializer

    queue = rq_queue(item.spec.queue, app)
    job_id = rq_job_id(item.job_id) if item.job_id else None
    if job_id:
        try:
            existing = Job.fetch(job_id, connection=queue.connection, serializer=JSONSerializer)
            if existing.get_status(refresh=False) in ACTIVE_STATUSES:
                log.info("job %s already %s; not enqueued twice", job_id, existing.get_status())
                return existing
        except NoSuchJobError:
            pass
    retry = (
        Retry(max=item.spec.retries, interval=[10, 60, 300][: max(item.spec.retries, 1)]) if item.spec.retries else None
    )
    return queue.enqueue(
        item.spec.path,
        args=item.args,
        kwargs=item.kwargs,
        job_id=job_id,
        job_timeout=item.spec.timeout,
        retry=retry,
        result_ttl=86400,
        failure_ttl=7 * 86400,
    )


def run_worker(app: Flask, queues: list[str] | None = None, burst: bool = False) -> bool:
    """Run an RQ worker (with the scheduler for enqueue_at/retries) on the named queues, highest first."""
    from rq import Worker
    from rq.serializers import JSONSerializer

    names = queues or list(QUEUES)
    worker = Worker([rq_queue(n, app) for n in names], connection=redis_connection(app), serializer=JSONSerializer)
    return worker.work(burst=burst, with_scheduler=True)


def due_slot(cron: str, now: datetime) -> datetime:
    """The most recent instant at or before `now` matched by `cron` (UTC)."""
    from croniter import croniter

    itr = croniter(cron, now.astimezone(UTC).replace(tzinfo=None) + timedelta(seconds=1))
    return itr.get_prev(datetime).replace(tzinfo=UTC)


def periodic_tick(app: Flask, now: datetime, table: list[Periodic] | None = None) -> list[str]:
    """Enqueue every periodic job whose latest slot has not been enqueued yet. Returns the job ids queued.

    A slot is claimed with SET NX in Redis, so several cron processes never double a run; a slot missed
    while no cron process was running is caught up once, at the next tick (older missed slots collapse
    into that one run: periodic jobs rebuild state, they do not count occurrences).
    """
    redis = redis_connection(app)
    queued = []
    for periodic in PERIODIC_JOBS if table is None else table:
        slot = due_slot(periodic.cron, now)
        name = periodic.path.rsplit(".", 1)[-1]
        last_key = f"ar:periodic:{name}:last"
        last = redis.get(last_key)
        if last is not None and float(last) >= slot.timestamp():
            continue
        if not redis.set(f"ar:periodic:{name}:{int(slot.timestamp())}", "1", nx=True, ex=8 * 86400):
            continue
        spec = REGISTRY[periodic.path]
        job_id = f"periodic:{name}:{slot:%Y%m%dT%H%M}"
        _to_rq(app, PendingJob(spec, (), dict(periodic.kwargs), job_id))
        redis.set(last_key, slot.timestamp())
        queued.append(rq_job_id(job_id))
    return queued


def run_cron(app: Flask, interval: float = 30.0) -> None:
    """The platform's periodic-job clock: tick every `interval` seconds (run one or more per deployment)."""
    import time

    for periodic in PERIODIC_JOBS:
        _resolve(periodic.path)  # fail at start-up, not at 2 a.m., if a path is wrong
    log.info("cron: %d periodic jobs", len(PERIODIC_JOBS))
    while True:
        queued = periodic_tick(app, datetime.now(UTC))
        if queued:
            log.info("cron: queued %s", ", ".join(queued))
        time.sleep(interval)
