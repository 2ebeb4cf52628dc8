"""The collector screen's outcomes: what happened on the call, picked first, each with only its own fields.

`perform` turns one submitted outcome into the services' calls, in one transaction (the view commits once):
the call is logged with its outcome, then what the outcome implies (a promise, a plan, a callback date, a
cease-contact request). A refused step refuses the whole outcome (nothing is half recorded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from provider.core.errors import ServiceError
from provider.core.money import Money, MoneyError
from worklists import promises, queue, services
from worklists.contact_rules import CALL
from worklists.models import CallOutcome, WorkItem


@dataclass(frozen=True)
class Outcome:
    code: str
    key: str  # the keyboard shortcut on the collector screen
    label: str
    button: str  # the submit button's words


OUTCOMES = (
    Outcome("no_answer", "1", "No answer", "Log no answer"),
    Outcome("right_party", "2", "Spoke to the debtor", "Log conversation"),
    Outcome("promise", "3", "Promise to pay", "Record promise"),
    Outcome("plan", "4", "Payment plan", "Set up plan"),
    Outcome("dispute", "5", "Disputes the debt", "Log and open a dispute"),
    Outcome("wrong_number", "6", "Wrong number", "Log wrong number"),
    Outcome("cease", "7", "Cease contact", "Record cease-contact request"),
    Outcome("callback", "8", "Call back later", "Set callback"),
)
OTHER_ACTIONS = (
    Outcome("email", "e", "E-mail sent", "Log e-mail"),
    Outcome("note", "o", "Note", "Add note"),
    Outcome("next_action", "t", "Next action", "Set next action"),
    Outcome("escalate", "x", "Escalate", "Escalate"),
)
BY_CODE = {o.code: o for o in (*OUTCOMES, *OTHER_ACTIONS)}
NO_ANSWER_KINDS = (CallOutcome.NO_ANSWER, CallOutcome.VOICEMAIL, CallOutcome.BUSY)


def minor(text: str | None, currency: str) -> int:
    try:
        return Money.parse(text or "", currency).minor
    except MoneyError as exc:
        raise ServiceError(str(exc), field="amount") from None


def _required(data: dict[str, Any], name: str, message: str) -> Any:
    if data.get(name) in (None, ""):
        raise ServiceError(message, field=name)
    return data[name]


def _log_if_callable(session: Session, work: WorkItem, user: Any, outcome: CallOutcome, note: str) -> None:
    """The call behind a promise, a plan, a dispute or a cease request is logged when calling is allowed now;
    when it is not, the debtor reached us (an inbound call or a reply) and only what they asked is recorded."""
    if queue.gate(session, work, CALL).allowed:
        services.log_call(session, work, user, outcome.value, note)


def perform(session: Session, work: WorkItem, user: Any, code: str, data: dict[str, Any]) -> str:
    """Record one outcome of a call; returns the confirmation message."""
    note = data.get("note", "")
    if code == "no_answer":
        kind = data.get("outcome") or CallOutcome.NO_ANSWER.value
        if kind not in {k.value for k in NO_ANSWER_KINDS}:
            raise ServiceError("choose no answer, voicemail or busy", field="outcome")
        services.log_call(session, work, user, kind, note)
        return "Call logged: no answer."
    if code == "right_party":
        services.log_call(session, work, user, CallOutcome.RIGHT_PARTY.value, note)
        if data.get("next_action_on"):
            services.set_next_action(session, work, user, data["next_action_on"], note)
        return "Conversation logged."
    if code == "promise":
        amount = minor(data.get("amount"), work.currency)
        due: date = _required(data, "due_on", "give the promised date")
        _log_if_callable(session, work, user, CallOutcome.PROMISE, note)
        promises.record_promise(session, work, user, amount, due, note)
        return "Promise to pay recorded."
    if code == "plan":
        total = minor(data.get("amount"), work.currency)
        count = _required(data, "instalments", "give the number of instalments")
        first = _required(data, "first_due_on", "give the first instalment's date")
        _log_if_callable(session, work, user, CallOutcome.PROMISE, note)
        promises.create_plan(session, work, user, total, count, first, data.get("every_days") or 30, note)
        return "Payment plan set up."
    if code == "dispute":
        _log_if_callable(session, work, user, CallOutcome.DISPUTE, note)
        return "Call logged: the debtor disputes the debt. Record the dispute below."
    if code == "wrong_number":
        services.log_call(session, work, user, CallOutcome.WRONG_NUMBER.value, note)
        return "Call logged: wrong number."
    if code == "cease":
        _log_if_callable(session, work, user, CallOutcome.RIGHT_PARTY, note)
        services.record_cease(session, work, user, note)
        return "Cease-contact request recorded: no more calls or e-mails."
    if code == "callback":
        on = _required(data, "next_action_on", "give the day to call back")
        services.log_call(session, work, user, CallOutcome.CALLBACK.value, note)
        services.set_next_action(session, work, user, on, note or "call back")
        return "Callback set."
    raise ServiceError("choose what happened on the call", field="result")
