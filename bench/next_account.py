""" "Next account" + account screen under concurrent collectors, against a trivial endpoint on the same server.

    python -m bench.next_account [--quick] [--db postgresql|sqlite] [--collectors 20] [--workers 4]

Builds a fresh database from the migrations with (default) 200,000 overdue accounts in 20 clients and a
team of collectors granted all of them, builds the worklists, then starts gunicorn on loopback. A small
load tool (one thread and one keep-alive connection per collector, no think time) signs every collector
in and loops: POST /worklists/next (claims the best lawful account, releases the previous one) and GET the
account screen it redirects to. Baseline: the same threads on GET /healthz (one `SELECT 1`) for the same
time. Prints requests/s, p50/p95 per request, and checks no two collectors ever held the same account
(and how many distinct accounts were taken: "next" without an action is a skip, and a skipped account is
snoozed, so the queue moves on instead of offering the same top accounts again).
A third and fourth run pace the same collectors (`--think`, default 2 s: each pauses 1-3 s between
accounts, after a staggered start; /healthz pauses half that, for the same request rate): latency under the
load of 20 collectors working, rather than of 20 threads firing back to back. A collector really spends
minutes per account, so even this pace is about a hundred times a real team's.
`ratio` = product requests/s / baseline requests/s flat out (goal: at least 0.25); p95 goal under 150 ms,
printed for both the flat-out and the paced run.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from bench.pages import _environ, _percentile, _psycopg
from bench.worklist_rebuild import CLIENTS, _seed

PASSWORD = "bench-password-123"  # noqa: S105 - throw-away benchmark accounts
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def _token(page: str) -> str:
    match = CSRF.search(page)
    if match is None:
        raise SystemExit("page without a CSRF token")
    return match.group(1) or match.group(2)


class Browser:
    """One collector: a keep-alive HTTP/1.1 connection with a cookie jar."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]
        return response.status, response.headers.get("Location", ""), text

    def login(self, email: str) -> str:
        _, _, page = self.request("GET", "/login")
        status, _, _ = self.request(
            "POST", "/login", {"email": email, "password": PASSWORD, "csrf_token": _token(page)}
        )
        if status != 302:
            raise SystemExit(f"sign-in of {email} failed with HTTP {status}")
        _, _, page = self.request("GET", "/worklists")
        return _token(page)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def _load(
    port: int,
    emails: list[str],
    seconds: float,
    step: Callable[[Browser, str], list[tuple[float, Any]]],
    think: float = 0.0,
) -> Any:
    """Every collector runs `step` in a loop for `seconds`; with `think`, it pauses between steps for a time drawn
    uniformly from 0.5x to 1.5x `think` (seeded per collector, so runs are repeatable and collectors drift apart)."""
    browsers = [Browser(port) for _ in emails]
    tokens = [b.login(e) for b, e in zip(browsers, emails, strict=True)]
    barrier = threading.Barrier(len(browsers))
    results: list[list[tuple[float, Any]]] = [[] for _ in browsers]
    errors = [0] * len(browsers)

    def run(i: int) -> None:
        pause = random.Random(i)
        barrier.wait()
        if think:
            time.sleep(pause.uniform(0, think))  # staggered starts
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            try:
                results[i] += step(browsers[i], tokens[i])
            except (Unexpected, OSError, http.client.HTTPException):
                errors[i] += 1
            if think:
                time.sleep(pause.uniform(0.5 * think, 1.5 * think))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(browsers))]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return results, sum(errors), elapsed


class Unexpected(RuntimeError):
    """A response that is not what a working page returns (counted as an error)."""


def _expect(ok: bool, detail: Any) -> None:
    if not ok:
        raise Unexpected(str(detail))


def _healthz(browser: Browser, _token: str) -> list[tuple[float, Any]]:
    t0 = time.perf_counter()
    status, _, _ = browser.request("GET", "/healthz")
    _expect(status == 200, status)
    return [((time.perf_counter() - t0) * 1000, None)]


def _next_and_screen(browser: Browser, token: str) -> list[tuple[float, Any]]:
    t0 = time.perf_counter()
    status, location, _ = browser.request("POST", "/worklists/next", {"csrf_token": token})
    t1 = time.perf_counter()
    _expect(status == 302 and "/worklists/items/" in location, (status, location))
    path = urllib.parse.urlparse(location).path
    status, _, page = browser.request("GET", path)
    t2 = time.perf_counter()
    _expect(status == 200 and 'data-claim="mine"' in page, status)
    item = int(path.rsplit("/", 1)[1])
    return [((t1 - t0) * 1000, ("next", item, t0, t2)), ((t2 - t1) * 1000, ("screen", item, t0, t2))]


def _holds(runs: list[list[tuple[float, Any]]]) -> tuple[dict[int, list[tuple[float, float]]], int]:
    """The accounts each collector held and how often two collectors held one account at once."""
    held: dict[int, list[tuple[float, float]]] = {}
    for rs in runs:
        mine = [meta for _, meta in rs if meta[0] == "next"]
        # surely held from the end of the pair (the claim is committed) until the next "next" is sent
        # (which releases it on the server somewhere inside that request)
        for k, (_, item, _start, end) in enumerate(mine):
            until = mine[k + 1][2] if k + 1 < len(mine) else float("inf")
            held.setdefault(item, []).append((end, until))
    doubles = 0
    for spans in held.values():
        spans.sort()
        doubles += sum(1 for a, b in itertools.pairwise(spans) if b[0] < a[1])
    return held, doubles


def _row(name: str, run: tuple[Any, int, float]) -> tuple[float, float, float]:
    results, errors, elapsed = run
    ms = [m for r in results for m, _ in r]
    rps, p50, p95 = len(ms) / elapsed, statistics.median(ms), _percentile(ms, 0.95)
    print(f"{name:<34}{rps:>10.1f}{p50:>10.1f}{p95:>10.1f}{errors:>8}")
    return rps, p50, p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="20,000 accounts, 10 s per run")
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
    accounts = 20_000 if args.quick else 200_000
    seconds = args.seconds or (10.0 if args.quick else 30.0)

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        environ = {**environ, "AR_ENV": "development", "SECRET_KEY": "b" * 64, "LOGIN_RATE_LIMIT": "1000"}
        server = None
        try:
            emails = _setup(environ, args.db, accounts, args.collectors)
            port = _free_port()
            server = subprocess.Popen(  # noqa: S603 - our own gunicorn, fixed arguments
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-w",
                    str(args.workers),
                    "-b",
                    f"127.0.0.1:{port}",
                    "--log-level",
                    "warning",
                    "wsgi:app",
                ],
                env={**os.environ, **environ},
                start_new_session=True,
            )
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.2)
            base, base_errors, base_s = _load(port, emails, seconds, _healthz)
            prod, prod_errors, prod_s = _load(port, emails, seconds, _next_and_screen)
            paced = _load(port, emails, seconds, _next_and_screen, args.think) if args.think else None
            paced_base = _load(port, emails, seconds, _healthz, args.think / 2) if args.think else None
        finally:
            if server is not None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
            drop()

    base_ms = [ms for r in base for ms, _ in r]
    prod_ms = [ms for r in prod for ms, _ in r]
    pairs = [r for rs in prod for r in rs if r[1][0] == "next"]
    held, doubles = _holds(prod)
    if paced is not None:
        doubles += _holds(paced[0])[1]
    base_rps, prod_rps = len(base_ms) / base_s, len(prod_ms) / prod_s
    p50, p95 = statistics.median(prod_ms), _percentile(prod_ms, 0.95)
    pair_ms = [ms for r in prod for ms, meta in r if meta[0] == "next"]
    print(
        f"\nNext account on {args.db}: {accounts:,} open accounts, {args.collectors} collectors,"
        f" gunicorn -w {args.workers},"
    )
    print(f"{seconds:.0f} s per run on loopback (Python load tool, keep-alive, no think time).\n")
    print(f"{'run':<34}{'req/s':>10}{'p50 ms':>10}{'p95 ms':>10}{'errors':>8}")
    print(
        f"{'GET /healthz (baseline)':<34}{base_rps:>10.1f}{statistics.median(base_ms):>10.1f}"
        f"{_percentile(base_ms, 0.95):>10.1f}{base_errors:>8}"
    )
    print(f"{'next + account screen (all req)':<34}{prod_rps:>10.1f}{p50:>10.1f}{p95:>10.1f}{prod_errors:>8}")
    print(
        f"{'  POST /worklists/next only':<34}{'':>10}{statistics.median(pair_ms):>10.1f}"
        f"{_percentile(pair_ms, 0.95):>10.1f}"
    )
    paced_figures: dict[str, float] = {}
    if paced is not None and paced_base is not None:
        print(f"\npaced: each collector pauses {args.think * 0.5:g}-{args.think * 1.5:g} s between accounts")
        print("(/healthz: half that between requests, for the same request rate)")
        b_rps, _, b_p95 = _row("GET /healthz, paced", paced_base)
        rps, p50_p, p95_p = _row("next + account screen, paced", paced)
        paced_figures = {
            "paced_think_s": args.think,
            "paced_rps": round(rps, 1),
            "paced_p50_ms": round(p50_p, 2),
            "paced_p95_ms": round(p95_p, 2),
            "paced_errors": paced[1],
            "paced_baseline_rps": round(b_rps, 1),
            "paced_baseline_p95_ms": round(b_p95, 2),
        }
    print(f"\naccounts taken: {len(pairs):,}; distinct: {len(held):,}; overlapping holds: {doubles}\n")
    print(
        json.dumps(
            {
                "bench": "next_account",
                "db": args.db,
                "size": accounts,
                "value": round(prod_rps, 1),
                "unit": "requests/s",
                "baseline": round(base_rps, 1),
                "ratio": round(prod_rps / base_rps, 4),
                "p50_ms": round(p50, 2),
                "p95_ms": round(p95, 2),
                "errors": prod_errors,
                "collectors": args.collectors,
                "overlapping_holds": doubles,
                "accounts_taken": len(pairs),
                "distinct_accounts": len(held),  # a skipped account is snoozed, not offered again at once
                "baseline_p95_ms": round(_percentile(base_ms, 0.95), 2),
                **paced_figures,
            }
        )
    )


if __name__ == "__main__":
    main()
