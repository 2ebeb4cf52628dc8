"""Promises to pay and payment plans: recorded by collectors, checked against the money the debtor paid.

A promise (or plan instalment) is **kept** when the debtor's payments received from `counted_from` up to
its due date, in its currency, reach `threshold_minor`; it is **broken** when its due date passes first.
"Payments" are the cash entries of the journal for the debtor (agency or client received), so a reversed
payment stops counting. A plan's instalment k has the cumulative amount of instalments 1..k as its
threshold and the plan's start as `counted_from`, so paying ahead counts for later instalments.

Checked (set-based) when payments post (`on_payments_posted`, called by the ledger) and nightly.
A broken promise puts the account back to "in progress" and raises its score (the broken term).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from blinker import Namespace
from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from clients.journal import Account, JournalEntry, JournalTransaction
from clients.ledger import payments_posted
from provider.core import audit, jobs
from provider.core.clock import now_utc, today_utc
from provider.core.errors import ServiceError
from provider.core.money import format_money
from worklists import scoring, services, states
from worklists.models import (
    ActionKind,
    ItemState,
    PaymentPlan,
    PlanStatus,
    Promise,
    PromiseStatus,
    WorkAction,
    WorkItem,
)

MAX_PROMISE_DAYS = 90
MAX_INSTALMENTS = 36
PROMISE_FIELDS = ("status", "paid_minor", "amount_minor", "threshold_minor", "due_on", "currency")
CASH_ACCOUNTS = (Account.CASH_AGENCY.value, Account.CASH_CLIENT.value)
DEBTOR_CASH_INDEX = "ix_journal_entries_client_id_debtor_id_account"  # what a promise's payments are found by
promise_changed = Namespace().signal("promise-changed")  # send(session, promises=[...]) after made / broken


def _check_amount(item: WorkItem, amount_minor: int) -> None:
    if amount_minor <= 0:
        raise ServiceError("the amount must be more than zero", field="amount")
    if amount_minor > item.overdue_minor * 10:
        raise ServiceError("the amount is far above what the debtor owes", field="amount")


def record_promise(
    session: Session, item: WorkItem, user: Any, amount_minor: int, due_on: date, note: str = ""
) -> Promise:
    """Record a promise to pay `amount_minor` (in the item's currency) by `due_on`. The account leaves the
    queue until the day after the due date. Refuses past dates and dates more than 90 days out. `user` None:
    the debtor made it on its self-service page (no collector claims the account)."""
    today = today_utc()
    if due_on < today:
        raise ServiceError("the promised date cannot be in the past", field="due_on")
    if due_on > today + timedelta(days=MAX_PROMISE_DAYS):
        raise ServiceError(f"a promise must fall within {MAX_PROMISE_DAYS} days; set up a plan instead", field="due_on")
    _check_amount(item, amount_minor)
    if user is not None:
        services._take(session, item, user)
    elif item.state == ItemState.CLOSED.value:  # the debtor itself (self-service page): no collector to claim it
        raise ServiceError("nothing is overdue on this account", field="amount")
    _cancel_open(session, item, "replaced by a new promise")
    promise = Promise(
        client_id=item.client_id,
        work_item_id=item.id,
        debtor_id=item.debtor_id,
        currency=item.currency,
        amount_minor=amount_minor,
        threshold_minor=amount_minor,
        counted_from=today,
        due_on=due_on,
        created_by=getattr(user, "id", None),
    )
    session.add(promise)
    services.set_state(session, item, ItemState.PROMISED, user, "promise to pay")
    item.next_action_on = due_on + timedelta(days=1)
    session.flush()
    text = f"{format_money(amount_minor, item.currency)} by {due_on.isoformat()}"
    services._history(session, item, user, ActionKind.PROMISE, "open", f"{text}. {note}".strip())
    audit.record(session, "promise.record", promise, after=audit.snapshot(promise, PROMISE_FIELDS))
    scoring.rescore(session, [item.client_id], [item.debtor_id])
    promise_changed.send(session, promises=[promise])
    return promise


def create_plan(
    session: Session,
    item: WorkItem,
    user: Any,
    total_minor: int,
    instalments: int,
    first_due_on: date,
    every_days: int = 30,
    note: str = "",
) -> PaymentPlan:
    """Set up a plan of `instalments` payments every `every_days` days from `first_due_on`. The total is
    split evenly in minor units; the first instalments carry the remainder (never a fraction of a cent)."""
    today = today_utc()
    if not 2 <= instalments <= MAX_INSTALMENTS:
        raise ServiceError(f"a plan has 2 to {MAX_INSTALMENTS} instalments", field="instalments")
    if not 7 <= every_days <= 31:
        raise ServiceError("instalments fall every 7 to 31 days", field="every_days")
    if not today <= first_due_on <= today + timedelta(days=MAX_PROMISE_DAYS):
        raise ServiceError("the first instalment falls within the next 90 days", field="first_due_on")
    _check_amount(item, total_minor)
    if total_minor < instalments:
        raise ServiceError("the total is too small for that many instalments", field="amount")
    services._take(session, item, user)
    _cancel_open(session, item, "replaced by a payment plan")
    plan = PaymentPlan(
        client_id=item.client_id,
        work_item_id=item.id,
        debtor_id=item.debtor_id,
        currency=item.currency,
        total_minor=total_minor,
        instalments=instalments,
        every_days=every_days,
        first_due_on=first_due_on,
        created_by=getattr(user, "id", None),
    )
    session.add(plan)
    session.flush()
    base, extra = divmod(total_minor, instalments)
    cumulative = 0
    for k in range(instalments):
        amount = base + (1 if k < extra else 0)
        cumulative += amount
        session.add(
            Promise(
                client_id=item.client_id,
                work_item_id=item.id,
                debtor_id=item.debtor_id,
                plan_id=plan.id,
                sequence=k + 1,
                currency=item.currency,
                amount_minor=amount,
                threshold_minor=cumulative,
                counted_from=today,
                due_on=first_due_on + timedelta(days=every_days * k),
                created_by=getattr(user, "id", None),
            )
        )
    services.set_state(session, item, ItemState.PLAN, user, "payment plan")
    item.next_action_on = first_due_on + timedelta(days=1)
    session.flush()
    text = (
        f"{instalments} x {format_money(base, item.currency)} every {every_days} days from {first_due_on.isoformat()}"
    )
    services._history(session, item, user, ActionKind.PLAN, "active", f"{text}. {note}".strip())
    audit.record(
        session,
        "plan.create",
        plan,
        after=audit.snapshot(plan, ("currency", "total_minor", "instalments", "every_days", "first_due_on")),
    )
    scoring.rescore(session, [item.client_id], [item.debtor_id])
    return plan


def _cancel_open(session: Session, item: WorkItem, why: str) -> None:
    """A new promise or plan replaces the open ones of the account."""
    open_promises = session.scalars(
        select(Promise).where(
            Promise.client_id == item.client_id,
            Promise.work_item_id == item.id,
            Promise.status == PromiseStatus.OPEN.value,
        )
    ).all()
    for promise in open_promises:
        _resolve(session, promise, PromiseStatus.CANCELLED)
    plans = session.scalars(
        select(PaymentPlan).where(
            PaymentPlan.client_id == item.client_id,
            PaymentPlan.work_item_id == item.id,
            PaymentPlan.status == PlanStatus.ACTIVE.value,
        )
    ).all()
    for plan in plans:
        states.check_plan(plan.status, PlanStatus.CANCELLED.value)
        plan.status = PlanStatus.CANCELLED.value
        audit.record(session, "plan.cancel", plan, after={"status": plan.status, "why": why})


def _resolve(session: Session, promise: Promise, status: PromiseStatus, paid: int | None = None) -> None:
    states.check_promise(promise.status, status.value)
    before = audit.snapshot(promise, PROMISE_FIELDS)
    promise.status = status.value
    promise.resolved_at = now_utc()
    if paid is not None:
        promise.paid_minor = paid
    audit.record(
        session, f"promise.{status.value}", promise, before=before, after=audit.snapshot(promise, PROMISE_FIELDS)
    )


def paid_towards(session: Session, as_of: date, client_ids: list[int] | None, debtor_ids: list[int] | None) -> Any:
    """Open promises with the money paid towards each: (promise, paid_minor) in due-date order.

    Driven by the promises, never by the journal: per open promise, one sum over its own debtor's cash
    entries, found through DEBTOR_CASH_INDEX (client, debtor, account), each entry's date read from its
    transaction by key. It costs a few index probes per promise, whatever the size of the journal. (The
    former grouped join walked every payment entry of the client for every transaction: 80 s on the demo's
    220k entries, while the payment import that ran it held SQLite's write lock.) Cash is posted only by
    payments and their reversals, so the cash accounts alone are the payments; a `payment_id IS NOT NULL`
    term would lead SQLite, which has no statistics, to the client-wide (client_id, payment_id) index."""
    e, t = JournalEntry, JournalTransaction
    occurred_on = select(t.occurred_on).where(t.client_id == e.client_id, t.id == e.transaction_id).scalar_subquery()
    last_day = case((Promise.due_on < as_of, Promise.due_on), else_=as_of)
    paid = (
        select(func.coalesce(func.sum(e.amount_minor), 0))
        .where(
            e.client_id == Promise.client_id,
            e.debtor_id == Promise.debtor_id,
            e.account.in_(CASH_ACCOUNTS),
            e.currency == Promise.currency,
            occurred_on.between(Promise.counted_from, last_day),
        )
        .correlate(Promise)
        .scalar_subquery()
    )
    promised = [Promise.status == PromiseStatus.OPEN.value]
    if client_ids is not None:
        promised.append(Promise.client_id.in_(client_ids))
    if debtor_ids is not None:
        promised.append(Promise.debtor_id.in_(debtor_ids))
    stmt = select(Promise, paid).where(*promised).order_by(Promise.due_on, Promise.id)
    return session.execute(stmt).all()


def check_promises(
    session: Session,
    client_ids: list[int] | None = None,
    debtor_ids: list[int] | None = None,
    as_of: date | None = None,
    keep_only: bool = False,
) -> dict[str, int]:
    """Mark open promises kept or broken as of `as_of` (default today) and carry the consequences to their
    plans and accounts. Idempotent: a resolved promise is never looked at again. Returns counts.

    With `keep_only` (a payment just posted) only promises the payments now cover are marked kept: a
    payment can keep a promise but never break one; breaking is the clock's job (the nightly check), so
    backdated payments entered one by one are not judged before the last of them is in."""
    as_of = as_of or today_utc()
    kept: list[Promise] = []
    broken: list[Promise] = []
    for promise, paid in paid_towards(session, as_of, client_ids, debtor_ids):
        paid = int(paid)
        if paid >= promise.threshold_minor:
            _resolve(session, promise, PromiseStatus.KEPT, paid)
            kept.append(promise)
        elif as_of > promise.due_on and not keep_only:
            _resolve(session, promise, PromiseStatus.BROKEN, paid)
            broken.append(promise)
        elif paid != promise.paid_minor:
            promise.paid_minor = paid
    session.flush()
    promise_changed.send(session, promises=broken)
    _plans_follow(session, kept + broken)
    _items_follow(session, kept, broken)
    if kept or broken:
        touched: dict[int, set[int]] = {}
        for p in kept + broken:
            touched.setdefault(p.client_id, set()).add(p.debtor_id)
        for client_id, debtors in touched.items():
            scoring.rescore(session, [client_id], sorted(debtors), today=as_of)
    return {"kept": len(kept), "broken": len(broken)}


def _plans_follow(session: Session, resolved: list[Promise]) -> None:
    plan_ids = {p.plan_id for p in resolved if p.plan_id is not None}
    if not plan_ids:
        return
    for plan in session.scalars(select(PaymentPlan).where(PaymentPlan.id.in_(plan_ids))):
        if plan.status != PlanStatus.ACTIVE.value:
            continue
        statuses = session.scalars(
            select(Promise.status).where(Promise.client_id == plan.client_id, Promise.plan_id == plan.id)
        ).all()
        wanted = None
        if PromiseStatus.BROKEN.value in statuses:
            wanted = PlanStatus.BROKEN
            # the rest of a broken plan is void
            session.execute(
                update(Promise)
                .where(
                    Promise.plan_id == plan.id,
                    Promise.client_id == plan.client_id,
                    Promise.status == PromiseStatus.OPEN.value,
                )
                .values(status=PromiseStatus.CANCELLED.value, resolved_at=now_utc())
                .execution_options(synchronize_session="fetch")
            )
        elif all(s == PromiseStatus.KEPT.value for s in statuses):
            wanted = PlanStatus.COMPLETED
        if wanted is not None:
            states.check_plan(plan.status, wanted.value)
            plan.status = wanted.value
            audit.record(session, f"plan.{wanted.value}", plan, after={"status": wanted.value})


def _items_follow(session: Session, kept: list[Promise], broken: list[Promise]) -> None:
    """A broken promise (or plan) sends the account back to work today; a kept single promise too (if money
    is still overdue, the rescoring keeps it open; otherwise it closes)."""
    by_item = {p.work_item_id: p for p in kept}
    by_item.update({p.work_item_id: p for p in broken})  # broken wins
    if not by_item:
        return
    items = session.scalars(select(WorkItem).where(WorkItem.id.in_(by_item))).all()
    still_open = set(
        session.scalars(
            select(Promise.work_item_id).where(
                Promise.work_item_id.in_(by_item), Promise.status == PromiseStatus.OPEN.value
            )
        )
    )
    today = today_utc()
    for item in items:
        promise = by_item[item.id]
        is_broken = promise.status == PromiseStatus.BROKEN.value
        what = "instalment" if promise.plan_id else "promise"
        note = f"{what} of {format_money(promise.amount_minor, promise.currency)} due {promise.due_on} {promise.status}"
        session.add(
            WorkAction(
                client_id=item.client_id,
                work_item_id=item.id,
                debtor_id=item.debtor_id,
                kind=ActionKind.STATE.value,
                outcome=f"promise_{promise.status}",
                note=note,
                occurred_at=now_utc(),
            )
        )
        if item.state in (ItemState.PROMISED.value, ItemState.PLAN.value) and (is_broken or item.id not in still_open):
            services.set_state(session, item, ItemState.IN_PROGRESS, None, note)
            item.next_action_on = today
    session.flush()


def on_payments_posted(session: Session, client_id: int, debtor_ids: list[int]) -> dict[str, int]:
    """The ledger's hook: payments were posted (or reversed) for these debtors of one client. Checks their
    open promises now (a payment can keep one, never break one) and queues the client's rescoring. Runs
    inside the posting transaction, after the posting (through the ledger's `payments_posted` signal)."""
    debtors = sorted(set(debtor_ids))
    result = {"kept": 0, "broken": 0}
    promised = select(Promise.id).where(
        Promise.client_id == client_id, Promise.debtor_id.in_(debtors), Promise.status == PromiseStatus.OPEN.value
    )
    if session.scalar(promised.limit(1)) is not None:  # one indexed lookup when nobody promised anything
        result = check_promises(session, [client_id], debtors, keep_only=True)
    # the score moves with the balance: rescored by a job after commit, queued once per burst of payments
    jobs.enqueue(scoring.rescore_client_job, client_id, job_id=f"worklist-rescore:{client_id}")
    return result


@payments_posted.connect
def _on_ledger_payments(session: Session, *, client_id: int, debtor_ids: list[int], **_: Any) -> None:
    """Subscribed to the ledger's `payments_posted` signal (worklists.promises is imported by the app)."""
    on_payments_posted(session, client_id, debtor_ids)
