"""The embedded default under load: a payment file imports on SQLite while people sign in and save.

A real server (`flask run`, threaded, jobs in-process as in `make demo`) on a SQLite file with committed data:
one user uploads a payment file of a few thousand lines (one of them pays towards a promise to pay) while
other clients sign in and log notes on accounts again and again. Nobody may get a server error (the fault
this guards against: "database is locked" on every save and sign-in until a restart), and the import must
finish, post every payment once and keep the promise.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.orm import sessionmaker

from provider.app import create_app
from provider.core.audit import Actor, acting_as
from provider.core.clock import today_utc
from provider.core.db import commit_chunk, configure_engine, sqlite_begin_statement
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.factories import PASSWORD, make_client, make_debtor, make_invoice, make_user
from worklists import promises, scoring
from worklists.models import WorkItem

ROOT = Path(__file__).resolve().parent.parent
LINES = 3_000
DEBTORS = 40
SAVERS = 3  # clients signing in and saving while the file imports
IMPORT_DEADLINE_S = 240
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


@dataclass
class Demo:
    url: str
    db_path: Path
    log_path: Path
    client_id: int
    manager: str
    collectors: list[str]
    items: list[int]
    debtor_refs: list[str]
    promised_ref: str
    promise_id: int


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed(environ: dict[str, str]) -> dict[str, Any]:
    """Committed data: a client with overdue accounts on the worklist, staff, and one promise to pay."""
    from flask_migrate import upgrade

    app = create_app(environ)
    with app.app_context():
        upgrade()
        with acting_as(Actor.system("test")), scoped(TenantScope.agency(), db.session):
            client = make_client(code="CONT", base_currency="EUR")
            debtors = [make_debtor(client) for _ in range(DEBTORS)]
            for d in debtors:
                make_invoice(client, d, f"INV-{d.id}", 900_00, currency="EUR")
            db.session.commit()
            scoring.rescore(db.session, [client.id])
            db.session.commit()
            manager = make_user("manager")
            collectors = [make_user("manager") for _ in range(SAVERS)]
            items = list(db.session.scalars(select(WorkItem.id).where(WorkItem.client_id == client.id)))
            promised = debtors[0]
            item = db.session.scalar(select(WorkItem).where(WorkItem.debtor_id == promised.id))
            promise = promises.record_promise(
                db.session, item, manager, 25_00, today_utc() + timedelta(days=5), "pays on Friday"
            )
            db.session.commit()
            seeded = {
                "client_id": client.id,
                "manager": manager.email,
                "collectors": [c.email for c in collectors],
                "items": [i for i in items if i != item.id],
                "debtor_refs": [d.external_ref for d in debtors],
                "promised_ref": promised.external_ref,
                "promise_id": promise.id,
            }
        db.session.remove()
        db.engine.dispose()
    return seeded


@pytest.fixture(scope="module")
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    if request.config.getoption("--db") == "postgresql":
        pytest.skip("the embedded default's contention test runs on SQLite")
    tmp = tmp_path_factory.mktemp("contention")
    db_path, log_path = tmp / "ar.db", tmp / "server.log"
    environ = {
        "AR_ENV": "demo",  # jobs run in threads of the server process, as in `make demo`
        "DATABASE_URL": f"sqlite:///{db_path}",
        "LOGIN_RATE_LIMIT": "1000",
    }
    seeded = _seed(environ)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_OWNER_URL")}
    env.update(environ, PYTHONPATH=str(ROOT))
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "run", "--port", str(port), "--with-threads"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.1)
        else:
            pytest.fail("the server did not start:\n" + log_path.read_text())
        yield Demo(url=url, db_path=db_path, log_path=log_path, **seeded)
    finally:
        server.terminate()
        server.wait(timeout=20)


def _csrf(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1) or match.group(2)


def _sign_in(url: str, email: str) -> tuple[requests.Session, requests.Response]:
    http = requests.Session()
    token = _csrf(http.get(f"{url}/login", timeout=60).text)
    answer = http.post(
        f"{url}/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
        timeout=60,
    )
    return http, answer


def _payment_file(demo: Demo) -> bytes:
    today = today_utc().isoformat()
    lines = ["payment_ref,debtor_ref,received_on,amount,currency"]
    for n in range(LINES):
        ref = demo.debtor_refs[n % len(demo.debtor_refs)]
        amount = "30.00" if ref == demo.promised_ref and n < len(demo.debtor_refs) else "1.00"
        lines.append(f"CONT-PAY-{n:05d},{ref},{today},{amount},EUR")
    return ("\n".join(lines) + "\n").encode()


# what a save may rightly answer while payments post and three collectors share the accounts
BUSINESS_REFUSALS = ("another collector is working this account right now", "this account is closed")


def _batch(db_path: Path, batch_id: int) -> tuple[str, int | None]:
    with sqlite3.connect(db_path, timeout=30) as conn:
        row = conn.execute("SELECT status, posted_rows FROM import_batches WHERE id = ?", (batch_id,)).fetchone()
    return row[0], row[1]


def test_payment_import_while_people_sign_in_and_save(demo: Demo) -> None:
    http, answer = _sign_in(demo.url, demo.manager)
    assert answer.status_code == 302
    page = f"{demo.url}/clients/{demo.client_id}/payments/imports"
    token = _csrf(http.get(page, timeout=60).text)
    answers: list[tuple[str, int, float]] = []
    failures: list[str] = []
    started = threading.Event()
    done = threading.Event()

    def save_again_and_again(k: int) -> None:
        started.wait(60)
        n = 0
        while not done.is_set() and n < 200:
            n += 1
            t0 = time.perf_counter()
            try:
                session, answer = _sign_in(demo.url, demo.collectors[k])
                answers.append(("sign-in", answer.status_code, time.perf_counter() - t0))
                item = demo.items[(k * 7 + n) % len(demo.items)]
                form = _csrf(session.get(f"{demo.url}/worklists/items/{item}", timeout=60).text)
                t1 = time.perf_counter()
                saved = session.post(
                    f"{demo.url}/worklists/items/{item}/actions",
                    data={"action": "note", "note": f"called back ({k}/{n})", "csrf_token": form},
                    allow_redirects=False,
                    timeout=60,
                )
                kind = "save"
                if saved.status_code == 422 and any(reason in saved.text for reason in BUSINESS_REFUSALS):
                    kind = "refused"  # for the account's own reason (another collector has it, or it was paid off)
                answers.append((kind, saved.status_code, time.perf_counter() - t1))
            except requests.RequestException as exc:  # a timeout or a dropped connection is a failure too
                failures.append(f"{type(exc).__name__}: {exc}")

    savers = [threading.Thread(target=save_again_and_again, args=(k,)) for k in range(SAVERS)]
    for s in savers:
        s.start()
    try:
        upload = http.post(
            page,
            data={"csrf_token": token, "received_by": "agency"},
            files={"file": ("payments.csv", _payment_file(demo), "text/csv")},
            allow_redirects=False,
            timeout=60,
        )
        assert upload.status_code == 302, upload.text[:500]
        batch_id = int(upload.headers["Location"].rstrip("/").rsplit("/", 1)[-1])
        started.set()
        deadline = time.monotonic() + IMPORT_DEADLINE_S
        status, posted = _batch(demo.db_path, batch_id)
        while status in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.5)
            status, posted = _batch(demo.db_path, batch_id)
    finally:
        started.set()
        done.set()
        for s in savers:
            s.join(timeout=120)

    log = demo.log_path.read_text()
    slowest = max((a[2] for a in answers), default=0.0)
    print(f"{len(answers)} sign-ins and saves during the import; slowest {slowest:.2f} s")
    assert failures == []
    assert "database is locked" not in log
    assert "in a deferred transaction" not in log  # no page that only reads wrote anything
    assert [a for a in answers if a[1] >= 500] == []
    assert {a[1] for a in answers if a[0] == "sign-in"} == {302}
    assert {a[1] for a in answers if a[0] == "save"} == {302}
    assert len([a for a in answers if a[0] == "save"]) >= SAVERS  # the saves really ran while it imported
    assert (status, posted) == ("posted", LINES)
    with sqlite3.connect(demo.db_path) as conn:
        refs = conn.execute(
            "SELECT count(DISTINCT external_ref), count(*) FROM payments WHERE client_id = ?", (demo.client_id,)
        )
        assert refs.fetchone() == (LINES, LINES)
        kept = conn.execute("SELECT status FROM promises WHERE id = ?", (demo.promise_id,)).fetchone()
        assert kept == ("kept",)
        notes = conn.execute(
            "SELECT count(*) FROM work_actions WHERE client_id = ? AND note LIKE 'called back%'", (demo.client_id,)
        ).fetchone()[0]
        assert notes == len([a for a in answers if a[0] == "save"])


# --- the locking rules themselves, on a scratch SQLite file (they configure the engine, not the schema) ---


@pytest.fixture
def scratch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    if request.config.getoption("--db") == "postgresql":
        pytest.skip("SQLite's locking")
    path = tmp_path / "locks.db"
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        conn.execute("INSERT INTO counters (id, n) VALUES (1, 0)")
    yield path


def _engine(path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 5, "check_same_thread": False})
    configure_engine(engine)
    return engine


def test_sqlite_fails_a_reader_turned_writer_at_once_whatever_the_busy_timeout(scratch: Path) -> None:
    """Why writers take the lock up front: a deferred transaction that read, then writes after another
    connection wrote, is refused with "database is locked" at once (SQLITE_BUSY_SNAPSHOT: waiting could not
    make its snapshot current, so the busy timeout is not applied)."""
    reader = sqlite3.connect(scratch, timeout=5, isolation_level=None)
    writer = sqlite3.connect(scratch, timeout=5, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT n FROM counters").fetchone() == (0,)
    writer.execute("UPDATE counters SET n = n + 1")
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        reader.execute("UPDATE counters SET n = n + 10")
    reader.execute("ROLLBACK")
    reader.close()
    writer.close()


def test_jobs_and_writing_requests_begin_immediate_reading_requests_deferred() -> None:
    app = Flask(__name__)
    assert sqlite_begin_statement() == "BEGIN IMMEDIATE"  # a job, a CLI command
    for method, statement in [
        ("GET", "BEGIN"),
        ("HEAD", "BEGIN"),
        ("POST", "BEGIN IMMEDIATE"),
        ("DELETE", "BEGIN IMMEDIATE"),
    ]:
        with app.test_request_context("/", method=method):
            assert sqlite_begin_statement() == statement


def test_a_job_that_reads_first_then_writes_waits_for_the_lock_instead_of_failing(scratch: Path) -> None:
    """`commit_chunk(read_next=True)`: the job's next transaction reads without the lock; just before its
    first write it takes the lock (after whoever holds it) and its write lands, where a plain upgrade would
    fail as above."""
    engine = _engine(scratch)
    session = sessionmaker(engine)()
    try:
        session.execute(text("SELECT 1"))
        commit_chunk(session, read_next=True)
        assert session.execute(text("SELECT n FROM counters")).scalar() == 0
        with engine.begin() as other:  # someone saves meanwhile
            other.exec_driver_sql("UPDATE counters SET n = n + 1")
        session.execute(text("UPDATE counters SET n = n + 10"))
        session.commit()
    finally:
        session.close()
        engine.dispose()
    with sqlite3.connect(scratch) as conn:
        assert conn.execute("SELECT n FROM counters").fetchone() == (11,)  # both writes, neither lost
