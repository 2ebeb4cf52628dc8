"""Redis stopped while people start work, and Redis restarted without persistence while work waits: every
write answers (no 5xx), nothing is half-done, and once Redis is back every job runs exactly once."""

from __future__ import annotations

import contextlib
import re

import pytest

from tests.faults import work
from tests.faults.conftest import FaultWorld

pytestmark = pytest.mark.faults

PERIOD = "2026-03"


def test_work_started_while_redis_is_down_answers_and_runs_once_when_it_returns(world: FaultWorld) -> None:
    web = world.web()
    worker = world.worker()
    browser = world.session(web)
    client_id, report_client = world.seed["client_id"], world.seed["report_client_id"]

    world.redis.stop()
    writes = {
        "placement upload": lambda: work.upload_placements(
            browser, client_id, "outage-placements.csv", work.placement_file("OUT", 40)
        ),
        "payment file upload": lambda: work.upload_payments(
            browser, client_id, "outage-payments.csv", work.payment_file("OUTPAY")
        ),
        "report request": lambda: work.request_report(browser, report_client, PERIOD),
    }
    for what, write in writes.items():
        answer = write()
        assert answer.status_code == 302, f"{what} with Redis down answered {answer.status_code}"
        page = browser.get(answer.headers["Location"])  # where the work is, and that it waits
        assert page.status_code == 200, f"{what}: its page answered {page.status_code} with Redis down"
        assert re.search(r"\bstart\b.{0,80}\bback\b", page.text), f"{what}: nothing says the work starts later"

    # nothing half-done: the requests are recorded, none of their work has happened
    assert work.batch_status(world, client_id, "outage-placements.csv") == "queued"
    assert work.batch_status(world, client_id, "outage-payments.csv") == "queued"
    assert work.invoices(world, client_id, "OUT") == (0, 0)
    assert work.payments(world, client_id, "OUTPAY") == (0, 0)
    assert work.reports(world, report_client, PERIOD) == 0

    world.redis.start()  # the same port, empty: a Redis without persistence
    took = work.wait_until(
        "the three jobs done after Redis returned",
        lambda: (
            work.batch_status(world, client_id, "outage-placements.csv") not in work.UNFINISHED
            and work.batch_status(world, client_id, "outage-payments.csv") not in work.UNFINISHED
            and work.reports(world, report_client, PERIOD) == 1
        ),
        timeout=120,
    )
    assert worker.alive, "the worker exited during the Redis outage"
    assert work.batch_status(world, client_id, "outage-placements.csv") == "posted"
    assert work.batch_status(world, client_id, "outage-payments.csv") == "posted"
    assert work.invoices(world, client_id, "OUT") == (40, 40)
    assert work.payments(world, client_id, "OUTPAY") == (2, 2)
    # each job ran once: one outcome recorded per batch, one report published
    for name in ("outage-placements.csv", "outage-payments.csv"):
        batch_id = work.batch(world, client_id, name).id
        assert work.audited(world, "import.finish", client_id, str(batch_id)) == 1, name
        work.ran_once(world, f"import:{client_id}:{batch_id}")
    assert work.audited(world, "report.published", report_client) == 1
    work.ran_once(world, f"report:{report_client}:{PERIOD}")
    assert work.reports(world, report_client, PERIOD) == 1
    print(f"work done {took:.1f} s after Redis returned")


def test_a_redis_restart_without_persistence_loses_no_waiting_or_retrying_work(world: FaultWorld) -> None:
    web = world.web()
    browser = world.session(web)
    client_id, report_client = world.seed["client_id"], world.seed["report_client_id"]
    # a worker of the reports queue only: the imports wait in Redis, the report starts rendering
    reports_worker = world.worker("reports-worker", queues=("reports",))

    assert work.upload_placements(browser, client_id, "waiting.csv", work.placement_file("WAIT", 25)).status_code == 302
    assert work.upload_payments(browser, client_id, "waiting-pay.csv", work.payment_file("WAITPAY")).status_code == 302
    assert work.request_report(browser, report_client, PERIOD).status_code == 302

    # the render's work horse dies mid-job: RQ keeps the retry it schedules in Redis
    horse = work.wait_until("the report's work horse running", reports_worker.work_horses, 90, 0.01)
    (victim,) = reports_worker.work_horses()
    victim.kill()
    reports_worker.note(f"work horse {victim.pid} killed -9 after {horse:.1f} s")
    assert work.reports(world, report_client, PERIOD) == 0
    reports_worker.terminate()

    world.redis.stop()  # everything Redis held (queues, scheduled retries, started jobs) is gone
    world.redis.start()
    with contextlib.closing(world.redis.client()) as redis:
        assert redis.dbsize() == 0

    worker = world.worker()
    took = work.wait_until(
        "the waiting imports and the interrupted report done",
        lambda: (
            work.batch_status(world, client_id, "waiting.csv") not in work.UNFINISHED
            and work.batch_status(world, client_id, "waiting-pay.csv") not in work.UNFINISHED
            and work.reports(world, report_client, PERIOD) == 1
        ),
        timeout=110,
    )
    assert worker.alive
    assert work.invoices(world, client_id, "WAIT") == (25, 25)
    assert work.payments(world, client_id, "WAITPAY") == (2, 2)
    assert work.reports(world, report_client, PERIOD) == 1
    assert work.audited(world, "report.published", report_client) == 1
    for name in ("waiting.csv", "waiting-pay.csv"):  # never started before the restart: claimed once after it
        work.ran_once(world, f"import:{client_id}:{work.batch(world, client_id, name).id}")
    report_jobs = work.job_rows(world, f"report:{report_client}:{PERIOD}")
    assert [row.status for row in report_jobs] == ["succeeded"], report_jobs
    print(f"recovered {took:.1f} s after a new worker started")
