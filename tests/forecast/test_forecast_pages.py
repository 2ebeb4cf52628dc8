"""Forecast pages, CSV, API and CLI: what a manager, a client user and an ERP see; another client's is a 404."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from provider.core.clock import today_utc
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.forecast.services import refit_client
from tests.conftest import login
from tests.factories import make_api_token, make_client, make_user
from tests.forecast.helpers import post_synthetic


def _refitted(db_session: Any) -> Any:
    client = make_client(base_currency="GBP", country="GB", timezone="Europe/London")
    post_synthetic(client, seed=5, debtors=30, weeks=36, start=today_utc() - timedelta(weeks=36), per_week=10)
    with scoped(TenantScope.single(client.id), db.session):
        refit_client(db.session, client.id)
        db.session.commit()
    return client


def test_manager_sees_forecast_backtest_and_credit_view(client: FlaskClient, db_session: Any) -> None:
    tenant = _refitted(db_session)
    manager = make_user("manager")
    login(client, manager.email)
    index = client.get("/forecast").get_data(as_text=True)
    assert tenant.name in index and "£" in index
    page = client.get(f"/forecast/clients/{tenant.id}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "data:image/svg+xml;base64," in body and "How good this forecast has been" in body
    assert "80 % range" in body
    for code in ("pays_on_time", "slow_and_partial", "naive_due", "naive_average", "wape"):
        assert code not in re.sub(r"<[^>]+>", " ", body)  # people read words, not the model's names
    past = client.get(f"/forecast/clients/{tenant.id}?as_of={(today_utc() - timedelta(weeks=8)).isoformat()}")
    assert past.status_code == 200 and "made on " + (today_utc() - timedelta(weeks=8)).isoformat() in past.get_data(
        as_text=True
    )
    credit = client.get(f"/forecast/clients/{tenant.id}/credit?sort=grade&dir=desc").get_data(as_text=True)
    assert "Suggested limit" in credit and "Pays" in credit
    csv = client.get(f"/forecast/clients/{tenant.id}/credit.csv")
    assert csv.mimetype == "text/csv" and "Risk grade" in csv.get_data(as_text=True)


def test_client_user_sees_own_forecast_and_not_another(client: FlaskClient, db_session: Any) -> None:
    tenant = _refitted(db_session)
    other = make_client(name="Other Secret Co")
    user = make_user("client_admin", client=tenant)
    login(client, user.email)
    assert client.get("/portal/forecast").status_code == 200
    assert client.get("/portal/credit").status_code == 200
    assert client.get("/portal/credit.csv").status_code == 200
    assert client.get(f"/forecast/clients/{other.id}").status_code == 404


def test_api_forecast_backtest_segments(app: Flask, client: FlaskClient, db_session: Any) -> None:
    tenant = _refitted(db_session)
    other = make_client()
    token = make_api_token(tenant, access="read")
    headers = {"Authorization": f"Bearer {token}"}
    forecast = client.get("/api/v1/forecast", headers=headers).get_json()
    assert forecast["data"][0]["currency"] == "GBP" and len(forecast["data"][0]["weeks"]) == 13
    backtest = client.get("/api/v1/forecast/backtest", headers=headers).get_json()
    assert "4" in backtest["data"][0]["horizons"]
    segments = client.get("/api/v1/segments?limit=5", headers=headers).get_json()
    assert len(segments["data"]) == 5 and segments["next_cursor"]
    bad = client.get("/api/v1/forecast?as_of=2999-01-01", headers=headers)  # a valid date, but in the future
    assert bad.status_code == 409 and bad.get_json()["type"].endswith("/date-rule")
    spec = client.get("/api/v1/openapi.json").get_json()
    assert {"/forecast", "/forecast/backtest", "/segments"} <= set(spec["paths"])
    # another client's token sees none of this client's segments
    other_token = make_api_token(other, access="read")
    theirs = client.get("/api/v1/segments", headers={"Authorization": f"Bearer {other_token}"}).get_json()
    assert theirs["data"] == []


def test_cli_backtest_prints_the_errors(app: Flask, db_session: Any) -> None:
    tenant = _refitted(db_session)
    result = app.test_cli_runner().invoke(args=["forecast", "backtest", "--client", tenant.code])
    assert result.exit_code == 0, result.output
    assert "last-13-weeks avg" in result.output and "80% interval held" in result.output
    missing = app.test_cli_runner().invoke(args=["forecast", "backtest", "--client", "NOPE"])
    assert missing.exit_code != 0 and "no client has the code" in missing.output
