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

ratio = product invoices/s / baseline invoices/s (goal >= 0.05); peak RSS of this process (goal <= 1 GB).
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
                first_s, totals = refit_all(client_ids)
                product_s, totals = refit_all(client_ids)
                result = {"counts": counts, "seed_s": seed_s, "base_s": base_s, "scanned": scanned,
                          "first_s": first_s, "product_s": product_s, "totals": totals}  # fmt: skip
        finally:
            drop()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    scanned = result["scanned"]
    base_rate, product_rate = scanned / result["base_s"], scanned / result["product_s"]
    print(
        f"\nForecast refit on postgresql: {CLIENTS} clients, {scanned:,} invoices, "
        f"{result['totals'].get('debtors', 0):,} debtors with behaviour (seeded in {result['seed_s']:.1f}s)\n"
        f"  baseline  bare scan of the invoices      {result['base_s']:8.3f} s  {base_rate:12,.0f} invoices/s\n"
        f"  first     refit, every month-end fitted  {result['first_s']:8.3f} s  {scanned / result['first_s']:12,.0f}"
        f" invoices/s\n"
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
                "peak_rss_mb": round(peak_mb, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
