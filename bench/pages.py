"""Back-office page latency on a realistic agency, against a trivial endpoint in the same run.

    python -m bench.pages [--quick] [--db sqlite|postgresql]

Builds a fresh database from the migrations, seeds the demo agency (default 200k debtors, --quick 3k),
signs in as a manager and times the pages a manager and a collector open all day (client list, debtor
list sorted and paged deep, search, debtor detail) through the full WSGI stack in-process. Baseline: the
`/healthz` endpoint (one `SELECT 1`) through the same stack. `ratio` = baseline p50 / product p50.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _time(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _psycopg(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def _environ(kind: str, tmp: str) -> tuple[dict[str, str], Callable[[], None]]:
    if kind == "sqlite":
        return {"AR_ENV": "testing", "DATABASE_URL": f"sqlite:///{tmp}/bench.db"}, lambda: None
    name = f"ar_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    env = {
        "AR_ENV": "testing",
        "DATABASE_URL": f"postgresql://ar_app@127.0.0.1:5432/{name}",
        "DATABASE_OWNER_URL": f"postgresql://postgres@127.0.0.1:5432/{name}",
    }
    return env, drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3,000 debtors instead of 200,000")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--requests", type=int, default=None, help="requests per page (default 300, quick 100)")
    args = parser.parse_args()
    scale = 1 if args.quick else 67
    n = args.requests or (100 if args.quick else 300)

    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.demo import DEMO_PASSWORD, seed_demo
    from tests.conftest import csrf_token

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        try:
            app = create_app(environ)
            app.config["RATELIMIT_ENABLED"] = False
            with app.app_context():
                upgrade()
                t0 = time.perf_counter()
                summary = seed_demo(scale=scale)
                seed_s = time.perf_counter() - t0
            # steady state: statistics and visibility map, as autovacuum (PostgreSQL) / ANALYZE (SQLite) keep them
            owner = sa.create_engine(
                _psycopg(environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"])), poolclass=sa.NullPool
            )
            with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE" if args.db == "postgresql" else "ANALYZE")
            owner.dispose()
            client = app.test_client()
            page = client.get("/login").get_data(as_text=True)
            login = client.post(
                "/login",
                data={"email": "maria.manager@demo.test", "password": DEMO_PASSWORD, "csrf_token": csrf_token(page)},
            )
            if login.status_code != 302:
                raise SystemExit(f"sign-in failed with HTTP {login.status_code}")
            with app.app_context():
                from clients.models import Client, Debtor
                from provider.core.tenancy import TenantScope, scoped
                from provider.extensions import db

                with scoped(TenantScope.agency(), db.session):
                    biggest = db.session.scalar(sa.select(Client.id).order_by(Client.id))
                    debtor_ids = db.session.scalars(
                        sa.select(Debtor.id).where(Debtor.client_id == biggest).limit(1000)
                    ).all()
                    per_client = db.session.scalar(sa.select(sa.func.count()).where(Debtor.client_id == biggest))
            deep = max(per_client // 50 // 2, 1)
            rng = random.Random(7)
            pages: dict[str, Callable[[], Any]] = {
                "clients list": lambda: client.get("/clients"),
                "debtors p1 by name": lambda: client.get(f"/clients/{biggest}?sort=name"),
                f"debtors p{deep} by name desc": lambda: client.get(
                    f"/clients/{biggest}?sort=name&dir=desc&page={deep}"
                ),
                "debtor search": lambda: client.get(f"/clients/{biggest}?q=smith"),
                "debtor detail": lambda: client.get(f"/clients/{biggest}/debtors/{rng.choice(debtor_ids)}"),
            }
            errors = 0
            for fn in pages.values():  # warm up
                errors += fn().status_code != 200
            baseline = _time(lambda: client.get("/healthz"), n)
            results = {name: _time(fn, n) for name, fn in pages.items()}
            for fn in pages.values():
                errors += fn().status_code != 200
        finally:
            drop()

    base_p50 = statistics.median(baseline)
    print(f"\nBack-office pages on {args.db}: {summary['debtors']:,} debtors ({per_client:,} in the client paged),")
    print(f"seeded in {seed_s:.1f}s; {n} requests per page through the full WSGI stack (in-process).\n")
    print(f"{'page':<32}{'p50 ms':>10}{'p95 ms':>10}{'x baseline':>12}")
    print(f"{'/healthz (baseline)':<32}{base_p50:>10.2f}{_percentile(baseline, 0.95):>10.2f}{1.0:>12.1f}")
    all_samples: list[float] = []
    for name, samples in results.items():
        all_samples += samples
        p50 = statistics.median(samples)
        print(f"{name:<32}{p50:>10.2f}{_percentile(samples, 0.95):>10.2f}{p50 / base_p50:>12.1f}")
    p50, p95 = statistics.median(all_samples), _percentile(all_samples, 0.95)
    print()
    print(
        json.dumps(
            {
                "bench": "pages",
                "db": args.db,
                "size": summary["debtors"],
                "value": round(p50, 3),
                "unit": "ms p50 per page",
                "baseline": round(base_p50, 3),
                "ratio": round(base_p50 / p50, 4),
                "p50_ms": round(p50, 3),
                "p95_ms": round(p95, 3),
                "errors": errors,
            }
        )
    )


if __name__ == "__main__":
    main()
