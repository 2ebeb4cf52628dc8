""" "Next account" + account screen under concurrent collectors, driven by `wrk`, beside /healthz in the same run.

    python -m bench.next_account [--quick] [--db postgresql|sqlite] [--collectors 20] [--workers 4]

Builds a fresh database from the migrations with (default) 200,000 overdue accounts in 20 clients (a tenth with
--db sqlite) and a team of collectors granted all of them, builds the worklists, then starts gunicorn on
loopback. Every collector is signed in once; then `wrk` (bench/wrk.py: one wrk thread and one keep-alive
connection per collector, outside the server's processes) loops for each collector: POST /worklists/next
(claims the best lawful account, releases the previous one) and GET the account screen it redirects to, which
must show the account as the collector's own. Baseline: the same wrk settings (threads, connections, cookies)
on GET /healthz (one `SELECT 1`) in the same run. Latency percentiles are wrk's own distribution.
A second pair of runs paces the collectors with wrk's `delay()` (`--think`, default 2 s: 1-3 s between
accounts; /healthz pauses half that, for the same request rate): latency under 20 collectors working rather
than 20 connections firing back to back.
No two collectors may ever hold one account: a released or skipped account is snoozed for an hour, so within a
run an account handed to two collectors at all is counted (`accounts_taken_twice`, goal 0).
`ratio` = product requests/s / baseline requests/s flat out (goal: at least 0.25); p95 goal under 150 ms.
"""

from __future__ import annotations

import argparse
import json
import tempfile

import sqlalchemy as sa

from bench import wrk
from bench.pages import _environ, _psycopg
from bench.worklist_rebuild import CLIENTS, _seed

PASSWORD = "bench-password-123"  # noqa: S105 - throw-away benchmark accounts


def _setup(environ: dict[str, str], kind: str, accounts: int, collectors: int) -> list[str]:
    from flask_migrate import upgrade

    from provider import services
    from provider.app import create_app
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from worklists.jobs import seed_worklists
    from worklists.models import Strategy

    app = create_app(environ)
    with app.app_context():
        upgrade()
    _seed(environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"]), kind, accounts)
    emails = []
    with app.app_context(), scoped(TenantScope.agency(), db.session):
        team = services.create_team(db.session, "Bench team")
        services.set_team_clients(db.session, team, set(range(1, CLIENTS + 1)))
        for i in range(collectors):
            email = f"collector{i}@bench.test"
            services.create_user(
                db.session,
                {"email": email, "name": f"C {i}", "role": "collector", "password": PASSWORD, "team_id": team.id},
            )
            emails.append(email)
        # a round-the-clock window for the commercial clients, so the run does not depend on the hour
        for client_id in range(1, CLIENTS + 1):
            db.session.add(Strategy(client_id=client_id, contact_start_hour=0, contact_end_hour=24))
        db.session.commit()
        seed_worklists(list(range(1, CLIENTS + 1)))
        db.session.remove()
        db.engine.dispose()
    _analyze(environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"]), kind)
    return emails


def _analyze(owner_url: str, kind: str) -> None:
    """Refresh the planner's statistics after the work items were built, as autovacuum would in production
    (it is off on the development server): without them PostgreSQL sees an empty work_items table."""
    engine = sa.create_engine(_psycopg(owner_url), poolclass=sa.NullPool)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE work_items" if kind == "postgresql" else "ANALYZE")
    engine.dispose()


NEXT_SCRIPT = r"""
local pause = {pause_ms}
local location = nil
local seeded = false
request = function()
  if location then
    return wrk.format("GET", location, {["Cookie"] = cookie})
  end
  return wrk.format("POST", "/worklists/next",
    {["Cookie"] = cookie, ["Content-Type"] = "application/x-www-form-urlencoded"}, "csrf_token=" .. csrf)
end
response = function(status, headers, body)
  if location then
    if status ~= 200 or not body:find('data-claim="mine"', 1, true) then unexpected = unexpected + 1 end
    location = nil
    return
  end
  local loc = headers["Location"]
  if status == 302 and loc and loc:find("/worklists/items/", 1, true) then
    location = loc:gsub("^https?://[^/]+", "")
    collected = collected .. location:match("(%d+)$") .. " "
  else
    unexpected = unexpected + 1
  end
end
if pause > 0 then
  delay = function()
    if location then return 0 end
    if not seeded then math.randomseed(id * 7919); seeded = true end
    return math.floor(pause * (0.5 + math.random()))
  end
end
"""


def _taken(result: wrk.Result) -> tuple[int, int, int]:
    """Accounts handed out, distinct accounts, and accounts handed to more than one collector."""
    owners: dict[str, set[int]] = {}
    total = 0
    for collector, items in enumerate(result.collected):
        for item in items.split():
            owners.setdefault(item, set()).add(collector)
            total += 1
    return total, len(owners), sum(1 for who in owners.values() if len(who) > 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of the accounts, 10 s per run")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--collectors", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument(
        "--think",
        type=float,
        default=2.0,
        help="paced run: mean seconds each collector pauses between accounts (0: no paced run)",
    )
    args = parser.parse_args()
    wrk.require_wrk()
    accounts = 20_000 if args.quick else 200_000
    if args.db == "sqlite":
        accounts //= 10
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    think_ms = args.think * 1000

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        environ = {**environ, "AR_ENV": "development", "SECRET_KEY": "b" * 64, "LOGIN_RATE_LIMIT": "1000"}
        try:
            emails = _setup(environ, args.db, accounts, args.collectors)
            with wrk.gunicorn(environ, args.workers) as port:
                users = wrk.sign_in_all(port, emails, PASSWORD, "/worklists")
                base = wrk.healthz(port, users, seconds)
                prod = wrk.run("next + account screen", port, NEXT_SCRIPT.replace("{pause_ms}", "0"), users, seconds)
                paced = paced_base = None
                if args.think:
                    paced = wrk.run(
                        "next + account screen, paced",
                        port,
                        NEXT_SCRIPT.replace("{pause_ms}", str(int(think_ms))),
                        users,
                        seconds,
                    )
                    paced_base = wrk.healthz(port, users, seconds, think_ms / 2)
        finally:
            drop()

    total, distinct, twice = _taken(prod)
    if paced is not None:
        twice += _taken(paced)[2]
    print(
        f"\nNext account on {args.db}: {accounts:,} open accounts, {args.collectors} collectors,"
        f" gunicorn -w {args.workers}; wrk -t{args.collectors} -c{args.collectors}, {seconds:.0f} s per run.\n"
    )
    print(wrk.HEADER)
    for result in (base, prod, paced_base, paced):
        if result is not None:
            print(result.row())
    print(f"\naccounts taken: {total:,}; distinct: {distinct:,}; handed to two collectors: {twice}")
    ratio = prod.rps / base.rps if base.rps else 0.0
    verdict = "met" if ratio >= 0.25 and prod.p95_ms < 150 and prod.errors == 0 else "NOT met"
    print(f"goal ratio >= 0.25 and p95 < 150 ms flat out, no errors: {verdict}\n")
    print(
        json.dumps(
            {
                "bench": "next_account",
                "db": args.db,
                "size": accounts,
                "value": round(prod.rps, 1),
                "unit": "requests/s",
                "baseline": round(base.rps, 1),
                "ratio": round(ratio, 4),
                "p50_ms": round(prod.p50_ms, 2),
                "p95_ms": round(prod.p95_ms, 2),
                "p99_ms": round(prod.p99_ms, 2),
                "errors": prod.errors,
                "collectors": args.collectors,
                "load_tool": "wrk",
                "accounts_taken": total,
                "distinct_accounts": distinct,
                "accounts_taken_twice": twice,
                "baseline_p95_ms": round(base.p95_ms, 2),
                **(paced.figures("paced_") if paced else {}),
                **(paced_base.figures("paced_baseline_") if paced_base else {}),
                "paced_think_s": args.think,
            }
        )
    )


if __name__ == "__main__":
    main()
