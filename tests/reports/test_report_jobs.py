"""Report jobs on real Redis with real worker processes: a worker killed mid-render leaves nothing, and
the retry stores exactly one report; the schedule queues each client once, on its Nth business day."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pypdf import PdfReader
from sqlalchemy import func, select

from provider.core import jobs
from provider.core.clock import frozen_time
from provider.core.outbox_models import BackgroundJob
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.reporting import jobs as report_jobs
from provider.reporting.models import MonthlyReport, ReportRun
from tests.redis_server import private_redis
from tests.reports.ledger_world import march_world

ROOT = Path(__file__).resolve().parents[2]
# a Redis database of its own (the generic job tests flush 13, 14, ... while they run)
REDIS_URL = f"redis://127.0.0.1:6379/{12 - int(os.environ.get('PYTEST_XDIST_WORKER', 'gw0')[2:] or 0)}"


def _reports(client_id: int) -> int:
    db.session.remove()
    with scoped(TenantScope.agency(), db.session):
        count = db.session.scalar(select(func.count()).where(MonthlyReport.client_id == client_id))
    db.session.remove()
    return int(count or 0)


def _worker(environ: dict[str, str], burst: bool, log: Path | None = None) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "-q", "reports"] + (["--burst"] if burst else [])
    out = log.open("a") if log else None  # a file: a stray work horse cannot hold a pipe open
    try:
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **environ},
            stdout=out or subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group (RQ's work horses make groups of their own)
        )
    finally:
        if out:
            out.close()  # the child has its own copy


def _stop(worker: subprocess.Popen[str], log: Path) -> None:
    """Ask the worker to stop (SIGTERM: it finishes the job in hand); after 20 s, kill it and its work horses."""
    import psutil

    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=20)
        return
    except subprocess.TimeoutExpired:
        print("the worker did not stop within 20 s of SIGTERM:\n" + log.read_text()[-3000:])
    for child in psutil.Process(worker.pid).children(recursive=True):
        child.kill()
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)


def _job_row(job_id: int) -> BackgroundJob:
    """The outbox row as another reader sees it now (a GET-like read: it never waits for the writer's lock)."""
    url = db.engine.url
    with sqlite3.connect(url.database or "") as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute("SELECT status, attempts, worker, error FROM background_jobs WHERE id = ?", (job_id,))
        row = found.fetchone()
    assert row is not None
    return BackgroundJob(status=row["status"], attempts=row["attempts"], worker=row["worker"], error=row["error"])


def test_kill_9_mid_render_leaves_no_report_and_a_new_worker_makes_exactly_one(tmp_path: Any) -> None:
    """The worker and its work horse are killed mid-render: no report, the outbox row stays running; a new worker's
    reaper finds it abandoned (on SQLite: its process is gone; on PostgreSQL its heartbeat stops) and renders it
    once."""
    with private_redis(tmp_path) as redis_url:
        _kill_9_mid_render(tmp_path, redis_url)


def _kill_9_mid_render(tmp_path: Any, redis_url: str) -> None:
    from flask_migrate import upgrade

    from provider.app import create_app

    environ = {
        "AR_ENV": "testing",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'reports.db'}",
        "REDIS_URL": redis_url,
        "JOB_HEARTBEAT_SECONDS": "1",
        "JOB_STALE_SECONDS": "3",
    }
    app = create_app(environ)
    with app.app_context():
        upgrade()
        with scoped(TenantScope.agency(), db.session):
            client_id = march_world().client.id
            job_id = jobs.enqueue(
                report_jobs.render_report_job, client_id, "2026-03", None, job_id=f"report:{client_id}:2026-03"
            )
            db.session.commit()
        db.session.remove()
        assert job_id is not None

        log = tmp_path / "workers.log"
        worker = _worker(environ, burst=False, log=log)
        deadline = time.monotonic() + 90
        while _job_row(job_id).status != "running":  # claimed: the render starts now (it takes a second or more)
            assert worker.poll() is None, log.read_text()[-3000:]
            if time.monotonic() > deadline:
                os.killpg(worker.pid, signal.SIGKILL)
                raise AssertionError(f"the worker never started rendering\n{log.read_text()[-3000:]}")
            time.sleep(0.01)
        horse = int(_job_row(job_id).worker.split(":")[1])  # RQ's work horse runs in a process group of its own
        os.kill(horse, signal.SIGKILL)  # the work horse and the worker (with its dispatcher), mid-render
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

        assert _reports(client_id) == 0, "a killed render must leave no report"
        row = _job_row(job_id)
        assert (row.status, row.attempts) == ("running", 1)

        started = time.monotonic()
        again = _worker(environ, burst=False, log=log)
        try:
            while _job_row(job_id).status != "succeeded":
                assert again.poll() is None, log.read_text()[-3000:]
                if time.monotonic() - started > 90:
                    raise AssertionError(
                        f"not recovered within 90 s: {_job_row(job_id).status}\n{log.read_text()[-3000:]}"
                    )
                time.sleep(0.2)
        finally:
            _stop(again, log)
        row = _job_row(job_id)
        assert row.attempts == 2 and "stopped without finishing" in row.error
        assert _reports(client_id) == 1
        with scoped(TenantScope.agency(), db.session):
            report = db.session.scalar(select(MonthlyReport).where(MonthlyReport.client_id == client_id))
            assert report is not None and report.version == 1
            assert len(PdfReader(io.BytesIO(report.pdf)).pages) == report.pdf_pages >= 1
            # running the job again (a duplicate delivery) changes nothing
            assert report_jobs.render_report_job(client_id, "2026-03").endswith("existed")
        assert _reports(client_id) == 1
        # and a late second delivery of the first attempt finds nothing to claim
        assert jobs.run_background_job(job_id, 1) == "not claimed"
        db.session.remove()


def test_schedule_queues_each_due_client_once_on_its_nth_business_day(db_session: Any) -> None:
    w = march_world(country="DE", timezone="Europe/Berlin")
    # April 2026 in Germany: 1 Wed, 2 Thu, (3 Good Friday, 6 Easter Monday), 7 Tue, 8 Wed, 9 Thu: the 5th is the 9th
    with frozen_time(datetime(2026, 4, 8, 12, tzinfo=UTC)):
        assert report_jobs.schedule_reports_job() == []
    with frozen_time(datetime(2026, 4, 9, 12, tzinfo=UTC)):
        queued = report_jobs.schedule_reports_job()
    assert f"report:{w.client.id}:2026-03" in queued
    jobs.drain()  # eager mode: the render jobs run once the scheduling job has committed
    with scoped(TenantScope.agency(), db.session):
        assert _count(w.client.id) == 1
        run = db.session.scalars(select(ReportRun).order_by(ReportRun.id.desc())).first()
        assert run is not None and run.period == "2026-03" and w.client.id in run.client_ids
    with frozen_time(datetime(2026, 4, 10, 12, tzinfo=UTC)):
        assert f"report:{w.client.id}:2026-03" not in report_jobs.schedule_reports_job()  # never doubled
    assert date(2026, 4, 9).weekday() == 3


def _count(client_id: int) -> int:
    return int(db.session.scalar(select(func.count()).where(MonthlyReport.client_id == client_id)) or 0)
