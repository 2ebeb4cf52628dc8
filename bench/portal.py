"""Client portal under load, driven by `wrk`: a mix of portal pages for many clients' users, beside /healthz.

    python -m bench.portal [--quick] [--db postgresql|sqlite] [--workers 4] [--rate 50] [--seconds 30]

Builds a fresh database from the migrations with (default) 50 clients x 5 portal users (1 admin, 4 viewers),
400 debtors and 1,200 invoices per client placed through the ledger, the worklists and each client's KPI
snapshot (a tenth of the clients with --db sqlite), then starts gunicorn on loopback. Users are signed in once;
`wrk` (bench/wrk.py: one wrk thread and one keep-alive connection per user, outside the server's processes)
then runs, in the same run on the same server:

1. the portal mix *paced* at about --rate requests/s: one user per client, each pausing (wrk `delay()`) a
   random 0.5-1.5 x (clients / rate) seconds between pages: overview 30 %, debtors sorted by overdue 15 %,
   debtor search 10 %, a debtor page 20 %, the overdue invoices 15 %, disputes 5 %, reports 5 %;
2. GET /healthz paced the same way (the trivial endpoint's latency through the same stack);
3. flat out (no pause) with 16 users: /healthz, then the portal mix.

Goal (issue): p95 under 300 ms at 50 requests/s with zero errors. `value` = portal mix requests/s flat out,
`baseline` = /healthz requests/s flat out, `ratio` = value / baseline. Latencies are wrk's own distribution.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import date, timedelta
from typing import Any

from bench import wrk
from bench.pages import _environ

PASSWORD = "bench-password-123"  # noqa: S105 - throw-away benchmark accounts
MIX = (
    ("overview", 30),
    ("debtors_overdue", 15),
    ("debtor_search", 10),
    ("debtor", 20),
    ("ledger_overdue", 15),
    ("disputes", 5),
    ("reports", 5),
)


def _seed(environ: dict[str, str], clients: int, debtors: int, invoices_each: int) -> dict[int, Any]:
    """Clients, users, debtors, invoices (through the ledger), worklists and KPI snapshots."""
    from flask_migrate import upgrade

    from clients import services as client_services
    from clients.ledger import place_invoices
    from clients.models import Debtor
    from provider import services
    from provider.app import create_app
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from provider.reporting.jobs import take_snapshot
    from worklists.jobs import seed_worklists

    rng = random.Random(20261128)
    first = ("Anna", "Bernd", "Chiara", "Dmitri", "Elif", "Femi", "Greta", "Hiro", "Ines", "Jonas", "Kofi", "Lena")
    last = ("Meier", "Rossi", "Novak", "Okafor", "Schmidt", "Tanaka", "Ortega", "Larsen", "Weber", "Costa")
    app = create_app(environ)
    world: dict[int, Any] = {}
    with app.app_context():
        upgrade()
        with scoped(TenantScope.agency(), db.session):
            today = date.today()  # noqa: DTZ011 - benchmark data relative to the day it runs
            for c in range(clients):
                client = client_services.create_client(
                    db.session,
                    {
                        "name": f"Bench Client {c:02d} Ltd",
                        "code": f"BC{c:03d}",
                        "base_currency": "EUR",
                        "timezone": "Europe/Berlin",
                        "country": "DE",
                        "debt_type": "commercial",
                        "status": "active",
                    },
                )
                rows = [
                    Debtor(
                        client_id=client.id,
                        external_ref=f"BC{c:03d}-{d:06d}",
                        name=f"{rng.choice(first)} {rng.choice(last)} {d}",
                        segment=rng.choice(("standard", "standard", "key_account", "high_risk")),
                    )
                    for d in range(debtors)
                ]
                db.session.add_all(rows)
                db.session.flush()
                lines = []
                for debtor in rows:
                    for n in range(invoices_each):
                        issued = today - timedelta(days=rng.randint(0, 360))
                        lines.append(
                            {
                                "debtor_id": debtor.id,
                                "number": f"INV-{debtor.id}-{n}",
                                "issue_date": issued,
                                "due_date": issued + timedelta(days=30),
                                "currency": "EUR",
                                "amount_minor": rng.randint(50_00, 5_000_00),
                                "po_reference": "",
                            }
                        )
                place_invoices(db.session, client, lines)
                emails = []
                for u in range(5):
                    role = "client_admin" if u == 0 else "client_viewer"
                    email = f"u{u}@bc{c:03d}.bench.test"
                    services.create_user(
                        db.session,
                        {
                            "email": email,
                            "name": f"User {u}",
                            "role": role,
                            "password": PASSWORD,
                            "client_id": client.id,
                        },
                    )
                    emails.append(email)
                world[client.id] = {"emails": emails, "debtors": [d.id for d in rows]}
                db.session.commit()
            seed_worklists(list(world))
            for client_id in world:
                from clients.models import Client

                take_snapshot(db.session.get(Client, client_id))
            db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return world


MIX_SCRIPT = r"""
local mix = {MIX}
local syllables = {"an", "er", "in", "ma", "or", "st", "el", "ri"}
local pause = {pause_ms}
local debtors = nil
local seeded = false
local function seed()
  if not seeded then math.randomseed(id * 104729); seeded = true end
end
local function pick_path()
  if not debtors then
    debtors = {}
    for d in extra:gmatch("%d+") do table.insert(debtors, d) end
  end
  local r, acc = math.random(100), 0
  for _, entry in ipairs(mix) do
    acc = acc + entry[2]
    if r <= acc then
      local kind = entry[1]
      if kind == "overview" then return "/portal/" end
      if kind == "debtors_overdue" then return "/portal/debtors?status=overdue&sort=overdue&dir=desc" end
      if kind == "debtor_search" then return "/portal/debtors?q=" .. syllables[math.random(#syllables)] end
      if kind == "debtor" then return "/portal/debtors/" .. debtors[math.random(#debtors)] end
      if kind == "ledger_overdue" then return "/portal/ledger?status=overdue&sort=overdue" end
      if kind == "disputes" then return "/portal/disputes" end
      return "/portal/reports"
    end
  end
  return "/portal/"
end
request = function()
  seed()
  return wrk.format("GET", pick_path(), {["Cookie"] = cookie})
end
response = function(status, headers, body)
  if status ~= 200 then unexpected = unexpected + 1 end
end
if pause > 0 then
  delay = function()
    seed()
    return math.floor(pause * (0.5 + math.random()))
  end
end
"""


def _mix_script(pause_ms: float) -> str:
    mix = "{" + ", ".join(f'{{"{kind}", {weight}}}' for kind, weight in MIX) + "}"
    return MIX_SCRIPT.replace("{MIX}", mix).replace("{pause_ms}", str(int(pause_ms)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 clients, 100 debtors each, 10 s per run")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--rate", type=float, default=50.0, help="portal requests per second (paced run)")
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    wrk.require_wrk()
    clients, debtors = (10, 100) if args.quick else (50, 400)
    if args.db == "sqlite":
        clients = max(clients // 10, 2)
    seconds = args.seconds or (10.0 if args.quick else 30.0)

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        environ = {**environ, "AR_ENV": "development", "SECRET_KEY": "p" * 64, "LOGIN_RATE_LIMIT": "1000"}
        try:
            t0 = time.perf_counter()
            world = _seed(environ, clients, debtors, 3)
            seed_s = time.perf_counter() - t0
            with wrk.gunicorn(environ, args.workers) as port:
                sessions: list[list[tuple[str, str, str]]] = []
                for data in world.values():
                    signed = wrk.sign_in_all(port, data["emails"], PASSWORD, "/portal/")
                    ids = " ".join(str(d) for d in data["debtors"])
                    sessions.append([(cookie, csrf, ids) for cookie, csrf in signed])
                paced_users = [group[0] for group in sessions]  # one user per client
                # flat out: 16 users taken round-robin over the clients
                flat_users = [sessions[i % len(sessions)][i // len(sessions) % 5] for i in range(16)]
                pause_ms = len(paced_users) / args.rate * 1000
                warm = wrk.run("warm-up", port, _mix_script(0), paced_users, 2)
                portal = wrk.run("portal mix, paced", port, _mix_script(pause_ms), paced_users, seconds)
                health = wrk.healthz(port, paced_users, seconds, pause_ms)
                base = wrk.healthz(port, [u[:2] for u in flat_users], seconds / 2)
                prod = wrk.run("portal mix, flat out", port, _mix_script(0), flat_users, seconds / 2)
        finally:
            drop()

    users = sum(len(s) for s in sessions)
    print(
        f"\nClient portal on {args.db}: {clients} clients x 5 users ({users} sessions), {debtors} debtors and"
        f" {debtors * 3:,} invoices per client; gunicorn -w {args.workers}; seeded in {seed_s:.0f} s."
    )
    print(
        f"Paced: {len(paced_users)} users (wrk -t{len(paced_users)} -c{len(paced_users)}), each pausing"
        f" {pause_ms / 2:.0f}-{pause_ms * 1.5:.0f} ms between pages (about {args.rate:.0f} requests/s);"
        f" flat out: 16 users. {seconds:.0f} s per paced run. (warm-up: {warm.requests} requests)\n"
    )
    print(wrk.HEADER)
    for result in (health, portal, base, prod):
        print(result.row())
    verdict = "met" if portal.p95_ms < 300 and portal.errors == 0 else "NOT met"
    print(f"\ngoal p95 < 300 ms at about {args.rate:.0f} req/s with zero errors: {verdict} ({portal.rps:.1f} req/s)\n")
    print(
        json.dumps(
            {
                "bench": "portal",
                "db": args.db,
                "size": clients * debtors * 3,
                "value": round(prod.rps, 1),
                "unit": "requests/s",
                "baseline": round(base.rps, 1),
                "ratio": round(prod.rps / base.rps, 3) if base.rps else None,
                "rate": args.rate,
                "paced_rps": round(portal.rps, 1),
                "p50_ms": round(portal.p50_ms, 1),
                "p95_ms": round(portal.p95_ms, 1),
                "p99_ms": round(portal.p99_ms, 1),
                "errors": portal.errors + prod.errors,
                "healthz_p95_ms": round(health.p95_ms, 1),
                "flat_p95_ms": round(prod.p95_ms, 1),
                "load_tool": "wrk",
            }
        )
    )


if __name__ == "__main__":
    main()
