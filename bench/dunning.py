"""The daily dunning run over many overdue debtors, against a bare INSERT … SELECT of as many message rows.

    python -m bench.dunning [--quick] [--db postgresql|sqlite] [--statements N]

Builds a fresh database from the migrations: 20 clients, each with an approved policy (e-mail steps at 3, 14
and 30 days past due, a collector call at 45) and its share of 200,000 debtors (--quick 10,000; SQLite a tenth),
each with an e-mail address and one to three open invoices overdue by 4 to 60 days. Seeded with bulk inserts
in chunks (flat memory).

Measured: `run_client` for every client, the product's real path: the set-based selection, the decision of
every debtor, rendering of the sandboxed templates in each debtor's locale (babel), one message per debtor
queued through provider.comms (its row, its history event, its sending job in the outbox) and the decision
rows, committed chunk by chunk. The consolidated statement PDF is left out of this figure (WeasyPrint takes
tens of milliseconds a page; see the `--statements` line, which renders N of them and prints the rate).
Baseline, same run and database, same role: one `INSERT INTO <a copy of comm_messages> SELECT …` of the same
number of rows (from the debtors and their addresses). `value` and `baseline` are messages per second;
`ratio` = value / baseline (goal at least 0.10); `peak_rss_mb` is this process's peak (goal at most 500 MB).
Floor, same run: the per-message work no SQL can do (sign the link, format in the locale, render the template),
alone, without a database; `render_floor_ratio` = baseline seconds / floor seconds is the ceiling of `ratio`.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from bench.pages import _environ, _psycopg

TODAY = date(2026, 6, 1)
NOW = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)  # 12:00 in Berlin: inside the contact hours
CLIENTS = 20
CHUNK = 10_000


def _seed(n: int) -> list[int]:
    from clients.models import Debtor, DebtorContact
    from clients.services import create_client
    from provider.dunning import services
    from provider.dunning.models import DunningPolicy, PolicyStatus
    from provider.extensions import db

    stages = (
        services.StageSpec("Friendly reminder", 3, "email"),
        services.StageSpec("Second reminder", 14, "email"),
        services.StageSpec("Final demand", 30, "email"),
        services.StageSpec("Call from a collector", 45, "task"),
    )
    client_ids = []
    for i in range(CLIENTS):
        client = create_client(
            db.session,
            {"name": f"Bench {i}", "code": f"B{i:03d}", "base_currency": "EUR", "timezone": "Europe/Berlin",
             "country": "DE" if i % 2 else "GB", "debt_type": "commercial", "status": "active"},
        )  # fmt: skip
        policy = services.propose_policy(db.session, client, effective_from=date(2026, 1, 1), stages=stages)
        db.session.execute(
            sa.update(DunningPolicy).where(DunningPolicy.id == policy.id).values(status=PolicyStatus.APPROVED.value)
        )
        client_ids.append(client.id)
    db.session.commit()
    rng = random.Random(20261207)
    debtor_t, contact_t = Debtor.__table__, DebtorContact.__table__
    invoice_t = sa.table(
        "invoices", *(sa.column(c) for c in ("client_id", "debtor_id", "number", "issue_date", "due_date", "currency",
                                             "amount_minor", "adjusted_minor", "open_minor", "po_reference", "on_hold",
                                             "placed_at"))
    )  # fmt: skip
    now = datetime.now(UTC)
    for start in range(0, n, CHUNK):
        count = min(CHUNK, n - start)
        debtors = [
            {"client_id": client_ids[(start + k) % CLIENTS], "external_ref": f"D-{start + k:07d}",
             "name": f"Debtor {start + k}", "segment": "standard", "language": "de" if (start + k) % 2 else "en",
             "do_not_contact": False, "created_at": now, "updated_at": now}
            for k in range(count)
        ]  # fmt: skip
        ids = db.session.execute(sa.insert(debtor_t).returning(debtor_t.c.id, debtor_t.c.client_id), debtors).all()
        db.session.execute(
            sa.insert(contact_t),
            [{"client_id": c, "debtor_id": d, "kind": "email", "value": f"d{d}@bench.example.test", "label": "",
              "is_primary": True, "created_at": now} for d, c in ids],
        )  # fmt: skip
        invoices = []
        for d, c in ids:
            for j in range(rng.randint(1, 3)):
                due = TODAY - timedelta(days=rng.randint(4, 60))
                amount = rng.randint(5_000, 500_000)
                invoices.append(
                    {"client_id": c, "debtor_id": d, "number": f"I-{d}-{j}", "issue_date": due - timedelta(days=30),
                     "due_date": due, "currency": "EUR", "amount_minor": amount, "adjusted_minor": 0,
                     "open_minor": amount, "po_reference": "", "on_hold": False, "placed_at": now}
                )  # fmt: skip
        db.session.execute(sa.insert(invoice_t), invoices)
        db.session.commit()
    return client_ids


def _baseline(n: int) -> float:
    """Seconds for one INSERT … SELECT of `n` message rows into a copy of comm_messages (its indexes too)."""
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db

    pg = db.session.get_bind().dialect.name == "postgresql"
    with scoped(TenantScope.agency(), db.session):
        if pg:
            db.session.execute(sa.text("CREATE TEMP TABLE bench_messages (LIKE comm_messages INCLUDING ALL)"))
        else:
            ddl = db.session.execute(
                sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'comm_messages'")
            ).scalar_one()
            db.session.execute(sa.text(ddl.replace("comm_messages", "bench_messages", 1)))
        db.session.commit()
        columns = db.session.execute(sa.text("SELECT * FROM comm_messages LIMIT 1")).keys()
        wanted = [c for c in columns if c != "id"]
        values = {
            "client_id": "d.client_id", "debtor_id": "d.id", "dedupe_key": "'dunning:' || d.id",
            "to_address": "c.value", "to_name": "d.name", "subject": "'Second reminder'",
            "text_body": "'Dear ' || d.name",
        }  # fmt: skip
        sample = db.session.execute(sa.text("SELECT * FROM comm_messages LIMIT 1")).mappings().one()
        select_list = []
        params = {}
        for col in wanted:
            if col in values:
                select_list.append(values[col])
            else:
                params[col] = sample[col]
                select_list.append(f":{col}")
        sql = (
            f"INSERT INTO bench_messages ({', '.join(wanted)}) SELECT {', '.join(select_list)} "
            "FROM debtors d JOIN debtor_contacts c ON c.client_id = d.client_id AND c.debtor_id = d.id "
            f"WHERE c.kind = 'email' ORDER BY d.id LIMIT {int(n)}"
        )
        t = time.perf_counter()
        db.session.execute(sa.text(sql), params)
        db.session.commit()
        return time.perf_counter() - t


def _statements(count: int) -> float:
    """Seconds per consolidated statement PDF (WeasyPrint), over `count` real debtors."""
    from clients.models import Client
    from provider.dunning import outbound, templating
    from provider.dunning.selection import overdue_lines
    from provider.extensions import db

    client = db.session.scalars(sa.select(Client).limit(1)).one()
    ids = list(db.session.scalars(sa.text("SELECT id FROM debtors WHERE client_id = :c ORDER BY id LIMIT :n"),
                                  {"c": client.id, "n": count}))  # fmt: skip
    lines = overdue_lines(db.session, client.id, TODAY, ids[0], ids[-1], set(ids))
    t = time.perf_counter()
    for debtor_id in ids:
        context = templating.build_context(
            debtor_name=f"Debtor {debtor_id}", reference=str(debtor_id), client_name=client.name, agency_name="Bench",
            stage_name="Second reminder", invoices=lines[debtor_id], today=TODAY, locale="en_GB", link="https://x.test",
        )  # fmt: skip
        outbound.statement_pdf(client, f"Debtor {debtor_id}", str(debtor_id), context, "en")
    return (time.perf_counter() - t) / max(1, len(ids))


def _render_floor(n: int) -> float:
    """Seconds to do, for `n` debtors and without any database, only the per-message work no SQL can do:
    the link signed, the variables formatted in the debtor's locale (babel) and the stage's default template
    rendered in the sandbox (subject, text and HTML). The ceiling of the run's ratio: the run cannot be faster."""
    from provider.dunning import templating
    from provider.dunning.links import make_token, public_url
    from provider.dunning.texts import default_text

    rng = random.Random(7)
    texts = {lang: default_text(lang, 14, "email") for lang in ("en", "de")}
    t = time.perf_counter()
    for k in range(n):
        lang = "de" if k % 2 else "en"
        invoices = [
            (f"I-{k}-{j}", TODAY - timedelta(days=rng.randint(4, 60)), "EUR", rng.randint(5_000, 500_000))
            for j in range(1 + k % 3)
        ]
        context = templating.build_context(
            debtor_name=f"Debtor {k}", reference=f"D-{k:07d}", client_name="Bench", agency_name="Bench",
            stage_name="Second reminder", invoices=invoices, today=TODAY,
            locale=templating.locale_for(lang, "DE"), link=public_url(make_token(1, k)),
        )  # fmt: skip
        subject, body, _tone = texts[lang]
        templating.render(subject, body, context)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 debtors instead of 200,000")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--statements", type=int, default=20, help="statement PDFs to time (0: none)")
    args = parser.parse_args()
    n = 10_000 if args.quick else 200_000
    if args.db == "sqlite":
        n //= 10

    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.comms.models import Message
    from provider.core.tenancy import TenantScope, scoped
    from provider.dunning.models import DunningDecision
    from provider.dunning.run import run_client
    from provider.extensions import db

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        try:
            app = create_app(
                environ, JOBS_MODE="eager", DUNNING_ATTACH_STATEMENT=False, SQLALCHEMY_RECORD_QUERIES=False
            )
            with app.app_context():
                upgrade()
                with scoped(TenantScope.agency(), db.session):
                    t = time.perf_counter()
                    client_ids = _seed(n)
                    seed_s = time.perf_counter() - t
                db.session.remove()
                owner = sa.create_engine(
                    _psycopg(environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"])), poolclass=sa.NullPool
                )
                with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM ANALYZE" if args.db == "postgresql" else "ANALYZE")
                owner.dispose()
                rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                t = time.perf_counter()
                for client_id in client_ids:
                    with scoped(TenantScope.single(client_id), db.session):
                        run_client(db.session, client_id, TODAY, now=NOW)
                        db.session.info.pop("pending_jobs", None)  # the mail job is bench.smtp_send's business
                        db.session.commit()
                run_s = time.perf_counter() - t
                db.session.remove()
                with scoped(TenantScope.agency(), db.session):
                    messages = db.session.scalar(sa.select(sa.func.count()).select_from(Message)) or 0
                    decisions = db.session.scalar(sa.select(sa.func.count()).select_from(DunningDecision)) or 0
                    db.session.commit()
                # a second run the same day: nothing is sent twice
                t = time.perf_counter()
                for client_id in client_ids[:2]:
                    with scoped(TenantScope.single(client_id), db.session):
                        run_client(db.session, client_id, TODAY, now=NOW)
                        db.session.commit()
                rerun_s = time.perf_counter() - t
                with scoped(TenantScope.agency(), db.session):
                    again = db.session.scalar(sa.select(sa.func.count()).select_from(Message)) or 0
                    db.session.commit()
                base_s = _baseline(messages)
                floor_s = _render_floor(messages)
                with scoped(TenantScope.agency(), db.session):
                    pdf_s = _statements(args.statements) if args.statements else None
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        finally:
            drop()

    value, baseline = messages / run_s, messages / base_s
    print(f"\nDaily dunning run on {args.db}: {n:,} overdue debtors of {CLIENTS} clients (seeded in {seed_s:.1f}s).")
    print(f"{decisions:,} decisions, {messages:,} e-mails queued; a second run the same day (2 clients, "
          f"{rerun_s:.1f}s) queued {again - messages} more.\n")  # fmt: skip
    print(f"{'path':<58}{'seconds':>10}{'messages/s':>14}")
    print(f"{'INSERT … SELECT of as many message rows (baseline)':<58}{base_s:>10.2f}{baseline:>14,.0f}")
    print(f"{'run_client: select, decide, render, queue, record':<58}{run_s:>10.2f}{value:>14,.0f}")
    print(f"{'floor: sign, format and render alone, no database':<58}{floor_s:>10.2f}{messages / floor_s:>14,.0f}")
    if pdf_s is not None:
        print(f"{'statement PDF (WeasyPrint), per message, not in the run':<58}{pdf_s:>10.3f}{1 / pdf_s:>14,.1f}")
    print(f"\nrendering alone / baseline: {base_s / floor_s:.3f} (the most a run that renders each message can reach)")
    print(f"\nratio: {value / baseline:.3f} (goal >= 0.10); peak RSS {peak:.0f} MB (before the run {rss_before:.0f} MB;"
          " goal <= 500)\n")  # fmt: skip
    print(
        json.dumps(
            {
                "bench": "dunning",
                "db": args.db,
                "size": n,
                "value": round(value, 1),
                "unit": "messages/s",
                "baseline": round(baseline, 1),
                "ratio": round(value / baseline, 4),
                "messages": messages,
                "decisions": decisions,
                "duplicates_on_rerun": again - messages,
                "render_floor_value": round(messages / floor_s, 1),
                "render_floor_ratio": round(base_s / floor_s, 4),
                "statement_pdf_s": round(pdf_s, 4) if pdf_s is not None else None,
                "peak_rss_mb": round(peak, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
