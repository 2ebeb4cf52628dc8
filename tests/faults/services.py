"""Real services for the fault tests, started by the tests themselves and broken on purpose.

The shared PostgreSQL (5432) and Redis (6379) of the machine are never touched: every fault test gets

- `RedisServer`: a `redis-server` on a free port, without persistence (`--save "" --appendonly no`), in its
  own folder; `stop()` (SIGTERM), `kill()` (SIGKILL) and `start()` again on the same port;
- `PostgresCluster`: a PostgreSQL 15 cluster made with `initdb` in a temporary folder owned by the `postgres`
  OS user (initdb and postgres refuse to run as root), trust authentication on 127.0.0.1, on a free port;
  `kill()` sends SIGKILL to the postmaster and every backend, `start()` brings it back on the same port and
  data folder (crash recovery included). `new_database()` copies a template built once with the project's
  migrations (`flask --app wsgi db upgrade`, as the superuser; they create the app role `ar_app`);
- `AppProcess`: the real processes (`gunicorn wsgi:app`, `flask --app wsgi worker`, `flask --app wsgi cron`)
  as subprocesses in their own process group, their output in a log file that a failing test prints;
- `WebSession`: `requests` against the real server, signed in through the login form with its CSRF token.

Nothing here knows how the app does its work: the tests look at what a user would (HTTP answers, pages,
rows in the database, processes alive).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]


def _pg_bin() -> Path:
    """PostgreSQL 15's binaries (the production version), else the newest installed, else where 15 would be."""
    if os.environ.get("AR_FAULTS_PG_BIN"):
        return Path(os.environ["AR_FAULTS_PG_BIN"])
    preferred = Path("/usr/lib/postgresql/15/bin")
    if preferred.is_dir():
        return preferred
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else preferred


PG_BIN = _pg_bin()
PG_USER = "postgres"
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
APP_ROLE = "ar_app"
T = TypeVar("T")


def missing_binaries() -> str | None:
    """Why the fault tests cannot run here (None when they can): the binaries they start are absent."""
    if not Path(REDIS_SERVER).is_file():
        return "redis-server is not installed (apt-get install redis-server)"
    for name in ("initdb", "postgres"):
        if not (PG_BIN / name).is_file():
            return f"{PG_BIN / name} is missing (apt-get install postgresql-15)"
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"running as root and there is no OS user {PG_USER!r} to run initdb/postgres as"
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # a service still starting refuses connections
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"{what}: not within {timeout:.0f} s{detail}")
        time.sleep(interval)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _kill_tree(pid: int, sig: int = signal.SIGKILL) -> list[int]:
    """Send `sig` to a process and all its descendants at once (children first found, then signalled)."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    for proc in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.send_signal(sig)
    return [p.pid for p in family]


def tail(path: Path, limit: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} was never written)"
    return text if len(text) <= limit else "…" + text[-limit:]


# --- Redis -------------------------------------------------------------------------------------------


class RedisServer:
    """A `redis-server` of the test's own, without persistence: a restart empties it, as in the issue."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.dir = workdir / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.log = self.dir / "redis.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> RedisServer:
        assert not self.running, "redis-server is already running"
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(self.dir), "--daemonize", "no", "--protected-mode", "no"]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(f"redis-server on port {self.port} answering PING", self.ping, timeout=20, interval=0.05)
        return self

    def ping(self) -> bool:
        from redis import Redis

        with contextlib.closing(Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)) as conn:
            return bool(conn.ping())

    def client(self) -> Any:
        from redis import Redis

        return Redis(port=self.port, socket_timeout=5, socket_connect_timeout=2)

    def _end(self, sig: int) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        self.proc.wait(timeout=20)
        self.proc = None
        wait_for(f"port {self.port} closed", lambda: not _port_open(self.port), timeout=10, interval=0.05)

    def stop(self) -> None:
        """SIGTERM: Redis shuts down (nothing is saved: persistence is off)."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()


# --- PostgreSQL ----------------------------------------------------------------------------------------


def _pg_owned_tempdir() -> Path:
    """A temporary folder the `postgres` OS user owns (pytest's tmp_path is root's and mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="ar-faults-pg-"))
    if os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(PG_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


class PostgresCluster:
    """A throw-away PostgreSQL 15 cluster on a free port, as the `postgres` OS user when we are root."""

    def __init__(self, port: int | None = None) -> None:
        self.dir = _pg_owned_tempdir()
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.template: str | None = None

    # as the postgres user (Popen's user/group switch in the child before exec, like runuser without PAM)
    def _as_pg(self) -> dict[str, Any]:
        return {"user": PG_USER, "group": PG_USER} if os.geteuid() == 0 else {}

    def _env(self) -> dict[str, str]:
        return {"PATH": f"{PG_BIN}:/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": str(self.dir)}

    def init(self) -> PostgresCluster:
        argv = [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8"]
        argv += ["--locale=C.UTF-8", "--no-sync"]
        done = subprocess.run(argv, env=self._env(), capture_output=True, text=True, timeout=120, **self._as_pg())
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        with (self.data / "postgresql.conf").open("a") as conf:
            # durability against a killed process needs no fsync (the OS keeps what was written); keep the
            # cluster small beside the shared one, and log each connection fault for the failure report
            conf.write(
                "\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.dir}'\n"
                "fsync = off\nfull_page_writes = off\nshared_buffers = 64MB\nmax_connections = 60\n"
                "log_min_messages = warning\n"
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> PostgresCluster:
        assert not self.running, "postgres is already running"
        argv = [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, env=self._env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **self._as_pg()
            )
        wait_for(f"postgres on port {self.port} accepting connections", self.ready, timeout=60, interval=0.1)
        return self

    def ready(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"postgres exited:\n{tail(self.log, 3000)}")
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=2"):
            return True

    def kill(self) -> list[int]:
        """kill -9 the postmaster and every backend at once, as a crash (or the OOM killer) would."""
        assert self.proc is not None
        pids = _kill_tree(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)
        self.proc = None
        for pid in pids:  # backends are reparented, not our children: wait until they are really gone
            wait_for(f"backend {pid} gone", lambda pid=pid: not psutil.pid_exists(pid), timeout=20, interval=0.05)
        return pids

    def stop(self) -> None:
        """Fast shutdown (SIGINT), used at the end of the session."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _kill_tree(self.proc.pid)
                self.proc.wait(timeout=10)
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- databases ----------------------------------------------------------------------------------

    def url(self, database: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname={database}", autocommit=True
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def build_template(self, log: Path) -> str:
        """One database with the project's migrations run by the real command; tests copy it."""
        if self.template is None:
            name = "ar_template"
            self.execute(f'CREATE DATABASE "{name}"')
            env = app_environ(self.url(name, APP_ROLE), self.url(name), redis_url=None)
            with log.open("ab") as out:
                done = subprocess.run(
                    [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=300,
                )
            if done.returncode != 0:
                raise RuntimeError(f"flask db upgrade failed ({done.returncode}):\n{tail(log)}")
            self.template = name
        return self.template

    def new_database(self, log: Path) -> tuple[str, str]:
        """A fresh migrated database for one test: (app role URL, superuser URL)."""
        template = self.build_template(log)
        name = f"ar_fault_{uuid.uuid4().hex[:8]}"
        self.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name, APP_ROLE), self.url(name)


# --- the app's processes ---------------------------------------------------------------------------


def app_environ(database_url: str, owner_url: str, redis_url: str | None, **extra: str) -> dict[str, str]:
    """The environment of a production deployment (provider/config.py): AR_ENV, a real SECRET_KEY, the app
    role for the app and the superuser for migrations. Pytest's own variables are left out."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "AR_", "DATABASE_", "REDIS_"))}
    env = {
        **keep,
        "AR_ENV": "production",
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": database_url,
        "DATABASE_OWNER_URL": owner_url,
        "PYTHONUNBUFFERED": "1",
        # production asks admins and managers for a second factor; the fault tests' manager signs in with the
        # password alone (two-factor sign-in has its own tests)
        "REQUIRE_2FA_ROLES": "",
        **extra,
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


class AppProcess:
    """One of the app's real processes, in its own process group, its output in `log`."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AppProcess:
        with self.log.open("ab") as out:
            out.write(f"\n=== {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was never started"
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> list[psutil.Process]:
        """Its live descendants (RQ's work horse, gunicorn's workers); zombies are left out."""
        try:
            found = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        alive = []
        for proc in found:
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(proc)
        return alive

    def work_horses(self) -> list[psutil.Process]:
        """RQ's work horses: the children forked for a job, each in a process group of its own (os.setpgrp),
        unlike the worker's scheduler process, which stays in the worker's group."""
        horses = []
        for proc in self.children():
            with contextlib.suppress(ProcessLookupError):
                if os.getpgid(proc.pid) == proc.pid:
                    horses.append(proc)
        return horses

    def kill(self) -> list[int]:
        """kill -9 the process and all its descendants (for a worker: the worker AND its work horse)."""
        pids = _kill_tree(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self.wait(20)
        for pid in pids:
            wait_for(f"{self.name} process {pid} gone", lambda pid=pid: not _alive(pid), timeout=20, interval=0.05)
        self.note(f"killed -9: {pids}")
        return pids

    def terminate(self, timeout: float = 15) -> None:
        if not self.alive:
            self.wait(1)
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        return self.proc.wait(timeout=timeout)

    def note(self, text: str) -> None:
        with self.log.open("ab") as out:
            out.write(f"=== {time.strftime('%H:%M:%S')} {text}\n".encode())

    def output(self) -> str:
        return tail(self.log)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def flask_command(name: str, args: list[str], env: dict[str, str], logdir: Path) -> AppProcess:
    argv = [sys.executable, "-m", "flask", "--app", "wsgi", *args]
    return AppProcess(name, argv, env, logdir / f"{name}.log")


@functools.cache
def _no_control_socket() -> list[str]:
    """Newer gunicorns open a control socket at one fixed path in $HOME, which parallel servers would share."""
    shown = subprocess.run([sys.executable, "-m", "gunicorn", "--help"], capture_output=True, text=True, timeout=60)
    return ["--no-control-socket"] if "--no-control-socket" in shown.stdout else []


def gunicorn(env: dict[str, str], logdir: Path, port: int | None = None, workers: int = 2) -> AppProcess:
    port = port or free_port()
    argv = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}", "--timeout", "120"]
    argv += ["--graceful-timeout", "5", "--access-logfile", "-", *_no_control_socket(), "wsgi:app"]
    web = AppProcess("gunicorn", argv, env, logdir / "gunicorn.log")
    web.port = port  # type: ignore[attr-defined]
    return web


def base_url(web: AppProcess) -> str:
    return f"http://127.0.0.1:{web.port}"  # type: ignore[attr-defined]


def wait_until_serving(web: AppProcess, timeout: float = 90) -> None:
    def up() -> bool:
        if not web.alive:
            raise RuntimeError(f"{web.name} exited:\n{web.output()}")
        return requests.get(base_url(web) + "/healthz", timeout=5).status_code == 200

    wait_for(f"{web.name} answering /healthz", up, timeout=timeout, interval=0.25)


# --- HTTP as a person --------------------------------------------------------------------------------


_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1) or match.group(2)


class WebSession:
    """A browser-like client of the real server: cookies, CSRF tokens from the pages, no redirects followed
    unless asked, every answer kept so a failing test can show what the server said."""

    def __init__(self, base: str, timeout: float = 60) -> None:
        self.base = base
        self.http = requests.Session()
        self.timeout = timeout
        self.history: list[str] = []

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("allow_redirects", False)
        url = path if path.startswith(("http://", "https://")) else self.base + path
        response = self.http.request(method, url, **kwargs)
        for cookie in self.http.cookies:
            # production cookies are Secure (HTTPS only); the test server speaks plain HTTP on 127.0.0.1, which
            # a browser treats as a secure context too: keep sending them
            cookie.secure = False
        self.history.append(f"{method} {path} -> {response.status_code}")
        return response

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def csrf(self, path: str) -> str:
        page = self.get(path, allow_redirects=True)
        assert page.status_code == 200, f"GET {path} answered {page.status_code}"
        return csrf_token(page.text)

    def post_form(
        self, path: str, data: dict[str, str], files: dict[str, Any] | None = None, form_page: str | None = None
    ) -> requests.Response:
        """POST a form the way the browser does: with the CSRF token of the page that shows it."""
        token = self.csrf(form_page or path)
        return self.request("POST", path, data={"csrf_token": token, **data}, files=files)

    def login(self, email: str, password: str) -> requests.Response:
        token = self.csrf("/login")
        return self.request("POST", "/login", data={"email": email, "password": password, "csrf_token": token})

    def upload(self, path: str, filename: str, content: bytes, **fields: str) -> requests.Response:
        return self.post_form(path, fields, files={"file": (filename, content, "text/csv")})

    def close(self) -> None:
        self.http.close()


# --- the database as the tests read it -----------------------------------------------------------------


@contextlib.contextmanager
def superuser_engine(owner_url: str) -> Iterator[sa.Engine]:
    """Reads for assertions, as the superuser (no tenant needed, RLS does not apply to the owner)."""
    engine = sa.create_engine(owner_url.replace("postgresql://", "postgresql+psycopg://"), poolclass=sa.NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def scalar(owner_url: str, sql: str, **params: Any) -> Any:
    with superuser_engine(owner_url) as engine, engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def rows(owner_url: str, sql: str, **params: Any) -> list[Any]:
    with superuser_engine(owner_url) as engine, engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params))
