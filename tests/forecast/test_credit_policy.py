"""The client's credit limit policy: page (managers), API and CLI; bad input is refused in plain words and changes
nothing; a saved policy drives the suggested limits at once."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.forecast.models import CreditPolicy, DebtorBehaviour
from tests.conftest import fresh_csrf, login
from tests.factories import make_api_token, make_client, make_user
from tests.forecast.test_forecast_pages import _refitted


def _policies(client_id: int) -> list[tuple[str, dict[str, float], int]]:
    with scoped(TenantScope.single(client_id), db.session):
        rows = db.session.scalars(select(CreditPolicy).where(CreditPolicy.client_id == client_id))
        return [(p.currency, dict(p.months), p.cap_minor) for p in rows]


def _limits(client_id: int) -> list[tuple[str, int, int]]:
    with scoped(TenantScope.single(client_id), db.session):
        rows = db.session.execute(
            select(DebtorBehaviour.risk_grade, DebtorBehaviour.monthly_minor, DebtorBehaviour.credit_limit_minor)
            .where(DebtorBehaviour.client_id == client_id)
            .order_by(DebtorBehaviour.debtor_id)
        )
        return [(g, m, lim) for g, m, lim in rows]


def test_manager_sets_the_policy_on_its_page_and_the_limits_follow(
    app: Flask, client: FlaskClient, db_session: Any
) -> None:
    tenant = _refitted(db_session)
    login(client, make_user("manager").email)
    url = f"/forecast/clients/{tenant.id}/credit/policy"
    token = fresh_csrf(client, url)
    before = _limits(tenant.id)
    form = {"csrf_token": token, "currency": "GBP", "cap": "", **{f"months_{g}": "" for g in "ABCDE"}}
    for change, words in (
        ({"months_B": "lots"}, "Months for grade B: “lots” is not a number"),
        ({"months_A": "30"}, "Months for grade A must be from 0 to 24"),
        ({"cap": "-5"}, "Cap: it cannot be negative"),
        ({"currency": "XYZ"}, "Currency:"),
    ):
        refused = client.post(url, data={**form, **change})
        assert refused.status_code == 422 and words in refused.get_data(as_text=True)
    assert _policies(tenant.id) == [] and _limits(tenant.id) == before  # nothing changed
    saved = client.post(url, data={**form, "months_A": "1", "months_B": "0,5", "cap": "100.00"})
    assert saved.status_code == 302
    assert _policies(tenant.id) == [("GBP", {"A": 1.0, "B": 0.5}, 100_00)]
    after = _limits(tenant.id)
    assert any(g in "AB" for g, _m, _l in after)  # the test can see the change
    for grade, monthly, limit in after:
        months = {"A": 1.0, "B": 0.5, "C": 1.0, "D": 0.5, "E": 0.0}[grade]
        assert limit == min(round(monthly * months), 100_00)
    page = client.get(url).get_data(as_text=True)
    assert "£100.00" in page and "Grade A" in page
    # the link from the credit view, and another client's page is a 404 for a client's user
    assert url in client.get(f"/forecast/clients/{tenant.id}/credit").get_data(as_text=True)
    other = make_client(name="Other Policy Co")
    theirs = app.test_client()
    login(theirs, make_user("client_admin", client=other).email)
    assert theirs.get(url).status_code in (403, 404)


def test_api_and_cli_set_the_policy(app: Flask, client: FlaskClient, db_session: Any) -> None:
    tenant = make_client(base_currency="EUR")
    other = make_client()
    rw = {"Authorization": f"Bearer {make_api_token(tenant, access='read_write')}"}
    ro = {"Authorization": f"Bearer {make_api_token(tenant, access='read')}"}
    body = {"currency": "EUR", "months": {"A": 2, "E": 0}, "cap_minor": 500_000}
    assert client.put("/api/v1/credit-policies", json=body, headers=ro).status_code == 403
    bad = client.put("/api/v1/credit-policies", json={**body, "months": {"F": 1}}, headers=rw)
    assert bad.status_code == 422 and "months.F" in bad.get_json()["errors"]
    bad = client.put("/api/v1/credit-policies", json={**body, "cap_minor": -1}, headers=rw)
    assert bad.status_code == 422 and _policies(tenant.id) == []
    ok = client.put("/api/v1/credit-policies", json=body, headers=rw)
    assert ok.status_code == 200 and ok.get_json() == {"currency": "EUR", "months": {"A": 2.0, "E": 0.0},
                                                       "cap_minor": 500_000}  # fmt: skip
    assert client.get("/api/v1/credit-policies", headers=ro).get_json()["data"][0]["cap_minor"] == 500_000
    theirs = {"Authorization": f"Bearer {make_api_token(other, access='read')}"}
    assert client.get("/api/v1/credit-policies", headers=theirs).get_json()["data"] == []
    assert "/credit-policies" in client.get("/api/v1/openapi.json").get_json()["paths"]
    runner = app.test_cli_runner()
    done = runner.invoke(args=["forecast", "credit-policy", "--client", tenant.code, "--currency", "eur",
                               "--months", "A=4,C=0.5", "--cap", "250.00"])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert _policies(tenant.id) == [("EUR", {"A": 4.0, "C": 0.5}, 250_00)]
    refused = runner.invoke(args=["forecast", "credit-policy", "--client", tenant.code, "--currency", "EUR",
                                  "--months", "A=x"])  # fmt: skip
    assert refused.exit_code != 0 and "Months for grade A: “x” is not a number" in refused.output
    assert _policies(tenant.id) == [("EUR", {"A": 4.0, "C": 0.5}, 250_00)]
