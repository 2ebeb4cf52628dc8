"""Test fixtures: a real database per backend built from the migrations, one rolled-back transaction per test.

Every test that uses `db_session` (directly or through `app`/`client`) runs once on PostgreSQL and once
on SQLite (choose with --db). PostgreSQL tests connect as the application role, so row-level security
is in force exactly as in production.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import scoped_session, sessionmaker

from provider.app import create_app
from provider.core.audit import Actor, set_actor
from provider.core.tenancy import TenantScope, current_scope, set_scope
from provider.extensions import db, limiter

PG_ADMIN_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", choices=("both", "postgresql", "sqlite"), default="both", help="database backends")
    parser.addoption("--pg-admin-url", default=PG_ADMIN_DEFAULT, help="superuser URL used to create test databases")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        choice = metafunc.config.getoption("--db")
        names = ["postgresql", "sqlite"] if choice == "both" else [choice]
        metafunc.parametrize("backend", names, scope="session")


def _environ(database_url: str, owner_url: str) -> dict[str, str]:
    # the webhook tests receive on loopback; tests/provider/test_outbound.py shows it refused without this
    return {
        "AR_ENV": "testing",
        "DATABASE_URL": database_url,
        "DATABASE_OWNER_URL": owner_url,
        "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",
    }


class Database:
    """A throw-away database built by running the migrations."""

    def __init__(self, backend: str, admin_url: str, tmp: Path) -> None:
        self.backend = backend
        self.admin_url = admin_url
        self.name = f"ar_test_{uuid.uuid4().hex[:10]}"
        if backend == "postgresql":
            admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{self.name}"'))
            admin.dispose()
            base = sa.make_url(admin_url)
            self.owner_url = base.set(database=self.name).render_as_string(hide_password=False)
            self.url = base.set(username="ar_app", password=None, database=self.name).render_as_string(
                hide_password=False
            )
        else:
            self.url = self.owner_url = f"sqlite:///{tmp / (self.name + '.db')}"

    @property
    def environ(self) -> dict[str, str]:
        return _environ(self.url, self.owner_url)

    def drop(self) -> None:
        if self.backend != "postgresql":
            return
        admin = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    database = Database(backend, request.config.getoption("--pg-admin-url"), tmp_path_factory.mktemp(backend))
    try:
        yield database
    finally:
        database.drop()


@pytest.fixture(scope="session")
def app(database: Database) -> Iterator[Flask]:
    from flask_migrate import upgrade

    application = create_app(database.environ)
    with application.app_context():
        upgrade()
        yield application
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def db_session(app: Flask) -> Iterator[Any]:
    """One outer transaction per test, rolled back at the end; commits inside become savepoints."""
    connection = db.engine.connect()
    outer = connection.begin()
    original = db.session
    db.session = scoped_session(sessionmaker(bind=connection, join_transaction_mode="create_savepoint"))
    set_scope(TenantScope.agency())
    set_actor(Actor.system("test"))
    limiter.reset()
    try:
        yield db.session
        _month_totals_agree(db.session)
    finally:
        db.session.remove()
        db.session = original
        if outer.is_active:
            outer.rollback()
        connection.close()
        set_scope(TenantScope.nothing())


def _month_totals_agree(session: Any) -> None:
    """After every test: the monthly totals the database kept equal its journal summed again, whatever posting
    path the test took (skipped when the test left its transaction failed, which it then rolls back)."""
    from clients.month_totals import mismatches

    set_scope(TenantScope.agency(), session)
    try:
        problems = mismatches(session)
    except (sa.exc.DBAPIError, sa.exc.PendingRollbackError):
        return
    assert problems == [], "journal_month_totals differ from the journal:\n" + "\n".join(problems[:10])


class IsolatedClient(FlaskClient):
    """A test client whose requests start with an empty `g`, as each real request does.

    The test session keeps one app context open (so tests can use the database between requests); Flask
    reuses it for requests, and so would share `g` (Flask-Login's cached user, Flask-WTF's cached token).
    In production the app context (and the database session) ends with each request.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        from flask import g

        g.__dict__.clear()
        try:
            return super().open(*args, **kwargs)
        finally:
            g.__dict__.clear()
            # the request may leave the test's transaction open with its own tenant settings: restore ours
            set_scope(current_scope(), db.session)


@pytest.fixture
def client(app: Flask, db_session: Any) -> FlaskClient:
    app.test_client_class = IsolatedClient
    return app.test_client()


_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf_token(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "page has no CSRF token"
    return match.group(1) or match.group(2)


def login(client: FlaskClient, email: str, password: str = "correct-horse-battery") -> Any:
    page = client.get("/login")
    token = csrf_token(page.get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token})


def fresh_csrf(client: FlaskClient, path: str = "/") -> str:
    """A valid CSRF token for the client's current session (every signed-in page has the logout form)."""
    return csrf_token(client.get(path, follow_redirects=True).get_data(as_text=True))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One Chromium for the whole run, shared by every browser test.

    Playwright's sync API keeps its event loop running on this thread while it is open, so a second
    `sync_playwright()` started while another is open fails; one session-wide instance avoids that.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True)
        yield instance
        instance.close()
