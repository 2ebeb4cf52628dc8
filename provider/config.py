"""Configuration: the only module that reads the process environment.

Every setting comes from an environment variable (or a test override) and is validated here, at
start-up, so a missing or malformed value stops the app with a message that names the variable.

    AR_ENV                  development (default) | demo | production | testing
    DATABASE_URL            SQLAlchemy URL the app connects with; default sqlite:///instance/ar.db (WAL)
    DATABASE_OWNER_URL      URL migrations run with (the schema owner); default DATABASE_URL
    DATABASE_APP_ROLE       PostgreSQL role the migrations grant table rights to; default ar_app
    REDIS_URL               redis://...; unset = background jobs run in-process
    SECRET_KEY              required (>= 32 characters) outside development, demo and testing
    LOGIN_RATE_LIMIT        failures per account+IP and minute before 429; default 5
    MAX_UPLOAD_MB           request body limit; default 50
    AGENCY_NAME             the agency's name on reports, statements and fee invoices; default AR Ops Collections
    AGENCY_ADDRESS          its postal address on statements and fee invoices, lines separated by "|"
    AGENCY_TAX_ID           its tax (VAT) number on fee invoices; default none
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"
ENVIRONMENTS = ("development", "demo", "production", "testing")
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class ConfigError(RuntimeError):
    """A configuration variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    env: str
    database_url: str
    database_owner_url: str
    database_app_role: str
    redis_url: str | None
    secret_key: str
    login_rate_limit: int
    max_upload_mb: int
    job_heartbeat_seconds: int = 10
    job_stale_seconds: int = 45
    agency_name: str = "AR Ops Collections"
    agency_address: str = ""
    agency_tax_id: str = ""

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    def flask_config(self) -> dict[str, Any]:
        secure_cookies = self.env == "production"
        return {
            "AR_ENV": self.env,
            "SECRET_KEY": self.secret_key,
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(self.database_url),
            "SQLALCHEMY_RECORD_QUERIES": self.env == "testing",
            "DATABASE_OWNER_URL": self.database_owner_url,
            "DATABASE_APP_ROLE": self.database_app_role,
            "REDIS_URL": self.redis_url,
            "JOBS_MODE": "rq" if self.redis_url else ("eager" if self.env == "testing" else "thread"),
            "LOGIN_RATE_LIMIT": self.login_rate_limit,
            "RATELIMIT_STORAGE_URI": self.redis_url or "memory://",
            # Redis away: count in this process (a logged warning) rather than refuse sign-ins and API calls
            "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
            "RATELIMIT_SWALLOW_ERRORS": True,
            "RATELIMIT_STORAGE_OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
            "RATELIMIT_HEADERS_ENABLED": True,
            "MAX_CONTENT_LENGTH": self.max_upload_mb * 1024 * 1024,
            "JOB_HEARTBEAT_SECONDS": self.job_heartbeat_seconds,
            "JOB_STALE_SECONDS": self.job_stale_seconds,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": secure_cookies,
            "REMEMBER_COOKIE_HTTPONLY": True,
            "REMEMBER_COOKIE_SECURE": secure_cookies,
            "WTF_CSRF_TIME_LIMIT": None,
            "TESTING": self.env == "testing",
            "AGENCY_NAME": self.agency_name,
            "AGENCY_ADDRESS": self.agency_address,
            "AGENCY_TAX_ID": self.agency_tax_id,
        }


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # timeout: seconds sqlite3 waits for the write lock (the busy timeout; provider.core.db sets the same
        # by PRAGMA). A file database gets the pool PostgreSQL has: requests waiting their turn for the write
        # lock each hold a connection, and the in-process jobs need theirs.
        options: dict[str, Any] = {"connect_args": {"timeout": 30, "check_same_thread": False}}
        if url.removeprefix("sqlite://").strip("/") not in ("", ":memory:"):
            options.update(pool_size=10, max_overflow=10)
        return options
    return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10}


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _database_url(env: Mapping[str, str], name: str, default: str) -> str:
    url = env.get(name) or default
    if url.startswith("postgres://"):  # Heroku-style alias
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    scheme = url.split(":", 1)[0]
    if scheme not in ("sqlite", "postgresql+psycopg"):
        raise ConfigError(f"{name} must be a sqlite:/// or postgresql:// URL, got scheme {scheme!r}")
    if scheme.startswith("postgresql") and not urlsplit(url).path.strip("/"):
        raise ConfigError(f"{name} must name a database, e.g. postgresql://ar_app@127.0.0.1:5432/ar")
    return url


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the environment. Raises ConfigError naming the offending variable."""
    env = dict(os.environ if environ is None else environ)
    name = env.get("AR_ENV") or "development"
    if name not in ENVIRONMENTS:
        raise ConfigError(f"AR_ENV must be one of {', '.join(ENVIRONMENTS)}, got {name!r}")

    default_db = f"sqlite:///{INSTANCE_DIR / 'ar.db'}"
    database_url = _database_url(env, "DATABASE_URL", default_db)
    owner_url = (
        _database_url(env, "DATABASE_OWNER_URL", database_url) if env.get("DATABASE_OWNER_URL") else database_url
    )
    if owner_url.split(":", 1)[0] != database_url.split(":", 1)[0]:
        raise ConfigError("DATABASE_OWNER_URL must point at the same kind of database as DATABASE_URL")
    role = env.get("DATABASE_APP_ROLE") or "ar_app"
    if not _ROLE_NAME.match(role):
        raise ConfigError(f"DATABASE_APP_ROLE must be a plain lower-case SQL identifier, got {role!r}")

    redis_url = env.get("REDIS_URL") or None
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {redis_url!r}")

    secret = env.get("SECRET_KEY") or ""
    if not secret:
        if name == "production":
            raise ConfigError("SECRET_KEY is required when AR_ENV=production (at least 32 random characters)")
        secret = secrets.token_hex(32) if name == "testing" else "dev-only-secret-key-not-for-production-use!"
    elif len(secret) < 32:
        raise ConfigError(f"SECRET_KEY must be at least 32 characters long, got {len(secret)}")

    heartbeat = _int(env, "JOB_HEARTBEAT_SECONDS", 10, 1, 300)
    stale = _int(env, "JOB_STALE_SECONDS", 45, 3, 3600)
    if stale < 3 * heartbeat:
        raise ConfigError(
            f"JOB_STALE_SECONDS ({stale}) must be at least three heartbeats "
            f"(3 x JOB_HEARTBEAT_SECONDS = {3 * heartbeat})"
        )

    return Settings(
        env=name,
        database_url=database_url,
        database_owner_url=owner_url,
        database_app_role=role,
        redis_url=redis_url,
        secret_key=secret,
        login_rate_limit=_int(env, "LOGIN_RATE_LIMIT", 5, 1, 1000),
        max_upload_mb=_int(env, "MAX_UPLOAD_MB", 50, 1, 1024),
        job_heartbeat_seconds=heartbeat,
        job_stale_seconds=stale,
        agency_name=(env.get("AGENCY_NAME") or "AR Ops Collections").strip()[:200],
        agency_address="\n".join(
            part.strip()
            for part in (env.get("AGENCY_ADDRESS") or _DEMO_ADDRESS.get(name, "")).split("|")
            if part.strip()
        ),
        agency_tax_id=(env.get("AGENCY_TAX_ID") or _DEMO_TAX_ID.get(name, "")).strip()[:40],
    )


# the demo agency's letterhead (a real agency sets AGENCY_ADDRESS and AGENCY_TAX_ID)
_DEMO_ADDRESS = {"demo": "12 Harbour Street | Dublin D02 X285 | Ireland"}
_DEMO_TAX_ID = {"demo": "IE 1234567T"}
