"""The SLA breach sweep over many open clocks, against a bare scan of the same table in the same run.

    python -m bench.sla_sweep [--quick] [--db postgresql|sqlite]

Builds a fresh database from the migrations, 20 clients with the standard contract and 100,000 running SLA
clocks (--quick 10,000) whose deadlines are spread over the next hours. Each round runs the real periodic
job (`sweep_sla_clocks_job`: mark breaches, clock history, notifications, audit, one commit) at an instant
1 % of the clocks further on, so every round finds fresh breaches. Baseline: a bare scan of the same table
(`SELECT count(*), sum(elapsed_us), max(deadline_at) FROM sla_clocks`) through the same session and role. `value` and
`baseline` are open clocks covered per second; `ratio` = value / baseline (goal: at least 0.25).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from bench.pages import _environ, _psycopg

T0 = datetime(2026, 6, 1, 6, 0, tzinfo=UTC)
ROUNDS = 5


def _seed(n: int) -> list[int]:
    from clients.services import create_client
    from provider.extensions import db
    from sla.models import SlaClock
    from sla.services import add_contract_terms

    client_ids = []
    for i in range(20):
        client = create_client(
            db.session,
            {
                "name": f"Bench {i}",
                "code": f"B{i:03d}",
                "base_currency": "EUR",
                "timezone": "Europe/Berlin",
                "country": "DE",
                "debt_type": "commercial",
                "status": "active",
            },
        )
        add_contract_terms(db.session, client, date(2025, 1, 1))
        client_ids.append(client.id)
    db.session.commit()
    step = 3600 / n  # deadlines spread over one hour after T0: 1 % of the clocks per 36 s
    rows = [
        {
            "client_id": client_ids[i % 20],
            "code": "dispute_resolve",
            "subject_type": "bench",
            "subject_id": i,
            "state": "running",
            "allowance_us": 10 * 8 * 3600 * 1_000_000,
            "at_risk_pct": 75,
            "elapsed_us": 0,
            "started_at": T0 - timedelta(days=14),
            "running_since": T0 - timedelta(days=14),
            "deadline_at": T0 + timedelta(seconds=(i + 1) * step),
            "at_risk_at": T0 - timedelta(days=2),
        }
        for i in range(n)
    ]
    for i in range(0, n, 10_000):
        db.session.execute(sa.insert(SlaClock), rows[i : i + 10_000])
    db.session.commit()
    return client_ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 clocks instead of 100,000")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    n = 10_000 if args.quick else 100_000

    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.core.clock import frozen_time
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from sla.jobs import sweep_sla_clocks_job

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        try:
            app = create_app(environ)
            with app.app_context():
                upgrade()
                with scoped(TenantScope.agency(), db.session):
                    t = time.perf_counter()
                    _seed(n)
                    seed_s = time.perf_counter() - t
                db.session.remove()
                owner = sa.create_engine(
                    _psycopg(environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"])), poolclass=sa.NullPool
                )
                with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM ANALYZE" if args.db == "postgresql" else "ANALYZE")
                owner.dispose()
                scans, sweeps, breached = [], [], []
                for r in range(1, ROUNDS + 1):
                    with scoped(TenantScope.agency(), db.session):
                        t = time.perf_counter()
                        db.session.execute(
                            sa.text("SELECT count(*), sum(elapsed_us), max(deadline_at) FROM sla_clocks")
                        ).one()
                        db.session.commit()
                        scans.append(time.perf_counter() - t)
                    with frozen_time(T0 + timedelta(seconds=36 * r)):
                        t = time.perf_counter()
                        result = sweep_sla_clocks_job()
                        sweeps.append(time.perf_counter() - t)
                    breached.append(result["notified"])
                    db.session.remove()
        finally:
            drop()

    sweep_s, scan_s = statistics.median(sweeps), statistics.median(scans)
    value, baseline = n / sweep_s, n / scan_s
    print(f"\nSLA breach sweep on {args.db}: {n:,} open clocks (seeded in {seed_s:.1f}s), {ROUNDS} rounds,")
    print(f"each finding ~1 % fresh breaches (notified per round: {breached}).\n")
    print(f"{'path':<44}{'median ms':>12}{'clocks/s':>14}")
    print(f"{'bare scan of sla_clocks (baseline)':<44}{scan_s * 1000:>12.1f}{baseline:>14,.0f}")
    print(f"{'sweep_sla_clocks_job (mark+notify+commit)':<44}{sweep_s * 1000:>12.1f}{value:>14,.0f}")
    print(f"\nratio (sweep speed / scan speed): {value / baseline:.2f} (goal >= 0.25)\n")
    print(
        json.dumps(
            {
                "bench": "sla_sweep",
                "db": args.db,
                "size": n,
                "value": round(value, 1),
                "unit": "clocks/s",
                "baseline": round(baseline, 1),
                "ratio": round(value / baseline, 4),
                "breaches_per_round": breached,
                "sweep_ms": round(sweep_s * 1000, 2),
                "scan_ms": round(scan_s * 1000, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
