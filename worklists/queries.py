"""Tenant-scoped reads for the worklist pages; each a fixed number of queries whatever the queue size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, select

from clients.models import Client, Debtor, DebtorContact
from provider.core.clock import now_utc
from provider.core.permissions import STAFF_ROLES, Role
from provider.core.tenancy import current_scope
from provider.extensions import db
from provider.models import User
from worklists import queue
from worklists.models import ActionKind, ItemState, PaymentPlan, Promise, PromiseStatus, Strategy, WorkAction, WorkItem

HISTORY_LIMIT = 50  # actions shown on the account screen

QUEUE_SORTS = {
    "score": WorkItem.score,
    "overdue": WorkItem.overdue_norm,
    "oldest": WorkItem.oldest_due_on,
    "next": WorkItem.next_action_on,
    "debtor": Debtor.name,
}


def queue_rows(user: Any, now: datetime) -> Select[Any]:
    """The user's queue as listed on "My queue": workable items (the contact gate is applied by "next")."""
    return (
        select(WorkItem, Debtor.name, Debtor.do_not_contact, Client.name, Client.code)
        .join(Debtor, and_(Debtor.client_id == WorkItem.client_id, Debtor.id == WorkItem.debtor_id))
        .join(Client, Client.id == WorkItem.client_id)
        .where(*queue.workable(user, now))
    )


@dataclass(frozen=True)
class QueueSummary:
    workable: int
    callable_now: int
    promised_today: int
    broken_7d: int
    mine: int


def queue_summary(user: Any, now: datetime) -> QueueSummary:
    """Today's counts for the collector's queue (three queries). "Assigned to me" counts every open account the
    user owns, workable today or not."""
    lawful = queue.lawful_now(queue.policies(db.session), now, db.session.get_bind().dialect.name)
    assigned = (
        select(func.count())
        .select_from(WorkItem)
        .where(WorkItem.owner_id == user.id, WorkItem.state != ItemState.CLOSED.value)
        .scalar_subquery()
    )
    workable, callable_now, owned = db.session.execute(
        select(func.count(), func.coalesce(func.sum(case((lawful, 1), else_=0)), 0), assigned).where(
            *queue.workable(user, now)
        )
    ).one()
    visible = queue.owned_by_or_pooled_for(user)
    promise_counts = db.session.execute(
        select(
            func.coalesce(
                func.sum(
                    case((and_(Promise.status == PromiseStatus.OPEN.value, Promise.due_on == now.date()), 1), else_=0)
                ),
                0,
            ),
            func.coalesce(
                func.sum(
                    case(
                        (
                            and_(
                                Promise.status == PromiseStatus.BROKEN.value,
                                Promise.due_on >= now.date() - timedelta(days=7),
                            ),
                            1,
                        ),
                        else_=0,
                    )
                ),
                0,
            ),
        )
        .join(WorkItem, and_(WorkItem.client_id == Promise.client_id, WorkItem.id == Promise.work_item_id))
        .where(visible, Promise.due_on >= now.date() - timedelta(days=7))
    ).one()
    return QueueSummary(
        int(workable), int(callable_now), int(promise_counts[0]), int(promise_counts[1]), int(owned or 0)
    )


def my_claim(user: Any, now: datetime) -> Any:
    return db.session.execute(
        select(WorkItem, Debtor.name)
        .join(Debtor, and_(Debtor.client_id == WorkItem.client_id, Debtor.id == WorkItem.debtor_id))
        .where(WorkItem.claimed_by == user.id, WorkItem.claim_expires_at > now)
        .limit(1)
    ).first()


# --- the account screen ---------------------------------------------------------------------------------


def account_row(item_id: int) -> tuple[WorkItem, Debtor, Strategy | None] | None:
    """The item, its debtor (with its client, joined) and its client's strategy, in one query; None when the
    item does not exist or is not visible in the current scope (the tenant guard filters the query)."""
    row = db.session.execute(
        select(WorkItem, Debtor, Strategy)
        .join(Debtor, and_(Debtor.client_id == WorkItem.client_id, Debtor.id == WorkItem.debtor_id))
        .outerjoin(Strategy, Strategy.client_id == WorkItem.client_id)
        .where(WorkItem.id == item_id)
    ).first()
    if row is None or not current_scope().allows(row[0].client_id):
        return None
    return row[0], row[1], row[2]


def debtor_and_strategy(item: WorkItem) -> tuple[Debtor, Strategy | None]:
    debtor, strategy = db.session.execute(
        select(Debtor, Strategy)
        .outerjoin(Strategy, Strategy.client_id == Debtor.client_id)
        .where(Debtor.client_id == item.client_id, Debtor.id == item.debtor_id)
    ).one()
    return debtor, strategy


def calls_from_history(history: Sequence[Any], since: datetime) -> list[datetime] | None:
    """The call attempts since `since`, read from the account's latest history (`account_extras`), or None
    when that history may not reach back to `since` (it is capped): then the gate reads them itself."""
    if len(history) >= HISTORY_LIMIT and history[-1][0].occurred_at > since:
        return None
    return [a.occurred_at for a, _ in history if a.kind == ActionKind.CALL.value and a.occurred_at > since]


def account_extras(item: WorkItem, viewer: Any = None) -> dict[str, Any]:
    """History, promises, plans, contacts and names for the account screen (at most five queries: promises
    only when the history shows one was made (`worklists.promises` records every promise and plan there) or
    is too long to tell, plans only when a promise belongs to one, names only when someone but the viewer
    is involved)."""
    history = db.session.execute(
        select(WorkAction, User.name)
        .outerjoin(User, User.id == WorkAction.user_id)
        .where(WorkAction.client_id == item.client_id, WorkAction.work_item_id == item.id)
        .order_by(WorkAction.occurred_at.desc(), WorkAction.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    promises: Sequence[Promise] = []
    promised = {ActionKind.PROMISE.value, ActionKind.PLAN.value}  # every promise and plan is in the history
    if len(history) >= HISTORY_LIMIT or any(action.kind in promised for action, _ in history):
        promises = db.session.scalars(
            select(Promise)
            .where(Promise.client_id == item.client_id, Promise.work_item_id == item.id)
            .order_by(Promise.due_on.desc(), Promise.id.desc())
            .limit(60)
        ).all()
    plans: Sequence[PaymentPlan] = []
    if any(p.plan_id is not None for p in promises):  # a plan's instalments are promises
        plans = db.session.scalars(
            select(PaymentPlan)
            .where(PaymentPlan.client_id == item.client_id, PaymentPlan.work_item_id == item.id)
            .order_by(PaymentPlan.id.desc())
            .limit(10)
        ).all()
    contacts = db.session.scalars(
        select(DebtorContact)
        .where(DebtorContact.client_id == item.client_id, DebtorContact.debtor_id == item.debtor_id)
        .order_by(DebtorContact.is_primary.desc(), DebtorContact.id)
        .limit(20)
    ).all()
    people = {viewer.id: viewer.name} if viewer is not None else {}
    wanted = {i for i in (item.owner_id, item.claimed_by) if i and i not in people}
    if wanted:
        people.update(
            (i, name) for i, name in db.session.execute(select(User.id, User.name).where(User.id.in_(wanted)))
        )
    return {"history": history, "promises": promises, "plans": plans, "contacts": contacts, "people": people}


# --- the manager's view ---------------------------------------------------------------------------------


def queue_sizes() -> list[Any]:
    """Open items per client, state and currency, with their overdue total in that currency (one grouped
    query; amounts in different currencies are never added)."""
    return db.session.execute(
        select(
            Client.id,
            Client.name,
            Client.code,
            WorkItem.state,
            func.count(),
            WorkItem.currency,
            func.sum(WorkItem.overdue_minor),
            func.sum(case((WorkItem.owner_id.is_(None), 1), else_=0)),
        )
        .join(Client, Client.id == WorkItem.client_id)
        .where(WorkItem.state != ItemState.CLOSED.value)
        .group_by(Client.id, Client.name, Client.code, WorkItem.state, WorkItem.currency)
        .order_by(Client.name, WorkItem.state, WorkItem.currency)
    ).all()


AGE_BUCKETS = ("never contacted", "0-7 days", "8-30 days", "31+ days")


def work_ageing(now: datetime) -> dict[str, dict[str, int]]:
    """Open items by state and time since their last contact (one grouped query)."""
    bucket = case(
        (WorkItem.last_contact_at.is_(None), AGE_BUCKETS[0]),
        (WorkItem.last_contact_at >= now - timedelta(days=7), AGE_BUCKETS[1]),
        (WorkItem.last_contact_at >= now - timedelta(days=30), AGE_BUCKETS[2]),
        else_=AGE_BUCKETS[3],
    ).label("bucket")
    table: dict[str, dict[str, int]] = {}
    for state, name, n in db.session.execute(
        select(WorkItem.state, bucket, func.count())
        .where(WorkItem.state != ItemState.CLOSED.value)
        .group_by(WorkItem.state, bucket)
    ):
        table.setdefault(state, dict.fromkeys(AGE_BUCKETS, 0))[name] = int(n)
    return table


def actions_per_collector(today: date, days: int = 7) -> tuple[list[date], list[tuple[str, dict[date, int]]]]:
    """Actions (calls, e-mails, notes, promises, ...) per agency staff member per day over the last `days` days.
    Only the agency's staff count: a client user's recall or a system transition is no collector's work."""
    since = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), tzinfo=now_utc().tzinfo)
    day = func.date(WorkAction.occurred_at)
    rows = db.session.execute(
        select(User.name, day, func.count())
        .join(User, User.id == WorkAction.user_id)
        .where(
            WorkAction.occurred_at >= since,
            User.client_id.is_(None),
            User.role.in_([r.value for r in STAFF_ROLES]),
        )
        .group_by(User.name, day)
    ).all()
    dates = [today - timedelta(days=k) for k in range(days - 1, -1, -1)]
    people: dict[str, dict[date, int]] = {}
    for name, on, n in rows:
        on = on if isinstance(on, date) else date.fromisoformat(str(on))
        people.setdefault(name, dict.fromkeys(dates, 0))[on] = int(n)
    return dates, sorted(people.items())


def orphans(today: date, limit: int = 50) -> tuple[int, list[Any]]:
    """Open items with no owner, or whose next action is overdue (count and the highest-scored ones)."""
    condition = and_(
        WorkItem.state.not_in([ItemState.CLOSED.value, ItemState.DISPUTED.value]),
        (WorkItem.owner_id.is_(None)) | (WorkItem.next_action_on < today),
    )
    total = db.session.scalar(select(func.count()).select_from(WorkItem).where(condition)) or 0
    rows = db.session.execute(
        select(WorkItem, Debtor.name, Client.code)
        .join(Debtor, and_(Debtor.client_id == WorkItem.client_id, Debtor.id == WorkItem.debtor_id))
        .join(Client, Client.id == WorkItem.client_id)
        .where(condition)
        .order_by(WorkItem.score.desc(), WorkItem.id)
        .limit(limit)
    ).all()
    return total, rows


def active_collectors() -> list[User]:
    return list(
        db.session.scalars(
            select(User).where(User.role == Role.COLLECTOR.value, User.active.is_(True)).order_by(User.name)
        )
    )
