"""The queue: "next account" claims the highest-priority account a collector may work *and* may lawfully
contact now, so that two collectors never hold the same account.

A claim must outlive the request (the collector works the account for minutes), so it is not a row lock:
candidates are read with `SELECT ... FOR UPDATE SKIP LOCKED` (PostgreSQL; concurrent pullers skip each
other's candidates instead of waiting), and the claim is written on the item as `claimed_by` + a lease
(`claim_expires_at`) by a guarded UPDATE that only succeeds while the item is unclaimed or its lease has
expired. On SQLite (one writer at a time) the guarded UPDATE alone is atomic. An abandoned claim expires
by itself; taking the next account releases the current one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, String, and_, any_, bindparam, false, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from clients.models import Client, Debtor
from provider.core import audit
from provider.core.clock import now_utc
from worklists import contact_rules
from worklists.contact_rules import CALL, EMAIL, ContactFacts, ContactPolicy, Verdict
from worklists.models import ActionKind, ItemState, Strategy, WorkAction, WorkItem

LEASE = timedelta(minutes=20)
BATCH = 20
MAX_BATCHES = 3


def policies(session: Session, client_ids: list[int] | None = None) -> dict[int, ContactPolicy]:
    """The contact policy of every client in scope (one query)."""
    stmt = select(Client.id, Client.debt_type, Strategy).outerjoin(Strategy, Strategy.client_id == Client.id)
    if client_ids is not None:
        stmt = stmt.where(Client.id.in_(client_ids))
    return {cid: contact_rules.policy_for(debt_type, strategy) for cid, debt_type, strategy in session.execute(stmt)}


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
    """Items the user's queue may offer (before the contact gate): by state, due date, owner and claim."""
    return [
        WorkItem.state.in_(
            [s.value for s in (ItemState.NEW, ItemState.IN_PROGRESS, ItemState.PROMISED, ItemState.PLAN)]
        ),
        or_(WorkItem.next_action_on.is_(None), WorkItem.next_action_on <= now.date()),
        WorkItem.ceased_at.is_(None),
        owned_by_or_pooled_for(user),
        or_(WorkItem.claimed_by.is_(None), WorkItem.claim_expires_at < now, WorkItem.claimed_by == user.id),
    ]


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
) -> dict[str, Verdict]:
    """The verdict for each channel (what the account screen shows), from one read of the facts: the
    client's policy, the do-not-contact flag (unless the caller already has the debtor) and recent calls."""
    now = now or now_utc()
    policy = policies(session, [item.client_id])[item.client_id]
    if do_not_contact is None:
        do_not_contact = bool(
            session.scalar(
                select(Debtor.do_not_contact).where(Debtor.client_id == item.client_id, Debtor.id == item.debtor_id)
            )
        )
    calls: list[datetime] = []
    if CALL in channels:
        since = now - timedelta(days=policy.calls_window_days)
        key = (item.client_id, item.debtor_id)
        calls = recent_calls(session, [key], since).get(key, [])
    facts = facts_for(item, do_not_contact, calls)
    return {channel: contact_rules.check(policy, facts, channel, now) for channel in channels}


@dataclass(frozen=True)
class Pulled:
    item: WorkItem | None
    skipped: int  # candidates passed over by the contact gate


def release_claims_of(session: Session, user: Any, except_id: int | None = None) -> list[int]:
    """Give back the user's claims (but `except_id`); returns the ids given back."""
    stmt = update(WorkItem).where(WorkItem.claimed_by == user.id)
    if except_id is not None:
        stmt = stmt.where(WorkItem.id != except_id)
    result = session.execute(
        stmt.values(claimed_by=None, claim_expires_at=None)
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
    """Claim and return the highest-scored account the user may work and lawfully call now (or None).

    Releases the user's previous claim. At most MAX_BATCHES candidate batches are read, so the number of
    queries is bounded whatever the size of the queue. Flushes; the caller commits (which ends the row
    locks of PostgreSQL and leaves the lease on the item).
    """
    now = now or now_utc()
    done = release_claims_of(session, user)  # "next" means done with the current account: not offered again
    by_client = policies(session)
    if not by_client:
        return Pulled(None, 0)
    lawful = lawful_now(by_client, now, session.get_bind().dialect.name)
    longest = max(p.calls_window_days for p in by_client.values())
    skipped = 0
    for batch in range(MAX_BATCHES):
        stmt = (
            select(WorkItem.id, WorkItem.client_id, WorkItem.debtor_id, WorkItem.contact_tz)
            .add_columns(WorkItem.ceased_at, WorkItem.last_conversation_at, Debtor.do_not_contact)
            .join(Debtor, and_(Debtor.client_id == WorkItem.client_id, Debtor.id == WorkItem.debtor_id))
            .where(*workable(user, now), lawful, Debtor.do_not_contact.is_(False), WorkItem.id.not_in(done))
            .order_by(WorkItem.score.desc(), WorkItem.id)
            .limit(BATCH)
            .offset(batch * BATCH)
        )
        rows = session.execute(stmt).all()
        if not rows:
            break
        calls = recent_calls(session, [(r.client_id, r.debtor_id) for r in rows], now - timedelta(days=longest))
        lawful_ids = []
        for r in rows:
            facts = ContactFacts(
                timezone=r.contact_tz,
                do_not_contact=r.do_not_contact,
                ceased=r.ceased_at is not None,
                call_times=tuple(calls.get((r.client_id, r.debtor_id), ())),
                last_conversation_at=r.last_conversation_at,
            )
            if contact_rules.check(by_client[r.client_id], facts, CALL, now).allowed:
                lawful_ids.append(r.id)
            else:
                skipped += 1
        item_id = _lock_best(session, lawful_ids, user, now)
        if item_id is not None and try_claim(session, item_id, user, now):
            item = session.get(WorkItem, item_id)
            _started(session, item, user)
            return Pulled(item, skipped)
        if len(rows) < BATCH:
            break
    return Pulled(None, skipped)


def _lock_best(session: Session, ids: list[int], user: Any, now: datetime) -> int | None:
    """Lock the best still-claimable candidate that no concurrent puller has locked (SKIP LOCKED), so N
    collectors pulling at once take N different accounts without waiting for each other."""
    if not ids:
        return None
    return session.scalar(
        select(WorkItem.id)
        .where(
            WorkItem.id.in_(ids),
            or_(WorkItem.claimed_by.is_(None), WorkItem.claim_expires_at < now, WorkItem.claimed_by == user.id),
        )
        .order_by(WorkItem.score.desc(), WorkItem.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )


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
    release_claims_of(session, user, except_id=item.id)
    if not try_claim(session, item.id, user, now):
        return False
    _started(session, item, user)
    return True


def release(session: Session, item: WorkItem, user: Any) -> None:
    """Give an account back to the queue (abandon)."""
    if item.claimed_by != user.id:
        return
    before = audit.snapshot(item, WorkItem.AUDIT_FIELDS)
    item.claimed_by = None
    item.claim_expires_at = None
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
