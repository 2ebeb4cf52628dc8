"""A worker started while work waits for it runs that work. Its first work horse is forked at once, while the
worker's dispatcher makes its first pass: a dispatcher thread holding SQLAlchemy's mapper lock at that moment
left the horse waiting forever (found by this test, about 1 run in 4; the dispatcher now runs in a process of
its own, forked before any thread starts)."""

from __future__ import annotations

import pytest

from tests.faults import work
from tests.faults.conftest import FaultWorld

pytestmark = pytest.mark.faults

PERIOD = "2026-03"


def test_a_worker_started_while_work_waits_runs_it(world: FaultWorld) -> None:
    web = world.web()
    browser = world.session(web)
    client_id, report_client = world.seed["client_id"], world.seed["report_client_id"]
    assert work.upload_payments(browser, client_id, "early.csv", work.payment_file("EARLY")).status_code == 302
    assert work.request_report(browser, report_client, PERIOD).status_code == 302

    worker = world.worker(ready=False)  # the work is in Redis already: the first horse is forked at once
    work.wait_until(
        "the waiting work done by the new worker",
        lambda: (
            work.batch_status(world, client_id, "early.csv") not in work.UNFINISHED
            and work.reports(world, report_client, PERIOD) == 1
        ),
        timeout=60,
    )
    assert worker.alive
    assert work.payments(world, client_id, "EARLY") == (2, 2)
