"""Payment posting throughput: one payment per request, and in batches, against raw single-row commits.

    python -m bench.post_payments [--quick] [--db postgresql|sqlite] [--payments N] [--batch 1000]

Builds a fresh database from the migrations, one client with N/20 debtors, a payment history of N/20 (at
least 2,000) payments and fresh statistics (VACUUM ANALYZE, as autovacuum keeps a live database), then
posts N more deterministic payments per path (default 100,000; --quick 10,000), measuring in the same run
on the same database:
  baseline: a single-row INSERT + COMMIT loop into a bare table as wide as `payments` (raw driver, no ORM);
  single:   `record_payment`, one payment per call, each committed, as a request does it: tenant scope set,
            on PostgreSQL through the application role (row-level security in force);
  batch:    `record_payments`, --batch payments per call, each call committed.
  floor:    (PostgreSQL) the least SQL a new payment needs, through the raw driver as the application role:
            the tenant setting, the one statement of `record_payment` that inserts the payment, its journal
            transaction, entries and audit event, and the commit; no validation, hooks or ORM. No single
            path that keeps these writes and row-level security can be faster.
value = single rows/s, ratio = single / baseline (goal >= 0.30); batch / single is reported too (goal >= 5).
Afterwards every journal transaction must balance and every cached unapplied amount equal its journal sum
(`errors` counts the exceptions).

Background jobs go to RQ on Redis as deployed (a database of its own, emptied first): a payment queues the
client's rescoring and promise checks once per burst, and no worker runs while the paths are timed (they
would share the same two cores). A burst worker runs the queued jobs afterwards, untimed, and must succeed.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import secrets
import sqlite3
import tempfile
import time
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from redis import Redis

from bench.pages import _environ, _psycopg

BARE_COLUMNS = {
    "postgresql": "id bigserial PRIMARY KEY, client_id bigint NOT NULL, debtor_id bigint NOT NULL, "
    "external_ref varchar(64) NOT NULL, idempotency_key varchar(128), request_hash varchar(64) NOT NULL, "
    "received_on date NOT NULL, currency varchar(3) NOT NULL, amount_minor bigint NOT NULL, "
    "unapplied_minor bigint NOT NULL, method varchar(20) NOT NULL, received_by varchar(10) NOT NULL, "
    "reference varchar(140) NOT NULL, recorded_at timestamptz NOT NULL",
    "sqlite": "id INTEGER PRIMARY KEY, client_id BIGINT NOT NULL, debtor_id BIGINT NOT NULL, "
    "external_ref VARCHAR(64) NOT NULL, idempotency_key VARCHAR(128), request_hash VARCHAR(64) NOT NULL, "
    "received_on DATE NOT NULL, currency VARCHAR(3) NOT NULL, amount_minor BIGINT NOT NULL, "
    "unapplied_minor BIGINT NOT NULL, method VARCHAR(20) NOT NULL, received_by VARCHAR(10) NOT NULL, "
    "reference VARCHAR(140) NOT NULL, recorded_at DATETIME NOT NULL",
}
REDIS_URL = "redis://127.0.0.1:6379/7"  # a database of its own (tests use 11-14+, bench.reports 5)
METHODS = ["bank_transfer", "bank_transfer", "bank_transfer", "card", "direct_debit", "cheque"]


def make_payments(n: int, debtor_ids: list[int], prefix: str, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = date(2025, 1, 1)
    return [
        {
            "debtor_id": rng.choice(debtor_ids),
            "external_ref": f"{prefix}-{k:08d}",
            "received_on": start + timedelta(days=rng.randrange(600)),
            "currency": "EUR",
            "amount_minor": rng.randrange(100, 5_000_000),
            "method": rng.choice(METHODS),
            "received_by": "client" if rng.random() < 0.2 else "agency",
            "reference": f"Invoice INV-{rng.randrange(10**7):07d}",
        }
        for k in range(n)
    ]


def raw_baseline(kind: str, owner_url: str, rows: list[dict[str, Any]]) -> float:
    """Seconds for len(rows) single-row INSERT + COMMIT through the bare driver, into a bare table."""
    cols = "client_id, debtor_id, external_ref, request_hash, received_on, currency, amount_minor, "
    cols += "unapplied_minor, method, received_by, reference, recorded_at"
    now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
    params = [
        (
            1,
            r["debtor_id"],
            r["external_ref"],
            "0" * 64,
            r["received_on"].isoformat(),
            r["currency"],
            r["amount_minor"],
            r["amount_minor"],
            r["method"],
            r["received_by"],
            r["reference"],
            now,
        )
        for r in rows
    ]
    if kind == "sqlite":
        conn = sqlite3.connect(sa.make_url(owner_url).database, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):  # the app's own settings
            conn.execute(f"PRAGMA {pragma}")
        conn.execute(f"CREATE TABLE bare_payments ({BARE_COLUMNS[kind]})")
        sql = f"INSERT INTO bare_payments ({cols}) VALUES ({', '.join('?' * 12)})"
        start = time.perf_counter()
        for p in params:
            conn.execute("BEGIN")
            conn.execute(sql, p)
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
        return elapsed
    import psycopg

    with psycopg.connect(owner_url) as conn:
        conn.execute(f"CREATE TABLE bare_payments ({BARE_COLUMNS[kind]})")
        conn.commit()
        sql = f"INSERT INTO bare_payments ({cols}) VALUES ({', '.join(['%s'] * 12)})"
        start = time.perf_counter()
        for p in params:
            conn.execute(sql, p)
            conn.commit()
        elapsed = time.perf_counter() - start
        conn.execute("DROP TABLE bare_payments")
        conn.commit()
    return elapsed


def steady_state(kind: str, owner_url: str, client_id: int, history: list[dict[str, Any]]) -> None:
    """A client with some payment history, statistics up to date (as autovacuum keeps them) and fresh
    connections, so that no plan made while the tables were empty (a foreign-key check that scans a table
    because it had one page when first planned) survives into the measurement."""
    from clients import services
    from clients.models import Client
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db

    with scoped(TenantScope.single(client_id), db.session):
        client = db.session.get_one(Client, client_id)
        for k in range(0, len(history), 1_000):
            services.record_payments(db.session, client, history[k : k + 1_000])
            db.session.commit()
    db.session.remove()
    db.engine.dispose()
    owner = sa.create_engine(_psycopg(owner_url), poolclass=sa.NullPool)
    with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if kind == "postgresql" else "ANALYZE")
    owner.dispose()


def books_errors(client_id: int) -> int:
    from tests.clients.ledger_helpers import cache_mismatches, unbalanced_transactions

    return len(unbalanced_transactions(client_id)) + len(cache_mismatches(client_id))


def floor(app_url: str, client_id: int, rows: list[dict[str, Any]]) -> float:
    """Seconds for the floor path (see the docstring) over `rows`."""
    import psycopg
    from sqlalchemy.dialects.postgresql import psycopg as pg_dialect

    from clients.ledger import _RECORD_PAYMENT_PG

    compiled = _RECORD_PAYMENT_PG.compile(dialect=pg_dialect.dialect())
    sql, now = str(compiled), time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
    fixed = {
        **dict.fromkeys(compiled.params),
        "client_id": client_id,
        "request_hash": "0" * 64,
        "recorded_at": now,
        "kind": "payment_received",
        "actor_label": "bench",
        "unapplied_account": "unapplied",
        "changes": "{}",
    }
    with psycopg.connect(app_url) as conn:
        start = time.perf_counter()
        for r in rows:
            cash = "cash_agency" if r["received_by"] == "agency" else "cash_client"
            conn.execute("SELECT set_config('app.client_id', %s, true)", (str(client_id),))
            conn.execute(sql, {**fixed, **r, "unapplied_minor": r["amount_minor"], "cash_account": cash})
            conn.commit()
        return time.perf_counter() - start


def run_queued_jobs(app: Any) -> int:
    """Run what the payments queued (rescoring, promise checks) with a burst worker; the number that failed."""
    from sqlalchemy import func, select

    from provider.core.outbox import run_worker
    from provider.core.outbox_models import BackgroundJob
    from provider.extensions import db

    run_worker(app, burst=True)
    with app.app_context():
        return int(db.session.scalar(select(func.count()).where(BackgroundJob.status == "failed")) or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 payments instead of 100,000")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--payments", type=int, default=None)
    parser.add_argument("--batch", type=int, default=1_000, help="payments per record_payments call")
    parser.add_argument("--profile", choices=("single", "batch"), help="print a cProfile of one path")
    args = parser.parse_args()
    n = args.payments or (10_000 if args.quick else 100_000)

    from flask_migrate import upgrade

    from clients import services
    from clients.models import Client, Debtor
    from provider.app import create_app
    from provider.core.audit import Actor, acting_as
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from tests.factories import make_client

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        environ |= {"AR_ENV": "production", "SECRET_KEY": secrets.token_hex(32), "REDIS_URL": REDIS_URL}  # as deployed
        Redis.from_url(REDIS_URL).flushdb()
        try:
            app = create_app(environ)
            with app.app_context(), acting_as(Actor.system("bench")):
                upgrade()
                with scoped(TenantScope.agency(), db.session):
                    client_id = make_client(base_currency="EUR").id
                    debtors = [
                        {"client_id": client_id, "external_ref": f"D-{k:07d}", "name": f"Debtor {k}", "segment": "std"}
                        for k in range(max(n // 20, 10))
                    ]
                    db.session.execute(sa.insert(Debtor), debtors)
                    db.session.commit()
                    debtor_ids = list(db.session.scalars(sa.select(Debtor.id).where(Debtor.client_id == client_id)))
                    db.session.commit()  # no transaction (nor SQLite read snapshot) held across the baseline
                single_rows = make_payments(n, debtor_ids, "S", seed=1)
                batch_rows = make_payments(n, debtor_ids, "B", seed=2)
                owner_url = environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"])
                steady_state(args.db, owner_url, client_id, make_payments(max(n // 20, 2_000), debtor_ids, "H", 4))
                raw_s = raw_baseline(args.db, owner_url, make_payments(n, debtor_ids, "R", seed=3))
                floor_rows = make_payments(n, debtor_ids, "F", seed=5)
                floor_s = floor(environ["DATABASE_URL"], client_id, floor_rows) if args.db == "postgresql" else None

                with scoped(TenantScope.single(client_id), db.session):
                    client = db.session.get_one(Client, client_id)
                    profile = cProfile.Profile()
                    start = time.perf_counter()
                    if args.profile == "single":
                        profile.enable()
                    for row in single_rows:
                        services.record_payment(db.session, client, row)
                        db.session.commit()
                    profile.disable()
                    single_s = time.perf_counter() - start

                    start = time.perf_counter()
                    if args.profile == "batch":
                        profile.enable()
                    replayed = 0
                    for k in range(0, n, args.batch):
                        results = services.record_payments(db.session, client, batch_rows[k : k + args.batch])
                        replayed += sum(r.replayed for r in results)
                        db.session.commit()
                    profile.disable()
                    batch_s = time.perf_counter() - start
                    errors = books_errors(client_id) + replayed
                db.session.remove()
                errors += run_queued_jobs(app)
        finally:
            drop()

    raw_rate, single_rate, batch_rate = n / raw_s, n / single_s, n / batch_s
    print(f"\nPayment posting on {args.db}: {n:,} payments per path, {len(debtor_ids):,} debtors")
    print(f"  {'path':<44}{'seconds':>9}{'rows/s':>12}")
    print(f"  {'baseline: bare INSERT + COMMIT per row':<44}{raw_s:9.2f}{raw_rate:12,.0f}")
    if floor_s is not None:
        print(f"  {'floor: the one statement + commit, raw driver':<44}{floor_s:9.2f}{n / floor_s:12,.0f}")
    print(f"  {'single: record_payment + commit per call':<44}{single_s:9.2f}{single_rate:12,.0f}")
    print(f"  {f'batch: record_payments x {args.batch:,} + commit':<44}{batch_s:9.2f}{batch_rate:12,.0f}")
    print(f"  single / baseline {single_rate / raw_rate:.3f} (goal >= 0.30)", end="")
    print(f"; the floor reaches {n / floor_s / raw_rate:.3f}" if floor_s is not None else "")
    print(f"  batch / single    {batch_rate / single_rate:.1f}x (goal >= 5)   books errors: {errors}\n")
    if args.profile:
        stats = pstats.Stats(profile).sort_stats(os.environ.get("PSORT", "tottime"))  # e.g. PSORT=cumulative
        stats.print_stats(os.environ.get("PFILTER", ""), 25)  # e.g. PFILTER="work/main/clients"
    print(
        json.dumps(
            {
                "bench": "post_payments",
                "db": args.db,
                "size": n,
                "value": round(single_rate, 1),
                "unit": "rows/s",
                "baseline": round(raw_rate, 1),
                "ratio": round(single_rate / raw_rate, 4),
                "batch_value": round(batch_rate, 1),
                "batch_size": args.batch,
                "batch_ratio": round(batch_rate / single_rate, 2),
                "floor_ratio": None if floor_s is None else round(n / floor_s / raw_rate, 4),
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
