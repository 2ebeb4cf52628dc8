"""Collectors' targets and their progress: accounts touched today, promises this week, money collected this
month on the accounts they own (in the target's currency; other currencies are shown beside it, never added).

"Collected" is net of reversals: a payment received this month counts, and a payment reversed this month (a
bounced transfer, a returned cheque; by the reversal's date, whenever the payment was received) is taken off.

Progress for any number of collectors in two queries (their targets; one UNION ALL of grouped counts).
Read in the viewer's tenant scope: a manager sees every client's figures, a collector their own on their team's
clients.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal, select, union_all
from sqlalchemy.orm import Session, aliased

from clients.journal import JournalEntry, JournalTransaction, Payment, TxKind
from provider.core import audit
from provider.core.errors import ServiceError
from provider.core.money import MoneyError, exponent, validate_currency
from provider.models import User
from worklists.models import ActionKind, CollectorTarget, PaymentPlan, Promise, WorkAction, WorkItem

# actions that are a collector's work on an account (not system transitions or assignments)
WORK_KINDS = [k.value for k in ActionKind if k not in (ActionKind.STATE, ActionKind.ASSIGN, ActionKind.NEXT_ACTION)] + [
    ActionKind.NEXT_ACTION.value
]


@dataclass
class Progress:
    user_id: int
    target: CollectorTarget
    touched_today: int = 0
    promises_week: int = 0
    collected: dict[str, int] = field(default_factory=dict)  # per currency, this month

    @property
    def collected_in_target(self) -> int:
        return self.collected.get(self.target.currency, 0)

    @property
    def other_currencies(self) -> dict[str, int]:
        return {c: v for c, v in sorted(self.collected.items()) if c != self.target.currency and v}

    @staticmethod
    def percent(done: int, goal: int) -> int:
        return 100 if goal <= 0 else min(100, round(100 * done / goal))


def default_target(user_id: int) -> CollectorTarget:
    return CollectorTarget(
        user_id=user_id, accounts_per_day=40, promises_per_week=15, currency="EUR", collected_per_month_minor=0
    )


def progress(session: Session, user_ids: Sequence[int], today: date) -> dict[int, Progress]:
    """Each collector's targets (their row, else the defaults) and progress as of `today` (UTC days)."""
    ids = list(user_ids)
    if not ids:
        return {}
    targets = {t.user_id: t for t in session.scalars(select(CollectorTarget).where(CollectorTarget.user_id.in_(ids)))}
    result = {uid: Progress(uid, targets.get(uid) or default_target(uid)) for uid in ids}
    day_start = datetime.combine(today, datetime.min.time(), tzinfo=UTC)
    week_start = day_start - timedelta(days=today.weekday())
    month_start = today.replace(day=1)
    touched = (
        select(
            literal("touched").label("what"),
            WorkAction.user_id.label("uid"),
            literal("").label("currency"),
            func.count(func.distinct(WorkAction.work_item_id)).label("n"),
        )
        .where(WorkAction.user_id.in_(ids), WorkAction.occurred_at >= day_start, WorkAction.kind.in_(WORK_KINDS))
        .group_by(WorkAction.user_id)
    )
    promised = (  # a promise on its own, or a plan (its instalments are one agreement)
        select(literal("promises"), Promise.created_by, literal(""), func.count())
        .where(Promise.created_by.in_(ids), Promise.created_at >= week_start, Promise.plan_id.is_(None))
        .group_by(Promise.created_by)
    )
    planned = (
        select(literal("promises"), PaymentPlan.created_by, literal(""), func.count())
        .where(PaymentPlan.created_by.in_(ids), PaymentPlan.created_at >= week_start)
        .group_by(PaymentPlan.created_by)
    )
    collected = (
        select(literal("collected"), WorkItem.owner_id, Payment.currency, func.sum(Payment.amount_minor))
        .join(WorkItem, and_(WorkItem.client_id == Payment.client_id, WorkItem.debtor_id == Payment.debtor_id))
        .where(WorkItem.owner_id.in_(ids), Payment.received_on >= month_start, Payment.received_on <= today)
        .group_by(WorkItem.owner_id, Payment.currency)
    )
    owned_clients = select(WorkItem.client_id).where(WorkItem.owner_id.in_(ids)).distinct()
    bounced = _reversed_between(owned_clients, month_start, today)
    reversed_ = (
        select(literal("collected"), WorkItem.owner_id, Payment.currency, -func.sum(Payment.amount_minor))
        .join(bounced, and_(bounced.c.client_id == Payment.client_id, bounced.c.payment_id == Payment.id))
        .join(WorkItem, and_(WorkItem.client_id == Payment.client_id, WorkItem.debtor_id == Payment.debtor_id))
        .where(WorkItem.owner_id.in_(ids))
        .group_by(WorkItem.owner_id, Payment.currency)
    )
    parts = union_all(touched, promised, planned, collected, reversed_)
    for what, uid, currency, n in session.execute(parts):  # one trip
        row = result[int(uid)]
        if what == "touched":
            row.touched_today = int(n)
        elif what == "promises":
            row.promises_week += int(n)
        else:
            row.collected[currency] = row.collected.get(currency, 0) + int(n or 0)
    return result


def _reversed_between(client_ids: Any, first: date, last: date) -> Any:
    """The payments of `client_ids` whose recording was reversed by a transaction dated within [first, last], as
    (client_id, payment_id): read from the clients' transactions of the period (the journal's (client_id,
    occurred_on) index) that are reversals, whose entries name the payment they take back."""
    recorded = aliased(JournalTransaction)
    reversal = aliased(JournalTransaction)
    return (
        select(JournalEntry.client_id, JournalEntry.payment_id)
        .join(reversal, and_(reversal.client_id == JournalEntry.client_id, reversal.id == JournalEntry.transaction_id))
        .join(recorded, and_(recorded.client_id == reversal.client_id, recorded.id == reversal.reverses_id))
        .where(
            reversal.client_id.in_(client_ids),
            reversal.kind == TxKind.REVERSAL.value,
            reversal.occurred_on >= first,
            reversal.occurred_on <= last,
            recorded.kind == TxKind.PAYMENT.value,
            func.coalesce(JournalEntry.payment_id, 0) > 0,  # not its index: the period's reversals lead
        )
        .distinct()
        .subquery()
    )


def set_target(
    session: Session, user: User, accounts_per_day: int, promises_per_week: int, currency: str, collected_minor: int
) -> CollectorTarget:
    """Set a collector's targets (audited). Refused for a negative figure or an unknown currency."""
    if accounts_per_day < 0 or promises_per_week < 0 or collected_minor < 0:
        raise ServiceError("targets cannot be negative", field="accounts_per_day")
    try:
        currency = validate_currency(currency)
    except MoneyError as exc:
        raise ServiceError(str(exc), field="currency") from None
    target = session.get(CollectorTarget, user.id) or CollectorTarget(user_id=user.id)
    fields = ("accounts_per_day", "promises_per_week", "currency", "collected_per_month_minor")
    before = {f: getattr(target, f) for f in fields} if target in session else None
    target.accounts_per_day, target.promises_per_week = accounts_per_day, promises_per_week
    target.currency, target.collected_per_month_minor = currency, collected_minor
    session.add(target)
    session.flush()
    audit.record(session, "collector.targets", user, before=before, after={f: getattr(target, f) for f in fields})
    return target


def seed_demo_targets(session: Session) -> int:
    """The demo: every active collector without targets gets some, in the currency most of their accounts
    owe (40 accounts a day, 15 promises a week, 50,000 a month). Idempotent. Returns how many were set."""
    from provider.core.permissions import Role

    have = set(session.scalars(select(CollectorTarget.user_id)))
    collectors = session.scalars(
        select(User).where(User.role == Role.COLLECTOR.value, User.active.is_(True)).order_by(User.id)
    ).all()
    made = 0
    for user in collectors:
        if user.id in have:
            continue
        currency = session.scalar(
            select(WorkItem.currency)
            .where(WorkItem.owner_id == user.id)
            .group_by(WorkItem.currency)
            .order_by(func.count().desc(), WorkItem.currency)
            .limit(1)
        )
        currency = currency or "EUR"
        session.add(
            CollectorTarget(
                user_id=user.id,
                accounts_per_day=40,
                promises_per_week=15,
                currency=currency,
                collected_per_month_minor=50_000 * 10 ** exponent(currency),
            )
        )
        made += 1
    session.flush()
    return made
