"""The queue: "next account" claims the highest-priority account a collector may work *and* may lawfully
contact now, so that two collectors never hold the same account.

A claim must outlive the request (the collector works the account for minutes), so it is not a row lock:
candidates are read with `SELECT ... FOR UPDATE SKIP LOCKED` (PostgreSQL; concurrent pullers skip each
other's candidates instead of waiting), and the claim is written on the item as `claimed_by` + a lease
(`claim_expires_at`) by a guarded UPDATE that only succeeds while the item is unclaimed or its lease has
expired. On SQLite (one writer at a time) the guarded UPDATE alone is atomic. An abandoned claim expires
by itself; taking the next account releases the current one.

Done with an account (the collector takes the next one, opens another, or gives it back) means it is not
offered again at once: it is snoozed for SNOOZE (`claimed_by` empty, `claim_expires_at` = the end of the
snooze: nobody's lease, but "next" skips it until then), and an account whose next action was set to a
later day (a promise, a plan, "set next action") stays out of the queue until that day. Opening a
snoozed account directly still claims it.

Order: score, then the larger overdue amount (reference units), then the older oldest due date, then the
id (scores tie often: the terms are banded). The candidates are read in score order through the score
index (the other keys break ties within each batch of candidates; an index on all four keys would make the
whole order index-backed).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, String, and_, any_, bindparam, case, false, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from clients.models import Client, Debtor
from provider.core import audit
from provider.core.clock import now_utc
from worklists import contact_rules
from worklists.contact_rules import CALL, EMAIL, ContactFacts, ContactPolicy, Verdict
from worklists.models import ActionKind, ItemState, Strategy, WorkAction, WorkItem

LEASE = timedelta(minutes=20)
SNOOZE = timedelta(hours=1)  # a released or skipped account waits this long before "next" offers it again
BATCH = 20
MAX_BATCHES = 3


_POLICY_COLUMNS = (
    Strategy.id.label("strategy_id"),
    Strategy.contact_start_hour,
    Strategy.contact_end_hour,
    Strategy.max_calls,
    Strategy.calls_window_days,
    Strategy.cooldown_days,
)


def policies(session: Session, client_ids: list[int] | None = None) -> dict[int, ContactPolicy]:
    """The contact policy of every client in scope (one query of the few columns it needs, no ORM objects)."""
    stmt = select(Client.id, Client.debt_type, *_POLICY_COLUMNS).outerjoin(Strategy, Strategy.client_id == Client.id)
    if client_ids is not None:
        stmt = stmt.where(Client.id.in_(client_ids))
    return {
        row.id: contact_rules.policy_for(row.debt_type, row if row.strategy_id is not None else None)
        for row in session.execute(stmt)
    }


def lawful_now(by_client: dict[int, ContactPolicy], now: datetime, dialect: str | None = None) -> Any:
    """SQL prefilter: the item's zone is inside its client's contact window now, and (for calls) the
    conversation cool-down is over. The final word is `contact_rules.check` on each offered account.

    About 600 zones are open at any time. On PostgreSQL they are bound as one array (`= ANY(:zones)`),
    which the server checks through a hash table; a list of 600 separate parameters is compared one by
    one for every row the queue reads (several times slower) and costs a parameter each to bind."""
    groups: dict[ContactPolicy, list[int]] = defaultdict(list)
    for client_id, policy in by_client.items():
        groups[policy].append(client_id)

    def one_of(column: Any, values: list[Any], item_type: Any) -> Any:
        if dialect == "postgresql":
            return column == any_(bindparam(None, values, type_=postgresql.ARRAY(item_type)))
        return column.in_(values)

    clauses = [
        and_(
            one_of(WorkItem.client_id, sorted(ids), BigInteger()),
            one_of(WorkItem.contact_tz, sorted(contact_rules.zones_open(policy, now)), String()),
            or_(
                WorkItem.last_conversation_at.is_(None),
                WorkItem.last_conversation_at <= now - timedelta(days=policy.cooldown_days),
            ),
        )
        for policy, ids in groups.items()
    ]
    return or_(*clauses) if clauses else false()


def owned_by_or_pooled_for(user: Any) -> Any:
    """The user's items, their team's pool, and the clients' general pool (the tenant scope does the rest)."""
    return or_(
        WorkItem.owner_id == user.id,
        and_(WorkItem.owner_id.is_(None), or_(WorkItem.team_id.is_(None), WorkItem.team_id == user.team_id)),
    )


def workable(user: Any, now: datetime) -> list[Any]:
    """Items the user's queue may offer (before the contact gate): by state, next-action date, owner, and
    neither claimed by another collector nor snoozed (`claim_expires_at` is a lease or the end of a snooze)."""
    return [
        WorkItem.state.in_(
            [s.value for s in (ItemState.NEW, ItemState.IN_PROGRESS, ItemState.PROMISED, ItemState.PLAN)]
        ),
        or_(WorkItem.next_action_on.is_(None), WorkItem.next_action_on <= now.date()),
        WorkItem.ceased_at.is_(None),
        owned_by_or_pooled_for(user),
        _claimable(user, now),
    ]


def queue_order() -> tuple[Any, ...]:
    """The order of the queue: score, then overdue amount, then age, then id (ties are frequent)."""
    return (WorkItem.score.desc(), WorkItem.overdue_norm.desc(), WorkItem.oldest_due_on.asc(), WorkItem.id)


def _order_key(row: Any) -> tuple[Any, ...]:
    return (-row.score, -row.overdue_norm, row.oldest_due_on or date.max, row.id)


def recent_calls(session: Session, debtor_keys: list[tuple[int, int]], since: datetime) -> dict[tuple[int, int], list]:
    """Call attempts since `since` per (client_id, debtor_id), one query."""
    if not debtor_keys:
        return {}
    rows = session.execute(
        select(WorkAction.client_id, WorkAction.debtor_id, WorkAction.occurred_at).where(
            WorkAction.client_id.in_({c for c, _ in debtor_keys}),
            WorkAction.debtor_id.in_({d for _, d in debtor_keys}),
            WorkAction.kind == ActionKind.CALL.value,
            WorkAction.occurred_at > since,
        )
    )
    calls: dict[tuple[int, int], list] = defaultdict(list)
    for client_id, debtor_id, at in rows:
        calls[(client_id, debtor_id)].append(at)
    return calls


def facts_for(item: WorkItem, do_not_contact: bool, call_times: list[datetime]) -> ContactFacts:
    return ContactFacts(
        timezone=item.contact_tz,
        do_not_contact=do_not_contact,
        ceased=item.ceased_at is not None,
        call_times=tuple(call_times),
        last_conversation_at=item.last_conversation_at,
    )


def gate(session: Session, item: WorkItem, channel: str = CALL, now: datetime | None = None) -> Verdict:
    """May the account be contacted on `channel` now?"""
    return gates(session, item, (channel,), now)[channel]


def gates(
    session: Session,
    item: WorkItem,
    channels: tuple[str, ...] = (CALL, EMAIL),
    now: datetime | None = None,
    do_not_contact: bool | None = None,
    policy: ContactPolicy | None = None,
    call_times: list[datetime] | None = None,
) -> dict[str, Verdict]:
    """The verdict for each channel (what the account screen shows), from one read of the facts: the
    client's policy, the do-not-contact flag and the recent calls (each read unless the caller has it)."""
    now = now or now_utc()
    if policy is None:
        policy = policies(session, [item.client_id])[item.client_id]
    if do_not_contact is None:
        do_not_contact = bool(
            session.scalar(
                select(Debtor.do_not_contact).where(Debtor.client_id == item.client_id, Debtor.id == item.debtor_id)
            )
        )
    calls: list[datetime] = call_times or []
    if CALL in channels and call_times is None:
        since = now - timedelta(days=policy.calls_window_days)
        key = (item.client_id, item.debtor_id)
        calls = recent_calls(session, [key], since).get(key, [])
    facts = facts_for(item, do_not_contact, calls)
    return {channel: contact_rules.check(policy, facts, channel, now) for channel in channels}


@dataclass(frozen=True)
class Pulled:
    item: WorkItem | None
    skipped: int  # candidates passed over by the contact gate


def release_claims_of(
    session: Session, user: Any, except_id: int | None = None, now: datetime | None = None
) -> list[int]:
    """Give back the user's claims (but `except_id`), snoozed for SNOOZE; returns the ids given back."""
    now = now or now_utc()
    stmt = update(WorkItem).where(WorkItem.claimed_by == user.id)
    if except_id is not None:
        stmt = stmt.where(WorkItem.id != except_id)
    result = session.execute(
        stmt.values(claimed_by=None, claim_expires_at=now + SNOOZE)
        .returning(WorkItem.id)
        .execution_options(synchronize_session="fetch")
    )
    return list(result.scalars())


def try_claim(session: Session, item_id: int, user: Any, now: datetime) -> bool:
    """The guarded claim: succeeds only if nobody else holds a live lease on the item."""
    result = session.execute(
        update(WorkItem)
        .where(
            WorkItem.id == item_id,
            or_(WorkItem.claimed_by.is_(None), WorkItem.claim_expires_at < now, WorkItem.claimed_by == user.id),
        )
        .values(claimed_by=user.id, claim_expires_at=now + LEASE)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount == 1


def next_account_for(session: Session, user: Any, now: datetime | None = None) -> Pulled:
    """Claim and return the highest-ranked account the user may work and lawfully call now (or None).

    Releases (and snoozes) the user's previous claim. At most MAX_BATCHES candidate batches are read, so the
    number of queries is bounded whatever the size of the queue. Flushes; the caller commits (which ends the
    row locks of PostgreSQL and leaves the lease on the item).
    """
    now = now or now_utc()
    release_claims_of(session, user, now=now)  # "next" means done with the current account: snoozed
    by_client = policies(session)
    if not by_client:
        return Pulled(None, 0)
    lawful = lawful_now(by_client, now, session.get_bind().dialect.name)
    longest = max(p.calls_window_days for p in by_client.values())
    skipped = 0
    for batch in range(MAX_BATCHES):
        stmt = (
            select(WorkItem.id, WorkItem.client_id, WorkItem.debtor_id, WorkItem.contact_tz, WorkItem.state)
            .add_columns(WorkItem.claimed_by, WorkItem.score, WorkItem.overdue_norm, WorkItem.oldest_due_on)
            .add_columns(WorkItem.ceased_at, WorkItem.last_conversation_at, Debtor.do_not_contact)
            .join(Debtor, and_(Debtor.client_id == WorkItem.client_id, Debtor.id == WorkItem.debtor_id))
            .where(*workable(user, now), lawful, Debtor.do_not_contact.is_(False))
            .order_by(WorkItem.score.desc())  # the score index, read until the batch is full
            .limit(BATCH)
            .offset(batch * BATCH)
        )
        rows = sorted(session.execute(stmt).all(), key=_order_key)
        if not rows:
            break
        calls = recent_calls(session, [(r.client_id, r.debtor_id) for r in rows], now - timedelta(days=longest))
        lawful_rows = []
        for r in rows:
            facts = ContactFacts(
                timezone=r.contact_tz,
                do_not_contact=r.do_not_contact,
                ceased=r.ceased_at is not None,
                call_times=tuple(calls.get((r.client_id, r.debtor_id), ())),
                last_conversation_at=r.last_conversation_at,
            )
            if contact_rules.check(by_client[r.client_id], facts, CALL, now).allowed:
                lawful_rows.append(r)
            else:
                skipped += 1
        item = _claim_best(session, [r.id for r in lawful_rows], user, now)
        if item is not None:
            row = next(r for r in lawful_rows if r.id == item.id)
            after = audit.snapshot(item, WorkItem.AUDIT_FIELDS)
            before = {**after, "state": row.state, "claimed_by": row.claimed_by}
            audit.record(session, "worklist.claim", item, before=before, after=after)
            return Pulled(item, skipped)
        if len(rows) < BATCH:
            break
    return Pulled(None, skipped)


def _claimable(user: Any, now: datetime) -> Any:
    """Neither held by another collector (a live lease) nor snoozed: what "next" may claim."""
    return or_(WorkItem.claim_expires_at.is_(None), WorkItem.claim_expires_at <= now, WorkItem.claimed_by == user.id)


def _claim_best(session: Session, ids: list[int], user: Any, now: datetime) -> WorkItem | None:
    """Claim the best of `ids` that nobody holds and no concurrent puller has locked, in one statement:
    an UPDATE of the row chosen with `FOR UPDATE SKIP LOCKED` (so N collectors pulling at once take N
    different accounts without waiting for each other), returning the claimed item (a new one is now in
    progress)."""
    if not ids:
        return None
    best = (
        select(WorkItem.id)
        .where(WorkItem.id.in_(ids), _claimable(user, now))
        .order_by(*queue_order())
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    stmt = (
        update(WorkItem)
        .where(WorkItem.id == best)
        .values(
            claimed_by=user.id,
            claim_expires_at=now + LEASE,
            state=case((WorkItem.state == ItemState.NEW.value, ItemState.IN_PROGRESS.value), else_=WorkItem.state),
        )
        .returning(WorkItem)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return session.scalars(stmt).first()


def _started(session: Session, item: WorkItem, user: Any) -> None:
    session.refresh(item)
    before = audit.snapshot(item, WorkItem.AUDIT_FIELDS)
    if item.state == ItemState.NEW.value:
        item.state = ItemState.IN_PROGRESS.value
    session.flush()
    audit.record(session, "worklist.claim", item, before=before, after=audit.snapshot(item, WorkItem.AUDIT_FIELDS))


def claim(session: Session, item: WorkItem, user: Any, now: datetime | None = None) -> bool:
    """Claim an account opened directly (not through "next"); False when another collector holds it."""
    now = now or now_utc()
    if item.claimed_by == user.id and item.claim_expires_at and item.claim_expires_at > now:
        session.execute(update(WorkItem).where(WorkItem.id == item.id).values(claim_expires_at=now + LEASE))
        return True
    release_claims_of(session, user, except_id=item.id, now=now)
    if not try_claim(session, item.id, user, now):
        return False
    _started(session, item, user)
    return True


def release(session: Session, item: WorkItem, user: Any) -> None:
    """Give an account back to the queue (abandon); "next" offers it again after SNOOZE."""
    if item.claimed_by != user.id:
        return
    before = audit.snapshot(item, WorkItem.AUDIT_FIELDS)
    item.claimed_by = None
    item.claim_expires_at = now_utc() + SNOOZE  # given back: not offered by "next" before the snooze ends
    session.flush()
    audit.record(session, "worklist.release", item, before=before, after=audit.snapshot(item, WorkItem.AUDIT_FIELDS))


def held_by_other(item: WorkItem, user: Any, now: datetime | None = None) -> bool:
    now = now or now_utc()
    return (
        item.claimed_by is not None
        and item.claimed_by != user.id
        and item.claim_expires_at is not None
        and item.claim_expires_at > now
    )
