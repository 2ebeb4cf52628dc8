"""Monthly remittance run: fees, statements and payout files for 50 clients, against a bare sum over the same
payments.

    python -m bench.remittance [--quick] [--db postgresql|sqlite] [--payments N] [--clients 50]

Builds a fresh database from the migrations: 50 clients, each with a fee schedule (two age tiers, tax) and a bank
account (IBAN), the agency's EUR trust account, two managers, debtors with one placed invoice each, and each
client's share of N payments (default 200,000; --quick 20,000; --db sqlite a tenth), one in ten made directly to
the client, recorded through the ledger's bulk path (`record_payments`, untimed). Then, timed, in the same run on
the same database:
  baseline:  SELECT client_id, sum(amount_minor) FROM payments GROUP BY client_id (the bare scan, same session);
  floor:     a bare INSERT ... SELECT of one `payment_fees` row per payment, nothing priced (rolled back): the
             least any design that keeps each fee traceable to its payment must write (DESIGN §9);
  fees:      `bring_up_to_date` per client, one transaction each (what the books job does as payments arrive):
             every payment priced and posted to the agency's books (three INSERT ... SELECT per client);
  entries:   a bare INSERT ... SELECT of as many `agency_entries` rows as the fees step wrote (rolled back);
  run:       per client, the month end: `draft_runs` for March (totals from the books, checked equal to them),
             the statement's lines read once and written as CSV, the payout prepared by one manager and approved
             by the other (books posting + the SEPA pain.001 file, checked against the XSD, which the worker
             parses once, before the timing), and the fee invoice of the direct payments.
The issue's figure is the whole monthly run, fees included: value = payments / (fees + run seconds), ratio =
baseline / (fees + run) (goal >= 0.05); floor_ratio = baseline / floor says whether any per-payment design could
reach it. The month-end step alone (books already current, as the books job keeps them) is `run_ratio`.
Check: every statement's total (brought forward + lines) equals the run's net and the books' position, and every
approved run's payout file pays the run's remittance.
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

TRUST_IBAN = "DE89370400440532013000"


def build(n: int, clients: int) -> list[int]:
    from schwifty import IBAN

    from clients import services, trust
    from clients.bank_details import save_bank_account
    from clients.models import Client, Debtor
    from provider.books.services import TierInput, add_fee_schedule
    from provider.core.clock import frozen_time
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from tests.factories import make_client

    with scoped(TenantScope.agency(), db.session):
        trust.save_trust_account(db.session, {"currency": "EUR", "name": "Agency Trust", "account": TRUST_IBAN})
        db.session.commit()
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
            iban = str(IBAN.generate("DE", bank_code="37040044", account_code=f"{client.id:010d}"))
            save_bank_account(db.session, client, {"currency": "EUR", "holder": client.name, "iban": iban})
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

    from clients import payouts
    from clients.payout_files import _pain001_schema
    from clients.trust_models import RunPayout
    from provider.app import create_app
    from provider.books.invoices import issue_fee_invoice
    from provider.books.posting import bring_up_to_date
    from provider.books.remittance import draft_runs, position, statement_csv, statement_lines
    from provider.core.audit import Actor, acting_as
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from tests.factories import make_user

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        environ |= {"SECRET_KEY": secrets.token_hex(32)}
        try:
            app = create_app(environ)
            with app.app_context(), acting_as(Actor.system("bench")):
                upgrade()
                t0 = time.perf_counter()
                client_ids = build(n, args.clients)
                preparer, approver = make_user("manager"), make_user("admin")
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

                # floor: one narrow fee row per payment, nothing priced, written by the database alone (rolled back)
                with scoped(TenantScope.agency(), db.session):
                    start = time.perf_counter()
                    db.session.execute(
                        sa.text(
                            "INSERT INTO payment_fees (client_id, payment_id, status, reason, direct, currency,"
                            " amount_minor, fee_minor, tax_minor, updated_at) SELECT client_id, id, 'priced', '',"
                            " received_by = 'client', currency, amount_minor, 0, 0, recorded_at FROM payments"
                        )
                    )
                    floor_s = time.perf_counter() - start
                    db.session.rollback()

                start = time.perf_counter()
                for cid in client_ids:
                    with scoped(TenantScope.single(cid), db.session):
                        bring_up_to_date(db.session, cid)
                        db.session.commit()
                fees_s = time.perf_counter() - start

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
                    entries_s = time.perf_counter() - start
                    db.session.rollback()

                _pain001_schema()  # parsed once per worker process, not per run: not part of the month end
                errors, runs, lines, statement_bytes, files, file_bytes = 0, 0, 0, 0, 0, 0
                march = (date(2026, 3, 1), date(2026, 3, 31))
                start = time.perf_counter()
                for cid in client_ids:
                    with scoped(TenantScope.single(cid), db.session):
                        for run in draft_runs(db.session, cid, "monthly", *march):
                            statement = statement_lines(db.session, cid, run.currency, run.from_tx_id, run.upto_tx_id)
                            data = statement_csv(db.session, run, statement)
                            statement_bytes += len(data)
                            rows = list(csv.reader(io.StringIO(data.decode())))
                            lines += len(rows) - 3
                            held, due = position(db.session, cid, run.currency, run.upto_tx_id)
                            stated = _minor(rows[1][-1]) + sum(_minor(r[-1]) for r in rows[2:-1])
                            if not (stated == run.net_minor == held - due == _minor(rows[-1][-1])):
                                errors += 1
                            with acting_as(Actor(preparer.id, preparer.email)):
                                payouts.prepare(db.session, run)
                            with acting_as(Actor(approver.id, approver.email)):
                                payout = payouts.approve(db.session, run)
                            if payout.content is not None:
                                files += 1
                                file_bytes += len(payout.content)
                                if (
                                    f"{run.remit_minor // 100}.{run.remit_minor % 100:02d}"
                                    not in payout.content.decode()
                                ):
                                    errors += 1
                            runs += 1
                        issue_fee_invoice(db.session, cid, "EUR", *march)
                        db.session.commit()
                run_s = time.perf_counter() - start
                with scoped(TenantScope.agency(), db.session):
                    approved = db.session.scalar(
                        sa.select(sa.func.count()).select_from(RunPayout).where(RunPayout.approved_at.is_not(None))
                    )
                    if approved != runs:
                        errors += 1
                db.session.remove()
        finally:
            drop()

    total_s = fees_s + run_s
    print(f"\nRemittance run on {args.db}: {n:,} payments, {len(client_ids)} clients (built in {build_s:.0f} s)")
    print(f"  {'step':<62}{'seconds':>9}{'payments/s':>13}")

    def row(label: str, seconds: float) -> None:
        print(f"  {label:<62}{seconds:9.3f}{n / seconds:13,.0f}")

    row("baseline: SELECT client_id, sum(amount) GROUP BY client_id", baseline_s)
    row("floor: INSERT ... SELECT of one bare fee row per payment", floor_s)
    row("fees: price and post every payment to the books", fees_s)
    row(f"  (bare INSERT ... SELECT of the same {entry_rows:,} entry rows)", entries_s)
    row("run: draft + statement CSV + payout file (4 eyes) + fee invoice", run_s)
    row("monthly run, fees included (fees + run)", total_s)
    print(f"  runs {runs}, statement lines {lines:,} ({statement_bytes / 1e6:.1f} MB), payout files {files}", end="")
    print(f" ({file_bytes / 1e3:.0f} kB), statement/books/file mismatches {errors}")
    print(
        f"  ratio (fees + run) {baseline_s / total_s:.4f} (goal >= 0.05); floor {baseline_s / floor_s:.4f}; "
        f"month end alone {baseline_s / run_s:.4f}; fees vs bare entry rows {entries_s / fees_s:.2f}\n"
    )
    print(
        json.dumps(
            {
                "bench": "remittance",
                "db": args.db,
                "size": n,
                "value": round(n / total_s, 1),
                "unit": "payments/s",
                "baseline": round(n / baseline_s, 1),
                "ratio": round(baseline_s / total_s, 4),
                "floor_value": round(n / floor_s, 1),
                "floor_ratio": round(baseline_s / floor_s, 4),
                "fees_s": round(fees_s, 3),
                "run_s": round(run_s, 3),
                "run_ratio": round(baseline_s / run_s, 4),
                "fees_vs_entries_floor": round(entries_s / fees_s, 4),
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
