"""A worker and its work horse killed with -9 mid-report: exactly one report, made again within 90 s of a new
worker starting, and the run's page tells the truth meanwhile."""

from __future__ import annotations

import contextlib
import time

import pytest
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from tests.faults import work
from tests.faults.conftest import FaultWorld

pytestmark = pytest.mark.faults

PERIOD = "2026-03"
RECOVERY_SECONDS = 90  # issue 17: abandoned work is recovered within 90 s of a new worker starting


def _rendering(world: FaultWorld, horses: object, key: str) -> bool:
    """A work horse is alive, RQ has a job of the reports queue started (the report is the only work of that
    queue here) and the report's job has claimed its run (its row is running, with a heartbeat)."""
    if not horses:
        return False
    with contextlib.closing(world.redis.client()) as redis:
        started = StartedJobRegistry("reports", connection=redis, serializer=JSONSerializer)
        if not started.get_job_ids():
            return False
    return [row.status for row in work.job_rows(world, key)] == ["running"]


def test_a_worker_and_its_work_horse_killed_mid_report_make_exactly_one_report(world: FaultWorld) -> None:
    web = world.web()
    browser = world.session(web)
    report_client = world.seed["report_client_id"]
    first = world.worker("worker-1")

    asked = work.request_report(browser, report_client, PERIOD)
    assert asked.status_code == 302, f"report request answered {asked.status_code}"
    run_page = asked.headers["Location"]
    work.wait_until(
        "the report rendering in a work horse",
        lambda: _rendering(world, first.work_horses(), f"report:{report_client}:{PERIOD}"),
        timeout=90,
        interval=0.02,
    )
    horses = [h.pid for h in first.work_horses()]
    killed = first.kill()  # the worker AND its work horse (which RQ puts in a process group of its own)
    assert set(horses) <= set(killed), f"work horse(s) {horses} not among the killed {killed}"
    assert work.reports(world, report_client, PERIOD) == 0, "a render killed mid-way must leave no report"
    assert browser.get(run_page).status_code == 200

    second = world.worker("worker-2", ready=False)  # timed from its start
    started = time.monotonic()
    took = work.wait_until(
        "the abandoned report made by the new worker",
        lambda: work.reports(world, report_client, PERIOD) >= 1,
        timeout=RECOVERY_SECONDS,
    )
    assert took <= RECOVERY_SECONDS
    time.sleep(3)  # a second delivery of the same work would land now
    assert work.reports(world, report_client, PERIOD) == 1
    assert work.audited(world, "report.published", report_client) == 1
    found = [(row.status, row.attempts) for row in work.job_rows(world, f"report:{report_client}:{PERIOD}")]
    assert found == [("succeeded", 2)], f"the report's job rows (status, attempts): {found}"  # killed, then re-run
    page = browser.get(run_page)
    assert page.status_code == 200 and "/reports/monthly/" in page.text, "the run page does not link the report"
    assert second.alive
    print(f"report recovered {time.monotonic() - started:.1f} s after the new worker started")
