"""The work the fault scenarios start as a person would (files uploaded, a report requested) and what they
count afterwards, read from the database as the superuser."""

from __future__ import annotations

import time
from typing import Any

import requests

from tests.faults import services as svc
from tests.faults.conftest import FaultWorld

PLACEMENT_HEADER = "invoice_number,debtor_ref,debtor_name,issue_date,due_date,amount,currency,po_reference\n"
PAYMENT_HEADER = "payment_ref,debtor_ref,received_on,amount,currency,method,received_by,reference\n"
UNFINISHED = ("queued", "running")


def placement_file(prefix: str, rows: int, debtors: int = 50) -> bytes:
    """`rows` invoices numbered `{prefix}-000001`..., spread over `debtors` debtors (created by the import)."""
    lines = [PLACEMENT_HEADER]
    for n in range(1, rows + 1):
        d = n % debtors
        lines.append(
            f"{prefix}-{n:06d},{prefix}-D{d:04d},Debtor {prefix} {d},2026-01-05,2026-02-04,{n % 900 + 10}.25,EUR,\n"
        )
    return "".join(lines).encode()


def payment_file(prefix: str) -> bytes:
    """Two payments of the seeded debtors D-1 and D-2."""
    return (
        PAYMENT_HEADER
        + f"{prefix}-1,D-1,2026-03-10,40.00,EUR,,,paying OPEN-2\n"
        + f"{prefix}-2,D-2,2026-03-11,25.00,EUR,Card,,\n"
    ).encode()


def upload_placements(browser: svc.WebSession, client_id: int, name: str, content: bytes) -> requests.Response:
    return browser.upload(f"/clients/{client_id}/imports", name, content)


def upload_payments(browser: svc.WebSession, client_id: int, name: str, content: bytes) -> requests.Response:
    return browser.upload(f"/clients/{client_id}/payments/imports", name, content, received_by="agency")


def request_report(browser: svc.WebSession, client_id: int, period: str) -> requests.Response:
    return browser.post_form(
        f"/reports/clients/{client_id}/generate", {"period": period}, form_page=f"/reports/clients/{client_id}"
    )


def batch(world: FaultWorld, client_id: int, filename: str) -> Any:
    found = world.rows(
        "SELECT id, status, total_rows, processed_rows, posted_rows, errors FROM import_batches"
        " WHERE client_id = :c AND filename = :f ORDER BY id",
        c=client_id,
        f=filename,
    )
    assert len(found) <= 1, f"{filename} was stored {len(found)} times"
    return found[0] if found else None


def batch_status(world: FaultWorld, client_id: int, filename: str) -> str | None:
    row = batch(world, client_id, filename)
    return row.status if row else None


def invoices(world: FaultWorld, client_id: int, prefix: str) -> tuple[int, int]:
    """(rows, distinct numbers) of the client's invoices whose number starts with `prefix-`."""
    row = world.rows(
        "SELECT count(*) AS n, count(DISTINCT number) AS d FROM invoices WHERE client_id = :c AND number LIKE :p",
        c=client_id,
        p=f"{prefix}-%",
    )[0]
    return int(row.n), int(row.d)


def payments(world: FaultWorld, client_id: int, prefix: str) -> tuple[int, int]:
    row = world.rows(
        "SELECT count(*) AS n, count(DISTINCT external_ref) AS d FROM payments"
        " WHERE client_id = :c AND external_ref LIKE :p",
        c=client_id,
        p=f"{prefix}-%",
    )[0]
    return int(row.n), int(row.d)


def reports(world: FaultWorld, client_id: int, period: str) -> int:
    return int(
        world.scalar("SELECT count(*) FROM monthly_reports WHERE client_id = :c AND period = :p", c=client_id, p=period)
    )


def audited(world: FaultWorld, action: str, client_id: int, object_id: str | None = None) -> int:
    """How many times a job recorded `action` (each run of a job records its outcome once)."""
    sql = "SELECT count(*) FROM audit_events WHERE action = :a AND client_id = :c"
    if object_id is not None:
        sql += " AND object_id = :o"
    return int(world.scalar(sql, a=action, c=client_id, o=object_id))


def job_rows(world: FaultWorld, key: str) -> list[Any]:
    """The outbox rows of the work named `key` (`import:{client}:{batch}`, `report:{client}:{period}`), oldest
    first: each records how many times it was claimed (attempts) and how it ended."""
    return world.rows(
        "SELECT id, status, attempts, left(error, 300) AS error FROM background_jobs WHERE key = :k ORDER BY id",
        k=key,
    )


def ran_once(world: FaultWorld, key: str) -> None:
    """The work named `key` was recorded once, claimed once and succeeded."""
    found = [(row.status, row.attempts) for row in job_rows(world, key)]
    assert found == [("succeeded", 1)], f"{key}: (status, attempts) of its job rows are {found}"


def wait_until(what: str, check: Any, timeout: float, interval: float = 1.0) -> float:
    """Wait for `check()` to be truthy; returns the seconds it took."""
    started = time.monotonic()
    svc.wait_for(what, check, timeout=timeout, interval=interval)
    return time.monotonic() - started
