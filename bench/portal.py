"""Client portal under load: a mix of portal pages for many clients' users, on gunicorn, beside /healthz.

    python -m bench.portal [--quick] [--db postgresql|sqlite] [--workers 4] [--rate 50] [--seconds 30]

Builds a fresh database from the migrations with (default) 50 clients x 5 portal users (1 admin, 4 viewers),
400 debtors and 1,200 invoices per client placed through the ledger, the worklists and each client's KPI
snapshot, then starts gunicorn on loopback. A small load tool signs every user in (one keep-alive
connection each) and runs, in the same run on the same server:

1. the portal mix *open loop* at --rate requests/s (one thread per client, each sending on a fixed schedule
   and rotating its users; latency counts from the scheduled instant, so a slow server cannot hide its
   queueing): overview 30 %, debtors sorted by overdue 15 %, debtor search 10 %, a debtor page 20 %,
   the overdue invoices 15 %, disputes 5 %, reports 5 %;
2. GET /healthz open loop at the same rate (the trivial endpoint's latency through the same stack);
3. closed-loop throughput (16 threads, no think time) of /healthz and of the portal mix.

Goal (issue): p95 under 300 ms at 50 requests/s with zero errors. `value` = portal mix requests/s closed
loop, `baseline` = /healthz requests/s closed loop, `ratio` = value / baseline.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from typing import Any

from bench.next_account import Browser, _free_port
from bench.pages import _environ, _percentile

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
GUNICORN = ("--log-level", "warning", "wsgi:app")
SYLLABLES = ("an", "er", "in", "ma", "or", "st", "el", "ri")


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


def _path(kind: str, rng: random.Random, debtors: list[int]) -> str:
    if kind == "overview":
        return "/portal/"
    if kind == "debtors_overdue":
        return "/portal/debtors?status=overdue&sort=overdue&dir=desc"
    if kind == "debtor_search":
        return f"/portal/debtors?q={rng.choice(SYLLABLES)}"
    if kind == "debtor":
        return f"/portal/debtors/{rng.choice(debtors)}"
    if kind == "ledger_overdue":
        return "/portal/ledger?status=overdue&sort=overdue"
    if kind == "disputes":
        return "/portal/disputes"
    return "/portal/reports"


def _pick(rng: random.Random) -> str:
    kinds, weights = zip(*MIX, strict=True)
    return rng.choices(kinds, weights=weights)[0]


class Session:
    """One signed-in portal user (a keep-alive connection with its cookies)."""

    def __init__(self, port: int, email: str) -> None:
        self.browser = Browser(port)
        _, _, page = self.browser.request("GET", "/login")
        from bench.next_account import _token

        status, _, _ = self.browser.request(
            "POST", "/login", {"email": email, "password": PASSWORD, "csrf_token": _token(page)}
        )
        if status != 302:
            raise SystemExit(f"sign-in of {email} failed with HTTP {status}")

    def get(self, path: str) -> int:
        status, _, _ = self.browser.request("GET", path)
        return status


def _open_loop(groups: list[tuple[list[Session], list[int]]], rate: float, seconds: float, healthz: bool) -> Any:
    """Each group (one client) sends rate/len(groups) requests/s on a fixed schedule; returns samples."""
    n = len(groups)
    interval = n / rate
    samples: list[list[tuple[str, float, bool]]] = [[] for _ in groups]
    barrier = threading.Barrier(n + 1)
    start_box: list[float] = []

    def run(i: int) -> None:
        sessions, debtors = groups[i]
        rng = random.Random(i)
        barrier.wait()
        start = start_box[0] + (i / n) * interval  # spread the groups over one interval
        k = 0
        while True:
            due = start + k * interval
            if due > start_box[0] + seconds:
                break
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            kind = "healthz" if healthz else _pick(rng)
            path = "/healthz" if healthz else _path(kind, rng, debtors)
            try:
                ok = sessions[k % len(sessions)].get(path) == 200
            except (OSError, http.client.HTTPException):
                ok = False
            samples[i].append((kind, (time.perf_counter() - due) * 1000, ok))
            k += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start_box.append(time.perf_counter() + 0.2)
    barrier.wait()
    for t in threads:
        t.join()
    return [s for group in samples for s in group], seconds


def _closed_loop(groups: list[tuple[list[Session], list[int]]], threads_n: int, seconds: float, healthz: bool) -> Any:
    done = [0] * threads_n
    errors = [0] * threads_n

    def run(i: int) -> None:
        sessions, debtors = groups[i % len(groups)]
        session = sessions[(i // len(groups)) % len(sessions)]
        rng = random.Random(1000 + i)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            path = "/healthz" if healthz else _path(_pick(rng), rng, debtors)
            try:
                ok = session.get(path) == 200
            except (OSError, http.client.HTTPException):
                ok = False
            done[i] += 1
            errors[i] += not ok

    threads = [threading.Thread(target=run, args=(i,)) for i in range(threads_n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - t0), sum(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 clients, 100 debtors each, 10 s per run")
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--rate", type=float, default=50.0, help="portal requests per second (open loop)")
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    clients, debtors = (10, 100) if args.quick else (50, 400)
    seconds = args.seconds or (10.0 if args.quick else 30.0)

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        environ = {**environ, "AR_ENV": "development", "SECRET_KEY": "p" * 64, "LOGIN_RATE_LIMIT": "1000"}
        server = None
        try:
            t0 = time.perf_counter()
            world = _seed(environ, clients, debtors, 3)
            seed_s = time.perf_counter() - t0
            port = _free_port()
            server = subprocess.Popen(  # noqa: S603 - our own gunicorn, fixed arguments
                [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-b", f"127.0.0.1:{port}", *GUNICORN],
                env={**os.environ, **environ},
                start_new_session=True,
            )
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.2)
            groups: list[tuple[list[Session], list[int]]] = []
            for data in world.values():
                groups.append(([Session(port, e) for e in data["emails"]], data["debtors"]))
            for sessions, _ in groups:  # warm every worker's caches and connections once
                sessions[0].get("/portal/")
            portal, _ = _open_loop(groups, args.rate, seconds, healthz=False)
            health, _ = _open_loop(groups, args.rate, seconds, healthz=True)
            base_rps, base_err = _closed_loop(groups, 16, seconds / 2, healthz=True)
            prod_rps, prod_err = _closed_loop(groups, 16, seconds / 2, healthz=False)
        finally:
            if server is not None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
            drop()

    ms = [s[1] for s in portal]
    errors = sum(not s[2] for s in portal)
    health_ms = [s[1] for s in health]
    p50, p95 = statistics.median(ms), _percentile(ms, 0.95)
    users = sum(len(s) for s, _ in groups)
    print(
        f"\nClient portal on {args.db}: {clients} clients x 5 users ({users} sessions), {debtors} debtors and"
        f" {debtors * 3:,} invoices per client; gunicorn -w {args.workers}; seeded in {seed_s:.0f} s."
    )
    print(f"Open loop at {args.rate:.0f} requests/s for {seconds:.0f} s each (latency from the scheduled instant).\n")
    print(f"{'run':<40}{'requests':>10}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}{'errors':>8}")
    print(
        f"{'GET /healthz (baseline, open loop)':<40}{len(health_ms):>10}{statistics.median(health_ms):>10.1f}"
        f"{_percentile(health_ms, 0.95):>10.1f}{max(health_ms):>10.1f}{sum(not s[2] for s in health):>8}"
    )
    print(f"{'portal mix (open loop)':<40}{len(ms):>10}{p50:>10.1f}{p95:>10.1f}{max(ms):>10.1f}{errors:>8}")
    for kind, _ in MIX:
        part = [s[1] for s in portal if s[0] == kind]
        if part:
            print(
                f"{'  ' + kind:<40}{len(part):>10}{statistics.median(part):>10.1f}"
                f"{_percentile(part, 0.95):>10.1f}{max(part):>10.1f}{sum(not s[2] for s in portal if s[0] == kind):>8}"
            )
    print(
        f"\nclosed loop, 16 threads: /healthz {base_rps:.1f} req/s ({base_err} errors);"
        f" portal mix {prod_rps:.1f} req/s ({prod_err} errors)"
    )
    verdict = "met" if p95 < 300 and errors == 0 else "NOT met"
    print(f"goal p95 < 300 ms at {args.rate:.0f} req/s with zero errors: {verdict}\n")
    print(
        json.dumps(
            {
                "bench": "portal",
                "size": clients * debtors * 3,
                "value": round(prod_rps, 1),
                "unit": "requests/s",
                "baseline": round(base_rps, 1),
                "ratio": round(prod_rps / base_rps, 3) if base_rps else None,
                "rate": args.rate,
                "p50_ms": round(p50, 1),
                "p95_ms": round(p95, 1),
                "errors": errors + prod_err,
                "healthz_p95_ms": round(_percentile(health_ms, 0.95), 1),
                "db": args.db,
            }
        )
    )


if __name__ == "__main__":
    main()
