"""The portal's webhook pages: a client admin sees an endpoint's URL, reveals its signing secret and disables it."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from provider.api.models import WebhookEndpoint
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.conftest import fresh_csrf, login
from tests.factories import make_client, make_user, make_webhook_endpoint


def test_the_endpoint_page_shows_url_secret_and_disable(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    admin = make_user("client_admin", client=acme)
    hook = make_webhook_endpoint(acme, "https://erp.acme.example/hooks/ar", ["payment.posted"])
    assert login(client, admin.email).status_code == 302
    page = client.get(f"/portal/api/webhooks/{hook.id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "https://erp.acme.example/hooks/ar" in html
    assert "Reveal the signing secret" in html and hook.secret in html
    assert f'action="/portal/api/webhooks/{hook.id}/disable"' in html and ">Disable</button>" in html
    disabled = client.post(f"/portal/api/webhooks/{hook.id}/disable", data={"csrf_token": fresh_csrf(client)})
    assert disabled.status_code == 302
    with scoped(TenantScope.agency(), db.session):
        assert db.session.get_one(WebhookEndpoint, hook.id).active is False
    again = client.get(f"/portal/api/webhooks/{hook.id}").get_data(as_text=True)
    assert "disabled" in again and ">Disable</button>" not in again


def test_another_clients_endpoint_page_is_a_404(client: FlaskClient, db_session: Any) -> None:
    acme, other = make_client(), make_client()
    admin = make_user("client_admin", client=acme)
    theirs = make_webhook_endpoint(other, "https://erp.other.example/hooks", ["payment.posted"])
    assert login(client, admin.email).status_code == 302
    assert client.get(f"/portal/api/webhooks/{theirs.id}").status_code == 404


def test_the_endpoint_page_rotates_the_secret(client: FlaskClient, db_session: Any) -> None:
    acme = make_client()
    admin = make_user("client_admin", client=acme)
    hook = make_webhook_endpoint(acme, "https://erp.acme.example/hooks/ar", ["payment.posted"])
    old = hook.secret
    assert login(client, admin.email).status_code == 302
    done = client.post(f"/portal/api/webhooks/{hook.id}/rotate", data={"csrf_token": fresh_csrf(client)})
    assert done.status_code == 302
    with scoped(TenantScope.agency(), db.session):
        fresh = db.session.get_one(WebhookEndpoint, hook.id)
        assert fresh.secret != old and fresh.previous_secret == old and fresh.previous_secret_until is not None
    html = client.get(f"/portal/api/webhooks/{hook.id}").get_data(as_text=True)
    assert "The previous secret still signs deliveries" in html and old not in html
