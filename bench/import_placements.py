"""Placement import throughput against the database's raw bulk path, in the same run.

    python -m bench.import_placements [--quick] [--db postgresql|sqlite] [--rows N]

Builds a CSV of N invoices (default 1,000,000 on PostgreSQL, 200,000 on SQLite; --quick 20,000) for
N/10 debtors, then
  baseline: PostgreSQL `COPY` of the same file into a bare table of the same width (SQLite: executemany);
  product:  the real import path (store the upload, validate every row, create/match debtors, place the
            invoices with their journal transactions, in chunks) inside one job run.
ratio = product rows/s / baseline rows/s. Peak RSS is the process's maximum resident set.

On PostgreSQL it also prints the *floor*: the rows the import has to write for the file (its debtors, one
invoice, one journal transaction and two journal entries per line), already built, COPYed straight into the
real tables with their keys, indexes and foreign keys, in one transaction that is rolled back. No parsing,
no checks, no lookups: no implementation of the import that keeps this schema can be faster than the floor,
so `floor_ratio` is the highest ratio the goal could reach. (It runs in a child process: its prepared rows are
not the import's memory.)
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


def floor(url: str, content: bytes) -> float:
    """Seconds to COPY the ledger rows of `content` into the real tables (rolled back); see the docstring."""
    rows = list(csv.reader(io.StringIO(content.decode())))[1:]
    debtor_ids: dict[str, int] = {}
    debtors, invoices, transactions, entries = io.StringIO(), io.StringIO(), io.StringIO(), io.StringIO()
    now = "2026-01-01 00:00:00+00"
    client = 1_000_000
    for n, (number, ref, name, issued, due, amount, currency, po) in enumerate(rows, start=1):
        debtor = debtor_ids.get(ref)
        if debtor is None:
            debtor = debtor_ids[ref] = len(debtor_ids) + 1
            debtors.write(f"{debtor}\t{client}\t{ref}\t{name}\tstandard\tf\t{now}\t{now}\n")
        minor = int(amount.replace(".", ""))
        invoices.write(
            f"{n}\t{client}\t{debtor}\t{number}\t{issued}\t{due}\t{currency}\t{minor}\t0\t{minor}\t{po}\tf\t{now}\n"
        )
        transactions.write(f"{n}\t{client}\tinvoice_placed\t{issued}\t{now}\t\\N\tbench\tfloor\n")
        entries.write(f"{client}\t{n}\treceivable\t{debtor}\t{n}\t{currency}\t{minor}\n")
        entries.write(f"{client}\t{n}\tsales\t{debtor}\t{n}\t{currency}\t{-minor}\n")
    copies = (
        ("debtors (id, client_id, external_ref, name, segment, do_not_contact, created_at, updated_at)", debtors),
        (
            "invoices (id, client_id, debtor_id, number, issue_date, due_date, currency, amount_minor,"
            " adjusted_minor, open_minor, po_reference, on_hold, placed_at)",
            invoices,
        ),
        (
            "journal_transactions (id, client_id, kind, occurred_on, posted_at, actor_user_id, actor_label, memo)",
            transactions,
        ),
        (
            "journal_entries (client_id, transaction_id, account, debtor_id, invoice_id, currency, amount_minor)",
            entries,
        ),
    )
    engine = sa.create_engine(_psycopg(url), poolclass=sa.NullPool)
    with engine.connect() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO clients (id, name, code, base_currency, timezone, country, debt_type, status,"
                " created_at, updated_at) VALUES (:id, 'Floor', 'FLOOR', 'EUR', 'Europe/Berlin', 'DE',"
                " 'commercial', 'active', :now, :now)"
            ),
            {"id": client, "now": now},
        )
        raw = conn.connection.dbapi_connection
        start = time.perf_counter()
        with raw.cursor() as cur:
            for target, data in copies:
                with cur.copy(f"COPY {target} FROM STDIN") as copy:
                    copy.write(data.getvalue())
        elapsed = time.perf_counter() - start
        conn.rollback()
    engine.dispose()
    return elapsed


def floor_in_child(url: str, content: bytes) -> float:
    """`floor` in a process of its own, so that its prepared rows (several times the file) do not count in
    this process's peak RSS, which is the import's."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        return pool.submit(floor, url, content).result()


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
                owner_url = environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"])
                base_s = baseline(args.db, owner_url, content)
                floor_s = floor_in_child(owner_url, content) if args.db == "postgresql" else None
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
    if floor_s is not None:
        print(
            f"  floor: the ledger rows   {floor_s:8.2f} s  {rows / floor_s:12,.0f} rows/s   (COPY into the real tables;"
            f" ratio {base_s / floor_s:.3f}: the most the import could reach)"
        )
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
                "floor_ratio": None if floor_s is None else round(base_s / floor_s, 4),
                "errors": problems,
            }
        )
    )


if __name__ == "__main__":
    main()
