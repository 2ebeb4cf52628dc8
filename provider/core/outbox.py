"""The job outbox's moving parts: claim, heartbeat, settle, dispatch, reap, cancel and retry.

Guarantees (see provider.core.jobs for the picture):
- A row is claimed once per attempt (`UPDATE ... WHERE status IN (pending, enqueued) AND attempts = n - 1`):
  a second delivery of the same attempt, a delivery after a cancel or after the work is done, does nothing.
- A running row's heartbeat moves every HEARTBEAT_SECONDS; a row whose heartbeat is older than
  STALE_SECONDS and that no thread of this process runs is reaped: run again when it has attempts left (jobs
  are idempotent), failed with a reason otherwise.
- A failure is settled even when the database was the thing that failed: settling waits for it to come
  back (SETTLE_PATIENCE seconds), and the reaper settles what a dead worker could not.
- The dispatcher hands pending rows to RQ and re-sends rows RQ lost (a Redis restart without persistence),
  so Redis never holds the only copy of anything.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import suppress
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from provider.core import jobs
from provider.core.clock import now_utc
from provider.core.outbox_models import BackgroundJob, JobStatus, PeriodicSlot

log = logging.getLogger(__name__)

STALE_SECONDS = 45  # a running row whose heartbeat is older is abandoned (config JOB_STALE_SECONDS)
RESEND_SECONDS = 60  # a row handed to RQ this long ago that RQ no longer holds is handed again
SETTLE_PATIENCE = 300.0  # how long a failed run waits for the database to record its failure
# RQ states in which a hand-over is on its way to a worker. A row handed over a minute ago whose RQ job says
# "started" is not: a run claims its row within moments of starting, so that worker died before its claim.
ACTIVE_RQ = frozenset({"queued", "scheduled", "deferred"})
JUST_HANDED = ACTIVE_RQ | {"started"}


def claim(session: Session, job_id: int, attempt: int, worker: str) -> bool:
    """Mark the row running for this attempt and commit; False when it is not waiting for this attempt."""
    now = now_utc()
    claimed = session.execute(  # type: ignore[attr-defined]
        update(BackgroundJob)
        .where(
            BackgroundJob.id == job_id,
            BackgroundJob.status.in_((JobStatus.PENDING.value, JobStatus.ENQUEUED.value)),
            BackgroundJob.attempts == attempt - 1,
            BackgroundJob.cancel_requested.is_(False),
        )
        .values(
            status=JobStatus.RUNNING.value,
            attempts=attempt,
            started_at=now,
            heartbeat_at=now,
            worker=worker,
            progress=None,
            step="",
        )
    ).rowcount
    session.commit()
    return bool(claimed)


class Heartbeat:
    """Moves a running row's heartbeat (and progress) from a thread of its own, on a connection of its own,
    and notices a cancel request. Best effort: a failed beat is logged and tried again at the next one."""

    def __init__(self, engine: Engine, job_id: int, every: float = jobs.HEARTBEAT_SECONDS) -> None:
        self.engine, self.job_id, self.every = engine, job_id, every
        self.cancel_requested = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._progress: int | None = None
        self._step: str | None = None
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def report(self, percent: int | None, step: str | None) -> None:
        if percent is not None:
            self._progress = max(0, min(int(percent), 99))
        if step is not None and step[:200] != self._step:
            self._step = step[:200]
            self._wake.set()  # a new step shows at once (written by this thread, never the job's)

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.every)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.beat()
            except Exception as exc:  # the database may be away: the reaper decides, not this thread
                log.warning("job %s: heartbeat not written (%s)", self.job_id, exc.__class__.__name__)

    def beat(self) -> None:
        """PostgreSQL: move the heartbeat and the progress, read the cancel flag. SQLite only reads the flag: a
        write from another connection would make the job's own transaction fail to upgrade from reading to
        writing (SQLITE_BUSY_SNAPSHOT); there the reaper asks the operating system whether the worker lives
        (an SQLite database never has workers on another host)."""
        values: dict[str, Any] = {"heartbeat_at": now_utc()}
        if self._progress is not None:
            values["progress"] = self._progress
        if self._step is not None:
            values["step"] = self._step
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL lock_timeout = '2s'"))
                conn.execute(
                    update(BackgroundJob)
                    .where(BackgroundJob.id == self.job_id, BackgroundJob.status == JobStatus.RUNNING.value)
                    .values(**values)
                )
            wanted = conn.scalar(select(BackgroundJob.cancel_requested).where(BackgroundJob.id == self.job_id))
            conn.commit()
        if wanted:
            self.cancel_requested.set()


def reason_for(exc: BaseException) -> str:
    """What a person reads when a run failed (never a class name or a traceback: those go to the log)."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    from provider.core.errors import ServiceError

    if isinstance(exc, jobs.JobCancelled):
        return "Cancelled while it was running. Nothing it was doing was saved."
    if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
        return (
            "The database could not be reached while this was running, so nothing it was doing was saved. "
            "Retry it once the database is available again."
        )
    if isinstance(exc, RedisConnectionError | RedisTimeoutError):
        return "The job service could not be reached while this was running. Nothing it was doing was saved."
    if isinstance(exc, ServiceError):
        return str(exc)
    return (
        "An unexpected error stopped this work, so nothing it was doing was saved. The technical details are in "
        "the worker's log; retry it, and tell the platform team if it fails again."
    )


def settle_failure(app: Flask, job_id: int, attempt: int, exc: BaseException) -> None:
    """Record a failed attempt: run again later when attempts are left (not after a cancel), failed otherwise.

    Waits up to SETTLE_PATIENCE for the database (it may be what failed); gives up to the reaper after that.
    """
    from provider.extensions import db

    deadline = time.monotonic() + (0 if app.config.get("JOBS_MODE") == "eager" else SETTLE_PATIENCE)
    delay = 1.0
    while True:
        try:
            _settle(db.session(), job_id, attempt, exc)
            db.session.commit()
            return
        except (OperationalError, DBAPIError) as db_exc:
            db.session.rollback()
            if time.monotonic() >= deadline:
                log.error("job %s: failure not recorded (%s); the reaper will", job_id, db_exc.__class__.__name__)
                return
            time.sleep(delay)
            delay = min(delay * 2, 15.0)
            db.session.remove()


def _settle(session: Session, job_id: int, attempt: int, exc: BaseException) -> None:
    row = session.get(BackgroundJob, job_id, with_for_update=True, populate_existing=True)
    if row is None or row.status != JobStatus.RUNNING.value or row.attempts != attempt:
        return  # reaped or cancelled meanwhile
    cancelled = isinstance(exc, jobs.JobCancelled) or row.cancel_requested
    if not cancelled and row.attempts < row.max_attempts:
        delay = jobs.RETRY_DELAYS[min(row.attempts - 1, len(jobs.RETRY_DELAYS) - 1)]
        row.status = JobStatus.PENDING.value
        row.run_after = now_utc() + timedelta(seconds=delay)
        row.error = f"{reason_for(exc)} It will be tried again automatically (attempt {row.attempts + 1} of "
        row.error += f"{row.max_attempts})."
        return
    end(session, row, JobStatus.CANCELLED if cancelled else JobStatus.FAILED, reason_for(exc))


def end(session: Session, row: BackgroundJob, status: JobStatus, reason: str) -> None:
    """Settle a row failed or cancelled, and tell the domain object it belongs to (the job's on_settled)."""
    row.status = status.value
    row.error = reason
    row.finished_at = now_utc()
    row.cancel_requested = False
    _notify(session, row, "failed" if status is JobStatus.FAILED else "cancelled")


def _notify(session: Session, row: BackgroundJob, outcome: str) -> None:
    from provider.core.tenancy import TenantScope, scoped

    spec = jobs.REGISTRY.get(row.path)
    if spec is None:
        try:
            jobs.resolve(row.path)
            spec = jobs.REGISTRY.get(row.path)
        except (ImportError, AttributeError):
            spec = None
    if spec is None or spec.on_settled is None:
        return
    scope = TenantScope.single(row.client_id) if row.client_id else TenantScope.agency()
    with scoped(scope, session):
        spec.on_settled(session, row, outcome)
        session.flush()


# --- the dispatcher and the reaper ------------------------------------------------------------------------


def reap(session: Session, stale_seconds: int | None = None) -> int:
    """Abandoned work (heartbeat older than STALE_SECONDS, not run by this process): run again or fail."""
    if stale_seconds is None:
        from flask import current_app, has_app_context

        stale_seconds = (
            current_app.config.get("JOB_STALE_SECONDS", STALE_SECONDS) if has_app_context() else STALE_SECONDS
        )
    cutoff = now_utc() - timedelta(seconds=stale_seconds)
    rows = session.scalars(
        select(BackgroundJob)
        .where(BackgroundJob.status == JobStatus.RUNNING.value, BackgroundJob.heartbeat_at < cutoff)
        .order_by(BackgroundJob.id)
        .limit(200)
        .with_for_update(skip_locked=True)
    ).all()
    reaped = 0
    sqlite = session.get_bind().dialect.name == "sqlite"
    for row in rows:
        if row.id in jobs._running_here or (sqlite and worker_alive(row.worker)):
            continue
        reaped += 1
        stopped = "The worker running this stopped without finishing (it may have been restarted or run out of memory)."
        if row.cancel_requested:
            end(session, row, JobStatus.CANCELLED, "Cancelled. The worker stopped before it finished.")
        elif row.attempts < row.max_attempts:
            row.status = JobStatus.PENDING.value
            row.run_after = now_utc()
            row.error = (
                f"{stopped} It was started again automatically (attempt {row.attempts + 1} of {row.max_attempts})."
            )
        else:
            end(session, row, JobStatus.FAILED, f"{stopped} Nothing it was doing was saved; retry it.")
        log.warning("reaped job %s (%s): %s", row.id, row.path, row.status)
    session.commit()
    return reaped


def worker_alive(worker: str) -> bool:
    """Whether the process named in a row's `worker` ("host:pid:thread") still runs on this host. Only meaningful
    on SQLite, whose workers all run on the machine that holds the database file."""
    import os
    import socket

    host, _, rest = worker.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(int(pid_text))


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def dispatch(app: Flask, session: Session, limit: int = 500) -> int:
    """Hand waiting rows to the job service (RQ, or this process's threads); re-send what it lost."""
    now = now_utc()
    mode = app.config.get("JOBS_MODE")
    due = session.scalars(
        select(BackgroundJob)
        .where(BackgroundJob.status == JobStatus.PENDING.value, BackgroundJob.run_after <= now)
        .order_by(BackgroundJob.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    resend_before = now - timedelta(seconds=RESEND_SECONDS)
    waiting = session.scalars(
        select(BackgroundJob)
        .where(BackgroundJob.status == JobStatus.ENQUEUED.value, BackgroundJob.enqueued_at < resend_before)
        .order_by(BackgroundJob.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    sent = 0
    try:
        for row in due:
            sent += _hand_over(app, mode, row, JUST_HANDED)  # False: handed over after its commit already
            row.status, row.enqueued_at = JobStatus.ENQUEUED.value, now
        for row in waiting:
            if _hand_over(app, mode, row, ACTIVE_RQ):
                sent += 1
            row.enqueued_at = now
    finally:
        session.commit()
    return sent


def _hand_over(app: Flask, mode: str | None, row: BackgroundJob, holding: frozenset[str]) -> bool:
    """Give the row's next attempt to the job service unless RQ holds it in one of the `holding` states. True when
    handed now."""
    attempt = row.attempts + 1
    if mode == "thread":
        return jobs.submit_in_process(app, row.id, attempt)
    if mode != "rq":
        return False
    if _rq_status(app, jobs.rq_job_id(row.id, attempt)) in holding:
        return False
    jobs.push_to_rq(app, row.id, attempt, row.queue, row.timeout)
    return True


def _rq_status(app: Flask, rq_id: str) -> str | None:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job
    from rq.serializers import JSONSerializer

    try:
        status = Job.fetch(rq_id, connection=jobs.redis_connection(app), serializer=JSONSerializer).get_status()
        return str(getattr(status, "value", status))
    except NoSuchJobError:
        return None


def maintain(app: Flask) -> dict[str, int]:
    """One pass of the reaper and the dispatcher (what worker and cron processes run every few seconds)."""
    from provider.extensions import db

    try:
        reaped = reap(db.session())
        sent = dispatch(app, db.session())
        return {"reaped": reaped, "sent": sent}
    except Exception:
        db.session.rollback()
        raise
    finally:
        db.session.remove()


def run_maintenance_loop(app: Flask, stop: threading.Event, every: float = 5.0) -> None:
    """Reap and dispatch until `stop` is set; an outage of Redis or the database is logged and waited out."""
    failures = 0
    while not stop.is_set():
        try:
            with app.app_context():
                maintain(app)
            failures = 0
        except Exception as exc:
            failures += 1
            if failures in (1, 10) or failures % 60 == 0:
                log.warning("job dispatcher: %s (%s); trying again", exc.__class__.__name__, str(exc)[:200])
        stop.wait(every if failures == 0 else min(every * (2 ** min(failures, 3)), 30.0))


def start_maintenance_thread(app: Flask, every: float = 5.0) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=run_maintenance_loop, args=(app, stop, every), name="job-dispatcher", daemon=True).start()
    return stop


# --- what people do: cancel and retry ----------------------------------------------------------------------


class NotPossible(ValueError):
    """A cancel or retry that does not apply to the work in its present state (the message says why)."""


def cancel(session: Session, row: BackgroundJob) -> str:
    """Cancel waiting work at once, or ask running work to stop at its next checkpoint. Idempotent."""
    from provider.core import audit

    if row.status == JobStatus.CANCELLED.value or (row.status == JobStatus.RUNNING.value and row.cancel_requested):
        return "already cancelled"
    if row.status in (JobStatus.PENDING.value, JobStatus.ENQUEUED.value):
        end(session, row, JobStatus.CANCELLED, "Cancelled before it started.")
        outcome = "cancelled"
    elif row.status == JobStatus.RUNNING.value:
        row.cancel_requested = True
        outcome = "stopping"
    else:
        raise NotPossible("This work has already finished; there is nothing to cancel.")
    audit.record(session, "job.cancel", row, client_id=row.client_id, after={"outcome": outcome})
    session.flush()
    return outcome


def retry(session: Session, row: BackgroundJob) -> str:
    """Run failed or cancelled work again, as a new attempt of the same row. Idempotent while it waits."""
    from provider.core import audit

    if row.status in (JobStatus.PENDING.value, JobStatus.ENQUEUED.value, JobStatus.RUNNING.value):
        return "already waiting"
    if row.status == JobStatus.SUCCEEDED.value:
        raise NotPossible("This work finished successfully; there is nothing to retry.")
    if row.key and jobs._active_key(session, row.key):
        raise NotPossible("The same work is already waiting or running.")
    row.status = JobStatus.PENDING.value
    row.max_attempts = row.attempts + 1
    row.run_after = now_utc()
    row.error = ""
    row.finished_at = None
    row.progress = None
    row.step = ""
    row.cancel_requested = False
    _notify(session, row, "retried")
    audit.record(session, "job.retry", row, client_id=row.client_id, after={"attempt": row.attempts + 1})
    session.flush()
    session.info.setdefault("pending_jobs", []).append((row.id, row.queue, row.timeout))
    return "queued"


KEEP_DONE_DAYS = 30  # succeeded and cancelled work stays listed this long
KEEP_FAILED_DAYS = 90  # failed work longer: somebody may still want to know why


@jobs.job(queue="low", timeout=600, retries=1, title="Background work upkeep")
def purge_finished_jobs_job() -> int:
    """Nightly: forget finished work (done or cancelled after KEEP_DONE_DAYS, failed after KEEP_FAILED_DAYS), so the
    outbox stays the size of what is recent. Audit events of retries and cancels are kept."""
    from sqlalchemy import delete, or_

    from provider.extensions import db

    now = now_utc()
    done = BackgroundJob.status.in_((JobStatus.SUCCEEDED.value, JobStatus.CANCELLED.value))
    result = db.session.execute(
        delete(BackgroundJob).where(
            or_(
                done & (BackgroundJob.finished_at < now - timedelta(days=KEEP_DONE_DAYS)),
                (BackgroundJob.status == JobStatus.FAILED.value)
                & (BackgroundJob.finished_at < now - timedelta(days=KEEP_FAILED_DAYS)),
            )
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def latest_for(session: Session, key: str) -> BackgroundJob | None:
    """The newest outbox row of a named piece of work (`import:3:17`)."""
    return session.scalars(
        select(BackgroundJob).where(BackgroundJob.key == key).order_by(BackgroundJob.id.desc()).limit(1)
    ).first()


# --- the periodic clock -------------------------------------------------------------------------------------


def periodic_tick(app: Flask, now: Any, table: list[jobs.Periodic] | None = None) -> list[str]:
    """Queue (in the outbox) every periodic job whose latest slot has not been queued yet; returns their keys.

    A slot is claimed by moving `periodic_slots.last_slot` forward in the transaction that writes the job's
    outbox row, so several cron processes never double a run and a Redis restart forgets nothing; a slot
    missed while no cron process ran is caught up once, at the next tick (older missed slots collapse into
    that one run: periodic jobs rebuild state, they do not count occurrences).
    """
    from provider.extensions import db

    session = db.session
    queued = []
    for periodic in jobs.PERIODIC_JOBS if table is None else table:
        slot = jobs.due_slot(periodic.cron, now)
        name = periodic.path.rsplit(".", 1)[-1]
        try:
            mark = session.get(PeriodicSlot, name, with_for_update=True, populate_existing=True)
            if mark is not None and mark.last_slot >= slot:
                session.rollback()
                continue
            if mark is None:
                session.add(PeriodicSlot(name=name, last_slot=slot))
            else:
                mark.last_slot = slot
            key = f"periodic:{name}:{slot:%Y%m%dT%H%M}"
            jobs.enqueue(jobs.resolve(periodic.path), job_id=key, **periodic.kwargs)
            session.commit()
            queued.append(key)
        except IntegrityError:  # another cron process claimed the slot a moment ago
            session.rollback()
    return queued


def run_cron(app: Flask, interval: float = 10.0, stop: threading.Event | None = None) -> None:
    """The platform's clock: periodic jobs, reaping and dispatching every `interval` seconds. It never exits on
    an outage of Redis or the database: it logs, backs off and carries on."""
    from provider.extensions import db

    for periodic in jobs.PERIODIC_JOBS:
        jobs.resolve(periodic.path)  # fail at start-up, not at 2 a.m., if a path is wrong
    log.info("cron: %d periodic jobs", len(jobs.PERIODIC_JOBS))
    stop = stop or threading.Event()
    failures = 0
    while not stop.is_set():
        try:
            with app.app_context():
                try:
                    queued = periodic_tick(app, now_utc())
                    if queued:
                        log.info("cron: queued %s", ", ".join(queued))
                finally:
                    db.session.remove()
                maintain(app)
            if failures:
                log.info("cron: services reachable again")
            failures = 0
        except Exception as exc:
            failures += 1
            log.warning("cron: %s (%s); trying again", exc.__class__.__name__, str(exc)[:200])
        stop.wait(interval if failures == 0 else min(interval * 2 ** min(failures, 3), 60.0))


def _fork_dispatcher(app: Flask) -> int:
    """Run the reaper and dispatcher in a child process of the worker, forked before anything starts a thread.

    Not a thread of the worker: RQ forks a work horse per job, and a fork taken while another thread holds a lock
    (SQLAlchemy's mapper configuration, logging) leaves the horse waiting on that lock forever. The child dies with
    its parent (Linux `PR_SET_PDEATHSIG`), so a `kill -9` of the worker leaves no dispatcher behind.
    """
    import os
    import signal

    pid = os.fork()
    if pid:
        return pid
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    try:
        run_maintenance_loop(app, threading.Event())
    finally:
        os._exit(0)


def run_worker(app: Flask, queues: list[str] | None = None, burst: bool = False) -> bool:
    """An RQ worker on the named queues (highest first), with the dispatcher and reaper in a child process. It waits out
    a Redis outage (reconnecting with backoff) instead of exiting. `burst` hands over what is waiting, runs it
    and returns."""
    import os
    import signal

    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from rq import Worker
    from rq.serializers import JSONSerializer

    names = queues or list(jobs.QUEUES)
    child = None
    if burst:
        with app.app_context():
            maintain(app)
    else:
        child = _fork_dispatcher(app)
    delay = 1.0
    try:
        while True:
            try:
                worker = Worker(
                    [jobs.rq_queue(n, app, blocking=True) for n in names],
                    connection=jobs.redis_connection(app, blocking=True),
                    serializer=JSONSerializer,
                )
                result: bool = worker.work(burst=burst)
                if burst or worker._stop_requested or getattr(worker, "_shutdown_requested_date", None):
                    return result  # asked to stop (SIGTERM / Ctrl+C)
                # RQ's loop quits on an error it does not handle (Redis gone mid-heartbeat): start again
                log.warning("worker: stopped unexpectedly; starting again in %.0f s", delay)
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
            except (RedisConnectionError, RedisTimeoutError, ConnectionError) as exc:
                log.warning("worker: job service unreachable (%s); retrying in %.0f s", exc.__class__.__name__, delay)
                if burst:
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
    finally:
        if child:
            with suppress(ProcessLookupError, ChildProcessError):
                # nothing to finish gracefully (its transactions roll back), and a Python handler could wait out
                # SQLite's busy timeout before it ran
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
