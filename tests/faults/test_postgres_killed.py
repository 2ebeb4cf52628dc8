"""PostgreSQL killed (-9) in the middle of a large placement import and kept down 30 s: the batch ends failed
with a reason a person can read and a Retry; nothing partial is posted; Retry posts exactly one copy of
each row. The worker lives through the outage."""

from __future__ import annotations

import re
import time

import pytest

from tests.faults import work
from tests.faults.conftest import FaultWorld

pytestmark = pytest.mark.faults

ROWS = 60_000
DOWN_SECONDS = 30
FILENAME = "big-placements.csv"
_RETRY_FORM = re.compile(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(?:(?!</form>).)*?\bRetry\b", re.S | re.I)


def test_postgres_killed_mid_import_fails_the_batch_with_a_retry_that_posts_each_row_once(world: FaultWorld) -> None:
    web = world.web()
    worker = world.worker()
    browser = world.session(web)
    client_id = world.seed["client_id"]

    uploaded = work.upload_placements(browser, client_id, FILENAME, work.placement_file("BIG", ROWS, debtors=500))
    assert uploaded.status_code == 302, f"upload answered {uploaded.status_code}"
    batch_page = uploaded.headers["Location"]

    def importing() -> bool:
        row = work.batch(world, client_id, FILENAME)
        return row is not None and row.status == "running" and row.processed_rows > 0

    work.wait_until("the import running", importing, timeout=90, interval=0.05)
    world.pg.kill()
    time.sleep(DOWN_SECONDS)
    assert worker.alive, "the worker exited while PostgreSQL was down"
    world.pg.start()

    work.wait_until(
        "the interrupted batch ended (failed)",
        lambda: work.batch_status(world, client_id, FILENAME) not in work.UNFINISHED,
        timeout=100,
    )
    assert work.batch_status(world, client_id, FILENAME) not in ("posted", "partial"), "the batch claims it posted"
    assert work.invoices(world, client_id, "BIG") == (0, 0), "an interrupted import left rows behind"
    page = browser.get(batch_page)
    assert page.status_code == 200
    text = page.text
    assert re.search(r"\bfailed\b", text, re.I), "the batch page does not say the import failed"
    for leak in ("OperationalError", "psycopg", "Traceback", "sqlalchemy"):
        assert leak not in text, f"the batch page shows {leak!r} instead of a reason in words"
    form = _RETRY_FORM.search(text)
    assert form, "the failed batch's page has no Retry button"
    assert worker.alive

    retried = browser.post_form(form.group(1).replace("&amp;", "&"), {}, form_page=batch_page)
    assert retried.status_code in (302, 303), f"Retry answered {retried.status_code}"
    work.wait_until(
        "the retried import posted",
        lambda: work.batch_status(world, client_id, FILENAME) not in work.UNFINISHED,
        timeout=120,
    )
    assert work.batch_status(world, client_id, FILENAME) == "posted"
    assert work.invoices(world, client_id, "BIG") == (ROWS, ROWS)  # every number once, none twice
    batch_id = work.batch(world, client_id, FILENAME).id
    assert work.audited(world, "import.finish", client_id, str(batch_id)) == 1
    assert "succeeded" in [row.status for row in work.job_rows(world, f"import:{client_id}:{batch_id}")]
