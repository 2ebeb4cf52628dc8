"""Promises and plans: kept when the debtor's payments reach the amount by the date, otherwise broken."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.factories import make_payment, make_team, make_user
from tests.worklists.helpers import commercial_client, item_of, overdue_account, rebuild, working_day
from worklists import promises
from worklists.models import ItemState, PaymentPlan, Promise

MADE = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # promise made on 10 March, due 20 March
LATER = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def account(db_session: Any) -> dict[str, Any]:
    with working_day(MADE):
        client = commercial_client()
        collector = make_user("collector", team=make_team(client))
        debtor = overdue_account(client, 1_000_00)
        rebuild(client)
    return {"client": client, "debtor": debtor, "collector": collector, "item": item_of(debtor)}


def _promise(account: dict, amount: int = 100_00, due: date = date(2026, 3, 20)) -> Promise:
    with working_day(MADE), scoped(TenantScope.agency(), db.session):
        promise = promises.record_promise(db.session, account["item"], account["collector"], amount, due)
        db.session.commit()
    return promise


def _pay(account: dict, *payments: tuple[str, int, str]) -> None:
    with working_day(LATER):
        for n, (day, amount, currency) in enumerate(payments):
            make_payment(
                account["client"],
                account["debtor"],
                f"PAY-{n}",
                amount,
                received_on=date.fromisoformat(day),
                currency=currency,
            )


def _check(as_of: str) -> None:
    with working_day(LATER), scoped(TenantScope.agency(), db.session):
        promises.check_promises(db.session, as_of=date.fromisoformat(as_of))
        db.session.commit()


@pytest.mark.parametrize(
    ("payments", "as_of", "status"),
    [
        ([("2026-03-15", 100_00, "EUR")], "2026-03-15", "kept"),
        ([("2026-03-12", 50_00, "EUR"), ("2026-03-19", 50_00, "EUR")], "2026-03-20", "kept"),
        ([("2026-03-20", 150_00, "EUR")], "2026-03-21", "kept"),  # on the due date still counts
        ([("2026-03-15", 60_00, "EUR")], "2026-03-15", "open"),  # not yet enough, not yet due
        ([], "2026-03-20", "open"),  # due today: the debtor has until the end of the day
        ([], "2026-03-21", "broken"),
        ([("2026-03-15", 60_00, "EUR")], "2026-03-21", "broken"),
        ([("2026-03-21", 100_00, "EUR")], "2026-03-22", "broken"),  # too late
        ([("2026-03-09", 100_00, "EUR")], "2026-03-21", "broken"),  # paid before the promise: not towards it
        ([("2026-03-15", 100_00, "USD")], "2026-03-21", "broken"),  # another currency
    ],
)
def test_promise_kept_or_broken(account: dict, payments: list, as_of: str, status: str) -> None:
    promise = _promise(account)
    _pay(account, *payments)
    _check(as_of)
    with scoped(TenantScope.agency(), db.session):
        db.session.refresh(promise)
        assert promise.status == status
        item = item_of(account["debtor"])
        if status == "broken":
            assert item.state == ItemState.IN_PROGRESS.value and item.term_broken > 0 and item.broken_promises == 1
        elif status == "open":
            assert item.state == ItemState.PROMISED.value and item.term_broken == 0


def test_a_resolved_promise_never_changes_again(account: dict) -> None:
    promise = _promise(account)
    _check("2026-03-21")
    _pay(account, ("2026-03-19", 100_00, "EUR"))  # recorded late, dated in time: the promise stays broken
    _check("2026-03-22")
    with scoped(TenantScope.agency(), db.session):
        db.session.refresh(promise)
        assert promise.status == "broken"


def test_broken_promise_raises_priority(account: dict) -> None:
    before = account["item"].score
    _promise(account)
    _check("2026-03-21")
    assert item_of(account["debtor"]).score > before


def _status(promise: Promise) -> str:
    with scoped(TenantScope.agency(), db.session):
        db.session.refresh(promise)
        return promise.status


def test_a_payment_posted_through_the_ledger_keeps_the_promise_at_once(account: dict) -> None:
    promise = _promise(account)
    _pay(account, ("2026-03-15", 100_00, "EUR"))  # record_payment signals payments_posted; no nightly run
    assert _status(promise) == "kept"


def test_a_payment_never_breaks_a_promise_only_the_clock_does(account: dict) -> None:
    promise = _promise(account)
    _pay(account, ("2026-03-15", 40_00, "EUR"))  # posted after the due date, still short of the promise
    assert _status(promise) == "open"
    _check("2026-03-21")
    assert _status(promise) == "broken"


def test_plan_instalments_are_checked_cumulatively(account: dict) -> None:
    with working_day(MADE), scoped(TenantScope.agency(), db.session):
        plan = promises.create_plan(db.session, account["item"], account["collector"], 300_01, 3, date(2026, 3, 20), 7)
        db.session.commit()
        amounts = [
            p.amount_minor
            for p in db.session.scalars(select(Promise).where(Promise.plan_id == plan.id).order_by(Promise.sequence))
        ]
    assert amounts == [100_01, 100_00, 100_00]  # the remainder goes to the first instalment, no cent lost
    _pay(account, ("2026-03-18", 200_01, "EUR"))  # pays the first two ahead
    _check("2026-03-28")  # the second is due 27 March: kept by the early payment
    with scoped(TenantScope.agency(), db.session):
        statuses = db.session.scalars(
            select(Promise.status).where(Promise.plan_id == plan.id).order_by(Promise.sequence)
        ).all()
        assert statuses == ["kept", "kept", "open"]
        db.session.refresh(plan)
        assert plan.status == "active"
    _check("2026-04-04")  # the third (3 April) was not paid: the plan is broken
    with scoped(TenantScope.agency(), db.session):
        db.session.refresh(plan)
        assert plan.status == "broken"
        assert item_of(account["debtor"]).state == ItemState.IN_PROGRESS.value


def test_plan_refusals(account: dict) -> None:
    from provider.core.errors import ServiceError

    with working_day(MADE), scoped(TenantScope.agency(), db.session):
        with pytest.raises(ServiceError):
            promises.create_plan(db.session, account["item"], account["collector"], 300_00, 1, date(2026, 3, 20))
        with pytest.raises(ServiceError):
            promises.record_promise(db.session, account["item"], account["collector"], 100_00, date(2026, 3, 9))
        assert db.session.scalar(select(PaymentPlan.id)) is None
