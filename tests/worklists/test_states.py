"""State machines: allowed and refused transitions of work items, promises and plans, as tables."""

from __future__ import annotations

import pytest

from worklists import states
from worklists.models import ItemState, PlanStatus, PromiseStatus
from worklists.states import TransitionRefused

S, P, L = ItemState, PromiseStatus, PlanStatus

ITEM_CASES = [
    (S.NEW, S.IN_PROGRESS, True),
    (S.NEW, S.PROMISED, True),
    (S.IN_PROGRESS, S.PLAN, True),
    (S.PROMISED, S.IN_PROGRESS, True),  # promise broken or kept with money still due
    (S.PLAN, S.IN_PROGRESS, True),
    (S.ESCALATED, S.IN_PROGRESS, True),  # a manager sends it back
    (S.CLOSED, S.NEW, True),  # overdue again
    (S.CLOSED, S.PROMISED, False),
    (S.CLOSED, S.IN_PROGRESS, False),
    (S.DISPUTED, S.PROMISED, False),
    (S.ESCALATED, S.PROMISED, False),
    (S.PLAN, S.PROMISED, False),
    (S.IN_PROGRESS, S.NEW, False),
    (S.NEW, S.NEW, False),
]


@pytest.mark.parametrize(("current", "wanted", "allowed"), ITEM_CASES)
def test_work_item_transitions(current: ItemState, wanted: ItemState, allowed: bool) -> None:
    if allowed:
        states.check_item(current.value, wanted.value)
    else:
        with pytest.raises(TransitionRefused):
            states.check_item(current.value, wanted.value)


@pytest.mark.parametrize(
    ("current", "wanted", "allowed"),
    [
        (P.OPEN, P.KEPT, True),
        (P.OPEN, P.BROKEN, True),
        (P.OPEN, P.CANCELLED, True),
        (P.BROKEN, P.KEPT, False),
        (P.KEPT, P.BROKEN, False),
        (P.CANCELLED, P.OPEN, False),
        (P.KEPT, P.OPEN, False),
    ],
)
def test_promise_transitions(current: PromiseStatus, wanted: PromiseStatus, allowed: bool) -> None:
    if allowed:
        states.check_promise(current.value, wanted.value)
    else:
        with pytest.raises(TransitionRefused):
            states.check_promise(current.value, wanted.value)


@pytest.mark.parametrize(
    ("current", "wanted", "allowed"),
    [
        (L.ACTIVE, L.COMPLETED, True),
        (L.ACTIVE, L.BROKEN, True),
        (L.BROKEN, L.ACTIVE, False),
        (L.COMPLETED, L.BROKEN, False),
    ],
)
def test_plan_transitions(current: PlanStatus, wanted: PlanStatus, allowed: bool) -> None:
    if allowed:
        states.check_plan(current.value, wanted.value)
    else:
        with pytest.raises(TransitionRefused):
            states.check_plan(current.value, wanted.value)


def test_every_state_has_a_row_in_each_table() -> None:
    assert set(states.ITEM_TRANSITIONS) == set(ItemState)
    assert set(states.PROMISE_TRANSITIONS) == set(PromiseStatus)
    assert set(states.PLAN_TRANSITIONS) == set(PlanStatus)
