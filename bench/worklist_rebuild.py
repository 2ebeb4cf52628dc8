"""Worklist rebuild: rescoring every open account against a bare scan of the same invoices, same run.

    python -m bench.worklist_rebuild [--quick] [--db postgresql|sqlite]

Builds a fresh database from the migrations with 20 clients in six currencies and (default) 200,000
debtors, each with one overdue open invoice (--quick: 20,000). Then times, through the real job path
(`worklists.jobs.rebuild_clients`, the nightly job's one set-based pass over all clients, as the
application role under row-level security):

- first build: every work item created;
- nightly rescoring the next day: every account re-scored, only the changed rows rewritten;
- full rescoring: a strategy change that moves every score, so every row is rewritten.

Baseline: a bare scan of the same rows the rescoring must read, from the same tables: every overdue
collectable invoice joined to its debtor and its current work item (`SELECT count(*), sum(...) ...`, one
statement, no grouping, no scoring, no writes). The invoices-only scan is printed too, for reference.
Statistics are refreshed (ANALYZE) after seeding and after the first build, as autovacuum would in
production (it is off on the development server).
`ratio` = baseline time / full-rescoring time (goal: at least 0.25, "under 4x the scan").

Floor (after the runs, the table vacuumed first): one bare `UPDATE work_items SET score = score + 1` over every
item, as the table owner, committed. It computes nothing; it only rewrites every row with a new score, as a
full rescoring must, with the table's indexes (the queue's score indexes among them, so no update is HOT).
No full rescoring that keeps these indexes can be faster, so `floor_ratio` is the most the ratio could reach.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench.pages import _environ, _psycopg

CURRENCIES = ("EUR", "USD", "GBP", "JPY", "AUD", "CAD")
CLIENTS = 20
AS_OF = date(2026, 6, 1)


def _seed(owner_url: str, kind: str, debtors: int) -> None:
    """Clients, debtors and one overdue invoice each, in bulk SQL (set-based, deterministic)."""
    engine = sa.create_engine(_psycopg(owner_url), poolclass=sa.NullPool)
    per = debtors // CLIENTS
    with engine.begin() as conn:
        for c in range(CLIENTS):
            conn.execute(
                sa.text(
                    "INSERT INTO clients (id, name, code, base_currency, timezone, country, debt_type, status,"
                    " created_at, updated_at) VALUES (:id, :name, :code, :cur, 'Europe/Berlin', 'DE', :dt, 'active',"
                    " :now, :now)"
                ),
                {
                    "id": c + 1,
                    "name": f"Bench client {c + 1}",
                    "code": f"B{c + 1:03d}",
                    "cur": CURRENCIES[c % len(CURRENCIES)],
                    "dt": "consumer" if c % 2 else "commercial",
                    "now": datetime(2026, 1, 1, tzinfo=UTC),
                },
            )
        series = (
            "generate_series(0, :n - 1) AS g(i)"
            if kind == "postgresql"
            else "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < :n) SELECT i FROM s) g"
        )
        now = "'2026-01-01 00:00:00+00'" if kind == "postgresql" else "'2026-01-01 00:00:00'"
        conn.execute(
            sa.text(
                "INSERT INTO debtors (id, client_id, external_ref, name, segment, do_not_contact,"
                " created_at, updated_at)"
                f" SELECT i + 1, (i % {CLIENTS}) + 1, 'D' || i, 'Debtor ' || i,"
                " CASE WHEN i % 7 = 0 THEN 'high_risk' ELSE 'standard' END, false,"
                f" {now}, {now} FROM {series}"
            ),
            {"n": per * CLIENTS},
        )
        cur_case = (
            "CASE (i % "
            + str(CLIENTS)
            + ") % 6 "
            + " ".join(f"WHEN {k} THEN '{c}'" for k, c in enumerate(CURRENCIES))
            + " END"
        )
        conn.execute(
            sa.text(
                "INSERT INTO invoices (id, client_id, debtor_id, number, issue_date, due_date, currency, amount_minor,"
                " adjusted_minor, open_minor, po_reference, on_hold, placed_at)"
                f" SELECT i + 1, (i % {CLIENTS}) + 1, i + 1, 'INV' || i, :issued - (i % 400), :issued - (i % 400) + 30,"
                f" {cur_case}, 1000 + (i * 7919) % 5000000, 0, 1000 + (i * 7919) % 5000000, '', false, {now}"
                f" FROM {series}"
                if kind == "postgresql"
                else "INSERT INTO invoices (id, client_id, debtor_id, number, issue_date, due_date, currency,"
                " amount_minor, adjusted_minor, open_minor, po_reference, on_hold, placed_at)"
                f" SELECT i + 1, (i % {CLIENTS}) + 1, i + 1, 'INV' || i, date(:issued_s, '-' || (i % 400) || ' days'),"
                f" date(:issued_s, '-' || (i % 400) || ' days', '+30 days'), {cur_case},"
                f" 1000 + (i * 7919) % 5000000, 0, 1000 + (i * 7919) % 5000000, '', false, {now} FROM {series}"
            ),
            {"n": per * CLIENTS, "issued": date(2026, 3, 1), "issued_s": "2026-03-01"},
        )
        if kind == "postgresql":
            for seq, table in (
                ("clients_id_seq", "clients"),
                ("debtors_id_seq", "debtors"),
                ("invoices_id_seq", "invoices"),
            ):
                conn.execute(sa.text(f"SELECT setval('{seq}', (SELECT max(id) FROM {table}))"))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if kind == "postgresql" else "ANALYZE")
    engine.dispose()


def rewrite_floor(owner_url: str, kind: str) -> float:
    """Seconds for the floor (see the docstring): every work item rewritten with a new score, nothing computed."""
    engine = sa.create_engine(_psycopg(owner_url), poolclass=sa.NullPool)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE work_items" if kind == "postgresql" else "ANALYZE work_items")
    start = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE work_items SET score = score + 1")
    elapsed = time.perf_counter() - start
    engine.dispose()
    return elapsed


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 accounts instead of 200,000")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    accounts = 20_000 if args.quick else 200_000

    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.core.clock import frozen_time
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from worklists.jobs import rebuild_clients
    from worklists.models import Strategy, WorkItem

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        try:
            app = create_app(environ)
            with app.app_context():
                upgrade()
            _seed(environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"]), args.db, accounts)
            with app.app_context():
                invoices_sql = sa.text(
                    "SELECT count(*), sum(open_minor) FROM invoices"
                    " WHERE open_minor > 0 AND NOT on_hold AND due_date < :today"
                )
                # the rows the rescoring reads: overdue invoices, their debtors and current work items
                scan_sql = sa.text(
                    "SELECT count(*), sum(i.open_minor), count(d.segment), sum(w.score) FROM invoices i"
                    " JOIN debtors d ON d.client_id = i.client_id AND d.id = i.debtor_id"
                    " LEFT JOIN work_items w ON w.client_id = i.client_id AND w.debtor_id = i.debtor_id"
                    " WHERE i.open_minor > 0 AND NOT i.on_hold AND i.due_date < :today"
                )

                def scan(sql: Any = scan_sql) -> None:
                    with scoped(TenantScope.agency(), db.session):
                        n = db.session.execute(sql, {"today": AS_OF}).one()[0]
                        db.session.commit()
                    if n != accounts:
                        raise SystemExit(f"expected {accounts} overdue invoices, found {n}")

                def analyze() -> None:
                    owner = sa.create_engine(_psycopg(environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"])))
                    with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                        conn.exec_driver_sql("ANALYZE")
                    owner.dispose()

                def rebuild_all() -> None:
                    rebuild_clients(list(range(1, CLIENTS + 1)))
                    db.session.commit()

                day = datetime.combine(AS_OF, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1)
                with frozen_time(day):
                    first = _timed(rebuild_all)
                analyze()  # the work items were just loaded
                scan()  # warm the cache for all runs
                scan(invoices_sql)
                baseline = min(_timed(scan) for _ in range(3))
                invoices_only = min(_timed(lambda: scan(invoices_sql)) for _ in range(3))
                with frozen_time(day + timedelta(days=1)):
                    nightly = _timed(rebuild_all)
                with scoped(TenantScope.agency(), db.session):
                    for client_id in range(1, CLIENTS + 1):
                        db.session.add(Strategy(client_id=client_id, client_boost=5))
                    db.session.commit()
                with frozen_time(day + timedelta(days=1)):
                    full = _timed(rebuild_all)
                with scoped(TenantScope.agency(), db.session):
                    items = db.session.scalar(sa.select(sa.func.count()).select_from(WorkItem))
                    db.session.commit()
                db.session.remove()
                db.engine.dispose()
                floor = rewrite_floor(environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"]), args.db)
        finally:
            drop()

    print(f"\nWorklist rebuild on {args.db}: {accounts:,} open accounts in {CLIENTS} clients ({items:,} work items).\n")
    print(f"{'run':<44}{'seconds':>10}{'accounts/s':>14}{'x scan':>10}")
    for name, secs in (
        ("bare scan of the same rows (baseline)", baseline),
        ("  (bare scan of the invoices only)", invoices_only),
        ("first build (all items created)", first),
        ("nightly rescoring, next day", nightly),
        ("full rescoring (every score changes)", full),
        ("floor: every row rewritten, nothing computed", floor),
    ):
        print(f"{name:<44}{secs:>10.2f}{accounts / secs:>14,.0f}{secs / baseline:>10.1f}")
    print()
    print(
        json.dumps(
            {
                "bench": "worklist_rebuild",
                "db": args.db,
                "size": accounts,
                "value": round(accounts / full, 1),
                "unit": "accounts/s",
                "baseline": round(accounts / baseline, 1),
                "ratio": round(baseline / full, 4),
                "first_build_s": round(first, 3),
                "nightly_s": round(nightly, 3),
                "nightly_ratio": round(baseline / nightly, 4),
                "full_s": round(full, 3),
                "floor_s": round(floor, 3),
                "floor_ratio": round(baseline / floor, 4),
                "scan_s": round(baseline, 4),
                "invoices_scan_s": round(invoices_only, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
