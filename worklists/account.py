"""One account view: everything about a debtor's account in one place, and its timeline in true date order.

The timeline merges four sources: the ledger (journal transactions, on their business date), the agency's
work (calls, e-mails, notes, promises, plans, state changes), the messages sent to the debtor and the
disputes (opened, closed). Each source is read newest first by its own date, at most `TIMELINE_LIMIT`
rows, so the merged first `TIMELINE_LIMIT` events are exactly the newest ones of all sources.

Ordering rule: newest business date first; within one date, later moments first; a ledger event, which
has a date but no time of day, sits at the moment it was posted when that was on its date, otherwise at
the start of its date (a payment received on the 1st and posted on the 9th shows on the 1st).

The client user's view is filtered: no internal notes, no staff names, no system state changes.
A fixed number of queries whatever the account's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import select

from clients import ledger_queries
from clients.interest import charge_totals
from clients.models import Debtor, DebtorContact
from provider.comms.queries import debtor_timeline
from provider.core.clock import today_utc
from provider.extensions import db
from provider.models import User
from sla import labels as sla_labels
from sla.models import Dispute
from worklists.account_documents import Document, documents
from worklists.labels import action_label, outcome_label, state_label
from worklists.models import ActionKind, PaymentPlan, Promise, WorkAction, WorkItem

TIMELINE_LIMIT = 100
# what a client user sees of the agency's work (no notes, escalations or internal state changes)
CLIENT_VISIBLE_ACTIONS = (ActionKind.CALL, ActionKind.EMAIL, ActionKind.PROMISE, ActionKind.PLAN, ActionKind.CEASE)
LEDGER_WORDS = {
    "invoice": "Invoice placed",
    "payment": "Payment received",
    "allocation": "Payment applied",
    "credit_note": "Credit note",
    "write_off": "Written off",
    "adjustment": "Adjustment",
    "reversal": "Reversal",
}


@dataclass(frozen=True)
class Event:
    """One line of the account's timeline."""

    on: date  # the business date
    at: datetime | None  # the moment, when the event has one (a ledger event may have only its date)
    source: str  # ledger | work | message | dispute
    title: str
    detail: str = ""
    who: str = ""
    amount_minor: int | None = None
    currency: str = ""
    ref: Any = None  # the object behind it (for links)
    seq: int = 0

    @classmethod
    def at_moment(cls, at: datetime, source: str, title: str, ref: Any, **details: Any) -> Event:
        """An event that happened at an instant (a call, a message, a dispute's opening): dated on its UTC day,
        ordered by its id within the instant."""
        return cls(on=at.date(), at=at, source=source, title=title, ref=ref, seq=ref.id, **details)

    def sort_key(self) -> tuple[date, datetime, int]:
        moment = self.at if self.at is not None and self.at.date() == self.on else None
        return (self.on, moment or datetime.combine(self.on, time.min, tzinfo=UTC), self.seq)


def ordered(events: Sequence[Event], limit: int = TIMELINE_LIMIT) -> list[Event]:
    """Newest first by the ordering rule of this module (stable for equal keys)."""
    return sorted(events, key=Event.sort_key, reverse=True)[:limit]


def _ledger_events(client_id: int, debtor_id: int, limit: int) -> list[Event]:
    events = []
    for line in ledger_queries.debtor_history(client_id, debtor_id, limit=limit):
        tx = line.transaction
        detail = " · ".join(x for x in (line.documents, tx.memo) if x)
        events.append(
            Event(
                on=tx.occurred_on,
                at=tx.posted_at,
                source="ledger",
                title=LEDGER_WORDS.get(tx.kind, tx.kind.replace("_", " ").capitalize()),
                detail=detail,
                who=tx.actor_label,
                amount_minor=line.receivable_change or None,
                currency=line.currency,
                ref=tx,
                seq=tx.id,
            )
        )
    return events


def _work_events(client_id: int, debtor_id: int, limit: int, for_client: bool) -> list[Event]:
    stmt = (
        select(WorkAction, User.name, User.client_id)
        .outerjoin(User, User.id == WorkAction.user_id)
        .where(WorkAction.client_id == client_id, WorkAction.debtor_id == debtor_id)
        .order_by(WorkAction.occurred_at.desc(), WorkAction.id.desc())
        .limit(limit)
    )
    if for_client:
        stmt = stmt.where(WorkAction.kind.in_([k.value for k in CLIENT_VISIBLE_ACTIONS]))
    events = []
    for action, name, user_client in db.session.execute(stmt):
        title = action_label(action.kind)
        if action.kind in (ActionKind.CALL.value, ActionKind.EMAIL.value) and action.outcome:
            title = f"{title}: {outcome_label(action.outcome).lower()}"
        elif action.kind == ActionKind.STATE.value and action.outcome:
            title = f"{title}: {state_label(action.outcome).lower()}"
        if for_client:
            who = "you" if user_client == client_id else "the agency"
            detail = ""
        else:
            who = name or "system"
            detail = action.note
        events.append(Event.at_moment(action.occurred_at, "work", title, action, detail=detail, who=who))
    return events


def _message_events(client_id: int, debtor_id: int, limit: int) -> list[Event]:
    events = []
    for entry in debtor_timeline(client_id, debtor_id, limit=limit):
        msg = entry.message
        status = entry.last_event.label if entry.last_event is not None else ""
        title = f"{msg.channel_label}: {msg.subject or '(no subject)'}"
        detail = " · ".join(x for x in (msg.purpose_label, status) if x)
        events.append(Event.at_moment(msg.created_at, "message", title, msg, detail=detail))
    return events


def _dispute_events(disputes: Sequence[Dispute]) -> list[Event]:
    events = []
    for d in disputes:
        opened = f"Dispute opened ({sla_labels.reason(d.reason).lower()})"
        events.append(
            Event.at_moment(
                d.opened_at, "dispute", opened, d, detail=d.summary, amount_minor=d.amount_minor, currency=d.currency
            )
        )
        if d.closed_at is not None:
            outcome = (sla_labels.resolution(d.resolution) if d.resolution else sla_labels.status(d.status)).lower()
            closed = f"Dispute closed ({outcome})"
            events.append(Event.at_moment(d.closed_at, "dispute", closed, d, detail=d.resolution_note))
    return events


SOURCES = {"ledger": "Money", "work": "Calls and work", "message": "Messages", "dispute": "Disputes"}


def timeline(
    client_id: int,
    debtor_id: int,
    disputes: Sequence[Dispute],
    *,
    for_client: bool = False,
    show: str = "",
) -> list[Event]:
    """The account's latest `TIMELINE_LIMIT` events of every source (or of the one source `show` names),
    newest first in true date order."""
    wanted = {show} if show in SOURCES else set(SOURCES)
    events: list[Event] = []
    if "ledger" in wanted:
        events += _ledger_events(client_id, debtor_id, TIMELINE_LIMIT)
    if "work" in wanted:
        events += _work_events(client_id, debtor_id, TIMELINE_LIMIT, for_client)
    if "message" in wanted:
        events += _message_events(client_id, debtor_id, TIMELINE_LIMIT)
    if "dispute" in wanted:
        events += _dispute_events(disputes)
    return ordered(events)


@dataclass
class Account:
    debtor: Debtor
    item: WorkItem | None
    contacts: list[DebtorContact]
    promises: list[Promise]
    plans: list[PaymentPlan]
    disputes: list[Dispute]
    events: list[Event]
    documents: list[Document] = field(default_factory=list)
    owner: str = ""
    show: str = ""
    context: dict[str, Any] = field(default_factory=dict)  # balances, aging, open invoices, charges


def load(client_id: int, debtor: Debtor, *, for_client: bool = False, show: str = "") -> Account:
    """Everything the account view shows (a fixed number of queries)."""
    item = db.session.scalar(select(WorkItem).where(WorkItem.client_id == client_id, WorkItem.debtor_id == debtor.id))
    contacts = list(
        db.session.scalars(
            select(DebtorContact)
            .where(DebtorContact.client_id == client_id, DebtorContact.debtor_id == debtor.id)
            .order_by(DebtorContact.is_primary.desc(), DebtorContact.id)
            .limit(20)
        )
    )
    promises = list(
        db.session.scalars(
            select(Promise)
            .where(Promise.client_id == client_id, Promise.debtor_id == debtor.id)
            .order_by(Promise.due_on.desc(), Promise.id.desc())
            .limit(60)
        )
    )
    plans = list(
        db.session.scalars(
            select(PaymentPlan)
            .where(PaymentPlan.client_id == client_id, PaymentPlan.debtor_id == debtor.id)
            .order_by(PaymentPlan.id.desc())
            .limit(10)
        )
    )
    disputes = list(
        db.session.scalars(
            select(Dispute)
            .where(Dispute.client_id == client_id, Dispute.debtor_id == debtor.id)
            .order_by(Dispute.opened_at.desc(), Dispute.id.desc())
            .limit(30)
        )
    )
    owner = ""
    if item is not None and item.owner_id is not None:
        owner = db.session.scalar(select(User.name).where(User.id == item.owner_id)) or ""
    as_of = today_utc()
    context = {  # the ledger's account context; its journal history is merged into the timeline
        "as_of": as_of,
        "balances": ledger_queries.debtor_balances(client_id, debtor.id),
        "agings": ledger_queries.aging(client_id, as_of, debtor.id),
        "open_items": ledger_queries.open_invoices(client_id, debtor.id),
        "charges": charge_totals(db.session, client_id, debtor_id=debtor.id),
    }
    return Account(
        debtor=debtor,
        item=item,
        contacts=contacts,
        promises=promises,
        plans=plans,
        disputes=disputes,
        events=timeline(client_id, debtor.id, disputes, for_client=for_client, show=show),
        documents=documents(client_id, debtor.id, for_client=for_client),
        owner=owner,
        show=show if show in SOURCES else "",
        context=context,
    )
