"""The late-payment settings page of a client (per contract terms version) and the agency's reference rates page:
what they show, what they refuse (naming the field), who may change them, and another client's page is a 404."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from flask.testing import FlaskClient

from clients.interest_models import LatePaymentTerms, ReferenceRate
from provider.core.audit import AuditEvent
from provider.core.clock import today_utc
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_contract_terms, make_team, make_user


def _settings(client_id: int) -> list[LatePaymentTerms]:
    with scoped(TenantScope.agency(), db.session):
        return list(db.session.scalars(sa.select(LatePaymentTerms).where(LatePaymentTerms.client_id == client_id)))


def test_a_manager_sets_a_contract_rate_on_the_terms_in_force_and_sees_it(client: FlaskClient, db_session: Any) -> None:
    acme = make_client(name="Rate Client Ltd")
    terms = make_contract_terms(acme, date(2025, 1, 1))
    login(client, make_user("manager").email)
    url = f"/clients/{acme.id}/late-payment"
    page = client.get(url).get_data(as_text=True)
    assert "No late-payment charges" in page and "Statutory, EU (ECB rate + 8 points)" in page
    token = fresh_csrf(client, url)
    form = {"csrf_token": token, "terms_id": str(terms.id), "basis": "contract", "contract_rate": "",
            "day_count": "act_360", "compensation": "none"}  # fmt: skip
    refused = client.post(url, data=form)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "give the rate as a percentage" in body.lower()
    assert _settings(acme.id) == []  # nothing saved
    saved = client.post(url, data=form | {"contract_rate": "9,5"})
    assert saved.status_code == 302
    (row,) = _settings(acme.id)
    assert (row.basis, row.contract_rate_bp, row.day_count, row.effective_from) == (
        "contract", 950, "act_360", today_utc()
    )  # fmt: skip
    page = client.get(url).get_data(as_text=True)
    assert "Contract rate" in page and "9.50 % a year" in page and "actual/360" in page
    assert "act_360" not in page.replace('value="act_360"', "")  # codes only as form values, never as text
    # in force now: changed only by a new version of the terms
    again = client.post(url, data=form | {"contract_rate": "12"})
    assert again.status_code == 422 and "new contract terms version" in again.get_data(as_text=True)


def test_a_collector_may_read_but_not_change_and_another_clients_page_is_404(
    client: FlaskClient, db_session: Any
) -> None:
    mine, other = make_client(), make_client()
    terms = make_contract_terms(mine, date(2025, 1, 1))
    team_user = make_user("collector", team=make_team(mine))
    login(client, team_user.email)
    url = f"/clients/{mine.id}/late-payment"
    assert "Late-payment charges of" in client.get(url).get_data(as_text=True)
    token = fresh_csrf(client, url)
    refused = client.post(url, data={"csrf_token": token, "terms_id": str(terms.id), "basis": "statutory_eu"})
    assert refused.status_code in (403, 404) and _settings(mine.id) == []
    portal = client.application.test_client()
    login(portal, make_user("client_admin", client=other).email)
    assert portal.get(url).status_code == 404
    manager = client.application.test_client()
    login(manager, make_user("manager").email)
    token = fresh_csrf(manager)
    wrong = manager.post(
        f"/clients/{other.id}/late-payment", data={"csrf_token": token, "terms_id": str(terms.id), "basis": "none"}
    )
    assert wrong.status_code == 422 and "choose the contract terms version" in wrong.get_data(as_text=True)
    assert _settings(other.id) == [] and _settings(mine.id) == []


def test_reference_rates_grow_forward_only_and_are_agency_settings(client: FlaskClient, db_session: Any) -> None:
    login(client, make_user("manager").email)
    page = client.get("/reference-rates").get_data(as_text=True)
    assert "ECB main refinancing rate" in page and "Bank of England base rate" in page
    with scoped(TenantScope.agency(), db.session):
        latest = db.session.scalar(
            sa.select(sa.func.max(ReferenceRate.effective_from)).where(ReferenceRate.series == "ecb_mro")
        )
    token = fresh_csrf(client, "/reference-rates")
    base = {"csrf_token": token, "series": "ecb_mro", "rate": "1.90", "note": "decision"}
    day = max(today_utc(), (latest or today_utc()) + timedelta(days=1))
    old = client.post("/reference-rates", data=base | {"effective_from": (latest or day).isoformat()})
    assert old.status_code == 422 and "a new rate starts after it" in old.get_data(as_text=True)
    bad = client.post("/reference-rates", data=base | {"effective_from": day.isoformat(), "rate": "1.9x"})
    assert bad.status_code == 422 and "percentage" in bad.get_data(as_text=True)
    ok = client.post("/reference-rates", data=base | {"effective_from": day.isoformat(), "rate": "-0,25"})
    assert ok.status_code == 302
    with scoped(TenantScope.agency(), db.session):
        row = db.session.scalars(sa.select(ReferenceRate).where(ReferenceRate.effective_from == day)).one()
        audited = db.session.scalar(
            sa.select(sa.func.count()).where(
                AuditEvent.action == "reference_rate.added", AuditEvent.object_id == str(row.id)
            )
        )
    assert (row.series, row.rate_bp, audited) == ("ecb_mro", -25, 1)
    assert "-0.25 %" in client.get("/reference-rates").get_data(as_text=True)
    portal = client.application.test_client()
    login(portal, make_user("client_admin", client=make_client()).email)
    assert portal.get("/reference-rates").status_code in (403, 404)
