"""Monthly report PDFs: ms per page against a one-page calibration document, and 50 clients on 2 RQ workers.

    python -m bench.reports [--quick] [--clients N] [--db postgresql|sqlite]

Builds a fresh PostgreSQL database (or SQLite file, with a tenth of the clients: 5, --quick 2) from the
migrations with N clients (default 50, --quick 5), each with
about 2,000 invoices over two years (the first client 6,000, about 1,500 of its debtors with something
overdue) and up to 2,001 debtors (set-based and deterministic: bench.aging.seed),
then measures in one run:

  calibration  a fixed one-page HTML document (a heading, a paragraph and a 30-row table, no images)
               rendered to PDF by WeasyPrint: ms per page, the physical limit of the renderer here;
  report       a real monthly report of one client through `render.report_html` + `render.render_pdf`
               (charts, tiles, tables of the report template): ms per PDF page (goal < 2x calibration);
  long report  the same template and renderer with the first client's top-debtors table grown until the
               PDF has 30 pages (the real report stops at 10 debtors and its page count is printed as is):
               total ms against 45x the one-page calibration;
  run          `start_run` for every client's last month and two real `flask worker --burst` processes
               on a Redis database of its own: wall time until every report is stored (goal < 5 min).

ratio = calibration ms per page / report ms per page (1.0 = as fast per page as the trivial document).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.aging import seed
from bench.pages import _environ

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = "redis://127.0.0.1:6379/5"  # a database of its own (tests use 11-14+)
INVOICES_PER_CLIENT = 2_000
# Enough overdue accounts in the first client for a 30-page top-debtors table. Not a multiple of 100: the seed
# picks an invoice's debtor as h mod DEBTORS_PER_CLIENT and its fate (paid or open) as h mod 100 of the same hash,
# so with 2,000 each debtor's invoices shared one fate and only ~800 debtors had anything overdue (23 pages).
DEBTORS_PER_CLIENT = 2_001
LONG_REPORT_PAGES = 30

CALIBRATION = (
    """<!doctype html><html><head><meta charset="utf-8"><style>
@page { size: A4; margin: 18mm }
body { font-family: sans-serif; font-size: 10pt }
table { border-collapse: collapse; width: 100% } td, th { border-bottom: 1px solid #ccc; padding: 3px 6px }
</style></head><body><h1>Calibration page</h1>
<p>A fixed one-page document: the cost of laying out and writing one plain page of text and a table.</p>
<table><tr><th>Row</th><th>Debtor</th><th>Invoices</th><th>Overdue</th></tr>
"""
    + "".join(
        f"<tr><td>{n}</td><td>Debtor {n} GmbH</td><td>{n * 3}</td><td>{n * 1234.56:,.2f} EUR</td></tr>"
        for n in range(30)
    )
    + "</table></body></html>"
)


def _median_ms(fn: Any, n: int) -> tuple[float, Any]:
    out, result = [], None
    for _ in range(n):
        start = time.perf_counter()
        result = fn()
        out.append((time.perf_counter() - start) * 1000)
    return statistics.median(out), result


def calibration_ms(n: int) -> float:
    from weasyprint import HTML

    def render() -> int:
        document = HTML(string=CALIBRATION).render()
        document.write_pdf()
        return len(document.pages)

    render()  # fonts and caches
    ms, pages = _median_ms(render, n)
    if pages != 1:
        raise SystemExit(f"the calibration document has {pages} pages, not 1")
    return float(ms)


def report_render(client_id: int, period: str, top: int) -> tuple[int, int]:
    """Collect, derive and render one client's report (nothing stored); (pages, debtors listed)."""
    from clients.models import Client
    from provider.core.clock import now_utc
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from provider.reporting import figures as fig
    from provider.reporting import formulas as f
    from provider.reporting import render
    from provider.reporting.hooks import external_figures
    from provider.reporting.summary import summarize

    with scoped(TenantScope.single(client_id), db.session):
        client = db.session.get_one(Client, client_id)
        start = f.parse_month(period)
        inputs = fig.collect_inputs(client_id, f.month_end(start), now_utc(), top=top)
        inputs["external"] = external_figures(client_id, start, f.month_end(start), now_utc())
        figures = fig.derive(inputs)
        figures["external"] = inputs["external"]
        currency = fig.primary_currency(figures, client.base_currency)
        html = render.report_html(render.report_context(client, period, figures, summarize(figures, currency, "x")))
        _pdf, pages = render.render_pdf(html)
        listed = len(figures["currencies"][currency]["top_debtors"]) if currency else 0
    db.session.rollback()
    return pages, listed


def long_report_top(render: Callable[[int], tuple[int, int]], pages: int = LONG_REPORT_PAGES) -> int:
    """How many top debtors make the report `pages` pages long: two sizes give the debtor rows per page, then the
    count that ends halfway down the last page is checked and moved a page at a time until it fits."""
    small, large = 30, 600
    small_pages, _ = render(small)
    large_pages, listed = render(large)
    if listed < large:
        raise SystemExit(f"the first client has only {listed} overdue debtors: too few for a {pages}-page report")
    per_page = (large - small) / max(large_pages - small_pages, 1)
    top = small + round((pages - small_pages + 0.5) * per_page)
    for _ in range(10):
        got, listed = render(top)
        if listed < top:
            raise SystemExit(f"the first client has only {listed} overdue debtors: too few for a {pages}-page report")
        if got == pages:
            return top
        top += round(per_page) * (1 if got < pages else -1)
    raise SystemExit(f"no top-debtors count gives a {pages}-page report (last try: {top} debtors, {got} pages)")


def run_workers(app: Any, environ: dict[str, str], client_ids: list[int], period: str) -> tuple[float, int, str]:
    from redis import Redis

    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from provider.reporting.jobs import start_run
    from provider.reporting.models import MonthlyReport

    Redis.from_url(REDIS_URL).flushdb()
    start = time.perf_counter()
    with app.app_context():
        with scoped(TenantScope.agency(), db.session):
            start_run(period, client_ids, trigger="manual", by="bench")
            db.session.commit()
        db.session.remove()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "worker", "-q", "reports", "--burst"],
            cwd=ROOT,
            env={**os.environ, **environ},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    tail = ""
    for worker in workers:
        out, _ = worker.communicate(timeout=1800)
        if worker.returncode != 0:
            tail += out[-2000:]
    elapsed = time.perf_counter() - start
    with app.app_context():
        with scoped(TenantScope.agency(), db.session):
            stored = db.session.scalar(
                sa.select(sa.func.count()).where(
                    MonthlyReport.period == period, MonthlyReport.client_id.in_(client_ids)
                )
            )
        db.session.remove()
    return elapsed, int(stored or 0), tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5 clients instead of 50")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    tenth = 10 if args.db == "sqlite" else 1  # the embedded default is measured at a tenth of the clients
    n_clients = args.clients or max((5 if args.quick else 50) // tenth, 2)
    repeats = 3 if args.quick else 5

    from flask_migrate import upgrade

    from provider.app import create_app
    from provider.core.clock import now_utc
    from provider.core.tenancy import TenantScope, scoped
    from provider.extensions import db
    from provider.reporting import formulas as f
    from tests.factories import make_client

    with tempfile.TemporaryDirectory() as tmp:
        environ, drop = _environ(args.db, tmp)
        environ["REDIS_URL"] = REDIS_URL
        try:
            app = create_app(environ)
            with app.app_context():
                upgrade()
                with scoped(TenantScope.agency(), db.session):
                    client_ids = [make_client(name=f"Report client {n:02d}").id for n in range(n_clients)]
                today = now_utc().date()
                db.session.remove()  # SQLite: one writer at a time, and the seed is the next one
                period = f.month_key(f.add_months(today, -1))
                counts = seed(
                    environ.get("DATABASE_OWNER_URL", environ["DATABASE_URL"]),
                    client_ids,
                    n_clients * INVOICES_PER_CLIENT,
                    3 * INVOICES_PER_CLIENT,
                    today,
                    debtors=DEBTORS_PER_CLIENT,
                )
                cal_ms = calibration_ms(repeats * 2)
                report_render(client_ids[0], period, 10)  # warm: template, fonts, statement caches
                report_ms, (pages, _listed) = _median_ms(lambda: report_render(client_ids[0], period, 10), repeats)
                long_top = long_report_top(lambda top: report_render(client_ids[0], period, top))
                long_ms, (long_pages, long_listed) = _median_ms(
                    lambda: report_render(client_ids[0], period, long_top), max(repeats - 2, 1)
                )
            run_s, stored, tail = run_workers(app, environ, client_ids, period)
        finally:
            drop()

    per_page = report_ms / pages
    ratio = cal_ms / per_page
    print(
        f"\nMonthly reports on {args.db}: {n_clients} clients, {counts['journal_entries']:,} journal rows, {period}\n"
    )
    print(f"{'what':<58}{'ms':>10}{'pages':>7}{'ms/page':>10}{'x calib':>9}")
    print(f"{'calibration: fixed one-page HTML (WeasyPrint)':<58}{cal_ms:>10.0f}{1:>7}{cal_ms:>10.0f}{1.0:>9.2f}")
    print(
        f"{'real monthly report (collect + derive + HTML + PDF)':<58}{report_ms:>10.0f}{pages:>7}"
        f"{per_page:>10.0f}{per_page / cal_ms:>9.2f}   goal < 2x per page"
    )
    print(
        f"{f'long report: same template, {long_listed} top debtors':<58}{long_ms:>10.0f}{long_pages:>7}"
        f"{long_ms / long_pages:>10.0f}{long_ms / cal_ms:>9.1f}   goal < 45x (total, ~30 pages)"
    )
    print(
        f"\n{n_clients} reports on 2 RQ workers (flask worker --burst): {run_s:.1f} s, {stored} stored "
        f"(goal < 300 s){' WORKER ERRORS:' + tail if tail else ''}\n"
    )
    print(
        json.dumps(
            {
                "bench": "reports",
                "db": args.db,
                "size": n_clients,
                "value": round(per_page, 1),
                "unit": "ms per PDF page",
                "baseline": round(cal_ms, 1),
                "ratio": round(ratio, 4),
                "report_pages": pages,
                "long_report_pages": long_pages,
                "long_report_ms": round(long_ms, 1),
                "long_vs_one_page": round(long_ms / cal_ms, 2),
                "run_clients": n_clients,
                "run_seconds": round(run_s, 1),
                "run_stored": stored,
                "errors": n_clients - stored,
            }
        )
    )


if __name__ == "__main__":
    main()
