"""Words people read for the worklist's codes: call outcomes, kinds of action, item states, dispute reasons.

Every page that shows a worklist code shows it through these tables (the Jinja filters `outcome_label`,
`action_label`, `state_label` registered by the worklists blueprint), so no `right_party` reaches a page.
An unknown code falls back to the code with its underscores as spaces, never to an error.
"""

from __future__ import annotations

from worklists.models import ActionKind, CallOutcome, ItemState

OUTCOME_LABELS: dict[str, str] = {
    CallOutcome.NO_ANSWER.value: "No answer",
    CallOutcome.VOICEMAIL.value: "Left a voicemail",
    CallOutcome.BUSY.value: "Line busy",
    CallOutcome.WRONG_NUMBER.value: "Wrong number",
    CallOutcome.RIGHT_PARTY.value: "Spoke to the debtor",
    CallOutcome.PROMISE.value: "Promise to pay",
    CallOutcome.REFUSED.value: "Debtor refused to pay",
    CallOutcome.DISPUTE.value: "Debtor disputes the debt",
    CallOutcome.CALLBACK.value: "Asked to call back",
    "sent": "Sent",
    "reply_received": "Reply received from the debtor",
}

ACTION_LABELS: dict[str, str] = {
    ActionKind.CALL.value: "Call",
    ActionKind.EMAIL.value: "E-mail",
    ActionKind.NOTE.value: "Note",
    ActionKind.PROMISE.value: "Promise to pay",
    ActionKind.PLAN.value: "Payment plan",
    ActionKind.ESCALATE.value: "Escalated",
    ActionKind.NEXT_ACTION.value: "Next action set",
    ActionKind.CEASE.value: "Cease-contact request",
    ActionKind.ASSIGN.value: "Assigned",
    ActionKind.STATE.value: "Status change",
}

STATE_LABELS: dict[str, str] = {
    ItemState.NEW.value: "New",
    ItemState.IN_PROGRESS.value: "In progress",
    ItemState.PROMISED.value: "Promised",
    ItemState.PLAN.value: "On a plan",
    ItemState.DISPUTED.value: "Disputed or on hold",
    ItemState.ESCALATED.value: "Escalated",
    ItemState.CLOSED.value: "Closed",
}

PROMISE_LABELS: dict[str, str] = {
    "open": "Open",
    "kept": "Kept",
    "broken": "Broken",
    "cancelled": "Cancelled",
    "active": "Active",
    "completed": "Completed",
}


def _fallback(code: str) -> str:
    return (code or "").replace("_", " ").capitalize()


def outcome_label(code: str | None) -> str:
    return OUTCOME_LABELS.get(code or "", _fallback(code or ""))


def action_label(code: str | None) -> str:
    return ACTION_LABELS.get(code or "", _fallback(code or ""))


def state_label(code: str | None) -> str:
    return STATE_LABELS.get(code or "", PROMISE_LABELS.get(code or "", _fallback(code or "")))
