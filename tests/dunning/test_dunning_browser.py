"""The dunning pages in a real browser on the demo: the manager's overview, a client's runs and letters, the
template editor with its preview, the client's approval page and the debtor's own page (screenshots kept in
the test's temporary directory, or in $DUNNING_SHOTS when set)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from tests.test_browser import CHROMIUM, _sign_in

if not CHROMIUM.exists():
    pytest.skip("Chromium is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Any]]]:
    from flask_migrate import upgrade
    from sqlalchemy import select

    from clients.models import Client, Debtor
    from provider.app import create_app
    from provider.core.clock import now_utc
    from provider.core.tenancy import TenantScope, scoped
    from provider.demo import seed_demo
    from provider.dunning.links import make_token
    from provider.dunning.models import DunningDecision, DunningPolicy
    from provider.dunning.run import client_today, run_client
    from provider.extensions import db

    db_file = tmp_path_factory.mktemp("dunning-browser") / "live.db"
    app = create_app({"AR_ENV": "testing", "DATABASE_URL": f"sqlite:///{db_file}"})
    with app.app_context():
        upgrade()
        seed_demo(invoices_per_client=120)
        with scoped(TenantScope.agency(), db.session):
            client = db.session.scalars(select(Client).where(Client.code == "RHEIN")).one()
            run_client(db.session, client.id, client_today(client, now_utc()), attach_statement=False)
            db.session.info.pop("pending_jobs", None)
            db.session.commit()
            sent = db.session.scalars(
                select(DunningDecision.debtor_id).where(
                    DunningDecision.client_id == client.id, DunningDecision.outcome == "sent"
                )
            ).first()
            debtor = db.session.get_one(Debtor, sent)
            policy = db.session.scalars(select(DunningPolicy).where(DunningPolicy.client_id == client.id)).one()
            facts = {
                "client_id": client.id,
                "policy_id": policy.id,
                "stage_id": policy.stages[0].id,
                "debtor_id": debtor.id,
                "debtor_name": debtor.name,
                "token": make_token(client.id, debtor.id),
            }
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", facts
    finally:
        server.shutdown()


def _shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("DUNNING_SHOTS", str(tmp_path)))
    where.mkdir(parents=True, exist_ok=True)
    return where


def test_manager_pages_and_the_editor_preview(browser: Any, live: tuple[str, dict[str, Any]], tmp_path: Path) -> None:
    base, facts = live
    shots = _shots(tmp_path)
    page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    _sign_in(page, base, "maria.manager@demo.test")
    page.goto(f"{base}/dunning")
    assert "Rheinland Maschinenbau GmbH" in page.inner_text("main")
    page.screenshot(path=str(shots / "dunning-index.png"), full_page=True)
    page.goto(f"{base}/dunning/clients/{facts['client_id']}")
    body = page.inner_text("main")
    assert "Version 1" in body and "Approved" in body and "Done" in body
    page.screenshot(path=str(shots / "dunning-client.png"), full_page=True)
    page.click("#runs table a")
    page.wait_for_url("**/dunning/runs/*")
    assert "Sent" in page.inner_text("main") and "Skipped" in page.inner_text("main")
    page.screenshot(path=str(shots / "dunning-run.png"), full_page=True)
    page.goto(
        f"{base}/dunning/policies/{facts['policy_id']}?stage_id={facts['stage_id']}&debtor_id={facts['debtor_id']}"
    )
    page.screenshot(path=str(shots / "dunning-policy-preview.png"), full_page=True)
    body = page.inner_text("main")
    assert facts["debtor_name"] in body and "variables you can use" in body.lower()


def test_client_approval_page_and_the_debtor_page(
    browser: Any, live: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    base, facts = live
    shots = _shots(tmp_path)
    page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
    _sign_in(page, base, "admin@rhein.demo.test")
    page.goto(f"{base}/portal/dunning")
    assert "version 1" in page.inner_text("main").lower()
    page.screenshot(path=str(shots / "dunning-portal.png"), full_page=True)
    debtor = browser.new_context(viewport={"width": 420, "height": 900}).new_page()
    debtor.goto(f"{base}/d/{facts['token']}")
    text = debtor.inner_text("main")
    assert facts["debtor_name"] in text and "Zahlung zusagen" in text  # a German debtor reads German
    debtor.screenshot(path=str(shots / "dunning-debtor.png"), full_page=True)
    assert debtor.goto(f"{base}/d/{facts['token']}x").status == 404
