"""Aging and KPIs of every client over the whole journal, against a bare scan of the journal, in the same run.

    python -m bench.aging [--quick] [--rows N] [--requests N] [--db postgresql|sqlite]

Builds a fresh PostgreSQL database (or, with --db sqlite, a SQLite file at a tenth of the size: the embedded
default) from the migrations with 50 clients and about N journal rows (default
6,000,000, --quick 300,000): invoices placed over two years, about two thirds paid (payment + allocation,
to the agency or to the client), some part-paid, the rest open. One client holds 100,000 invoices
(--quick 10,000). The data is written set-based as the schema owner (deterministic: every "random" choice
is a hash of the row number), laid out as it arrives in production (a client's month of placements and
payments in one run), then VACUUM ANALYZE, as autovacuum would. The seed skips triggers (and so foreign-key
checks), so the monthly totals the trigger keeps in production are then rebuilt from the journal
(`month_totals.rebuild`, the statement of migration 0015's backfill; timed and printed, not part of the figure).

  baseline  `SELECT count(*), sum(amount_minor) FROM journal_entries`, one core (no parallel workers); on
            SQLite the seed's rows are generated in Python with the same hashes and written with executemany;
  product   the KPI path of the product for every client as of today, as the app role (row-level
            security on): `figures.collect_inputs` + `figures.derive` (aging, 12 months of AR/DSO/
            countback/BPDSO/ADD/CEI, flows, recovery stair, top debtors), which reads the client's
            monthly journal totals and its open invoices, not the journal itself;
  page      p50/p95 of the big client's KPI page (/reports/clients/<id>) through the Flask test client, once
            its daily snapshot is taken (`jobs.take_snapshot`, as the daily job does): the page reads the
            snapshot; of the same page computed live (`?live=1`, as before any snapshot); and as of a day in
            the middle of last month (`?as_of=`, computed live: that month is split by later postings).

ratio = product journal rows/s / baseline rows/s (goal >= 0.33); page goal p95 < 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from bench.pages import _environ, _percentile, _psycopg

CLIENTS = 50
ENTRIES_PER_INVOICE = 4.6  # 2 for the placement, 4 more for a paid invoice (payment + allocation)

SEED_SQL = """
CREATE UNLOGGED TABLE bench_inv AS
WITH raw AS (
    SELECT i,
           CASE WHEN i <= :big THEN :first_client
                ELSE :first_client + 1 + ((i - :big) % (:clients - 1)) END AS client_id,
           (i * 2654435761) % 1000003 AS h
    FROM generate_series(CAST(1 AS bigint), CAST(:n AS bigint)) AS i
)
SELECT i AS id, client_id, h,
       client_id * 10000000 + (h % GREATEST(:debtors_per, 1)) AS debtor_id,
       (CAST(:today AS date) - CAST(((i * 7919) % 730) AS int)) AS issue_date,
       1000 + (i * 48271) % 500000 AS amount,
       h % 100 AS fate
FROM raw;

CREATE UNLOGGED TABLE bench_pay AS
SELECT id, client_id, debtor_id, issue_date, amount,
       CASE WHEN fate < 65 THEN amount ELSE amount / 2 END AS paid,
       LEAST(issue_date + 20 + CAST((h % 61) AS int), CAST(:today AS date) - 1) AS paid_on,
       CASE WHEN h % 3 = 0 THEN 'client' ELSE 'agency' END AS received_by
FROM bench_inv
WHERE fate < 75 AND issue_date < CAST(:today AS date) - 30;

INSERT INTO debtors (id, client_id, external_ref, name, segment, do_not_contact, created_at, updated_at)
SELECT DISTINCT ON (debtor_id) debtor_id, client_id, 'D-' || debtor_id, 'Debtor ' || debtor_id || ' GmbH',
       'standard', false, now(), now()
FROM bench_inv ORDER BY debtor_id;

INSERT INTO invoices (id, client_id, debtor_id, number, issue_date, due_date, currency, amount_minor,
                      adjusted_minor, open_minor, po_reference, on_hold, placed_at)
SELECT v.id, v.client_id, v.debtor_id, 'INV-' || v.id, v.issue_date, v.issue_date + 30, 'EUR', v.amount, 0,
       v.amount - COALESCE(p.paid, 0), '', false, v.issue_date + time '09:00'
FROM bench_inv v LEFT JOIN bench_pay p ON p.id = v.id ORDER BY v.issue_date, v.client_id;

INSERT INTO payments (id, client_id, debtor_id, external_ref, request_hash, received_on, currency, amount_minor,
                      unapplied_minor, method, received_by, reference, recorded_at)
SELECT id, client_id, debtor_id, 'PAY-' || id, '', paid_on, 'EUR', paid, 0, 'bank_transfer', received_by, '',
       paid_on + time '12:00'
FROM bench_pay ORDER BY paid_on, client_id;

CREATE UNLOGGED TABLE bench_tx AS
SELECT id AS id, client_id, 'invoice_placed' AS kind, issue_date AS occurred_on, id AS doc FROM bench_inv
UNION ALL
SELECT :n + id, client_id, 'payment_received', paid_on, id FROM bench_pay
UNION ALL
SELECT 2 * :n + id, client_id, 'allocation', paid_on, id FROM bench_pay;

INSERT INTO journal_transactions (id, client_id, kind, occurred_on, posted_at, actor_label, memo)
SELECT id, client_id, kind, occurred_on, occurred_on + time '18:00', 'bench', ''
FROM bench_tx ORDER BY date_trunc('month', occurred_on), client_id, id;

INSERT INTO journal_entries (client_id, transaction_id, account, debtor_id, invoice_id, payment_id, currency,
                             amount_minor)
SELECT client_id, tx, account, debtor_id, invoice_id, payment_id, 'EUR', amount
FROM (
    SELECT v.client_id, v.id AS tx, x.account, v.debtor_id, v.id AS invoice_id, CAST(NULL AS bigint) AS payment_id,
           x.sign * v.amount AS amount, v.issue_date AS occurred_on
    FROM bench_inv v CROSS JOIN (VALUES ('receivable', 1), ('sales', -1)) AS x(account, sign)
    UNION ALL
    SELECT p.client_id, :n + p.id, CASE WHEN x.account = 'cash' THEN 'cash_' || p.received_by ELSE x.account END,
           p.debtor_id, NULL, p.id, x.sign * p.paid, p.paid_on
    FROM bench_pay p CROSS JOIN (VALUES ('cash', 1), ('unapplied', -1)) AS x(account, sign)
    UNION ALL
    SELECT p.client_id, 2 * :n + p.id, x.account, p.debtor_id, p.id, p.id, x.sign * p.paid, p.paid_on
    FROM bench_pay p CROSS JOIN (VALUES ('unapplied', 1), ('receivable', -1)) AS x(account, sign)
) AS e
ORDER BY date_trunc('month', occurred_on), client_id, tx;

DROP TABLE bench_inv, bench_pay, bench_tx;
"""


def seed(
    owner_url: str, client_ids: list[int], invoices: int, big: int, today: date, debtors: int | None = None
) -> dict[str, int]:
    """Invoices, payments, allocations and their journal, set-based; returns row counts.

    The first client gets `big` invoices, the others share the rest; each client has up to `debtors`
    debtors (default: one per eight invoices of an average client). On SQLite (a `sqlite:///` URL) the same
    rows are generated in Python and written with `executemany` (`seed_sqlite`)."""
    if owner_url.startswith("sqlite"):
        return seed_sqlite(owner_url, client_ids, invoices, big, today, debtors)
    engine = sa.create_engine(_psycopg(owner_url), poolclass=sa.NullPool)
    params = {
        "n": invoices,
        "big": big,
        "first_client": client_ids[0],
        "clients": len(client_ids),
        "debtors_per": debtors or max(invoices // len(client_ids) // 8, 50),
        "today": today,
    }
    if client_ids != list(range(client_ids[0], client_ids[0] + len(client_ids))):
        raise SystemExit("the bench's clients must have consecutive ids")
    with engine.begin() as conn:
        conn.exec_driver_sql("SET session_replication_role = replica")  # data consistent by construction: skip FK
        for statement in SEED_SQL.split(";\n"):
            if statement.strip():
                sql = statement
                conn.execute(sa.text(sql), {k: v for k, v in params.items() if f":{k}" in sql})
        for table, column in (
            ("debtors", "id"),
            ("invoices", "id"),
            ("payments", "id"),
            ("journal_transactions", "id"),
            ("journal_entries", "id"),
        ):
            conn.exec_driver_sql(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), (SELECT max(id) FROM {table}))"
            )
        counts = {
            t: int(conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar_one())
            for t in ("invoices", "payments", "journal_transactions", "journal_entries")
        }
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    return counts


def _sqlite_rows(
    client_ids: list[int], n: int, big: int, today: date, debtors_per: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The seed's invoices and payments as `SEED_SQL` makes them (same hashes, same fates, same dates)."""
    first, clients = client_ids[0], len(client_ids)
    invoices, payments = [], []
    for i in range(1, n + 1):
        client_id = first if i <= big else first + 1 + ((i - big) % (clients - 1))
        h = (i * 2654435761) % 1000003
        debtor_id = client_id * 10_000_000 + h % max(debtors_per, 1)
        issue = today - timedelta(days=(i * 7919) % 730)
        amount, fate = 1000 + (i * 48271) % 500000, h % 100
        invoices.append((i, client_id, h, debtor_id, issue, amount, fate))
        if fate < 75 and issue < today - timedelta(days=30):
            paid = amount if fate < 65 else amount // 2
            paid_on = min(issue + timedelta(days=20 + h % 61), today - timedelta(days=1))
            payments.append(
                (i, client_id, debtor_id, issue, amount, paid, paid_on, "client" if h % 3 == 0 else "agency")
            )
    return invoices, payments


def seed_sqlite(
    url: str, client_ids: list[int], invoices: int, big: int, today: date, debtors: int | None = None
) -> dict[str, int]:
    """`seed` on SQLite: the same rows, written with `executemany` in the order they arrive in production."""
    import sqlite3

    if client_ids != list(range(client_ids[0], client_ids[0] + len(client_ids))):
        raise SystemExit("the bench's clients must have consecutive ids")
    debtors_per = debtors or max(invoices // len(client_ids) // 8, 50)
    inv, pay = _sqlite_rows(client_ids, invoices, big, today, debtors_per)
    paid = {p[0]: p for p in pay}
    stamp = f"{today} 09:00:00.000000"
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    conn.execute("PRAGMA foreign_keys = OFF")  # consistent by construction, as on PostgreSQL
    conn.execute("PRAGMA journal_mode = WAL")
    seen: set[int] = set()
    conn.executemany(
        "INSERT INTO debtors (id, client_id, external_ref, name, segment, do_not_contact, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, 'standard', 0, ?, ?)",
        [
            (d, c, f"D-{d}", f"Debtor {d} GmbH", stamp, stamp)
            for (_i, c, _h, d, *_rest) in sorted(inv, key=lambda r: r[3])
            if not (d in seen or seen.add(d))
        ],
    )
    by_arrival = sorted(inv, key=lambda r: (r[4], r[1]))
    conn.executemany(
        "INSERT INTO invoices (id, client_id, debtor_id, number, issue_date, due_date, currency, amount_minor,"
        " adjusted_minor, open_minor, po_reference, on_hold, placed_at)"
        " VALUES (?, ?, ?, ?, ?, ?, 'EUR', ?, 0, ?, '', 0, ?)",
        [
            (
                i,
                c,
                d,
                f"INV-{i}",
                str(issue),
                str(issue + timedelta(days=30)),
                amount,
                amount - (paid[i][5] if i in paid else 0),
                f"{issue} 09:00:00.000000",
            )
            for (i, c, _h, d, issue, amount, _fate) in by_arrival
        ],
    )
    pay_by_arrival = sorted(pay, key=lambda r: (r[6], r[1]))
    conn.executemany(
        "INSERT INTO payments (id, client_id, debtor_id, external_ref, request_hash, received_on, currency,"
        " amount_minor, unapplied_minor, method, received_by, reference, recorded_at)"
        " VALUES (?, ?, ?, ?, '', ?, 'EUR', ?, 0, 'bank_transfer', ?, '', ?)",
        [
            (i, c, d, f"PAY-{i}", str(on), amt, by, f"{on} 12:00:00.000000")
            for (i, c, d, _iss, _a, amt, on, by) in pay_by_arrival
        ],
    )
    txs = [(i, c, "invoice_placed", issue) for (i, c, _h, _d, issue, _a, _f) in inv]
    txs += [(invoices + i, c, "payment_received", on) for (i, c, _d, _iss, _a, _amt, on, _by) in pay]
    txs += [(2 * invoices + i, c, "allocation", on) for (i, c, _d, _iss, _a, _amt, on, _by) in pay]
    txs.sort(key=lambda t: (t[3].replace(day=1), t[1], t[0]))
    conn.executemany(
        "INSERT INTO journal_transactions (id, client_id, kind, occurred_on, posted_at, actor_label, memo)"
        " VALUES (?, ?, ?, ?, ?, 'bench', '')",
        [(i, c, k, str(on), f"{on} 18:00:00.000000") for (i, c, k, on) in txs],
    )
    entries: list[tuple[Any, ...]] = []
    for i, c, _h, d, issue, amount, _f in inv:
        entries += [(issue, c, i, "receivable", d, i, None, amount), (issue, c, i, "sales", d, i, None, -amount)]
    for i, c, d, _iss, _a, amt, on, by in pay:
        entries += [
            (on, c, invoices + i, f"cash_{by}", d, None, i, amt),
            (on, c, invoices + i, "unapplied", d, None, i, -amt),
        ]
        entries += [
            (on, c, 2 * invoices + i, "unapplied", d, i, i, amt),
            (on, c, 2 * invoices + i, "receivable", d, i, i, -amt),
        ]
    entries.sort(key=lambda e: (e[0].replace(day=1), e[1], e[2]))
    conn.executemany(
        "INSERT INTO journal_entries (client_id, transaction_id, account, debtor_id, invoice_id, payment_id,"
        " currency, amount_minor) VALUES (?, ?, ?, ?, ?, ?, 'EUR', ?)",
        [e[1:] for e in entries],
    )
    conn.commit()
    counts = {
        t: int(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0])
        for t in ("invoices", "payments", "journal_transactions", "journal_entries")
    }
    conn.execute("ANALYZE")
    conn.close()
    return counts


def rebuild_totals(owner_url: str, client_ids: list[int]) -> None:
    """The monthly totals of the seeded journal, as the trigger would have kept them had the seed not bypassed
    it (`month_totals.rebuild`, the migration's backfill), then ANALYZE as autovacuum would."""
    from clients import month_totals
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db

    with scoped(TenantScope.agency(), db.session):
        month_totals.rebuild(db.session, client_ids)
        db.session.commit()
    if owner_url.startswith("sqlite"):
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        return
    engine = sa.create_engine(_psycopg(owner_url), poolclass=sa.NullPool)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE journal_month_totals")
    engine.dispose()


def bare_scan(owner_url: str, repeat: int = 3) -> tuple[float, int]:
    """Best of `repeat` single-core count + sum over the whole journal (warm cache, as the product gets)."""
    sqlite = owner_url.startswith("sqlite")
    engine = sa.create_engine(owner_url if sqlite else _psycopg(owner_url), poolclass=sa.NullPool)
    best, rows = float("inf"), 0
    with engine.connect() as conn:
        if not sqlite:
            conn.exec_driver_sql("SET max_parallel_workers_per_gather = 0")
        for _ in range(repeat + 1):  # the first run warms the cache
            start = time.perf_counter()
            rows, _total = conn.exec_driver_sql("SELECT count(*), sum(amount_minor) FROM journal_entries").one()
            best = min(best, time.perf_counter() - start)
    engine.dispose()
    return best, int(rows)


def product_all_clients(client_ids: list[int], today: date) -> tuple[float, int]:
    """Every client's KPI inputs + figures as of today through the product path; (seconds, currencies)."""
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from provider.reporting import figures as fig

    currencies = 0
    start = time.perf_counter()
    for client_id in client_ids:
        with scoped(TenantScope.single(client_id), db.session):
            figures = fig.derive(fig.collect_inputs(client_id, today))
            currencies += len(figures["currencies"])
        db.session.rollback()
    return time.perf_counter() - start, currencies


def take_snapshot(client_id: int) -> float:
    """The daily snapshot of one client, as `snapshot_client_job` takes it; seconds."""
    from clients.models import Client
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from provider.reporting.jobs import take_snapshot as take

    start = time.perf_counter()
    with scoped(TenantScope.single(client_id), db.session):
        client = db.session.get(Client, client_id)
        if client is None:
            raise SystemExit(f"client {client_id} is gone")
        take(client)
        db.session.commit()
    return time.perf_counter() - start


def page_latencies(web: Any, url: str, n: int) -> tuple[list[float], int]:
    """Milliseconds of `n` GETs of the page (after one unmeasured), and how many did not answer 200."""
    errors = int(web.get(url).status_code != 200)
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        errors += web.get(url).status_code != 200
        samples.append((time.perf_counter() - start) * 1000)
    return samples, errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="300,000 journal rows instead of 6,000,000")
    parser.add_argument("--rows", type=int, default=None, help="journal rows to aim for")
    parser.add_argument("--requests", type=int, default=None, help="KPI page requests (default 30, quick 10)")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    tenth = 10 if args.db == "sqlite" else 1  # the embedded default is measured at a tenth of the size
    rows = args.rows or (300_000 if args.quick else 6_000_000) // tenth
    big = (10_000 if args.quick else 100_000) // tenth
    invoices = max(int(rows / ENTRIES_PER_INVOICE), big + CLIENTS)
    n_requests = args.requests or (10 if args.quick else 30)

    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.core.clock import now_utc
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from tests.conftest import login
    from tests.factories import make_client, make_user

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        owner_url = environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"])
        try:
            app = create_app(environ)
            app.config["RATELIMIT_ENABLED"] = False
            with app.app_context():
                upgrade()
                with scoped(TenantScope.agency(), db.session):
                    client_ids = [make_client(name=f"Bench client {n:02d}").id for n in range(CLIENTS)]
                    manager = make_user("manager")
                    email = manager.email
                today = now_utc().date()
                db.session.remove()  # SQLite: one writer at a time, and the seed is the next one
                t0 = time.perf_counter()
                counts = seed(owner_url, client_ids, invoices, big, today)
                seed_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                rebuild_totals(owner_url, client_ids)
                rebuild_s = time.perf_counter() - t0
                base_s, scanned = bare_scan(owner_url)
                product_all_clients(client_ids[:3], today)  # warm the statement caches
                product_s, currencies = product_all_clients(client_ids, today)
                snapshot_s = take_snapshot(client_ids[0])

            web = app.test_client()
            if login(web, email).status_code != 302:
                raise SystemExit("sign-in failed")
            url = f"/reports/clients/{client_ids[0]}"
            samples, errors = page_latencies(web, url, n_requests)
            live_samples, live_errors = page_latencies(web, url + "?live=1", max(n_requests // 3, 5))
            errors += live_errors
            past_day = today - timedelta(days=today.day + 14)  # mid last month: that month is split by later postings
            past_samples, past_errors = page_latencies(web, url + f"?as_of={past_day}", max(n_requests // 3, 5))
            errors += past_errors
        finally:
            drop()

    base_rate, product_rate = scanned / base_s, scanned / product_s
    p50, p95 = statistics.median(samples), _percentile(samples, 0.95)
    live_p50, live_p95 = statistics.median(live_samples), _percentile(live_samples, 0.95)
    past_p50, past_p95 = statistics.median(past_samples), _percentile(past_samples, 0.95)
    print(
        f"\nAging + KPIs on {args.db}: {CLIENTS} clients, {counts['invoices']:,} invoices, "
        f"{counts['payments']:,} payments, {scanned:,} journal rows (seeded in {seed_s:.1f}s; "
        f"monthly totals rebuilt from the journal in {rebuild_s:.1f}s)\n"
    )
    print(f"{'what':<52}{'seconds':>10}{'rows/s':>14}{'ratio':>8}")
    print(f"{'baseline: bare count+sum scan, one core':<52}{base_s:>10.3f}{base_rate:>14,.0f}{1.0:>8.2f}")
    print(
        f"{'product: aging + KPIs, all clients':<52}{product_s:>10.3f}{product_rate:>14,.0f}"
        f"{product_rate / base_rate:>8.3f}"
    )
    print(
        f"\nKPI page of the {big:,}-invoice client (its daily snapshot taken in {snapshot_s:.2f}s): "
        f"p50 {p50:.0f} ms, p95 {p95:.0f} ms over {n_requests} requests (goal p95 < 1000 ms); "
        f"computed live: p50 {live_p50:.0f} ms, p95 {live_p95:.0f} ms over {len(live_samples)}; "
        f"as of {past_day} (mid last month, computed live): p50 {past_p50:.0f} ms, p95 {past_p95:.0f} ms; "
        f"errors {errors}\n"
    )
    print(
        json.dumps(
            {
                "bench": "aging",
                "db": args.db,
                "size": scanned,
                "value": round(product_rate, 1),
                "unit": "journal rows/s",
                "baseline": round(base_rate, 1),
                "ratio": round(product_rate / base_rate, 4),
                "clients": CLIENTS,
                "currencies": currencies,
                "page_invoices": big,
                "p50_ms": round(p50, 1),
                "p95_ms": round(p95, 1),
                "live_p50_ms": round(live_p50, 1),
                "live_p95_ms": round(live_p95, 1),
                "past_p95_ms": round(past_p95, 1),
                "snapshot_s": round(snapshot_s, 3),
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
