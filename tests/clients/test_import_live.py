"""A placement import of a committed batch on PostgreSQL, as a worker runs it: the progress bar moves
while the import's own transaction is still open, and publishing it never waits on the import itself.

Needs committed rows seen by two connections, so it runs on its own database (like the concurrency tests).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask

from clients import imports
from clients.imports import ImportBatch, run_placement_import, start_placement_import
from clients.models import Client
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.conftest import Database
from tests.factories import make_client


@pytest.fixture(scope="module")
def live_app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    from flask_migrate import upgrade

    from provider.app import create_app

    if request.config.getoption("--db") == "sqlite":
        pytest.skip("progress is published from a second connection on PostgreSQL only")
    database = Database("postgresql", request.config.getoption("--pg-admin-url"), tmp_path_factory.mktemp("imp"))
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


def _seen_from_outside(client_id: int, batch_id: int) -> tuple[str, int, int, int]:
    """The batch row as the progress page reads it: another connection, committed data only."""
    with db.engine.connect() as conn:
        conn.execute(sa.text("SELECT set_config('app.client_id', :c, true)"), {"c": str(client_id)})
        row = conn.execute(
            sa.text("SELECT status, total_rows, processed_rows, posted_rows FROM import_batches WHERE id = :id"),
            {"id": batch_id},
        ).one()
    return row[0], row[1], row[2], row[3]


def test_progress_of_a_committed_batch_is_visible_before_the_import_commits(
    live_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(imports, "PROGRESS_EVERY", 100)
    rows = "".join(f"L-{n},D-{n % 40},Debtor {n % 40},2026-01-05,2026-02-04,{n + 1}.00,EUR,\n" for n in range(1_000))
    content = (
        "invoice_number,debtor_ref,debtor_name,issue_date,due_date,amount,currency,po_reference\n" + rows
    ).encode()
    with live_app.app_context():
        with scoped(TenantScope.agency(), db.session):
            client_id = make_client().id
            db.session.commit()
        with scoped(TenantScope.single(client_id), db.session):
            client = db.session.get_one(Client, client_id)
            batch_id = start_placement_import(db.session, client, "live.csv", content).id
            db.session.commit()  # the upload request commits; a worker picks the batch up later
        assert _seen_from_outside(client_id, batch_id) == ("queued", 0, 0, 0)

        with scoped(TenantScope.single(client_id), db.session):
            batch = db.session.get_one(ImportBatch, batch_id)
            run_placement_import(db.session, batch)
            # the import's transaction is still open: what others see is the published progress
            assert _seen_from_outside(client_id, batch_id) == ("running", 1_000, 1_000, 1_000)
            db.session.commit()
        assert _seen_from_outside(client_id, batch_id) == ("posted", 1_000, 1_000, 1_000)
