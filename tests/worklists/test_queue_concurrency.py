"""PostgreSQL: collectors pulling "next account" at the same moment never receive the same account.

Committed data seen by many connections, so these run on their own database built from the migrations
(as tests/clients/test_ledger_concurrency.py does), each puller in its own thread, session and transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from flask import Flask
from sqlalchemy import func, select

from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.models import User
from tests.conftest import Database
from tests.factories import make_team, make_user
from tests.worklists.helpers import NOON, commercial_client, overdue_account, rebuild, working_day
from worklists import queue
from worklists.models import WorkItem


@pytest.fixture(scope="module")
def live_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    from flask_migrate import upgrade

    from provider.app import create_app

    if request.config.getoption("--db") == "sqlite":
        pytest.skip("concurrency tests run on PostgreSQL")
    database = Database("postgresql", request.config.getoption("--pg-admin-url"), tmp_path_factory.mktemp("wlconc"))
    app = create_app(database.environ)
    try:
        with app.app_context():
            upgrade()
        yield app
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        database.drop()


def _setup(app: Flask, collectors: int, accounts: int) -> tuple[int, list[int]]:
    with app.app_context(), working_day(), scoped(TenantScope.agency()):
        client = commercial_client()
        team = make_team(client)
        users = [make_user("collector", team=team).id for _ in range(collectors)]
        for i in range(accounts):
            overdue_account(client, 100_00 + i)
        rebuild(client)
        ids = (client.id, users)
        db.session.remove()
    return ids


def _pull_together(app: Flask, client_id: int, user_ids: list[int], rounds: int = 1) -> list[int | None]:
    barrier = threading.Barrier(len(user_ids))

    def one(user_id: int) -> list[int | None]:
        got = []
        with app.app_context(), scoped(TenantScope.granted([client_id])):
            user = db.session.get(User, user_id)
            barrier.wait(timeout=30)
            for _ in range(rounds):
                pulled = queue.next_account_for(db.session, user, NOON)
                got.append(pulled.item.id if pulled.item else None)
                db.session.commit()
                # keep the claim: a collector holds one account at a time and never gives it back here
                if pulled.item is not None:
                    break
            db.session.remove()
        return got

    with ThreadPoolExecutor(max_workers=len(user_ids)) as pool:
        return [i for got in pool.map(one, user_ids) for i in got]


@pytest.mark.parametrize("collectors", [2, 10])
def test_concurrent_collectors_never_get_the_same_account(live_app: Flask, collectors: int) -> None:
    client_id, users = _setup(live_app, collectors, accounts=collectors + 3)
    got = [i for i in _pull_together(live_app, client_id, users) if i is not None]
    assert len(got) == collectors, got  # everyone got one (SKIP LOCKED: no one waited, no one failed)
    assert len(set(got)) == len(got), got
    with live_app.app_context(), scoped(TenantScope.single(client_id)):
        claimed = db.session.scalar(select(func.count()).select_from(WorkItem).where(WorkItem.claimed_by.is_not(None)))
        assert claimed == collectors
        db.session.remove()


def test_more_collectors_than_accounts_share_them_without_doubles(live_app: Flask) -> None:
    client_id, users = _setup(live_app, 10, accounts=4)
    got = _pull_together(live_app, client_id, users)
    served = [i for i in got if i is not None]
    assert len(served) == 4 and len(set(served)) == 4
    assert got.count(None) == 6
