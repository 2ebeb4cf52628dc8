"""Placement import throughput against the database's raw bulk path, in the same run.

    python -m bench.import_placements [--quick] [--db postgresql|sqlite] [--rows N]

Builds a CSV of N invoices (default 1,000,000 on PostgreSQL, 200,000 on SQLite; --quick 20,000) for
N/10 debtors, then
  baseline: PostgreSQL `COPY` of the same file into a bare table of the same width (SQLite: executemany);
  product:  the real import path (store the upload, validate every row, create/match debtors, place the
            invoices with their journal transactions, in chunks) inside one job run.
ratio = product rows/s / baseline rows/s. Peak RSS is the process's maximum resident set.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import resource
import tempfile
import time
from datetime import date, timedelta

import sqlalchemy as sa

from bench.pages import _environ, _psycopg

HEADER = ["invoice_number", "debtor_ref", "debtor_name", "issue_date", "due_date", "amount", "currency", "po_reference"]


def make_csv(rows: int) -> bytes:
    rng = random.Random(42)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HEADER)
    start = date(2025, 1, 1)
    debtors = max(rows // 10, 1)
    for n in range(rows):
        d = rng.randrange(debtors)
        issued = start + timedelta(days=rng.randrange(600))
        writer.writerow(
            [
                f"INV-{n:08d}",
                f"D-{d:07d}",
                f"Debtor {d}",
                issued.isoformat(),
                (issued + timedelta(days=30)).isoformat(),
                f"{rng.randrange(100, 5_000_000) / 100:.2f}",
                "EUR",
                "",
            ]
        )
    return out.getvalue().encode()


def baseline(kind: str, url: str, content: bytes) -> float:
    engine = sa.create_engine(_psycopg(url), poolclass=sa.NullPool)
    text = content.decode()
    start = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TEMP TABLE bare (invoice_number text, debtor_ref text, debtor_name text, issue_date text, "
            "due_date text, amount text, currency text, po_reference text)"
        )
        if kind == "postgresql":
            raw = conn.connection.dbapi_connection
            with raw.cursor() as cur, cur.copy("COPY bare FROM STDIN WITH (FORMAT csv, HEADER true)") as copy:
                copy.write(text)
        else:
            rows = list(csv.reader(io.StringIO(text)))[1:]
            conn.exec_driver_sql("INSERT INTO bare VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [tuple(r) for r in rows])
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    rows = args.rows or (20_000 if args.quick else (1_000_000 if args.db == "postgresql" else 200_000))

    from flask_migrate import upgrade

    from clients.imports import run_placement_import, start_placement_import
    from clients.models import Client
    from provider.app import create_app
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from tests.factories import make_client

    content = make_csv(rows)
    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        try:
            app = create_app(environ)
            with app.app_context():
                upgrade()
                base_s = baseline(args.db, environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"]), content)
                with scoped(TenantScope.agency(), db.session):
                    client_id = make_client(base_currency="EUR").id
                start = time.perf_counter()
                with scoped(TenantScope.single(client_id), db.session):
                    client = db.session.get_one(Client, client_id)
                    batch = start_placement_import(db.session, client, "bench.csv", content)
                    run_placement_import(db.session, batch)
                    db.session.flush()
                    db.session.commit()
                    status, posted, problems = batch.status, batch.posted_rows, batch.error_count
                product_s = time.perf_counter() - start
                db.session.remove()
        finally:
            drop()

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    product_rate, base_rate = rows / product_s, rows / base_s
    label = "COPY" if args.db == "postgresql" else "executemany"
    print(f"\nPlacement import on {args.db}: {rows:,} rows ({len(content) / 1e6:.1f} MB CSV)")
    print(f"  baseline raw {label:<12} {base_s:8.2f} s  {base_rate:12,.0f} rows/s")
    print(
        f"  product import path      {product_s:8.2f} s  {product_rate:12,.0f} rows/s   status={status} "
        f"posted={posted:,} problems={problems}"
    )
    print(f"  ratio {product_rate / base_rate:.3f}   peak RSS {peak_mb:,.0f} MB\n")
    print(
        json.dumps(
            {
                "bench": "import_placements",
                "db": args.db,
                "size": rows,
                "value": round(product_rate, 1),
                "unit": "rows/s",
                "baseline": round(base_rate, 1),
                "ratio": round(product_rate / base_rate, 4),
                "peak_rss_mb": round(peak_mb, 1),
                "errors": problems,
            }
        )
    )


if __name__ == "__main__":
    main()
