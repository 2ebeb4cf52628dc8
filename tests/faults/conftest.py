"""Fixtures of the fault tests: a PostgreSQL cluster per test process, and per test a migrated database of its
own, a Redis of its own and the app's real processes, all torn down after the test (their logs are printed
when it fails)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.faults import services as svc


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[svc.PostgresCluster]:
    reason = svc.missing_binaries()
    if reason:
        pytest.skip(f"the fault tests start their own PostgreSQL and Redis: {reason}")
    cluster = svc.PostgresCluster().init().start()
    try:
        yield cluster
    finally:
        cluster.remove()


class FaultWorld:
    """One scenario's services: its database (app role + superuser URLs), its Redis, its processes."""

    def __init__(self, tmp: Path, pg: svc.PostgresCluster, *seed_args: str) -> None:
        self.tmp = tmp
        self.pg = pg
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.redis = svc.RedisServer(tmp).start()
        self.app_url, self.owner_url = pg.new_database(self.logs / "migrations.log")
        self.env = svc.app_environ(self.app_url, self.owner_url, self.redis.url)
        self.processes: list[svc.AppProcess] = []
        self.sessions: list[svc.WebSession] = []
        self.seed = self._seed(*seed_args)

    def _seed(self, *args: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-m", "tests.faults.seed", *args],
            cwd=svc.ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        (self.logs / "seed.log").write_text(done.stdout + done.stderr)
        assert done.returncode == 0, f"seeding failed:\n{done.stderr[-4000:]}"
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    # --- processes ------------------------------------------------------------------------------------

    def _track(self, proc: svc.AppProcess) -> svc.AppProcess:
        self.processes.append(proc)
        return proc.start()

    def web(self) -> svc.AppProcess:
        web = self._track(svc.gunicorn(self.env, self.logs))
        svc.wait_until_serving(web)
        return web

    def worker(self, name: str = "worker", queues: tuple[str, ...] = (), ready: bool = True) -> svc.AppProcess:
        """A `flask worker`; with `ready`, returned once it listens on its queues."""
        args = ["worker"] + [arg for queue in queues for arg in ("-q", queue)]
        worker = self._track(svc.flask_command(name, args, self.env, self.logs))
        if ready:
            svc.wait_for(f"{name} listening", lambda: "Listening on" in worker.output(), timeout=60)
        return worker

    def cron(self) -> svc.AppProcess:
        return self._track(svc.flask_command("cron", ["cron"], self.env, self.logs))

    def session(self, web: svc.AppProcess, signed_in: bool = True) -> svc.WebSession:
        browser = svc.WebSession(svc.base_url(web))
        self.sessions.append(browser)
        if signed_in:
            answer = browser.login(self.seed["manager"], self.seed["password"])
            assert answer.status_code == 302, f"sign-in answered {answer.status_code}: {answer.text[:500]}"
        return browser

    def api_get(self, web: svc.AppProcess, path: str) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.seed['api_token']}"}
        return requests.get(svc.base_url(web) + path, headers=headers, timeout=60)

    # --- the database, read as the superuser --------------------------------------------------------

    def scalar(self, sql: str, **params: Any) -> Any:
        return svc.scalar(self.owner_url, sql, **params)

    def rows(self, sql: str, **params: Any) -> list[Any]:
        return svc.rows(self.owner_url, sql, **params)

    # --- teardown and reports -----------------------------------------------------------------------

    def report(self) -> list[tuple[str, str]]:
        sections = [(f"{p.name} (pid {p.proc.pid if p.proc else '-'})", p.output()) for p in self.processes]
        family = [f"{p.name} {p.pid}: {[(c.pid, c.status()) for c in p.children()]}" for p in self.processes if p.alive]
        sections.append(("live processes and their children", "\n".join(family) or "(none)"))
        sections.append(("redis-server", svc.tail(self.redis.log, 3000)))
        sections.append(("postgres", svc.tail(self.pg.log, 3000)))
        for browser in self.sessions:
            sections.append(("HTTP requests", "\n".join(browser.history[-60:])))
        return sections + self.tables()

    def tables(self) -> list[tuple[str, str]]:
        """The rows that say where the background work is, as the test ended (best effort)."""
        queries = {
            "background jobs": "SELECT id, key, path, status, attempts, max_attempts, enqueued_at, started_at,"
            " heartbeat_at, finished_at, worker, left(error, 200) AS error FROM background_jobs ORDER BY id",
            "import batches": "SELECT id, client_id, filename, status, total_rows, processed_rows, posted_rows,"
            " finished_at FROM import_batches ORDER BY id",
        }
        if self.owner_url.startswith("postgresql"):
            queries["database sessions"] = (
                "SELECT pid, usename, state, wait_event_type, wait_event, xact_start, left(query, 160) AS query"
                " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        sections = []
        for title, sql in queries.items():
            try:
                found = self.rows(sql)
            except Exception as exc:
                sections.append((title, f"(not readable: {exc.__class__.__name__})"))
                continue
            sections.append((title, "\n".join(str(tuple(row)) for row in found) or "(none)"))
        return sections

    def close(self) -> None:
        for proc in reversed(self.processes):
            proc.terminate()
        for browser in self.sessions:
            browser.close()
        if self.redis.running:
            self.redis.kill()
        if not self.pg.running:
            self.pg.start()
        name = self.owner_url.rsplit("/", 1)[-1]
        self.pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class SqliteWorld(FaultWorld):
    """The embedded default (`make demo`): SQLite in a file, no Redis (jobs run in the web process), the
    demo's server (`flask run`)."""

    def __init__(self, tmp: Path, *seed_args: str) -> None:
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir()
        self.app_url = self.owner_url = f"sqlite:///{tmp / 'ar.db'}"
        self.env = svc.app_environ(self.app_url, self.owner_url, None, AR_ENV="demo")
        self.processes = []
        self.sessions = []
        migrate = svc.flask_command("migrations", ["db", "upgrade"], self.env, self.logs).start()
        assert migrate.wait(300) == 0, f"flask db upgrade failed:\n{migrate.output()}"
        self.seed = self._seed(*seed_args)

    def web(self) -> svc.AppProcess:
        port = svc.free_port()
        web = self._track(svc.flask_command("flask-run", ["run", "--port", str(port)], self.env, self.logs))
        web.port = port  # type: ignore[attr-defined]
        svc.wait_until_serving(web)
        return web

    def report(self) -> list[tuple[str, str]]:
        sections = [(f"{p.name} (pid {p.proc.pid if p.proc else '-'})", p.output()) for p in self.processes]
        return sections + [("HTTP requests", "\n".join(b.history[-60:])) for b in self.sessions] + self.tables()

    def close(self) -> None:
        for proc in reversed(self.processes):
            proc.terminate()
        for browser in self.sessions:
            browser.close()


@pytest.fixture
def world(pg_cluster: svc.PostgresCluster, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FaultWorld]:
    built = FaultWorld(tmp_path, pg_cluster)
    request.node._fault_world = built
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def sqlite_world(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SqliteWorld]:
    built = SqliteWorld(tmp_path, "--promise")
    request.node._fault_world = built
    try:
        yield built
    finally:
        built.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Any:
    report = yield
    built: FaultWorld | None = getattr(item, "_fault_world", None)
    if built is not None and report.failed and call.when == "call":
        for title, text in built.report():
            report.sections.append((f"fault test log: {title}", text))
    return report
