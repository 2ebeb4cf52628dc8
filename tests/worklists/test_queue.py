"""The queue: next account by score, claims with a lease, release, owners and pools, the contact gate."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.factories import make_client, make_team, make_user
from tests.worklists.helpers import NOON, commercial_client, item_of, overdue_account, rebuild, working_day
from worklists import assignment, queue, services
from worklists.models import CallOutcome, ItemState


@pytest.fixture
def team(db_session: Any) -> dict[str, Any]:
    client = commercial_client()
    team = make_team(client)
    return {
        "client": client,
        "team": team,
        "ana": make_user("collector", team=team),
        "ben": make_user("collector", team=team),
    }


def _next(user: Any, at: datetime = NOON) -> Any:
    with working_day(at), scoped(TenantScope.granted([c.id for c in user.team.clients]), db.session):
        pulled = queue.next_account_for(db.session, user)
        db.session.commit()
        return pulled.item.debtor_id if pulled.item else None


def test_next_gives_the_highest_score_and_never_the_same_account_twice(team: dict) -> None:
    with working_day():
        small = overdue_account(team["client"], 10_00)
        big = overdue_account(team["client"], 90_000_00)
        rebuild(team["client"])
    assert _next(team["ana"]) == big.id
    assert _next(team["ben"]) == small.id
    assert _next(team["ben"]) is None  # ben is done with `small` (not offered again at once); ana holds `big`
    assert item_of(big).claimed_by == team["ana"].id


def test_a_claim_expires_after_its_lease_and_release_gives_it_back_after_a_snooze(team: dict) -> None:
    with working_day():
        debtor = overdue_account(team["client"])
        rebuild(team["client"])
    assert _next(team["ana"]) == debtor.id
    assert _next(team["ben"], NOON + queue.LEASE - timedelta(seconds=1)) is None
    assert _next(team["ben"], NOON + queue.LEASE + timedelta(seconds=1)) == debtor.id  # abandoned: timed out
    given_back = NOON + queue.LEASE * 2
    with working_day(given_back), scoped(TenantScope.agency(), db.session):
        queue.release(db.session, item_of(debtor), team["ben"])
        db.session.commit()
    assert _next(team["ana"], given_back) is None  # not straight back to the top
    assert _next(team["ana"], given_back + queue.SNOOZE - timedelta(seconds=1)) is None
    assert _next(team["ana"], given_back + queue.SNOOZE) == debtor.id


def test_a_skipped_account_does_not_come_straight_back(team: dict) -> None:
    with working_day():
        debtors = [overdue_account(team["client"], 1_000_00 * (i + 1)) for i in range(3)]
        rebuild(team["client"])
    first = _next(team["ana"])
    second = _next(team["ana"])  # "next" without doing anything: a skip
    third = _next(team["ana"])
    assert first == debtors[2].id and second == debtors[1].id and third == debtors[0].id
    assert _next(team["ben"]) is None  # the two skipped are snoozed, the third is ana's
    assert _next(team["ben"], NOON + queue.SNOOZE) == debtors[2].id  # the snooze is over: best first again


def test_an_account_parked_until_its_next_action_leaves_the_queue_until_that_day(team: dict) -> None:
    with working_day():
        big = overdue_account(team["client"], 90_000_00)
        small = overdue_account(team["client"], 10_00)
        rebuild(team["client"])
    assert _next(team["ana"]) == big.id
    with working_day(), scoped(TenantScope.agency(), db.session):
        services.set_next_action(db.session, item_of(big), team["ana"], NOON.date() + timedelta(days=3), "call back")
        db.session.commit()
    assert _next(team["ana"]) == small.id
    assert _next(team["ben"], NOON + timedelta(days=1)) == small.id  # the snooze is over, the parking is not
    assert _next(team["ben"], NOON + timedelta(days=3)) == big.id


def test_ties_in_score_go_to_the_larger_overdue_amount_then_the_older_debt(team: dict) -> None:
    with working_day():
        # all three in the same amount band (2,000-10,000) and days band (31-60 days): the same score
        older = overdue_account(team["client"], 3_000_00, due=date(2026, 1, 20))
        larger = overdue_account(team["client"], 9_000_00, due=date(2026, 1, 25))
        newer = overdue_account(team["client"], 3_000_00, due=date(2026, 1, 25))
        rebuild(team["client"])
    assert len({item_of(d).score for d in (older, larger, newer)}) == 1
    assert [_next(team["ana"]) for _ in range(3)] == [larger.id, older.id, newer.id]


def test_queue_respects_owners_team_pools_and_grants(team: dict) -> None:
    other_client = commercial_client()
    with working_day():
        mine = overdue_account(team["client"], 10_00)
        theirs = overdue_account(team["client"], 90_000_00)
        foreign = overdue_account(other_client, 900_000_00)  # not granted to the team
        rebuild(team["client"], other_client)
        with scoped(TenantScope.agency(), db.session):
            assignment.assign(db.session, team["client"].id, owner_id=team["ben"].id)
            db.session.commit()
    assert _next(team["ana"]) is None  # everything is ben's; the foreign client is not ana's to see
    assert _next(team["ben"]) == theirs.id
    assert {mine.id, foreign.id}.isdisjoint({_next(team["ana"])})


def test_the_queue_never_offers_an_account_that_cannot_be_called_now(db_session: Any) -> None:
    consumer = make_client(debt_type="consumer", timezone="America/New_York", base_currency="USD", country="US")
    team = make_team(consumer)
    ana = make_user("collector", team=team)
    night = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)  # 02:00 in New York
    with working_day(night):
        sleeping = overdue_account(consumer, 900_000_00)
        tokyo = overdue_account(consumer, 10_00, timezone="Asia/Tokyo")  # 15:00 in Tokyo
        flagged = overdue_account(consumer, 800_000_00, timezone="Asia/Tokyo", do_not_contact=True)
        rebuild(consumer)
    assert _next(ana, night) == tokyo.id
    with working_day(night), scoped(TenantScope.agency(), db.session):
        reasons = " ".join(queue.gate(db.session, item_of(sleeping)).reasons)
        assert "02:00" in reasons and "08:00-21:00" in reasons
        assert "do-not-contact" in " ".join(queue.gate(db.session, item_of(flagged)).reasons)


def test_seven_calls_in_seven_days_then_no_more_and_a_conversation_cools_down(team: dict) -> None:
    consumer = make_client(debt_type="consumer", timezone="Europe/London", base_currency="GBP", country="GB")
    t = make_team(consumer)
    ana = make_user("collector", team=t)
    with working_day():
        debtor = overdue_account(consumer)
        rebuild(consumer)
    for day in range(7):
        at = NOON + timedelta(hours=day)
        assert _next(ana, at) == debtor.id
        with working_day(at), scoped(TenantScope.agency(), db.session):
            services.log_call(db.session, item_of(debtor), ana, CallOutcome.NO_ANSWER.value)
            queue.release(db.session, item_of(debtor), ana)  # hung up: back to the queue
            db.session.commit()
    assert _next(ana, NOON + timedelta(hours=7)) is None  # the 8th attempt within 7 days is refused
    assert _next(ana, NOON + timedelta(days=7, hours=1)) == debtor.id  # the first attempts left the window
    with working_day(NOON + timedelta(days=7, hours=1)), scoped(TenantScope.agency(), db.session):
        services.log_call(db.session, item_of(debtor), ana, CallOutcome.RIGHT_PARTY.value)
        db.session.commit()
    assert _next(ana, NOON + timedelta(days=10)) is None  # spoke 3 days ago
    assert _next(ana, NOON + timedelta(days=14, hours=2)) == debtor.id


def test_cease_request_stops_calls_but_not_notes(team: dict) -> None:
    from provider.core.errors import ServiceError

    with working_day():
        debtor = overdue_account(team["client"])
        rebuild(team["client"])
        with scoped(TenantScope.agency(), db.session):
            item = item_of(debtor)
            services.record_cease(db.session, item, team["ana"], "letter received")
            services.add_note(db.session, item, team["ana"], "filed the letter")
            with pytest.raises(ServiceError, match="cease"):
                services.log_call(db.session, item, team["ana"], "no_answer")
            db.session.commit()
    assert _next(team["ben"], NOON + queue.LEASE * 2) is None


def test_escalated_accounts_leave_the_queue_until_a_manager_sends_them_back(team: dict) -> None:
    manager = make_user("manager")
    with working_day():
        debtor = overdue_account(team["client"])
        rebuild(team["client"])
        with scoped(TenantScope.agency(), db.session):
            services.escalate(db.session, item_of(debtor), team["ana"], "threatens legal action")
            db.session.commit()
    assert _next(team["ben"]) is None
    with working_day(), scoped(TenantScope.agency(), db.session):
        services.reopen_escalated(db.session, item_of(debtor), manager)
        db.session.commit()
    assert item_of(debtor).state == ItemState.IN_PROGRESS.value
    assert _next(team["ben"]) == debtor.id


def test_balancing_by_capacity_and_reassignment_when_away(team: dict) -> None:
    with working_day():
        debtors = [overdue_account(team["client"], 100_00 * (i + 1)) for i in range(5)]
        rebuild(team["client"])
        with scoped(TenantScope.agency(), db.session):
            assignment.set_collector(db.session, team["ana"].id, 2, False)
            given = assignment.balance(db.session, team["team"].id)
            db.session.commit()
            assert given == {team["ana"].id: 2, team["ben"].id: 3}
            assignment.set_collector(db.session, team["ben"].id, 150, True)  # ben is away
            db.session.commit()
            owners = {item_of(d).owner_id for d in debtors}
            assert team["ben"].id not in owners and owners <= {team["ana"].id, None}
