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
    OUTBOUND_HTTPS_ONLY     1/0: webhooks and other outbound calls only to https URLs; default 1 in production, else 0
    OUTBOUND_ALLOWED_HOSTS  comma-separated host names/addresses outbound calls may reach although they are
                            internal (loopback, private ...), e.g. erp.internal,10.0.0.8; default none
    HSTS_MAX_AGE            seconds of Strict-Transport-Security sent in production (0 = no header); default 31536000
    REQUIRE_2FA_ROLES       comma-separated roles that must use two-factor sign-in; default in production:
                            admin,manager,client_admin; elsewhere (demo, development, testing): none
    UPLOAD_MAX_UNZIPPED_MB  an uploaded XLSX/zip may expand to at most this; default 200
    UPLOAD_MAX_MEMBERS      an uploaded zip may have at most this many members; default 2000
    UPLOAD_MAX_RATIO        an uploaded zip member may be at most this many times its compressed size; default 200
    UPLOAD_MAX_CELLS        a spreadsheet may declare at most this many rows x columns; default 5000000
    PUBLIC_BASE_URL         the address people reach the app at (links in e-mails); default http://localhost:5000
  Mail (provider.comms):
    SMTP_HOST, SMTP_PORT    the outgoing mail server; no SMTP_HOST = mail waits in the queue (the demo starts its
                            own loopback server); SMTP_PORT default 25 (465 with SMTP_SSL, 587 with SMTP_STARTTLS)
    SMTP_STARTTLS, SMTP_SSL 1/true/yes to upgrade with STARTTLS, or to connect over TLS (not both)
    SMTP_USERNAME, SMTP_PASSWORD  authentication (both or neither)
    SMTP_TIMEOUT            seconds; default 30
    MAIL_DEFAULT_FROM       sender address when a client has none of its own; default noreply@<MAIL_RETURN_DOMAIN>
    MAIL_DEFAULT_FROM_NAME  default "Accounts receivable"
    MAIL_RETURN_DOMAIN      domain of the signed return addresses (bounces+..., reply+...); default mail.localhost
    MAIL_VERP_SECRET        key signing those addresses; default derived from SECRET_KEY
    MAIL_INBOUND_HOST, MAIL_INBOUND_PORT  where `flask mail-inbound` listens; default 127.0.0.1:2525
    AGENCY_NAME             the agency's name on reports, statements and fee invoices; default AR Ops Collections
    AGENCY_ADDRESS          its postal address on statements and fee invoices, lines separated by "|"
    AGENCY_TAX_ID           its tax (VAT) number on fee invoices; default none
    AGENCY_TIMEZONE         the IANA zone agency staff read times in (client users read their client's); default UTC
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
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
    outbound_https_only: bool = True
    outbound_allowed_hosts: tuple[str, ...] = ()
    hsts_max_age: int = 31_536_000
    require_2fa_roles: tuple[str, ...] = ()
    upload_max_unzipped_mb: int = 200
    upload_max_members: int = 2000
    upload_max_ratio: int = 200
    upload_max_cells: int = 5_000_000
    public_base_url: str = "http://localhost:5000"
    mail: dict[str, Any] = field(default_factory=dict)
    agency_name: str = "AR Ops Collections"
    agency_address: str = ""
    agency_tax_id: str = ""
    agency_timezone: str = "UTC"

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
            "OUTBOUND_HTTPS_ONLY": self.outbound_https_only,
            "OUTBOUND_ALLOWED_HOSTS": frozenset(self.outbound_allowed_hosts),
            "HSTS_MAX_AGE": self.hsts_max_age if self.env == "production" else 0,
            "REQUIRE_2FA_ROLES": frozenset(self.require_2fa_roles),
            "UPLOAD_MAX_UNZIPPED_BYTES": self.upload_max_unzipped_mb * 1024 * 1024,
            "UPLOAD_MAX_MEMBERS": self.upload_max_members,
            "UPLOAD_MAX_RATIO": self.upload_max_ratio,
            "UPLOAD_MAX_CELLS": self.upload_max_cells,
            "PUBLIC_BASE_URL": self.public_base_url,
            **self.mail,
            "AGENCY_NAME": self.agency_name,
            "AGENCY_ADDRESS": self.agency_address,
            "AGENCY_TAX_ID": self.agency_tax_id,
            "AGENCY_TIMEZONE": self.agency_timezone,
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


def _timezone(env: Mapping[str, str], name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    value = (env.get(name) or "UTC").strip()
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{name} must be an IANA time zone such as Europe/Berlin (got {value!r})") from None
    return value


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

    https_only = _int(env, "OUTBOUND_HTTPS_ONLY", 1 if name == "production" else 0, 0, 1) == 1
    allowed_hosts = tuple(h.strip().lower().rstrip(".") for h in env.get("OUTBOUND_ALLOWED_HOSTS", "").split(","))
    public_base_url = (env.get("PUBLIC_BASE_URL") or "http://localhost:5000").rstrip("/")
    if not public_base_url.startswith(("http://", "https://")):
        raise ConfigError(f"PUBLIC_BASE_URL must start with http:// or https://, got {public_base_url!r}")

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
        outbound_https_only=https_only,
        outbound_allowed_hosts=tuple(h for h in allowed_hosts if h),
        hsts_max_age=_int(env, "HSTS_MAX_AGE", 31_536_000, 0, 2 * 31_536_000),
        require_2fa_roles=_roles(env, name),
        upload_max_unzipped_mb=_int(env, "UPLOAD_MAX_UNZIPPED_MB", 200, 1, 4096),
        upload_max_members=_int(env, "UPLOAD_MAX_MEMBERS", 2000, 1, 100_000),
        upload_max_ratio=_int(env, "UPLOAD_MAX_RATIO", 200, 2, 10_000),
        upload_max_cells=_int(env, "UPLOAD_MAX_CELLS", 5_000_000, 1, 1_000_000_000),
        public_base_url=public_base_url,
        mail=_mail_settings(env, secret),
        agency_name=(env.get("AGENCY_NAME") or "AR Ops Collections").strip()[:200],
        agency_address="\n".join(
            part.strip()
            for part in (env.get("AGENCY_ADDRESS") or _DEMO_ADDRESS.get(name, "")).split("|")
            if part.strip()
        ),
        agency_tax_id=(env.get("AGENCY_TAX_ID") or _DEMO_TAX_ID.get(name, "")).strip()[:40],
        agency_timezone=_timezone(env, "AGENCY_TIMEZONE"),
    )


TWO_FACTOR_DEFAULT = ("admin", "manager", "client_admin")


def _roles(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    from provider.core.permissions import Role

    raw = env.get("REQUIRE_2FA_ROLES")
    if raw is None:
        return TWO_FACTOR_DEFAULT if name == "production" else ()
    roles = tuple(r.strip() for r in raw.split(",") if r.strip())
    known = {r.value for r in Role}
    unknown = [r for r in roles if r not in known]
    if unknown:
        raise ConfigError(f"REQUIRE_2FA_ROLES names unknown roles {unknown}; choose among {sorted(known)}")
    return roles


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
_DOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name} must be 1/true/yes or 0/false/no, got {raw!r}")


def _mail_settings(env: Mapping[str, str], secret: str) -> dict[str, Any]:
    """The SMTP transport and the signed return addresses (provider.comms), as Flask config keys."""
    import hashlib

    starttls, ssl = _flag(env, "SMTP_STARTTLS"), _flag(env, "SMTP_SSL")
    if starttls and ssl:
        raise ConfigError("SMTP_STARTTLS and SMTP_SSL exclude each other: choose one")
    username, password = env.get("SMTP_USERNAME") or "", env.get("SMTP_PASSWORD") or ""
    if bool(username) != bool(password):
        raise ConfigError("SMTP_USERNAME and SMTP_PASSWORD go together: set both or neither")
    domain = (env.get("MAIL_RETURN_DOMAIN") or "mail.localhost").strip().lower()
    if not _DOMAIN.match(domain):
        raise ConfigError(f"MAIL_RETURN_DOMAIN must be a domain name such as mail.example.com, got {domain!r}")
    verp_secret = env.get("MAIL_VERP_SECRET") or hashlib.sha256(b"verp:" + secret.encode()).hexdigest()
    if len(verp_secret) < 16:
        raise ConfigError("MAIL_VERP_SECRET must be at least 16 characters long")
    default_port = 465 if ssl else (587 if starttls else 25)
    return {
        "SMTP_HOST": (env.get("SMTP_HOST") or "").strip() or None,
        "SMTP_PORT": _int(env, "SMTP_PORT", default_port, 1, 65535),
        "SMTP_STARTTLS": starttls,
        "SMTP_SSL": ssl,
        "SMTP_USERNAME": username,
        "SMTP_PASSWORD": password,
        "SMTP_TIMEOUT": _int(env, "SMTP_TIMEOUT", 30, 1, 600),
        "MAIL_RETURN_DOMAIN": domain,
        "MAIL_VERP_SECRET": verp_secret,
        "MAIL_DEFAULT_FROM": (env.get("MAIL_DEFAULT_FROM") or f"noreply@{domain}").strip(),
        "MAIL_DEFAULT_FROM_NAME": (env.get("MAIL_DEFAULT_FROM_NAME") or "Accounts receivable").strip(),
        "MAIL_INBOUND_HOST": (env.get("MAIL_INBOUND_HOST") or "127.0.0.1").strip(),
        "MAIL_INBOUND_PORT": _int(env, "MAIL_INBOUND_PORT", 2525, 1, 65535),
    }


# the demo agency's letterhead (a real agency sets AGENCY_ADDRESS and AGENCY_TAX_ID)
_DEMO_ADDRESS = {"demo": "12 Harbour Street | Dublin D02 X285 | Ireland"}
_DEMO_TAX_ID = {"demo": "IE 1234567T"}
