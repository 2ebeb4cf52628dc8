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
    """A periodic job: `cron` in the server's UTC time. Declared once in PERIODIC_JOBS."""

    path: str
    cron: str
    queue: str = "low"
    kwargs: dict[str, Any] = field(default_factory=dict)


# Every periodic job of the platform, in one table (domain packages append at import time).
PERIODIC_JOBS: list[Periodic] = []

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
            session.info.setdefault("ready_jobs", []).append(item)


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


def run_cron(app: Flask) -> None:
    """Run RQ's cron scheduler over PERIODIC_JOBS (one per deployment)."""
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=redis_connection(app))
    for periodic in PERIODIC_JOBS:
        scheduler.register(_resolve(periodic.path), periodic.queue, kwargs=periodic.kwargs, cron=periodic.cron)
    scheduler.start()
