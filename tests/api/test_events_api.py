"""Events and webhook endpoints through the API: list and read events, replay one to an endpoint, register and
disable endpoints, a signed test event; another client's objects are 404s."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from provider.api.webhooks import SIGNATURE_HEADER, verify
from provider.core.clock import frozen_time
from tests.api.helpers import get, payment_body, post
from tests.api.test_webhooks import Receiver
from tests.factories import make_api_token, make_client, make_debtor, make_webhook_endpoint

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def test_register_test_and_disable_an_endpoint(client: FlaskClient, db_session: Any, receiver: Receiver) -> None:
    acme = make_client()
    token = make_api_token(acme)
    with frozen_time(NOW):
        created = post(client, token, "/webhook-endpoints", {"url": receiver.url, "events": ["payment.posted"]})
        assert created.status_code == 201, created.get_json()
        endpoint = created.get_json()
        assert endpoint["secret"].startswith("whsec_") and endpoint["active"] is True
        assert "secret" not in get(client, token, f"/webhook-endpoints/{endpoint['id']}").get_json()
        tested = post(client, token, f"/webhook-endpoints/{endpoint['id']}/test", None)
        assert tested.status_code == 202, tested.get_json()
    headers, body = receiver.received[-1]
    assert headers["x-ar-event"] == "webhook.test" and headers["x-ar-event-id"] == tested.get_json()["event_id"]
    assert verify(endpoint["secret"], headers[SIGNATURE_HEADER.lower()], body, now=int(NOW.timestamp()))
    event_id = int(tested.get_json()["event_id"].removeprefix("evt_"))
    event = get(client, token, f"/events/{event_id}").get_json()
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in event["deliveries"]] == [("succeeded", 1, 200)]
    disabled = post(client, token, f"/webhook-endpoints/{endpoint['id']}/disable", None)
    assert disabled.status_code == 200 and disabled.get_json()["active"] is False
    disabled_test = post(client, token, f"/webhook-endpoints/{endpoint['id']}/test", None)
    assert disabled_test.status_code == 409 and disabled_test.get_json()["type"].endswith("/state-conflict")
    listed = get(client, token, "/webhook-endpoints").get_json()["data"]
    assert [(e["id"], e["active"]) for e in listed] == [(endpoint["id"], False)]


def test_list_read_and_replay_events(client: FlaskClient, db_session: Any, receiver: Receiver) -> None:
    acme = make_client()
    debtor = make_debtor(acme)
    token = make_api_token(acme)
    with frozen_time(NOW):
        first = make_webhook_endpoint(acme, receiver.url, ["payment.posted"])
        assert post(client, token, "/payments", payment_body(debtor.id, "EV-1", 5_00)).status_code == 201
        events = get(client, token, "/events?type=payment.posted").get_json()["data"]
        assert [e["type"] for e in events] == ["payment.posted"]
        event = events[0]
        assert event["payload"]["data"]["external_ref"] == "EV-1" and event["event_id"] == event["payload"]["id"]
        second = make_webhook_endpoint(acme, receiver.url + "/second", ["payment.posted"])
        replayed = post(client, token, f"/events/{event['id']}/replay", {"endpoint_id": second.id})
        assert replayed.status_code == 202, replayed.get_json()
        again = post(client, token, f"/events/{event['id']}/replay", {"endpoint_id": first.id})
        assert again.status_code == 202
    assert [h["x-ar-event-id"] for h, _ in receiver.received] == [event["event_id"]] * 3
    detail = get(client, token, f"/events/{event['id']}").get_json()
    assert sorted((d["endpoint_id"], d["status"]) for d in detail["deliveries"]) == sorted(
        [(first.id, "succeeded"), (second.id, "succeeded")]
    )
    bad = post(client, token, f"/events/{event['id']}/replay", {"endpoint_id": 10**9})
    assert bad.status_code == 409 and "endpoint_id" in bad.get_json()["errors"]
    assert bad.get_json()["type"].endswith("/unknown-reference")


def test_another_clients_events_and_endpoints_are_404(client: FlaskClient, db_session: Any, receiver: Receiver) -> None:
    acme, other = make_client(), make_client()
    with frozen_time(NOW):
        theirs = make_webhook_endpoint(other, receiver.url, ["payment.posted"])
        assert (
            post(client, make_api_token(other), "/payments", payment_body(make_debtor(other).id, "X-1")).status_code
            == 201
        )
    other_events = get(client, make_api_token(other), "/events").get_json()["data"]
    token = make_api_token(acme)
    assert get(client, token, "/events").get_json()["data"] == []
    for path in (f"/events/{other_events[0]['id']}", f"/webhook-endpoints/{theirs.id}"):
        response = get(client, token, path)
        assert (response.status_code, response.mimetype) == (404, "application/problem+json")
    for path in (f"/webhook-endpoints/{theirs.id}/disable", f"/webhook-endpoints/{theirs.id}/test"):
        assert post(client, token, path, None).status_code == 404
    mine = make_webhook_endpoint(acme, receiver.url, ["payment.posted"])
    cross = post(client, token, f"/events/{other_events[0]['id']}/replay", {"endpoint_id": mine.id})
    assert cross.status_code == 404
    read_only = make_api_token(acme, access="read")
    assert (
        post(client, read_only, "/webhook-endpoints", {"url": receiver.url, "events": ["payment.posted"]}).status_code
        == 403
    )


def test_secret_rotation_signs_with_both_secrets_during_the_overlap(
    client: FlaskClient, db_session: Any, receiver: Receiver
) -> None:
    from datetime import timedelta

    acme = make_client()
    token = make_api_token(acme)
    with frozen_time(NOW):
        endpoint = post(
            client, token, "/webhook-endpoints", {"url": receiver.url, "events": ["payment.posted"]}
        ).get_json()
        rotated = post(client, token, f"/webhook-endpoints/{endpoint['id']}/secret-rotation", {"overlap_hours": 2})
        assert rotated.status_code == 201, rotated.get_json()
        new = rotated.get_json()
        assert new["secret"] != endpoint["secret"] and new["previous_secret_until"].startswith("2026-03-10T11:00")
        assert post(client, token, f"/webhook-endpoints/{endpoint['id']}/test", None).status_code == 202
    with frozen_time(NOW + timedelta(hours=3)):
        assert post(client, token, f"/webhook-endpoints/{endpoint['id']}/test", None).status_code == 202
    (during, _), (after, _) = receiver.received[0], receiver.received[1]
    bodies = [b for _, b in receiver.received]
    assert during[SIGNATURE_HEADER.lower()].count("v1=") == 2
    for secret in (endpoint["secret"], new["secret"]):
        assert verify(secret, during[SIGNATURE_HEADER.lower()], bodies[0], now=int(NOW.timestamp()))
    later = int((NOW + timedelta(hours=3)).timestamp())
    assert verify(new["secret"], after[SIGNATURE_HEADER.lower()], bodies[1], now=later)
    assert not verify(endpoint["secret"], after[SIGNATURE_HEADER.lower()], bodies[1], now=later)
    bad = post(client, token, f"/webhook-endpoints/{endpoint['id']}/secret-rotation", {"overlap_hours": 500})
    assert bad.status_code == 422 and "overlap_hours" in bad.get_json()["errors"]
