"""Background jobs: declared with @job, recorded in the job outbox in the business transaction, run at least once
and settled exactly once.

    @job(queue="imports", timeout=1800, retries=0, title="Placement file import", on_settled=batch_settled)
    def import_placements_job(batch_id: int, client_id: int) -> None: ...

    jobs.enqueue(import_placements_job, batch.id, client.id, job_id=f"import:{client.id}:{batch.id}")
    db.session.commit()          # the outbox row commits with the batch; the work is handed over after this

The database is the record of what must run (`background_jobs`, provider.core.outbox_models); Redis only
delivers it. `enqueue` adds an outbox row in the current transaction (dropped with it on rollback). After the
commit the row is handed to the job service at once when it can be; a dispatcher (in `flask worker` and
`flask cron`, provider.core.outbox) hands over whatever was not, re-sends what the job service lost and reaps
work whose worker died. A run claims its row for one attempt (`run_background_job`), so a second delivery of
the same attempt does nothing; it keeps a heartbeat while it works and settles the row in the same
transaction as its own last commit. A job that raises is retried `retries` times with a growing delay, then
ends FAILED with a reason a person can read; its `on_settled` hook puts the domain object (a batch, a run) in
the same state.

Jobs take ids, never ORM objects (arguments must be JSON). They run inside an app context with no tenant set
and commit once at the end; every job is idempotent. A job id names its work (`report:{client}:{yyyy-mm}`):
while a row with that id is waiting or running, enqueueing it again does nothing.

Modes (config JOBS_MODE, derived from REDIS_URL in provider.config):
  rq      REDIS_URL set: RQ queues; `flask worker` runs RQ workers and the dispatcher, `flask cron` the clock.
  thread  no Redis (embedded demo): a small in-process thread pool, with the dispatcher in a thread.
  eager   tests: runs in the same thread and session right after the request or job that queued it.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, current_app, g, has_app_context, has_request_context
from sqlalchemy import event, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provider.core.clock import now_utc
from provider.core.outbox_models import ACTIVE, BackgroundJob, JobStatus

log = logging.getLogger(__name__)

QUEUES = ("high", "default", "imports", "reports", "low")
RETRY_DELAYS = (10, 60, 300)  # seconds before the 1st, 2nd, 3rd+ automatic retry
HEARTBEAT_SECONDS = 10
RUN_FUNCTION = "provider.core.jobs.run_background_job"


class JobCancelled(Exception):
    """Raised inside a job at a checkpoint once somebody asked to cancel it."""


@dataclass(frozen=True)
class JobSpec:
    path: str
    queue: str
    timeout: int
    retries: int
    title: str = ""
    client_arg: int | None = None  # position of the `client_id` parameter, when the job has one
    on_settled: Callable[[Session, BackgroundJob, str], None] | None = None
    link: Callable[[BackgroundJob], tuple[str, dict[str, Any]] | None] | None = None


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
    Periodic("provider.core.outbox.purge_finished_jobs_job", "45 3 * * *"),  # forget old finished background work
    Periodic("clients.interest_jobs.accrue_charges_job", "10 1 * * *"),  # late-payment interest, caught up if missed
    Periodic("clients.interest_jobs.reconcile_trust_job", "40 3 * * *"),  # trust: bank = books = clients, per day
]

REGISTRY: dict[str, JobSpec] = {}
F = TypeVar("F", bound=Callable[..., Any])


def job(
    queue: str = "default",
    timeout: int = 600,
    retries: int = 3,
    *,
    title: str = "",
    on_settled: Callable[[Session, BackgroundJob, str], None] | None = None,
    link: Callable[[BackgroundJob], tuple[str, dict[str, Any]] | None] | None = None,
) -> Callable[[F], F]:
    """Declare a background job. Calling the function directly runs it in the current app context.

    `title` names the work for people ("Monthly report"); `on_settled(session, row, outcome)` is called when the
    work ends failed or cancelled, or is retried by hand (outcome "failed", "cancelled", "retried"), in that
    transaction and the client's tenant scope; `link(row)` gives the (endpoint, values) of the page of the thing
    the work belongs to.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; queues are {QUEUES}")

    def decorator(func: F) -> F:
        params = list(inspect.signature(func).parameters)
        spec = JobSpec(
            f"{func.__module__}.{func.__qualname__}",
            queue,
            timeout,
            retries,
            title or func.__name__.removesuffix("_job").replace("_", " ").capitalize(),
            params.index("client_id") if "client_id" in params else None,
            on_settled,
            link,
        )

        @wraps(func)
        def runner(*args: Any, **kwargs: Any) -> Any:
            if has_app_context():
                return _run_direct(func, spec, args, kwargs)
            with worker_app().app_context():
                return _run_direct(func, spec, args, kwargs)

        runner.job_spec = spec  # type: ignore[attr-defined]
        runner.__wrapped_job__ = func  # type: ignore[attr-defined]
        REGISTRY[spec.path] = spec
        return runner  # type: ignore[return-value]

    return decorator


def _run_direct(func: Callable[..., Any], spec: JobSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run the job's body now, as the system, with no tenant; one commit at the end."""
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


def spec_of(func: Callable[..., Any]) -> JobSpec:
    spec: JobSpec | None = getattr(func, "job_spec", None)
    if spec is None:
        raise TypeError(f"{func!r} is not declared with @job")
    return spec


def enqueue(func: Callable[..., Any], *args: Any, job_id: str | None = None, **kwargs: Any) -> int | None:
    """Record `func(*args, **kwargs)` in the outbox, in the current transaction (gone with it on rollback).

    Returns the outbox row's id, or None when the same named work is already waiting or running.
    """
    from provider.core.audit import current_actor
    from provider.extensions import db

    spec = spec_of(func)
    try:
        json.dumps([args, kwargs])
    except TypeError as exc:
        raise TypeError(f"job arguments must be JSON (pass ids, not objects): {exc}") from None
    session = db.session()
    client_id = kwargs.get("client_id")
    if client_id is None and spec.client_arg is not None and spec.client_arg < len(args):
        client_id = args[spec.client_arg]
    row = BackgroundJob(
        key=job_id,
        path=spec.path,
        queue=spec.queue,
        args=list(args),
        kwargs=dict(kwargs),
        client_id=client_id,
        status=JobStatus.PENDING.value,
        attempts=0,
        max_attempts=spec.retries + 1,
        timeout=spec.timeout,
        run_after=now_utc(),
        created_by=current_actor().label[:254],
    )
    if job_id is not None and _active_key(session, job_id):
        return None
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:  # the same named work was queued by a concurrent transaction a moment ago
        return None
    session.info.setdefault("pending_jobs", []).append((row.id, spec.queue, spec.timeout))
    return row.id


def _active_key(session: Session, key: str) -> bool:
    from sqlalchemy import select

    stmt = select(BackgroundJob.id).where(BackgroundJob.key == key, BackgroundJob.status.in_(ACTIVE)).limit(1)
    return session.scalar(stmt) is not None


@event.listens_for(Session, "after_commit")
def _dispatch_after_commit(session: Session) -> None:
    pending: list[tuple[int, str, int]] = session.info.pop("pending_jobs", [])
    if not pending or not has_app_context():
        return
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    mode = app.config.get("JOBS_MODE", "eager")
    if mode == "rq":
        try:
            for job_id, queue, timeout in pending:
                push_to_rq(app, job_id, 1, queue, timeout)
        except Exception as exc:  # Redis away: the dispatcher hands the rows over when it is back
            log.warning(
                "job service unavailable (%s); %d job(s) wait in the outbox", exc.__class__.__name__, len(pending)
            )
            if has_request_context():
                g.jobs_waiting_for_service = True
    elif mode == "thread":
        for job_id, _queue, _timeout in pending:
            submit_in_process(app, job_id, 1)
    else:
        ready = session.info.setdefault("ready_jobs", [])
        ready += [job_id for job_id, _q, _t in pending]


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
        job_id = session.info["ready_jobs"].pop(0)
        row = session.get(BackgroundJob, job_id)
        if row is not None:
            run_background_job(job_id, row.attempts + 1)
            ran += 1
    return ran


def resolve(path: str) -> Callable[..., Any]:
    import importlib

    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


# --- running one attempt -------------------------------------------------------------------------------


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"[:200]


_running_here: set[int] = set()  # rows this process is running now (the reaper leaves them alone)
_local = threading.local()


def run_background_job(job_id: int, attempt: int) -> str:
    """Run attempt `attempt` of outbox row `job_id` (what RQ, the thread pool and eager mode call).

    Claims the row first: when it is not waiting for this attempt (already run, running elsewhere,
    cancelled), nothing happens. The job's last commit also marks the row done.
    """
    if has_app_context():
        return _run_claimed(current_app._get_current_object(), job_id, attempt)  # type: ignore[attr-defined]
    app = worker_app()
    with app.app_context():
        return _run_claimed(app, job_id, attempt)


def _run_claimed(app: Flask, job_id: int, attempt: int) -> str:
    from provider.core import outbox
    from provider.core.audit import Actor, acting_as
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db

    if not outbox.claim(db.session(), job_id, attempt, worker_name()):
        db.session.rollback()
        return "not claimed"
    row = db.session.get_one(BackgroundJob, job_id)
    path, args, kwargs = row.path, list(row.args), dict(row.kwargs)
    func = resolve(path)
    body = getattr(func, "__wrapped_job__", func)
    beat = None
    if app.config.get("JOBS_MODE") != "eager":
        beat = outbox.Heartbeat(db.engine, job_id, app.config.get("JOB_HEARTBEAT_SECONDS", HEARTBEAT_SECONDS))
    _running_here.add(job_id)
    previous = getattr(_local, "beat", None), getattr(_local, "job_id", None)
    _local.beat, _local.job_id = beat, job_id
    try:
        with acting_as(Actor.system(f"job:{path.rsplit('.', 1)[-1]}")), scoped(TenantScope.nothing()):
            if beat:
                beat.start()
            result = body(*args, **kwargs)
            db.session.execute(
                update(BackgroundJob)
                .where(BackgroundJob.id == job_id, BackgroundJob.status == JobStatus.RUNNING.value)
                .values(
                    status=JobStatus.SUCCEEDED.value,
                    finished_at=now_utc(),
                    progress=100,
                    result=str(result)[:500] if result is not None else "",
                )
            )
            db.session.commit()
    except Exception as exc:
        with suppress(Exception):
            db.session.rollback()
        if not isinstance(exc, JobCancelled):
            log.exception("job %s (%s, attempt %d) failed", job_id, path, attempt)
        outbox.settle_failure(app, job_id, attempt, exc)
        eager = app.config.get("JOBS_MODE") == "eager"
        if eager and app.config.get("JOBS_EAGER_RAISE", True) and not isinstance(exc, JobCancelled):
            raise
        return "failed"
    finally:
        _local.beat, _local.job_id = previous
        _running_here.discard(job_id)
        if beat:
            beat.stop()
    drain()
    return "done"


def report_progress(percent: int | None = None, step: str | None = None) -> None:
    """Tell the pages how far the running job is (written with the next heartbeat, outside its transaction)."""
    beat = getattr(_local, "beat", None)
    if beat is not None:
        beat.report(percent, step)


def current_job_id() -> int | None:
    """The outbox row of the job running in this thread, if any."""
    return getattr(_local, "job_id", None)


def checkpoint() -> None:
    """Stop here (raise JobCancelled) when somebody asked to cancel the running job. With a heartbeat the flag
    comes from it (no query); in eager mode it is read from the row."""
    beat = getattr(_local, "beat", None)
    if beat is not None:
        if beat.cancel_requested.is_set():
            raise JobCancelled()
        return
    job_id = current_job_id()
    if job_id is not None:
        from sqlalchemy import select

        from provider.extensions import db

        if db.session.scalar(select(BackgroundJob.cancel_requested).where(BackgroundJob.id == job_id)):
            raise JobCancelled()


# --- in-process (thread) mode ----------------------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_submitted: set[tuple[int, int]] = set()
_submitted_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ar-job")
    return _pool


def submit_in_process(app: Flask, job_id: int, attempt: int) -> bool:
    """Thread mode: run the attempt in the pool (once per process). False when it was already submitted."""
    with _submitted_lock:
        if (job_id, attempt) in _submitted:
            return False
        _submitted.add((job_id, attempt))
    _executor().submit(_run_in_thread, app, job_id, attempt)
    return True


def _run_in_thread(app: Flask, job_id: int, attempt: int) -> None:
    try:
        with app.app_context():
            run_background_job(job_id, attempt)
    except Exception:
        log.exception("in-process job %s failed", job_id)


# --- RQ --------------------------------------------------------------------------------------------------


def redis_connection(app: Flask | None = None, blocking: bool = False) -> Any:
    """The app's Redis client. Web and dispatcher calls fail fast when Redis is away (short socket timeouts);
    `blocking=True` gives the worker's client, whose reads wait for jobs."""
    from redis import Redis

    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    name = "ar_redis_blocking" if blocking else "ar_redis"
    conn = app.extensions.get(name)
    if conn is None:
        url = app.config.get("REDIS_URL")
        if not url:
            raise RuntimeError("REDIS_URL is not set: jobs run in-process")
        options: dict[str, Any] = {"socket_connect_timeout": 2, "health_check_interval": 30}
        if not blocking:
            options["socket_timeout"] = 5
        conn = app.extensions[name] = Redis.from_url(url, **options)
    return conn


def rq_queue(name: str, app: Flask | None = None, blocking: bool = False) -> Any:
    from rq import Queue
    from rq.serializers import JSONSerializer

    return Queue(name, connection=redis_connection(app, blocking), serializer=JSONSerializer)


def rq_job_id(job_id: int, attempt: int) -> str:
    """The RQ id of one attempt of an outbox row (RQ allows letters, digits, `_` and `-`)."""
    return f"bg-{job_id}-{attempt}"


def push_to_rq(app: Flask, job_id: int, attempt: int, queue: str, timeout: int) -> Any:
    """Hand one attempt to RQ (an attempt handed twice runs once: the run claims its row)."""
    return rq_queue(queue, app).enqueue(
        RUN_FUNCTION,
        args=[job_id, attempt],
        job_id=rq_job_id(job_id, attempt),
        job_timeout=timeout + 60,
        result_ttl=86400,
        failure_ttl=7 * 86400,
    )


def due_slot(cron: str, now: datetime) -> datetime:
    """The most recent instant at or before `now` matched by `cron` (UTC)."""
    from croniter import croniter

    itr = croniter(cron, now.astimezone(UTC).replace(tzinfo=None) + timedelta(seconds=1))
    return itr.get_prev(datetime).replace(tzinfo=UTC)
