"""kill -9 in the middle of a remittance: each step (the run job drafting the run and posting the month's fees,
the approval posting the remittance and making the payout file, the statement import marking it paid) runs in
a process of its own (tests/clients/remittance_driver.py) against a database of its own, is SIGKILLed after
its postings were made and before it committed, and is driven again. Nothing is half-posted after the kill;
the step completes once when re-driven, and driving it a third time changes nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "AR_PAUSE_AT")}
    return {**env, **extra, "AR_ENV": "testing", "PYTHONPATH": str(ROOT)}


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: Any, tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """(the app's environment, a URL that sees every row) of a freshly migrated database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/killed.db"
        env, inspect, drop = {"DATABASE_URL": url}, url, None
    else:
        name = f"ar_killed_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        env = {
            "DATABASE_URL": f"postgresql://ar_app@127.0.0.1:5432/{name}",
            "DATABASE_OWNER_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
        }
        inspect, drop = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", name
    try:
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=_env(env),
            check=True,
            capture_output=True,
            timeout=600,
        )
        yield env, inspect
    finally:
        if drop:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)'))
            admin.dispose()


def drive(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "tests.clients.remittance_driver", *args],
        cwd=ROOT,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def kill_at(env: dict[str, str], step: str, ids: str) -> None:
    """Run `step` until it says it paused (postings made, not committed), then SIGKILL it."""
    with subprocess.Popen(
        [sys.executable, "-m", "tests.clients.remittance_driver", step, ids],
        cwd=ROOT,
        env={**_env(env), "AR_PAUSE_AT": step},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            line = proc.stdout.readline()  # blocks until the pause (or the end)
            if line.strip() != f"PAUSED {step}":
                proc.kill()
                pytest.fail(f"{step} did not pause: {line!r} {proc.stderr.read()[-3000:]}")
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    time.sleep(0.2)  # PostgreSQL notices the dead connection and rolls its transaction back


def state(url: str, client_id: int) -> dict[str, Any]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    q = {
        "runs": "SELECT status, remit_minor FROM remittance_runs WHERE client_id = :c ORDER BY id",
        "kinds": "SELECT kind, count(*) FROM agency_transactions WHERE client_id = :c GROUP BY kind ORDER BY kind",
        "unbalanced": "SELECT transaction_id FROM agency_entries WHERE client_id = :c "
        "GROUP BY transaction_id, currency HAVING sum(amount_minor) <> 0",
        "orphans": "SELECT t.id FROM agency_transactions t WHERE t.client_id = :c AND NOT EXISTS "
        "(SELECT 1 FROM agency_entries e WHERE e.client_id = t.client_id AND e.transaction_id = t.id)",
        "payouts": "SELECT approved_by, kind, digest, downloads, paid_via FROM run_payouts WHERE client_id = :c",
        "fee_invoices": "SELECT number FROM fee_invoices WHERE client_id = :c ORDER BY number",
        "trust_lines": "SELECT count(*), count(run_id) FROM trust_bank_lines",
        "trust_bank": "SELECT coalesce(sum(amount_minor), 0) FROM agency_entries WHERE client_id = :c "
        "AND account = 'trust_bank'",
    }
    with engine.connect() as conn:
        out = {k: [tuple(r) for r in conn.execute(sa.text(sql), {"c": client_id})] for k, sql in q.items()}
    engine.dispose()
    return out


def test_a_remittance_killed_at_each_step_leaves_nothing_half_posted_and_completes_once(
    database: tuple[dict[str, str], str],
) -> None:
    env, url = database
    raw = drive(env, "seed")
    ids = json.loads(raw)
    client_id = ids["client"]
    before = state(url, client_id)
    assert before["runs"] == [] and not before["unbalanced"]

    # 1. the run job: draft + the month's flat fees + fee invoices, one transaction
    kill_at(env, "run", raw)
    assert state(url, client_id) == before  # nothing of the run stayed
    drive(env, "run", raw)
    after_run = state(url, client_id)
    assert [s for s, _ in after_run["runs"]] == ["draft"] and after_run["runs"][0][1] > 0
    assert after_run["trust_bank"][0][0] > 0 and not after_run["unbalanced"]
    drive(env, "run", raw)  # driven again: the same run, nothing posted twice
    assert state(url, client_id) == after_run

    # 2. approval: the books' remittance posting and the payout file, one transaction
    drive(env, "prepare", raw)
    prepared = state(url, client_id)
    kill_at(env, "approve", raw)
    assert state(url, client_id) == prepared
    assert prepared["payouts"][0][0] == "" and "remittance" not in dict(prepared["kinds"])
    drive(env, "approve", raw)
    approved = state(url, client_id)
    assert [s for s, _ in approved["runs"]] == ["approved"] and dict(approved["kinds"])["remittance"] == 1
    assert approved["payouts"][0][0] == ids["second"][1] and approved["payouts"][0][1] == "sepa"
    with pytest.raises(AssertionError, match="cannot be approved twice"):
        drive(env, "approve", raw)
    assert state(url, client_id) == approved

    # 3. the bank statement marks it paid: the bank leg, one transaction with the statement's lines
    kill_at(env, "paid", raw)
    assert state(url, client_id) == approved
    assert drive(env, "paid", raw) == json.dumps([approved_run_id(url, client_id)])
    paid = state(url, client_id)
    assert [s for s, _ in paid["runs"]] == ["paid"] and dict(paid["kinds"])["remittance_paid"] == 1
    assert paid["trust_lines"] == [(1, 1)] and paid["payouts"][0][4] == "statement"
    assert drive(env, "paid", raw) == "[]"  # the same statement again: nothing
    assert state(url, client_id) == paid
    assert not paid["unbalanced"] and not paid["orphans"]
    numbers = [n for (n,) in paid["fee_invoices"]]
    assert numbers == list(range(1, len(numbers) + 1))  # no gap left by the killed run


def approved_run_id(url: str, client_id: int) -> int:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as conn:
        run_id = conn.execute(
            sa.text("SELECT id FROM remittance_runs WHERE client_id = :c AND status <> 'cancelled'"), {"c": client_id}
        ).scalar_one()
    engine.dispose()
    return int(run_id)
