"""Work distribution: every new and orphaned work item gets an owner, automatically, in the worklist rebuild.

`distribute` runs after the rescoring of a set of clients (the nightly rebuild and every per-client rebuild):

1. Orphans are released: an open item whose owner is away today (the flag or a planned absence), no longer
   an active collector, or in a team that no longer works the client, goes back to its team's pool (or the
   client's general pool when the team no longer works the client).
2. Pooled items without a team get one: the first assignment rule (by position) that matches the item
   (client, debtor segment, debtor language, overdue balance band in the item's currency) and whose team
   works the client; else the first team (by id) granted the client.
3. Each team's pooled items are shared among its present collectors, highest score first, each next item to
   the collector with the lowest load relative to their capacity (capacity is a weight here, not a cap: every
   item gets an owner while one collector of the team is present; the manager's "Balance by capacity" keeps
   the hard cap).

Idempotent: a second run the same day finds nothing to release or hand out. Set-based UPDATEs, one per rule
and per (collector, chunk of 1,000 items).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.orm import Session

from clients.models import Debtor
from provider.core import audit
from provider.core.permissions import Role
from provider.models import TeamClient, User
from worklists.models import AssignmentRule, CollectorSetting, ItemState, WorkItem

OPEN_STATES = [s.value for s in ItemState if s != ItemState.CLOSED]
DEFAULT_CAPACITY = 150
CHUNK = 1000


def away_condition(today: date) -> Any:
    """SQL: the collector setting says away today (flag or planned absence)."""
    planned = and_(
        CollectorSetting.away_from.is_not(None),
        CollectorSetting.away_from <= today,
        or_(CollectorSetting.away_until.is_(None), CollectorSetting.away_until >= today),
    )
    return or_(CollectorSetting.away.is_(True), planned)


def _team_works_client(team_col: Any) -> Any:
    return exists().where(TeamClient.team_id == team_col, TeamClient.client_id == WorkItem.client_id)


def release_orphans(session: Session, client_ids: Sequence[int], today: date) -> int:
    """Step 1: owned open items whose owner may not hold them today go back to a pool. Returns how many."""
    absent = select(CollectorSetting.user_id).where(away_condition(today))
    able = exists().where(  # an active collector of the item's team
        User.id == WorkItem.owner_id,
        User.role == Role.COLLECTOR.value,
        User.active.is_(True),
        User.team_id == WorkItem.team_id,
    )
    base = and_(WorkItem.client_id.in_(client_ids), WorkItem.state.in_(OPEN_STATES), WorkItem.owner_id.is_not(None))
    orphaned = or_(WorkItem.owner_id.in_(absent), ~able, ~_team_works_client(WorkItem.team_id))
    released = (
        session.execute(
            update(WorkItem)
            .where(base, orphaned)
            .values(owner_id=None, claimed_by=None, claim_expires_at=None)
            .execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )
    # a pool of a team that no longer works the client is no pool: back to the client's general pool
    session.execute(
        update(WorkItem)
        .where(
            WorkItem.client_id.in_(client_ids),
            WorkItem.owner_id.is_(None),
            WorkItem.team_id.is_not(None),
            ~_team_works_client(WorkItem.team_id),
        )
        .values(team_id=None)
        .execution_options(synchronize_session=False)
    )
    return int(released)


def _rule_matches(rule: AssignmentRule) -> list[Any]:
    conditions: list[Any] = []
    if rule.client_id is not None:
        conditions.append(WorkItem.client_id == rule.client_id)
    debtor = [Debtor.client_id == WorkItem.client_id, Debtor.id == WorkItem.debtor_id]
    if rule.segment:
        conditions.append(exists().where(*debtor, Debtor.segment == rule.segment))
    if rule.language:
        conditions.append(exists().where(*debtor, Debtor.language == rule.language))
    if rule.min_overdue_minor is not None or rule.max_overdue_minor is not None:
        conditions.append(WorkItem.currency == rule.currency)
        if rule.min_overdue_minor is not None:
            conditions.append(WorkItem.overdue_minor >= rule.min_overdue_minor)
        if rule.max_overdue_minor is not None:
            conditions.append(WorkItem.overdue_minor <= rule.max_overdue_minor)
    return conditions


def route_to_teams(session: Session, client_ids: Sequence[int]) -> int:
    """Step 2: unowned open items without a team get one (rules first, then the client's first team)."""
    pooled = and_(
        WorkItem.client_id.in_(client_ids),
        WorkItem.state.in_(OPEN_STATES),
        WorkItem.owner_id.is_(None),
        WorkItem.team_id.is_(None),
    )
    routed = 0
    for rule in session.scalars(select(AssignmentRule).order_by(AssignmentRule.position, AssignmentRule.id)):
        works = exists().where(TeamClient.team_id == rule.team_id, TeamClient.client_id == WorkItem.client_id)
        routed += (
            session.execute(
                update(WorkItem)
                .where(pooled, works, *_rule_matches(rule))
                .values(team_id=rule.team_id)
                .execution_options(synchronize_session=False)
            ).rowcount
            or 0
        )
    first_team = (
        select(func.min(TeamClient.team_id)).where(TeamClient.client_id == WorkItem.client_id).scalar_subquery()
    )
    routed += (
        session.execute(
            update(WorkItem)
            .where(pooled, exists().where(TeamClient.client_id == WorkItem.client_id))  # a client no team works waits
            .values(team_id=first_team)
            .execution_options(synchronize_session=False)
        ).rowcount
        or 0
    )
    return int(routed)


def present_collectors(session: Session, team_id: int, today: date) -> dict[int, tuple[int, int]]:
    """{collector id: (capacity, open items held)} for the team's active collectors present today."""
    held = (
        select(WorkItem.owner_id, func.count().label("n"))
        .where(WorkItem.state.in_(OPEN_STATES), WorkItem.owner_id.is_not(None))
        .group_by(WorkItem.owner_id)
        .subquery()
    )
    rows = session.execute(
        select(User.id, CollectorSetting.capacity, func.coalesce(held.c.n, 0))
        .outerjoin(CollectorSetting, CollectorSetting.user_id == User.id)
        .outerjoin(held, held.c.owner_id == User.id)
        .where(
            User.team_id == team_id,
            User.role == Role.COLLECTOR.value,
            User.active.is_(True),
            or_(CollectorSetting.user_id.is_(None), ~away_condition(today)),
        )
    ).all()
    return {uid: (cap if cap is not None else DEFAULT_CAPACITY, int(n)) for uid, cap, n in rows}


def share(item_ids: Sequence[int], collectors: dict[int, tuple[int, int]]) -> dict[int, list[int]]:
    """Hand `item_ids` (best first) out one by one, each to the collector with the lowest (load + 1) /
    capacity (ties: the lower id). A collector with capacity 0 gets nothing. Pure: no database."""
    heap = [((n + 1) / cap, uid, cap, n) for uid, (cap, n) in collectors.items() if cap > 0]
    heapq.heapify(heap)
    given: dict[int, list[int]] = {}
    for item_id in item_ids:
        if not heap:
            break
        _, uid, cap, n = heapq.heappop(heap)
        given.setdefault(uid, []).append(item_id)
        heapq.heappush(heap, ((n + 2) / cap, uid, cap, n + 1))
    return given


def hand_out(session: Session, client_ids: Sequence[int], today: date) -> dict[int, int]:
    """Step 3: each team's unowned open items of these clients to its present collectors."""
    teams = session.scalars(
        select(WorkItem.team_id)
        .where(
            WorkItem.client_id.in_(client_ids),
            WorkItem.state.in_(OPEN_STATES),
            WorkItem.owner_id.is_(None),
            WorkItem.team_id.is_not(None),
        )
        .distinct()
    ).all()
    counts: dict[int, int] = {}
    for team_id in sorted(t for t in teams if t is not None):
        collectors = present_collectors(session, team_id, today)
        if not collectors:
            continue
        pool = session.scalars(
            select(WorkItem.id)
            .where(
                WorkItem.client_id.in_(client_ids),
                WorkItem.state.in_(OPEN_STATES),
                WorkItem.owner_id.is_(None),
                WorkItem.team_id == team_id,
            )
            .order_by(WorkItem.score.desc(), WorkItem.id)
        ).all()
        for uid, ids in share(pool, collectors).items():
            for start in range(0, len(ids), CHUNK):
                session.execute(
                    update(WorkItem)
                    .where(WorkItem.id.in_(ids[start : start + CHUNK]))
                    .values(owner_id=uid)
                    .execution_options(synchronize_session=False)
                )
            counts[uid] = counts.get(uid, 0) + len(ids)
    return counts


def distribute(session: Session, client_ids: Sequence[int], today: date) -> dict[str, int]:
    """Release orphans, route pooled items to teams, hand them out (see the module's doc). Audited when it
    changed anything. Returns the counts."""
    if not client_ids:
        return {"released": 0, "routed": 0, "assigned": 0}
    released = release_orphans(session, client_ids, today)
    routed = route_to_teams(session, client_ids)
    given = hand_out(session, client_ids, today)
    result = {"released": released, "routed": routed, "assigned": sum(given.values())}
    if any(result.values()):
        audit.record(
            session,
            "worklist.distribute",
            "Client",
            object_id=str(client_ids[0]) if len(client_ids) == 1 else "*",
            client_id=client_ids[0] if len(client_ids) == 1 else None,
            after={**result, "per_collector": {str(k): v for k, v in given.items()}},
        )
    session.flush()
    return result
