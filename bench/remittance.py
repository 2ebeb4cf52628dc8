"""Monthly remittance run: fees, statements and runs for 50 clients, against a bare sum over the same payments.

    python -m bench.remittance [--quick] [--db postgresql|sqlite] [--payments N] [--clients 50]

Builds a fresh database from the migrations: 50 clients, each with a fee schedule (two age tiers, tax), debtors
with one placed invoice each, and its share of N payments (default 200,000; --quick 20,000; --db sqlite a tenth),
one in ten made directly to the client, recorded through the ledger's bulk path (`record_payments`, untimed).
Then, timed, in the same run on the same database:
  baseline:   SELECT client_id, sum(amount_minor) FROM payments GROUP BY client_id (the bare scan, same session);
  fees:       `bring_up_to_date` per client: every payment priced and posted to the agency's books;
  floor:      a bare INSERT ... SELECT of as many agency_entries rows as the fees step wrote (rolled back): what
              the database alone needs to write the books' biggest table (DESIGN §9);
  run:        `draft_runs` per client for March (statement lines from the books, checked equal to them),
              the statement CSV of every run, `approve_run`, and the fee invoice of the direct payments.
value = payments / (run seconds); ratio = baseline seconds / run seconds (goal >= 0.05). The fees step is
reported beside it (it happens as payments arrive, in the books job, not at month end) with its own ratio.
Check: every statement's total (brought forward + lines) equals the run's net and the books' position.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import secrets
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from bench.pages import _environ


def build(n: int, clients: int) -> list[int]:
    from clients import services
    from clients.models import Client, Debtor
    from provider.books.services import TierInput, add_fee_schedule
    from provider.core.clock import frozen_time
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from tests.factories import make_client

    rng = random.Random(20)
    ids = []
    per_client = n // clients
    for c in range(clients):
        with scoped(TenantScope.agency(), db.session):
            client_id = make_client(base_currency="EUR").id
        ids.append(client_id)
        with scoped(TenantScope.single(client_id), db.session):
            client = db.session.get_one(Client, client_id)
            add_fee_schedule(
                db.session,
                client,
                effective_from=date(2025, 1, 1),
                currency="EUR",
                tax_rate_bp=2000,
                tiers=[TierInput(0, 90, 1500, 1000), TierInput(91, None, 2500, 2000)],
            )
            n_debtors = max(per_client // 20, 5)
            db.session.execute(
                sa.insert(Debtor),
                [
                    {"client_id": client.id, "external_ref": f"D{k}", "name": f"Debtor {c}-{k}"}
                    for k in range(n_debtors)
                ],
            )
            debtor_ids = list(db.session.scalars(sa.select(Debtor.id).where(Debtor.client_id == client.id)))
            with frozen_time(datetime(2026, 2, 1, 9, tzinfo=UTC)):
                services.place_invoices(
                    db.session,
                    client,
                    [
                        {
                            "debtor_id": d,
                            "number": f"I{d}",
                            "issue_date": date(2025, 1, 1),
                            "due_date": date(2026, 2, 1) - timedelta(days=rng.choice([10, 45, 120, 200])),
                            "currency": "EUR",
                            "amount_minor": 10_000_000,
                            "po_reference": "",
                        }
                        for d in debtor_ids
                    ],
                )
            rows = [
                {
                    "debtor_id": rng.choice(debtor_ids),
                    "external_ref": f"P{c}-{k}",
                    "received_on": date(2026, 3, 1) + timedelta(days=rng.randrange(31)),
                    "currency": "EUR",
                    "amount_minor": rng.randrange(100, 500_000),
                    "method": "bank_transfer",
                    "received_by": "client" if rng.random() < 0.1 else "agency",
                    "reference": "",
                }
                for k in range(per_client)
            ]
            for k in range(0, len(rows), 2_000):
                services.record_payments(db.session, client, rows[k : k + 2_000])
            db.session.commit()
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 payments instead of 200,000")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--payments", type=int, default=None)
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    n = args.payments or (20_000 if args.quick else 200_000)
    if args.db == "sqlite" and args.payments is None:
        n //= 10

    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.books.invoices import issue_fee_invoice
    from provider.books.posting import bring_up_to_date
    from provider.books.remittance import approve_run, draft_runs, position, statement_csv
    from provider.core.audit import Actor, acting_as
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        environ |= {"SECRET_KEY": secrets.token_hex(32)}
        try:
            app = create_app(environ)
            with app.app_context(), acting_as(Actor.system("bench")):
                upgrade()
                t0 = time.perf_counter()
                client_ids = build(n, args.clients)
                build_s = time.perf_counter() - t0
                if args.db == "postgresql":
                    owner = sa.create_engine(environ["DATABASE_OWNER_URL"], isolation_level="AUTOCOMMIT")
                    with owner.connect() as conn:
                        conn.execute(sa.text("VACUUM ANALYZE"))
                    owner.dispose()

                with scoped(TenantScope.agency(), db.session):
                    start = time.perf_counter()
                    sums = db.session.execute(
                        sa.text("SELECT client_id, sum(amount_minor) FROM payments GROUP BY client_id")
                    ).all()
                    baseline_s = time.perf_counter() - start
                    db.session.commit()
                if len(sums) != len(client_ids):
                    raise SystemExit("the baseline did not see every client")

                start = time.perf_counter()
                for cid in client_ids:
                    with scoped(TenantScope.single(cid), db.session):
                        bring_up_to_date(db.session, cid)
                        db.session.commit()
                fees_s = time.perf_counter() - start

                # floor: the database alone writing as many entry rows (a bare INSERT ... SELECT, rolled back)
                with scoped(TenantScope.agency(), db.session):
                    entry_rows = db.session.scalar(sa.text("SELECT count(*) FROM agency_entries")) or 0
                    start = time.perf_counter()
                    db.session.execute(
                        sa.text(
                            "INSERT INTO agency_entries (client_id, transaction_id, account, currency, amount_minor,"
                            " payment_id) SELECT client_id, transaction_id, account, currency, amount_minor,"
                            " payment_id FROM agency_entries"
                        )
                    )
                    floor_s = time.perf_counter() - start
                    db.session.rollback()

                errors, runs, lines, statement_bytes = 0, 0, 0, 0
                start = time.perf_counter()
                for cid in client_ids:
                    with scoped(TenantScope.single(cid), db.session):
                        for run in draft_runs(db.session, cid, "monthly", date(2026, 3, 1), date(2026, 3, 31)):
                            data = statement_csv(db.session, run)
                            statement_bytes += len(data)
                            rows = list(csv.reader(io.StringIO(data.decode())))
                            lines += len(rows) - 3
                            held, due = position(db.session, cid, run.currency, run.upto_tx_id)
                            stated = _minor(rows[1][-1]) + sum(_minor(r[-1]) for r in rows[2:-1])
                            if not (stated == run.net_minor == held - due == _minor(rows[-1][-1])):
                                errors += 1
                            approve_run(db.session, run, "bench")
                            runs += 1
                        issue_fee_invoice(db.session, cid, "EUR", date(2026, 3, 1), date(2026, 3, 31))
                        db.session.commit()
                run_s = time.perf_counter() - start
                db.session.remove()
        finally:
            drop()

    print(f"\nRemittance run on {args.db}: {n:,} payments, {len(client_ids)} clients (built in {build_s:.0f} s)")
    print(f"  {'step':<58}{'seconds':>9}{'payments/s':>13}")
    print(
        f"  {'baseline: SELECT client_id, sum(amount) GROUP BY client_id':<58}{baseline_s:9.3f}{n / baseline_s:13,.0f}"
    )
    print(f"  {'fees: price and post every payment to the books':<58}{fees_s:9.3f}{n / fees_s:13,.0f}")
    print(
        f"  {f'floor: INSERT ... SELECT of the same {entry_rows:,} entry rows':<58}{floor_s:9.3f}{n / floor_s:13,.0f}"
    )
    print(f"  {'run: draft + statement CSV + approve + fee invoice':<58}{run_s:9.3f}{n / run_s:13,.0f}")
    print(f"  runs {runs}, statement lines {lines:,} ({statement_bytes / 1e6:.1f} MB)", end="")
    print(f", statement/books mismatches {errors}")
    print(
        f"  run / baseline {baseline_s / run_s:.4f} (goal >= 0.05); fees + run / baseline "
        f"{baseline_s / (fees_s + run_s):.4f}\n"
    )
    print(
        json.dumps(
            {
                "bench": "remittance",
                "db": args.db,
                "size": n,
                "value": round(n / run_s, 1),
                "unit": "payments/s",
                "baseline": round(n / baseline_s, 1),
                "ratio": round(baseline_s / run_s, 4),
                "fees_value": round(n / fees_s, 1),
                "fees_ratio": round(baseline_s / fees_s, 4),
                "floor_value": round(n / floor_s, 1),
                "fees_vs_floor": round(floor_s / fees_s, 4),
                "all_ratio": round(baseline_s / (fees_s + run_s), 4),
                "errors": errors,
            }
        )
    )


def _minor(text: str) -> int:
    whole, _, frac = text.partition(".")
    sign = -1 if whole.startswith("-") else 1
    return sign * (abs(int(whole or "0")) * 100 + int(frac or "0"))


if __name__ == "__main__":
    main()
