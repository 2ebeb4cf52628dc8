"""Writes on work items: the collector's actions and the state changes they cause.

Every action appends to the account's history (`WorkAction`) and to the audit log. Services flush, never
commit. An action needs the account to be free or claimed by the actor (two people never work one
account at once); doing it claims (or renews) the account for the actor.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from blinker import Namespace
from sqlalchemy.orm import Session

from provider.core import audit
from provider.core.clock import now_utc, today_utc
from provider.core.errors import ServiceError
from worklists import queue, states
from worklists.contact_rules import CALL, EMAIL
from worklists.models import CONVERSATIONS, ActionKind, CallOutcome, ItemState, WorkAction, WorkItem

MAX_NEXT_ACTION_DAYS = 366


def _history(
    session: Session, item: WorkItem, user: Any, kind: ActionKind, outcome: str = "", note: str = ""
) -> WorkAction:
    action = WorkAction(
        client_id=item.client_id,
        work_item_id=item.id,
        debtor_id=item.debtor_id,
        kind=kind.value,
        outcome=outcome,
        note=note[:1000],
        user_id=getattr(user, "id", None),
        occurred_at=now_utc(),
    )
    session.add(action)
    return action


def _take(session: Session, item: WorkItem, user: Any) -> None:
    if queue.held_by_other(item, user):
        raise ServiceError("another collector is working this account right now")
    if item.state == ItemState.CLOSED.value:
        raise ServiceError("this account is closed: nothing is overdue")
    if not queue.claim(session, item, user):
        raise ServiceError("another collector is working this account right now")


def set_state(session: Session, item: WorkItem, wanted: ItemState, user: Any = None, note: str = "") -> None:
    """Move the item through its state machine (refused transitions raise TransitionRefused)."""
    if item.state == wanted.value:
        return
    states.check_item(item.state, wanted.value)
    before = audit.snapshot(item, WorkItem.AUDIT_FIELDS)
    item.state = wanted.value
    if wanted == ItemState.CLOSED:
        item.closed_at, item.claimed_by, item.claim_expires_at = now_utc(), None, None
    _history(session, item, user, ActionKind.STATE, wanted.value, note)
    session.flush()
    audit.record(session, "worklist.state", item, before=before, after=audit.snapshot(item, WorkItem.AUDIT_FIELDS))


contact_attempted = Namespace().signal("contact-attempted")
"""Sent when a collector's call or e-mail to a debtor is recorded, as `send(session, client_id=...,
debtor_id=..., at=...)` (the SLAs stop the account's first-contact clock)."""


def _contact(session: Session, item: WorkItem, user: Any, channel: str) -> None:
    verdict = queue.gate(session, item, channel)
    if not verdict.allowed:
        raise ServiceError("contact not allowed now: " + "; ".join(verdict.reasons))


def log_call(session: Session, item: WorkItem, user: Any, outcome: str, note: str = "") -> WorkAction:
    """Record an outbound call attempt. Refused when the contact rules forbid calling the debtor now."""
    try:
        code = CallOutcome(outcome)
    except ValueError:
        raise ServiceError(f"unknown call outcome {outcome!r}", field="outcome") from None
    _take(session, item, user)
    _contact(session, item, user, CALL)
    now = now_utc()
    action = _history(session, item, user, ActionKind.CALL, code.value, note)
    item.contact_attempts += 1
    item.last_contact_at = now
    if code in CONVERSATIONS:
        item.last_conversation_at = now
    session.flush()
    audit.record(session, "worklist.call", action, after={"outcome": code.value, "note": note, "work_item_id": item.id})
    contact_attempted.send(session, client_id=item.client_id, debtor_id=item.debtor_id, at=now)
    return action


def log_email(session: Session, item: WorkItem, user: Any, note: str = "") -> WorkAction:
    _take(session, item, user)
    _contact(session, item, user, EMAIL)
    action = _history(session, item, user, ActionKind.EMAIL, "sent", note)
    item.last_contact_at = now = now_utc()
    session.flush()
    audit.record(session, "worklist.email", action, after={"note": note, "work_item_id": item.id})
    contact_attempted.send(session, client_id=item.client_id, debtor_id=item.debtor_id, at=now)
    return action


def add_note(session: Session, item: WorkItem, user: Any, note: str) -> WorkAction:
    if not note.strip():
        raise ServiceError("write the note first", field="note")
    _take(session, item, user)
    action = _history(session, item, user, ActionKind.NOTE, "", note.strip())
    session.flush()
    audit.record(session, "worklist.note", action, after={"note": note.strip(), "work_item_id": item.id})
    return action


def set_next_action(session: Session, item: WorkItem, user: Any, on: date, note: str = "") -> WorkAction:
    """Park the account until `on` (it leaves the queue until then)."""
    today = today_utc()
    if on < today:
        raise ServiceError("the next action cannot be in the past", field="next_action_on")
    if on > today + timedelta(days=MAX_NEXT_ACTION_DAYS):
        raise ServiceError("the next action must be within a year", field="next_action_on")
    _take(session, item, user)
    before = audit.snapshot(item, WorkItem.AUDIT_FIELDS)
    item.next_action_on, item.next_action_note = on, note[:200]
    action = _history(session, item, user, ActionKind.NEXT_ACTION, on.isoformat(), note)
    session.flush()
    audit.record(
        session, "worklist.next_action", item, before=before, after=audit.snapshot(item, WorkItem.AUDIT_FIELDS)
    )
    return action


def escalate(session: Session, item: WorkItem, user: Any, note: str) -> WorkAction:
    """Hand the account to a manager (out of the collectors' queues until a manager sends it back)."""
    if not note.strip():
        raise ServiceError("say why the account is escalated", field="note")
    _take(session, item, user)
    set_state(session, item, ItemState.ESCALATED, user, note)
    action = _history(session, item, user, ActionKind.ESCALATE, "", note)
    item.claimed_by = item.claim_expires_at = None
    session.flush()
    return action


def record_cease(session: Session, item: WorkItem, user: Any, note: str = "") -> WorkAction:
    """The debtor asked us to stop contacting them: no call or e-mail from now on (notes still allowed)."""
    _take(session, item, user)
    before = audit.snapshot(item, ("ceased_at",))
    item.ceased_at = now_utc()
    action = _history(session, item, user, ActionKind.CEASE, "", note)
    session.flush()
    audit.record(session, "worklist.cease", item, before=before, after=audit.snapshot(item, ("ceased_at",)))
    return action


def reopen_escalated(session: Session, item: WorkItem, user: Any, note: str = "") -> None:
    """A manager sends an escalated account back to the queue."""
    set_state(session, item, ItemState.IN_PROGRESS, user, note or "back to the queue")


def reply_received(session: Session, client_id: int, debtor_id: int, note: str) -> bool:
    """The debtor answered an e-mail (provider.comms.inbound): the account's history gets an e-mail action with the
    outcome "reply received", and its next action is due today with `note`, so the account surfaces in its
    collector's queue. No claim is taken (nobody acts yet). Returns False when the debtor has no open account."""
    from sqlalchemy import select

    item = session.scalar(select(WorkItem).where(WorkItem.client_id == client_id, WorkItem.debtor_id == debtor_id))
    if item is None or item.state == ItemState.CLOSED.value:
        return False
    before = audit.snapshot(item, WorkItem.AUDIT_FIELDS)
    item.next_action_on, item.next_action_note = today_utc(), note[:200]
    action = _history(session, item, None, ActionKind.EMAIL, "reply_received", note)
    session.flush()
    audit.record(
        session, "worklist.reply_received", item, before=before, after=audit.snapshot(item, WorkItem.AUDIT_FIELDS)
    )
    return action is not None
