"""HTTP load from `wrk` (Debian package `wrk`), outside the server's processes, for the HTTP benchmarks.

A benchmark signs its users in with a few plain requests (cookies and CSRF tokens), writes them into a Lua
script, and runs `wrk` with one thread and one keep-alive connection per user (`-tN -cN`): each wrk thread is
one person, so a thread's request/response sequence is that person's (wrk gives Lua no handle on a connection,
only on a thread). Paced runs use wrk's `delay()`. The latency percentiles are wrk's own distribution
(microsecond resolution, every request of the run); errors are wrk's connect/read/write/timeout errors plus
responses with a status of 400 or more, plus what the script itself counts as unexpected (a page without
its marker, a redirect to the wrong place).

`/healthz` (one `SELECT 1`) is measured with exactly the same wrk settings in the same run as the baseline.

The script's `done()` prints one line `WRK {...}` (JSON) that `run()` parses: requests, duration, errors,
p50/p95/p99/max in ms, and whatever per-thread results a script collects (for example the accounts each
collector was handed).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')

# Lua shared by every script: users handed to threads in setup(), a JSON line printed by done().
PRELUDE = r"""
local users = {}
local threads = {}
local next_user = 1

function load_users(path)
  for line in io.lines(path) do
    local cookie, csrf, extra = line:match("^([^\t]*)\t([^\t]*)\t?(.*)$")
    table.insert(users, {cookie = cookie, csrf = csrf, extra = extra})
  end
end

setup = function(thread)
  local u = users[next_user]
  thread:set("id", next_user)
  thread:set("cookie", u.cookie)
  thread:set("csrf", u.csrf)
  thread:set("extra", u.extra)
  next_user = next_user + 1
  table.insert(threads, thread)
end

-- per thread (each thread has its own Lua state; done() reads them with thread:get)
unexpected = 0
collected = ""

local function escape(s)
  return (tostring(s):gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end))
end

done = function(summary, latency, requests)
  local bad, parts = 0, {}
  for _, t in ipairs(threads) do
    bad = bad + (t:get("unexpected") or 0)
    table.insert(parts, '"' .. escape(t:get("collected") or "") .. '"')
  end
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d,'
    .. ' "timeout": %d, "unexpected": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d,'
    .. ' "mean_us": %.1f, "collected": [%s]}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, bad,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max, latency.mean,
    table.concat(parts, ", ")))
end

load_users("{users}")
"""

# A script that GETs one path (the baseline, or any single page), optionally paced by `delay()`.
GET_SCRIPT = r"""
local pause = {pause_ms}
local seeded = false
request = function()
  return wrk.format("GET", "{path}", {["Cookie"] = cookie})
end
response = function(status, headers, body)
  if status >= 400 then unexpected = unexpected + 1 end
end
if pause > 0 then
  delay = function()
    if not seeded then math.randomseed(id * 7919); seeded = true end
    return math.floor(pause * (0.5 + math.random()))
  end
end
"""


@dataclass
class Result:
    """One wrk run."""

    name: str
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    collected: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def row(self) -> str:
        return (
            f"{self.name:<40}{self.requests:>9}{self.rps:>9.1f}{self.p50_ms:>9.1f}{self.p95_ms:>9.1f}"
            f"{self.p99_ms:>9.1f}{self.errors:>8}"
        )

    def figures(self, prefix: str = "") -> dict[str, Any]:
        return {
            f"{prefix}rps": round(self.rps, 1),
            f"{prefix}p50_ms": round(self.p50_ms, 2),
            f"{prefix}p95_ms": round(self.p95_ms, 2),
            f"{prefix}p99_ms": round(self.p99_ms, 2),
            f"{prefix}errors": self.errors,
        }


GUNICORN_FLAGS = ("--log-level", "warning", "wsgi:app")
HEADER = f"{'run (wrk)':<40}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}"


def require_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gunicorn(environ: dict[str, str], workers: int) -> Iterator[int]:
    """Serve `wsgi:app` with gunicorn on a free loopback port (its own process group); yields the port."""
    port = free_port()
    server = subprocess.Popen(  # noqa: S603 - our own gunicorn, fixed arguments
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}", *GUNICORN_FLAGS],
        env={**os.environ, **environ},
        start_new_session=True,
    )
    try:
        for _ in range(150):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        yield port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


class Browser:
    """A keep-alive connection with a cookie jar: only to sign users in and read their CSRF tokens."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None) -> tuple[int, str, str]:
        headers = {"Cookie": self.cookie_header()}
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

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def sign_in(self, email: str, password: str, token_page: str) -> str:
        """Sign in; returns the CSRF token of `token_page` (the session's token for later POSTs)."""
        _, _, page = self.request("GET", "/login")
        status, _, _ = self.request("POST", "/login", {"email": email, "password": password, "csrf_token": token(page)})
        if status != 302:
            raise SystemExit(f"sign-in of {email} failed with HTTP {status}")
        return token(self.follow(token_page))

    def follow(self, path: str) -> str:
        """GET `path`, following redirects (a home page sends each role to its own start page)."""
        status, location, page = self.request("GET", path)
        for _ in range(3):
            if status not in (301, 302, 303):
                break
            status, location, page = self.request("GET", urllib.parse.urlparse(location).path)
        return page


def token(page: str) -> str:
    match = CSRF.search(page)
    if match is None:
        raise SystemExit("page without a CSRF token")
    return match.group(1) or match.group(2)


def sign_in_all(port: int, emails: Sequence[str], password: str, token_page: str) -> list[tuple[str, str]]:
    """(cookie header, CSRF token) for every user."""
    out = []
    for email in emails:
        browser = Browser(port)
        csrf = browser.sign_in(email, password, token_page)
        out.append((browser.cookie_header(), csrf))
        browser.conn.close()
    return out


def run(
    name: str,
    port: int,
    script: str,
    users: Sequence[tuple[str, str] | tuple[str, str, str]],
    seconds: float,
    *,
    timeout_s: int = 10,
) -> Result:
    """Run wrk with one thread and one connection per user for `seconds`. `script` is the Lua body; the
    prelude in front of it gives each thread the globals `id`, `cookie`, `csrf` and `extra` of its user, and the
    counters `unexpected` and `collected` it may add to."""
    wrk = require_wrk()
    with tempfile.TemporaryDirectory() as tmp:
        users_path = os.path.join(tmp, "users.tsv")
        with open(users_path, "w") as fh:
            for user in users:
                fh.write("\t".join(user) + "\n")
        script_path = os.path.join(tmp, "load.lua")
        with open(script_path, "w") as fh:
            fh.write(PRELUDE.replace("{users}", users_path) + script)
        n, url = len(users), f"http://127.0.0.1:{port}/"
        proc = subprocess.run(  # noqa: S603 - wrk with fixed arguments
            [wrk, f"-t{n}", f"-c{n}", f"-d{seconds:g}s", f"--timeout={timeout_s}s", "-s", script_path, url],
            capture_output=True,
            text=True,
            check=False,
        )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("WRK ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    data = json.loads(line[4:])
    errors = data["connect"] + data["read"] + data["write"] + data["timeout"] + data["status"] + data["unexpected"]
    if data["requests"] == 0:  # not one answer within the run: every connection failed to get one
        errors += len(users)
    return Result(
        name=name,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=errors,
        p50_ms=data["p50_us"] / 1000,
        p95_ms=data["p95_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        collected=data["collected"],
    )


def get_script(path: str, pause_ms: float = 0) -> str:
    """Lua: every thread GETs `path` back to back (or pausing 0.5-1.5 x `pause_ms` between requests)."""
    return GET_SCRIPT.replace("{path}", path).replace("{pause_ms}", str(int(pause_ms)))


def healthz(port: int, users: Sequence[tuple[str, str]], seconds: float, pause_ms: float = 0) -> Result:
    """The baseline: the same users (threads, connections, cookies, pacing) on GET /healthz."""
    name = "GET /healthz (baseline)" + (", paced" if pause_ms else "")
    return run(name, port, get_script("/healthz", pause_ms), users, seconds)
