"""Work distribution: the worklist rebuild gives every new and orphaned item an owner (rules per team, then
sharing by capacity), absences hand work back, targets show progress, and only agency staff count as
collectors in the activity figures."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.conftest import fresh_csrf, login
from tests.factories import make_payment, make_team, make_user
from tests.worklists.helpers import TODAY, commercial_client, overdue_account, working_day
from worklists import assignment, queries, services, targets
from worklists.distribution import share
from worklists.jobs import rebuild_client
from worklists.models import ActionKind, AssignmentRule, WorkAction, WorkItem


def _owners(client: Any) -> Counter[int | None]:
    with scoped(TenantScope.agency(), db.session):
        db.session.expire_all()
        return Counter(db.session.scalars(select(WorkItem.owner_id).where(WorkItem.client_id == client.id)))


def _rebuild(client: Any) -> dict[str, int]:
    result = rebuild_client(client.id)
    db.session.commit()
    return result


@pytest.fixture
def floor(db_session: Any) -> dict[str, Any]:
    client = commercial_client(name="Spread Client GmbH")
    team = make_team(client)
    ana = make_user("collector", team=team, name="Ana")
    ben = make_user("collector", team=team, name="Ben")
    return {"client": client, "team": team, "ana": ana, "ben": ben}


def test_the_rebuild_gives_every_new_item_an_owner_shared_by_capacity(floor: dict) -> None:
    with working_day():
        for k in range(12):
            overdue_account(floor["client"], 100_00 + k)
        assignment.set_collector(db.session, floor["ben"].id, 50, False)  # Ben holds half Ana's default
        db.session.commit()
        result = _rebuild(floor["client"])
    owners = _owners(floor["client"])
    assert None not in owners and result["assigned"] == 12
    assert owners[floor["ana"].id] == 9 and owners[floor["ben"].id] == 3  # 150 : 50
    with working_day():
        assert _rebuild(floor["client"])["assigned"] == 0  # idempotent: nothing left to hand out


def test_rules_route_by_segment_language_and_balance_band(floor: dict) -> None:
    other_team = make_team(floor["client"], name="Key Accounts")
    cara = make_user("collector", team=other_team, name="Cara")
    with working_day():
        key = overdue_account(floor["client"], 100_00, segment="key_account")
        french = overdue_account(floor["client"], 100_00, language="fr")
        big = overdue_account(floor["client"], 50_000_00)
        plain = overdue_account(floor["client"], 100_00)
        for data in (
            {"team_id": other_team.id, "segment": "key_account", "position": 1},
            {"team_id": other_team.id, "language": "fr", "position": 2},
            {"team_id": other_team.id, "currency": "EUR", "min_overdue": "10000", "position": 3},
        ):
            assignment.add_rule(db.session, data)
        db.session.commit()
        _rebuild(floor["client"])
    with scoped(TenantScope.agency(), db.session):
        owner = dict(db.session.execute(select(WorkItem.debtor_id, WorkItem.owner_id)).all())
    assert owner[key.id] == owner[french.id] == owner[big.id] == cara.id
    assert owner[plain.id] in (floor["ana"].id, floor["ben"].id)


def test_a_rule_for_a_team_that_does_not_work_the_client_is_refused(floor: dict) -> None:
    stranger = make_team(commercial_client(name="Elsewhere"), name="Elsewhere team")
    with pytest.raises(Exception, match="does not work this client"):
        assignment.add_rule(db.session, {"team_id": stranger.id, "client_id": floor["client"].id})
    with pytest.raises(Exception, match="currency"):
        assignment.add_rule(db.session, {"team_id": floor["team"].id, "min_overdue": "10"})
    with scoped(TenantScope.agency(), db.session):
        assert db.session.scalar(select(AssignmentRule.id)) is None


def test_away_collectors_hand_their_work_to_the_present_ones(floor: dict) -> None:
    with working_day():
        for _ in range(6):
            overdue_account(floor["client"])
        _rebuild(floor["client"])
        assignment.set_collector(db.session, floor["ana"].id, 150, True)  # away now: Ben takes everything
        db.session.commit()
    assert _owners(floor["client"]) == Counter({floor["ben"].id: 6})
    with working_day():  # Ana is back; Ben's holiday starts today: the nightly rebuild moves his work
        assignment.set_collector(db.session, floor["ana"].id, 150, False)
        assignment.set_collector(db.session, floor["ben"].id, 150, False, TODAY, date(2026, 3, 20))
        db.session.commit()
        assert _owners(floor["client"]) == Counter({floor["ana"].id: 6})
        assert _rebuild(floor["client"])["assigned"] == 0


def test_an_inactive_owner_is_an_orphan_and_the_rebuild_reassigns_the_item(floor: dict) -> None:
    with working_day():
        overdue_account(floor["client"])
        assignment.set_collector(db.session, floor["ben"].id, 0, False)  # Ben takes no work
        db.session.commit()
        _rebuild(floor["client"])
        assert _owners(floor["client"]) == Counter({floor["ana"].id: 1})
        with scoped(TenantScope.agency(), db.session):
            floor["ana"].active = False
            assignment.set_collector(db.session, floor["ben"].id, 10, False)
            db.session.commit()
        result = _rebuild(floor["client"])
    assert result["released"] == 1 and _owners(floor["client"]) == Counter({floor["ben"].id: 1})


@given(
    st.dictionaries(st.integers(1, 20), st.tuples(st.integers(0, 50), st.integers(0, 30)), min_size=1, max_size=6),
    st.integers(0, 200),
)
def test_sharing_gives_every_item_once_and_keeps_loads_in_proportion(collectors: dict, n: int) -> None:
    given_out = share(list(range(n)), collectors)
    handed = [i for ids in given_out.values() for i in ids]
    assert sorted(handed) == (list(range(n)) if any(cap > 0 for cap, _ in collectors.values()) else [])
    load = {uid: held + len(given_out.get(uid, [])) for uid, (_, held) in collectors.items()}
    for uid, ids in given_out.items():  # whoever got an item had the lowest relative load when it was given
        cap = collectors[uid][0]
        for other, (other_cap, _) in collectors.items():
            if other_cap > 0 and other != uid:
                assert (load[uid] - 1) / cap <= (load[other] + 1) / other_cap + 1e-9
        assert cap > 0 and ids


def test_targets_show_progress_to_the_collector_and_the_manager(client: FlaskClient, floor: dict) -> None:
    with working_day(datetime(2026, 3, 10, 9, 0, tzinfo=UTC)):
        debtors = [overdue_account(floor["client"], 500_00) for _ in range(2)]
        assignment.set_collector(db.session, floor["ben"].id, 0, False)
        db.session.commit()
        _rebuild(floor["client"])
        with scoped(TenantScope.agency(), db.session):
            targets.set_target(db.session, floor["ana"], 30, 10, "EUR", 1_000_00)
            items = db.session.scalars(select(WorkItem).order_by(WorkItem.id)).all()
            services.log_call(db.session, items[0], floor["ana"], "no_answer")
            services.log_call(db.session, items[1], floor["ana"], "right_party")
            db.session.commit()
        make_payment(floor["client"], debtors[0], "PAY-1", 120_00, received_on=date(2026, 3, 5))
        login(client, floor["ana"].email)
        token = fresh_csrf(client, "/worklists")
        client.post(
            f"/worklists/items/{items[1].id}/actions",
            data={
                "csrf_token": token,
                "action": "outcome",
                "result": "promise",
                "amount": "50",
                "due_on": "2026-03-20",
            },
        )
        queue = client.get("/worklists").get_data(as_text=True)
        assert 'data-progress="accounts">2 <span class="sub">of 30' in queue
        assert 'data-progress="promises">1 <span class="sub">of 10' in queue
        assert "€120.00" in queue and "of €1,000.00" in queue
        assert int(re.search(r'data-stat="mine">(\d+)<', queue).group(1)) >= 1  # "Assigned to me" is not 0
        client.post("/logout", data={"csrf_token": fresh_csrf(client)})
        login(client, make_user("manager").email)
        page = client.get("/worklists/manage").get_data(as_text=True)
        row = page.split(f'data-target="{floor["ana"].id}"')[1].split("</tr>")[0]
        assert "2 / 30" in row and "1 / 10" in row and "€120.00 / €1,000.00" in row
        token = fresh_csrf(client, "/worklists/manage")
        saved = client.post(
            "/worklists/manage/targets",
            data={
                "csrf_token": token,
                "user_id": floor["ben"].id,
                "accounts_per_day": "25",
                "promises_per_week": "5",
                "currency": "JPY",
                "collected": "50000",
            },
        )
        assert saved.status_code == 302
        page = client.get("/worklists/manage").get_data(as_text=True)
        assert 'name="collected" inputmode="decimal" value="50000"' in page and "ref. units" not in page


def test_only_agency_staff_count_in_actions_per_collector(floor: dict) -> None:
    portal_user = make_user("client_admin", client=floor["client"], name="Client Person")
    with working_day():
        overdue_account(floor["client"])
        _rebuild(floor["client"])
        with scoped(TenantScope.agency(), db.session):
            item = db.session.scalar(select(WorkItem))
            services.log_call(db.session, item, floor["ana"], "no_answer")
            db.session.add(
                WorkAction(
                    client_id=item.client_id,
                    work_item_id=item.id,
                    debtor_id=item.debtor_id,
                    kind=ActionKind.STATE.value,
                    outcome="closed",
                    user_id=portal_user.id,
                )
            )
            db.session.commit()
            _, people = queries.actions_per_collector(TODAY)
    assert [name for name, _ in people] == ["Ana"]


def test_collected_is_net_of_payments_reversed_in_the_month(floor: dict) -> None:
    """A bounced payment is no collection: reversed this month (whenever received), it is taken off."""
    from clients.corrections import reverse_document

    with working_day(datetime(2026, 3, 10, 9, 0, tzinfo=UTC)):
        debtor = overdue_account(floor["client"], 500_00)
        assignment.set_collector(db.session, floor["ben"].id, 0, False)
        db.session.commit()
        _rebuild(floor["client"])
        kept = make_payment(floor["client"], debtor, "PAY-KEPT", 120_00, received_on=date(2026, 3, 5))
        bounced = make_payment(floor["client"], debtor, "PAY-BOUNCED", 50_00, received_on=date(2026, 3, 4))
        earlier = make_payment(floor["client"], debtor, "PAY-FEB", 30_00, received_on=date(2026, 2, 20))
        with scoped(TenantScope.agency(), db.session):
            reverse_document(db.session, floor["client"], bounced, "bounced", date(2026, 3, 6))
            reverse_document(db.session, floor["client"], earlier, "cheque returned", date(2026, 3, 7))
            db.session.commit()
            mine = targets.progress(db.session, [floor["ana"].id], TODAY)[floor["ana"].id]
            february = targets.progress(db.session, [floor["ana"].id], date(2026, 2, 28))[floor["ana"].id]
    assert kept.amount_minor == 120_00
    assert mine.collected == {"EUR": 120_00 + 50_00 - 50_00 - 30_00}
    assert february.collected == {"EUR": 30_00}  # February's figure stays as it was in February


def test_a_manager_changes_an_assignment_rule_validated_and_audited(client: FlaskClient, floor: dict) -> None:
    from provider.core.audit import AuditEvent

    other_team = make_team(floor["client"], name="Key Accounts")
    with scoped(TenantScope.agency(), db.session):
        rule = assignment.add_rule(db.session, {"team_id": floor["team"].id, "segment": "retail", "position": 5})
        db.session.commit()
        rule_id = rule.id
    login(client, make_user("manager").email)
    url = f"/worklists/manage/rules/{rule_id}"
    page = client.get(url).get_data(as_text=True)
    assert 'name="segment"' in page and 'value="retail"' in page and 'value="5"' in page
    assert f'href="{url}"' in client.get("/worklists/manage").get_data(as_text=True)

    token = fresh_csrf(client, url)
    refused = client.post(  # a band whose end is below its start: nothing changes, the typed values stay
        url,
        data={
            "csrf_token": token,
            "team_id": other_team.id,
            "position": "7",
            "segment": "key_account",
            "currency": "EUR",
            "min_overdue": "5000",
            "max_overdue": "100",
        },
    )
    text = refused.get_data(as_text=True)
    assert refused.status_code == 422 and "upper end is below its lower end" in text and 'value="key_account"' in text
    with scoped(TenantScope.agency(), db.session):
        db.session.expire_all()
        assert db.session.get(AssignmentRule, rule_id).segment == "retail"

    saved = client.post(
        url,
        data={
            "csrf_token": fresh_csrf(client, url),
            "team_id": other_team.id,
            "position": "7",
            "segment": "key_account",
            "currency": "EUR",
            "min_overdue": "100",
            "max_overdue": "5000.50",
        },
    )
    assert saved.status_code == 302
    with scoped(TenantScope.agency(), db.session):
        db.session.expire_all()
        changed = db.session.get(AssignmentRule, rule_id)
        assert (changed.team_id, changed.position, changed.segment) == (other_team.id, 7, "key_account")
        assert (changed.min_overdue_minor, changed.max_overdue_minor, changed.currency) == (100_00, 5000_50, "EUR")
        event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "worklist.rule_changed")).one()
        assert event.changes["segment"] == ["retail", "key_account"] and event.changes["position"] == [5, 7]
    assert 'value="5000.50"' in client.get(url).get_data(as_text=True)
    assert client.get("/worklists/manage/rules/999999").status_code == 404
    client.post("/logout", data={"csrf_token": fresh_csrf(client)})
    login(client, floor["ana"].email)
    assert client.get(url).status_code in (403, 404)  # collectors do not manage rules
