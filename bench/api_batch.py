"""Invoice placement through the API's batch endpoint against the placement file import, in the same run.

    python -m bench.api_batch [--quick] [--db postgresql|sqlite] [--rows N]

Builds N invoices (default 100,000; --quick 10,000) for N/10 debtors that exist already, then
  baseline: the file import path (clients.imports: upload, validate, stage, INSERT ... SELECT) of a CSV of
            the N rows for client 1;
  product:  POST /api/v1/invoices/batch with 1,000 invoices per request (JSON bodies written to files
            beforehand) to gunicorn, sent by `wrk` (bench/wrk.py) over one keep-alive connection, each body
            once, as an integrator's sync would: token auth, rate limit, validation (the plain-row path held
            to the marshmallow schema), clients.placement_stage.place_rows, outbox event, audit, commit;
            for client 2. Latency percentiles are wrk's own distribution.
ratio = API rows/s / file-import rows/s (the issue's goal: at least 0.5, "within 2x").

Both paths start from the same steady state: after seeding, the tables are analyzed (VACUUM ANALYZE as the
owner, as autovacuum would; this server runs without autovacuum) and the connections are fresh. While they
run, both keep the planner's statistics with the product's own `refresh_statistics` (after every bulk post
of 500+ rows), which is what the product does in production too.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import tempfile
import time
from datetime import date, timedelta

import sqlalchemy as sa

from bench import wrk
from bench.pages import _environ, _psycopg

BATCH = 1_000
# wrk: each body file once, in order, over the thread's one connection; the thread stops after the last answer
BATCH_SCRIPT = r"""
local folder, count = extra:match("^(.*)|(%d+)$")
count = tonumber(count)
local sent = 0
request = function()
  sent = sent + 1
  local fh = io.open(folder .. "/" .. sent .. ".json", "rb")
  local body = fh:read("*a")
  fh:close()
  return wrk.format("POST", "/api/v1/invoices/batch",
    {["Authorization"] = "Bearer " .. cookie, ["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, body)
  if status ~= 201 then unexpected = unexpected + 1 end
  if sent >= count then wrk.thread:stop() end
end
"""


def _rows(n: int, debtors: int) -> list[dict]:
    rng = random.Random(42)
    start = date(2025, 1, 1)
    out = []
    for i in range(n):
        issued = start + timedelta(days=rng.randrange(400))
        out.append(
            {
                "debtor": rng.randrange(debtors),
                "number": f"INV-{i:08d}",
                "issue_date": issued.isoformat(),
                "due_date": (issued + timedelta(days=30)).isoformat(),
                "amount_minor": rng.randrange(100, 5_000_000),
            }
        )
    return out


def _debtors(client_id: int, count: int) -> list[int]:
    from sqlalchemy import insert, select

    from clients.models import Debtor
    from provider.extensions import db

    db.session.execute(
        insert(Debtor),
        [
            {
                "client_id": client_id,
                "external_ref": f"D-{d:07d}",
                "name": f"Debtor {d}",
                "segment": "standard",
                "do_not_contact": False,
            }
            for d in range(count)
        ],
    )
    ids = dict(db.session.execute(select(Debtor.external_ref, Debtor.id).where(Debtor.client_id == client_id)).all())
    return [ids[f"D-{d:07d}"] for d in range(count)]


def _csv(rows: list[dict]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(
        ["invoice_number", "debtor_ref", "debtor_name", "issue_date", "due_date", "amount", "currency", "po_reference"]
    )
    for r in rows:
        w.writerow(
            [
                r["number"],
                f"D-{r['debtor']:07d}",
                f"Debtor {r['debtor']}",
                r["issue_date"],
                r["due_date"],
                f"{r['amount_minor'] / 100:.2f}",
                "EUR",
                "",
            ]
        )
    return out.getvalue().encode()


def _steady_state(kind: str, environ: dict[str, str]) -> None:
    """Fresh statistics and fresh connections after seeding (autovacuum's ANALYZE, emulated)."""
    from provider.extensions import db

    db.engine.dispose()
    url = environ.get("DATABASE_OWNER_URL") or environ["DATABASE_URL"]
    owner = sa.create_engine(_psycopg(url) if kind == "postgresql" else url, poolclass=sa.NullPool)
    with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if kind == "postgresql" else "ANALYZE")
    owner.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    n = args.rows or (10_000 if args.quick else 100_000)
    debtors = max(n // 10, 1)

    from flask_migrate import upgrade

    from clients.imports import run_placement_import, start_placement_import
    from clients.models import Client
    from provider.app import create_app
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from tests.factories import make_api_token, make_client

    rows = _rows(n, debtors)
    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        try:
            app = create_app(environ, API_RATE_LIMIT="100000/minute")
            with app.app_context():
                upgrade()
                with scoped(TenantScope.agency(), db.session):
                    file_client, api_client = make_client().id, make_client().id
                    _debtors(file_client, debtors)
                    api_ids = _debtors(api_client, debtors)
                    db.session.commit()
                    token = make_api_token(db.session.get(Client, api_client))
                db.session.remove()
                _steady_state(args.db, environ)
                content = _csv(rows)
                start = time.perf_counter()
                with scoped(TenantScope.single(file_client), db.session):
                    batch = start_placement_import(
                        db.session, db.session.get_one(Client, file_client), "bench.csv", content
                    )
                    run_placement_import(db.session, batch)
                    db.session.commit()
                    file_status, file_posted = batch.status, batch.posted_rows
                file_s = time.perf_counter() - start
                db.session.remove()
            bodies = [
                json.dumps(
                    {
                        "invoices": [
                            {
                                "debtor_id": api_ids[r["debtor"]],
                                "number": r["number"],
                                "issue_date": r["issue_date"],
                                "due_date": r["due_date"],
                                "currency": "EUR",
                                "amount_minor": r["amount_minor"],
                            }
                            for r in rows[i : i + BATCH]
                        ]
                    }
                ).encode()
                for i in range(0, n, BATCH)
            ]
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
            folder = os.path.join(tmp, "bodies")
            os.mkdir(folder)
            for i, body in enumerate(bodies, start=1):
                with open(os.path.join(folder, f"{i}.json"), "wb") as fh:
                    fh.write(body)
            served = {**environ, "AR_ENV": "development", "SECRET_KEY": "a" * 64, "API_RATE_LIMIT": "100000/minute"}
            with wrk.gunicorn(served, 2) as port:
                result = wrk.run(
                    "API batches",
                    port,
                    BATCH_SCRIPT,
                    [(token, "", f"{folder}|{len(bodies)}")],
                    seconds=3600,
                    timeout_s=120,
                )
        finally:
            drop()

    errors = result.errors + (len(bodies) - result.requests)  # a body never answered counts as failed
    p50, p95 = result.p50_ms, result.p95_ms
    api_s = result.seconds
    api_rate, file_rate = n / api_s, n / file_s
    print(f"\nInvoice placement on {args.db}: {n:,} invoices, {debtors:,} existing debtors")
    print(
        f"  baseline file import      {file_s:8.2f} s  {file_rate:10,.0f} rows/s  "
        f"status={file_status} posted={file_posted:,}"
    )
    print(
        f"  product  API batch x{BATCH}  {api_s:8.2f} s  {api_rate:10,.0f} rows/s  "
        f"p50={p50:.0f} ms p95={p95:.0f} ms errors={errors} (wrk, one connection)"
    )
    print(f"  ratio {api_rate / file_rate:.3f} (goal >= 0.5)\n")
    print(
        json.dumps(
            {
                "bench": "api_batch",
                "db": args.db,
                "size": n,
                "value": round(api_rate, 1),
                "unit": "rows/s",
                "baseline": round(file_rate, 1),
                "ratio": round(api_rate / file_rate, 4),
                "p50_ms": round(p50, 1),
                "p95_ms": round(p95, 1),
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
