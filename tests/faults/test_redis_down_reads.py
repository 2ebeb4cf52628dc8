"""With Redis down, people can still sign in, read and save: pages, an API GET and a form that starts no
background work answer, none with a 5xx."""

from __future__ import annotations

import pytest

from tests.faults.conftest import FaultWorld

pytestmark = pytest.mark.faults


def test_sign_in_reads_and_saves_work_while_redis_is_down(world: FaultWorld) -> None:
    web = world.web()
    client_id = world.seed["client_id"]
    before = world.session(web)
    assert before.get(f"/clients/{client_id}").status_code == 200

    world.redis.stop()
    browser = world.session(web, signed_in=False)
    answer = browser.login(world.seed["manager"], world.seed["password"])
    assert answer.status_code == 302, f"sign-in with Redis down answered {answer.status_code}"
    page = browser.get(f"/clients/{client_id}")
    assert page.status_code == 200 and "Acme Fault Ltd" in page.text
    assert before.get(f"/clients/{client_id}/payments").status_code == 200  # a session opened before the outage
    wrong = world.session(web, signed_in=False).login(world.seed["manager"], "not-the-password")
    assert wrong.status_code < 500, f"a failed sign-in with Redis down answered {wrong.status_code}"

    edit = f"/clients/{client_id}/debtors/{world.seed['debtor_id']}/edit"
    saved = browser.post_form(edit, {"name": "Dan Two (outage)", "segment": "standard"})
    assert saved.status_code == 302, f"saving a debtor with Redis down answered {saved.status_code}"
    assert "Dan Two (outage)" in browser.get(saved.headers["Location"]).text

    api = world.api_get(web, "/api/v1/debtors")
    assert api.status_code == 200, f"API GET with Redis down answered {api.status_code}: {api.text[:300]}"
    assert {d["external_ref"] for d in api.json()["data"]} >= {"D-1", "D-2"}
