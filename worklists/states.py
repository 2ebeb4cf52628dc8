"""State machines of work items, promises and payment plans: tables of allowed transitions."""

from __future__ import annotations

from provider.core.errors import ServiceError
from worklists.models import ItemState, PlanStatus, PromiseStatus

S = ItemState
ITEM_TRANSITIONS: dict[ItemState, frozenset[ItemState]] = {
    S.NEW: frozenset({S.IN_PROGRESS, S.PROMISED, S.PLAN, S.DISPUTED, S.ESCALATED, S.CLOSED}),
    S.IN_PROGRESS: frozenset({S.PROMISED, S.PLAN, S.DISPUTED, S.ESCALATED, S.CLOSED}),
    S.PROMISED: frozenset({S.IN_PROGRESS, S.PROMISED, S.PLAN, S.DISPUTED, S.ESCALATED, S.CLOSED}),
    S.PLAN: frozenset({S.IN_PROGRESS, S.DISPUTED, S.ESCALATED, S.CLOSED}),
    S.DISPUTED: frozenset({S.IN_PROGRESS, S.ESCALATED, S.CLOSED}),
    S.ESCALATED: frozenset({S.IN_PROGRESS, S.DISPUTED, S.CLOSED}),
    S.CLOSED: frozenset({S.NEW}),  # reopened when the account is overdue again
}

P = PromiseStatus
PROMISE_TRANSITIONS: dict[PromiseStatus, frozenset[PromiseStatus]] = {
    P.OPEN: frozenset({P.KEPT, P.BROKEN, P.CANCELLED}),
    P.KEPT: frozenset(),
    P.BROKEN: frozenset(),  # a late payment does not mend a broken promise; it counts towards the next one
    P.CANCELLED: frozenset(),
}

L = PlanStatus
PLAN_TRANSITIONS: dict[PlanStatus, frozenset[PlanStatus]] = {
    L.ACTIVE: frozenset({L.COMPLETED, L.BROKEN, L.CANCELLED}),
    L.COMPLETED: frozenset(),
    L.BROKEN: frozenset(),
    L.CANCELLED: frozenset(),
}


class TransitionRefused(ServiceError):
    """A state change the state machine does not allow."""

    def __init__(self, what: str, current: str, wanted: str) -> None:
        super().__init__(f"a {what} cannot go from {current.replace('_', ' ')} to {wanted.replace('_', ' ')}")
        self.current, self.wanted = current, wanted


def check_item(current: str, wanted: str) -> None:
    if ItemState(wanted) not in ITEM_TRANSITIONS[ItemState(current)]:
        raise TransitionRefused("work item", current, wanted)


def check_promise(current: str, wanted: str) -> None:
    if PromiseStatus(wanted) not in PROMISE_TRANSITIONS[PromiseStatus(current)]:
        raise TransitionRefused("promise", current, wanted)


def check_plan(current: str, wanted: str) -> None:
    if PlanStatus(wanted) not in PLAN_TRANSITIONS[PlanStatus(current)]:
        raise TransitionRefused("payment plan", current, wanted)
