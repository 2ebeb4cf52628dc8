"""The nightly forecast refit of every client, against a bare scan of the same invoices, in the same run.

    python -m bench.forecast [--quick] [--invoices N]

Builds a fresh PostgreSQL database from the migrations with 50 clients and N invoices (default 2,000,000 with
200,000 debtors; --quick 100,000 invoices) with the set-based seed of bench.aging (invoices placed over two years,
about two thirds paid, to the agency or the client, some part-paid, the rest open), then VACUUM ANALYZE.

  baseline  `SELECT count(*), sum(amount_minor) FROM invoices`, one core, warm cache (best of 3);
  product   the nightly refit of every client as the job runs it (`refit_client`: read the history, segments and
            the behaviour model, the forecast with its interval and backtest at each month-end, store behaviours,
            moves and forecasts), as the app role (row-level security on), committed per client. The first night
            fits every past month-end; later nights reuse them (both are timed, the second is the figure).

  floor     what no design that reads the history into the process can beat: per client, as the app role, COPY
            of only the columns the model cannot do without (each invoice's debtor, currency, dates and amount; each
            receivable move's invoice, day, cash or not and amount) and nothing else: no parsing, no model. The
            invoices alone are printed too: a narrower store of settlements could not make the floor lower than that.

ratio = product invoices/s / baseline invoices/s (goal >= 0.05); peak RSS of this process (goal <= 1 GB). The floor's
ratio is printed beside it: when it is itself below the goal, the goal cannot be met against this baseline.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from typing import Any

import sqlalchemy as sa

from bench.aging import CLIENTS, seed
from bench.pages import _environ, _psycopg


def bare_scan(owner_url: str, repeat: int = 3) -> tuple[float, int]:
    engine = sa.create_engine(_psycopg(owner_url), poolclass=sa.NullPool)
    best, rows = float("inf"), 0
    with engine.connect() as conn:
        conn.exec_driver_sql("SET max_parallel_workers_per_gather = 0")
        for _ in range(repeat + 1):
            start = time.perf_counter()
            rows, _total = conn.exec_driver_sql("SELECT count(*), sum(amount_minor) FROM invoices").one()
            best = min(best, time.perf_counter() - start)
    engine.dispose()
    return best, int(rows)


FLOOR_SQL = (
    "COPY (SELECT id, debtor_id, currency, issue_date, due_date, amount_minor FROM invoices WHERE client_id = {c}) "
    "TO STDOUT",
    "COPY (SELECT e.invoice_id, t.occurred_on, e.payment_id IS NOT NULL, sum(e.amount_minor) FROM journal_entries e "
    "JOIN journal_transactions t ON t.client_id = e.client_id AND t.id = e.transaction_id WHERE e.client_id = {c} "
    "AND e.account = 'receivable' AND e.invoice_id IS NOT NULL AND t.kind <> 'invoice' "
    "GROUP BY e.invoice_id, t.occurred_on, e.payment_id IS NOT NULL) TO STDOUT",
)


def read_floor(client_ids: list[int]) -> tuple[float, float]:
    """Seconds to COPY the model's indispensable columns of every client (see the module's docstring): the invoices
    alone, and the invoices with their receivable moves."""
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db

    spent = [0.0, 0.0]
    for client_id in client_ids:
        with scoped(TenantScope.single(client_id), db.session):
            raw: Any = db.session.connection().connection.driver_connection  # psycopg's own connection, for COPY
            with raw.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
                for k, sql in enumerate(FLOOR_SQL):
                    start = time.perf_counter()
                    with cursor.copy(sql.format(c=int(client_id))) as copy:
                        for _block in copy:
                            pass
                    spent[k] += time.perf_counter() - start
            db.session.commit()
    return spent[0], spent[0] + spent[1]


def refit_all(client_ids: list[int]) -> tuple[float, dict[str, int]]:
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from provider.forecast.services import refit_client

    totals: dict[str, int] = {}
    start = time.perf_counter()
    for client_id in client_ids:
        with scoped(TenantScope.single(client_id), db.session):
            counts = refit_client(db.session, client_id)
            db.session.commit()
        for key, value in counts.items():
            totals[key] = totals.get(key, 0) + value
    return time.perf_counter() - start, totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 invoices instead of 2,000,000")
    parser.add_argument("--invoices", type=int, default=None)
    parser.add_argument("--db", choices=("postgresql",), default="postgresql")
    args = parser.parse_args()
    invoices = args.invoices or (100_000 if args.quick else 2_000_000)
    debtors_per_client = max(invoices // 10 // CLIENTS, 20)

    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.core.clock import now_utc
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from tests.factories import make_client

    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ("postgresql", tmp)
        owner_url = environ["DATABASE_OWNER_URL"]
        try:
            app = create_app(environ)
            with app.app_context():
                upgrade()
                with scoped(TenantScope.agency(), db.session):
                    client_ids = [make_client(name=f"Bench client {n:02d}").id for n in range(CLIENTS)]
                today = now_utc().date()
                t0 = time.perf_counter()
                counts = seed(owner_url, client_ids, invoices, invoices // CLIENTS, today, debtors_per_client)
                seed_s = time.perf_counter() - t0
                base_s, scanned = bare_scan(owner_url)
                read_floor(client_ids)  # warm, as the product's second night is
                invoices_s, floor_s = read_floor(client_ids)
                first_s, totals = refit_all(client_ids)
                product_s, totals = refit_all(client_ids)
                result = {"counts": counts, "seed_s": seed_s, "base_s": base_s, "scanned": scanned, "floor_s": floor_s,
                          "invoices_s": invoices_s,
                          "first_s": first_s, "product_s": product_s, "totals": totals}  # fmt: skip
        finally:
            drop()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    scanned = result["scanned"]
    base_rate, product_rate = scanned / result["base_s"], scanned / result["product_s"]
    floor_rate, invoices_rate = scanned / result["floor_s"], scanned / result["invoices_s"]
    print(
        f"\nForecast refit on postgresql: {CLIENTS} clients, {scanned:,} invoices, "
        f"{result['totals'].get('debtors', 0):,} debtors with behaviour (seeded in {result['seed_s']:.1f}s)\n"
        f"  baseline  bare scan of the invoices      {result['base_s']:8.3f} s  {base_rate:12,.0f} invoices/s\n"
        f"  first     refit, every month-end fitted  {result['first_s']:8.3f} s  {scanned / result['first_s']:12,.0f}"
        f" invoices/s\n"
        f"  floor     COPY of the invoices' columns {result['invoices_s']:7.3f} s  {invoices_rate:12,.0f} invoices/s"
        f"  (ratio {invoices_rate / base_rate:.4f})\n"
        f"            ... and of their moves      {result['floor_s']:8.3f} s  {floor_rate:12,.0f} invoices/s"
        f"  (ratio {floor_rate / base_rate:.4f})\n"
        f"  product   nightly refit (month-ends kept) {result['product_s']:7.3f} s  {product_rate:12,.0f} invoices/s\n"
        f"  ratio     {product_rate / base_rate:.4f} (goal >= 0.05); peak RSS {peak_mb:,.0f} MB (goal <= 1024)"
    )
    print(
        json.dumps(
            {
                "bench": "forecast",
                "size": scanned,
                "value": round(product_rate, 1),
                "unit": "invoices/s",
                "baseline": round(base_rate, 1),
                "ratio": round(product_rate / base_rate, 5),
                "first_night_ratio": round(scanned / result["first_s"] / base_rate, 5),
                "floor_ratio": round(floor_rate / base_rate, 5),
                "invoices_floor_ratio": round(invoices_rate / base_rate, 5),
                "peak_rss_mb": round(peak_mb, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
