"""Every page type of the back office and the portal, crawled under load by `wrk`, beside /healthz in the same run.

    python -m bench.pages [--quick] [--db sqlite|postgresql] [--scale N] [--users 5] [--seconds S]

Builds a fresh database from the migrations and seeds the demo agency (`--scale`, default 10 on SQLite, the
embedded default, and 67 (about 200k debtors) on PostgreSQL; --quick: scale 1), serves it with gunicorn, signs
in a manager, a collector and a client user (`--users` sessions each) and finds the pages each role's navigation
offers, plus the pages reached from them: a client's debtor list sorted, paged deep and searched, a debtor, a
work item, the portal's debtors and a debtor there. Each page type is then loaded by `wrk` with `--users`
connections flat out (one wrk thread per session, outside the server's processes) for `--seconds`, and so is
`/healthz` (one `SELECT 1`), with the same settings, as the baseline. Latencies are wrk's own distribution.

Goal (issue): every page type p95 < 300 ms with 5 concurrent users, no errors. `value` = the worst page
type's p95, `ratio` = the slowest page type's requests/s / /healthz requests/s.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from bench import wrk
from provider.demo import DEMO_PASSWORD

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


NAV = re.compile(r'<a href="([^"?#]+)"[^>]*data-nav-key=')
ITEM = re.compile(r'href="(/worklists/items/\d+)"')


def _nav(browser: wrk.Browser, home: str) -> list[str]:
    """The pages a role's navigation offers, each as the path it finally lands on (wrk follows no redirect)."""
    out = []
    for path in dict.fromkeys(NAV.findall(browser.follow(home))):
        status, location, _ = browser.request("GET", path)
        if status in (301, 302, 303):
            path = urllib.parse.urlparse(location).path
            status, _, _ = browser.request("GET", path)
        if status == 200:
            out.append(path)
    return out


def _pages(port: int, biggest: int, debtor_ids: list[int], per_client: int, portal_debtor: int) -> dict[str, Any]:
    """Page name -> (role, path or paths) for every page type the roles reach."""
    deep = max(per_client // 50 // 2, 1)
    manager = wrk.Browser(port)
    manager.sign_in("maria.manager@demo.test", DEMO_PASSWORD, "/")
    collector = wrk.Browser(port)
    collector.sign_in("collector1@demo.test", DEMO_PASSWORD, "/")
    pages: dict[str, Any] = {}
    for path in _nav(manager, "/"):
        pages[f"manager {path}"] = ("manager", path)
    for path in _nav(collector, "/"):
        pages.setdefault(f"collector {path}", ("collector", path))
    pages["debtors p1 by name"] = ("manager", f"/clients/{biggest}?sort=name")
    pages[f"debtors p{deep} by name desc"] = ("manager", f"/clients/{biggest}?sort=name&dir=desc&page={deep}")
    pages["debtor search"] = ("manager", f"/clients/{biggest}?q=smith")
    pages["debtor detail"] = ("manager", [f"/clients/{biggest}/debtors/{d}" for d in debtor_ids])
    _, _, worklist = collector.request("GET", "/worklists")
    items = list(dict.fromkeys(ITEM.findall(worklist)))[:200]
    if items:
        pages["work item"] = ("collector", items)
    pages["portal overview"] = ("client", "/portal/")
    pages["portal debtors by overdue"] = ("client", "/portal/debtors?status=overdue&sort=overdue&dir=desc")
    pages["portal debtor"] = ("client", f"/portal/debtors/{portal_debtor}")
    pages["portal ledger overdue"] = ("client", "/portal/ledger?status=overdue&sort=overdue")
    pages["portal reports"] = ("client", "/portal/reports")
    pages["portal disputes"] = ("client", "/portal/disputes")
    return pages


PATHS_SCRIPT = r"""
local paths = {PATHS}
request = function()
  return wrk.format("GET", paths[math.random(#paths)], {["Cookie"] = cookie})
end
response = function(status, headers, body)
  if status ~= 200 then unexpected = unexpected + 1 end
end
"""


def _script(paths: str | list[str]) -> str:
    if isinstance(paths, str):
        return wrk.get_script(paths).replace("if status >= 400", "if status ~= 200")
    return PATHS_SCRIPT.replace("{PATHS}", "{" + ", ".join(f'"{p}"' for p in paths) + "}")


def _import_files(owner_url: str, client_id: int, rows: int, payments: int) -> tuple[bytes, bytes, int]:
    """A placement file of `rows` new invoices and a payment file of `payments` lines, the first ones for the
    client's debtors that have a promise to pay in force (so the payments settle or count towards promises),
    in the client's base currency; and how many of the payment file's debtors have a promise in force."""
    from datetime import timedelta

    from provider.core.clock import today_utc

    engine = sa.create_engine(_psycopg(owner_url), poolclass=sa.NullPool)
    with engine.connect() as conn:
        currency = conn.execute(sa.text("SELECT base_currency FROM clients WHERE id = :c"), {"c": client_id}).scalar()
        promised = list(
            conn.execute(
                sa.text(
                    "SELECT DISTINCT d.external_ref FROM promises p JOIN debtors d ON d.id = p.debtor_id"
                    " WHERE p.client_id = :c AND p.status = 'open' ORDER BY 1"
                ),
                {"c": client_id},
            ).scalars()
        )
        others = list(
            conn.execute(
                sa.text("SELECT external_ref FROM debtors WHERE client_id = :c ORDER BY id LIMIT 2000"),
                {"c": client_id},
            ).scalars()
        )
    engine.dispose()
    today = today_utc()
    issue, due = today - timedelta(days=40), today - timedelta(days=10)
    placements = ["invoice_number,debtor_ref,debtor_name,issue_date,due_date,amount,currency,po_reference"]
    placements += [
        f"LOAD-{n:07d},LOAD-D{n % 5000:05d},Load test debtor {n % 5000},{issue},{due},{10 + n % 990}.{n % 100:02d},"
        f"{currency},"
        for n in range(rows)
    ]
    refs = promised + others
    lines = ["payment_ref,debtor_ref,received_on,amount,currency"]
    lines += [f"LOAD-PAY-{n:06d},{refs[n % len(refs)]},{today},1.00,{currency}" for n in range(payments)]
    return ("\n".join(placements) + "\n").encode(), ("\n".join(lines) + "\n").encode(), len(promised)


def _upload_and_wait(port: int, email: str, page: str, name: str, content: bytes, owner_url: str) -> dict[str, Any]:
    """Upload a file as `email` through the page's form (as a person would) and wait until its batch has ended;
    the batch's status, rows posted and seconds from upload to end."""
    import requests

    base = f"http://127.0.0.1:{port}"
    http = requests.Session()
    http.post(
        f"{base}/login",
        data={"email": email, "password": DEMO_PASSWORD, "csrf_token": wrk.token(http.get(f"{base}/login").text)},
        allow_redirects=False,
        timeout=120,
    )
    token = wrk.token(http.get(f"{base}{page}", timeout=120).text)
    start = time.perf_counter()
    answer = http.post(
        f"{base}{page}",
        data={"csrf_token": token, "received_by": "agency"},
        files={"file": (name, content, "text/csv")},
        allow_redirects=False,
        timeout=120,
    )
    if answer.status_code != 302:
        raise SystemExit(f"the upload of {name} was refused ({answer.status_code}): {answer.text[:400]}")
    batch_id = int(answer.headers["Location"].rstrip("/").rsplit("/", 1)[-1])
    engine = sa.create_engine(_psycopg(owner_url), poolclass=sa.NullPool)
    status, posted = "queued", 0
    while status in ("queued", "running") and time.perf_counter() - start < 3600:
        time.sleep(1)
        with engine.connect() as conn:
            status, posted = conn.execute(
                sa.text("SELECT status, posted_rows FROM import_batches WHERE id = :id"), {"id": batch_id}
            ).one()
    engine.dispose()
    return {"status": status, "posted": int(posted or 0), "seconds": round(time.perf_counter() - start, 1)}


def _under_imports(
    port: int, owner_url: str, client_id: int, pages: dict[str, Any], users: dict[str, Any], rows: int, payments: int
) -> tuple[list[dict[str, Any]], list[wrk.Result]]:
    """Every page type of the crawl and collectors claiming accounts, both driven by `wrk`, for as long as a
    placement file of `rows` lines and then a payment file with promises in force import through the pages."""
    import threading

    from bench.next_account import NEXT_SCRIPT

    placements, payment_file, _promised = _import_files(owner_url, client_id, rows, payments)
    outcome: list[dict[str, Any]] = []

    def imports() -> None:
        manager = "maria.manager@demo.test"
        outcome.append(
            _upload_and_wait(port, manager, f"/clients/{client_id}/imports", "load.csv", placements, owner_url)
        )
        outcome.append(
            _upload_and_wait(
                port, manager, f"/clients/{client_id}/payments/imports", "load-payments.csv", payment_file, owner_url
            )
        )

    # distinct collectors of the client's team: one person's second claim releases their first
    claimers = wrk.sign_in_all(port, [f"collector{i}@demo.test" for i in range(1, 5)], DEMO_PASSWORD, "/")
    by_role: dict[str, list[str]] = {}
    for role, target in pages.values():
        by_role.setdefault(role, []).extend([target] if isinstance(target, str) else target[:20])
    worker = threading.Thread(target=imports)
    worker.start()
    results = []
    while worker.is_alive():  # wrk runs a fixed time: 10 s rounds until both files have ended
        rounds = [
            threading.Thread(
                target=lambda role=role, paths=paths: results.append(
                    wrk.run(f"{role} pages during imports", port, _script(paths), users[role], 10)
                )
            )
            for role, paths in by_role.items()
        ]
        rounds.append(
            threading.Thread(
                target=lambda: results.append(
                    wrk.run(
                        "collectors: next account during imports",
                        port,
                        NEXT_SCRIPT.replace("{pause_ms}", "1000"),
                        claimers,
                        10,
                    )
                )
            )
        )
        for t in rounds:
            t.start()
        for t in rounds:
            t.join()
    worker.join()
    return outcome, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="demo scale 1, 3 s per page type")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--scale", type=int, default=None, help="demo scale (default: sqlite 10, postgresql 67)")
    parser.add_argument("--users", type=int, default=5, help="concurrent sessions per page type")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per page type (default 10, quick 3)")
    parser.add_argument(
        "--imports",
        type=int,
        default=None,
        help="then crawl again while a placement file of this many lines and a payment file import "
        "(default 100,000 on SQLite, 0 = skip; quick 5,000)",
    )
    args = parser.parse_args()
    import_rows = args.imports if args.imports is not None else (5_000 if args.quick else 100_000)
    wrk.require_wrk()
    scale = 1 if args.quick else (args.scale or (10 if args.db == "sqlite" else 67))
    seconds = args.seconds or (3.0 if args.quick else 10.0)

    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.demo import seed_demo

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        try:
            # seeded with jobs run here, to the end (the rescoring the seeding asks for), before the server starts:
            # the pages are measured in their steady state
            app = create_app(environ)
            with app.app_context():
                upgrade()
                t0 = time.perf_counter()
                summary = seed_demo(scale=scale)
                from provider.core import jobs

                jobs.drain()
                seed_s = time.perf_counter() - t0
                from clients.models import Client, Debtor
                from provider.core.tenancy import TenantScope, scoped
                from provider.extensions import db

                with scoped(TenantScope.agency(), db.session):
                    biggest = db.session.scalar(sa.select(Client.id).order_by(Client.id))
                    code = db.session.scalar(sa.select(Client.code).where(Client.id == biggest))
                    debtor_ids = db.session.scalars(
                        sa.select(Debtor.id).where(Debtor.client_id == biggest).limit(500)
                    ).all()
                    per_client = db.session.scalar(sa.select(sa.func.count()).where(Debtor.client_id == biggest))
                db.session.remove()
                db.engine.dispose()
            # steady state: statistics and visibility map, as autovacuum (PostgreSQL) / ANALYZE (SQLite) keep them
            owner = sa.create_engine(
                _psycopg(environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"])), poolclass=sa.NullPool
            )
            with owner.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE" if args.db == "postgresql" else "ANALYZE")
            owner.dispose()
            environ = {**environ, "AR_ENV": "development", "SECRET_KEY": "g" * 64, "LOGIN_RATE_LIMIT": "1000"}
            with wrk.gunicorn(environ, args.workers) as port:
                roles = {
                    "manager": "maria.manager@demo.test",
                    "collector": "collector1@demo.test",
                    "client": f"admin@{code.lower()}.demo.test",
                }
                users = {
                    role: wrk.sign_in_all(port, [email] * args.users, DEMO_PASSWORD, "/")
                    for role, email in roles.items()
                }
                pages = _pages(port, biggest, list(debtor_ids), per_client, debtor_ids[0])
                base = wrk.healthz(port, users["manager"], seconds)
                results = [
                    wrk.run(name, port, _script(target), users[role], seconds) for name, (role, target) in pages.items()
                ]
                imports: list[dict[str, Any]] = []
                during: list[wrk.Result] = []
                if import_rows:
                    imports, during = _under_imports(
                        port,
                        environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"]),
                        biggest,
                        pages,
                        users,
                        import_rows,
                        max(import_rows // 10, 1_000),
                    )
        finally:
            drop()

    print(
        f"\nPages on {args.db}: demo scale {scale} ({summary['debtors']:,} debtors, {per_client:,} in the client"
        f" paged), seeded in {seed_s:.0f} s; gunicorn -w {args.workers};"
        f" wrk -t{args.users} -c{args.users}, {seconds:g} s per page type.\n"
    )
    print(wrk.HEADER)
    print(base.row())
    for result in results:
        print(result.row())
    worst = max(results, key=lambda r: r.p95_ms)
    slowest = min(results, key=lambda r: r.rps)
    errors = sum(r.errors for r in results)
    verdict = "met" if worst.p95_ms < 300 and errors == 0 else "NOT met"
    print(f"\nworst p95: {worst.name} {worst.p95_ms:.1f} ms; goal every page type p95 < 300 ms, no errors: {verdict}\n")
    during_errors = sum(r.errors for r in during)
    if imports:
        print(
            f"While a {import_rows:,}-line placement file and a {max(import_rows // 10, 1_000):,}-line payment file "
            f"(its first lines for debtors with a promise to pay in force) imported through the pages:"
        )
        for name, batch in zip(("placement file", "payment file"), imports, strict=False):
            print(f"  {name}: {batch['status']}, {batch['posted']:,} rows posted, {batch['seconds']:.1f} s from upload")
        print(wrk.HEADER)
        for result in during:
            print(result.row())
        ended = all(b["status"] == "posted" for b in imports) and len(imports) == 2
        print(
            f"\nrequests failing during the imports: {during_errors} of {sum(r.requests for r in during):,}; "
            f"goal both files posted, no request failing: {'met' if ended and during_errors == 0 else 'NOT met'}\n"
        )
    print(
        json.dumps(
            {
                "bench": "pages",
                "db": args.db,
                "size": summary["debtors"],
                "value": round(worst.p95_ms, 2),
                "unit": "ms p95, worst page type",
                "baseline": round(base.rps, 1),
                "ratio": round(slowest.rps / base.rps, 4) if base.rps else None,
                "p50_ms": round(max(r.p50_ms for r in results), 2),
                "p95_ms": round(worst.p95_ms, 2),
                "errors": errors,
                "page_types": len(results),
                "users": args.users,
                "load_tool": "wrk",
                "pages": {r.name: {"rps": round(r.rps, 1), "p95_ms": round(r.p95_ms, 1)} for r in results},
                "import_rows": import_rows,
                "imports": imports,
                "during_imports_requests": sum(r.requests for r in during),
                "during_imports_errors": during_errors,
                "during_imports_p95_ms": round(max((r.p95_ms for r in during), default=0.0), 1),
            }
        )
    )


if __name__ == "__main__":
    main()
