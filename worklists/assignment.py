"""Who works which accounts: assignment by client, segment or rule; balancing by capacity; absences.

An item's `owner_id` is a collector; `team_id` (owner NULL) puts it in a team's pool; both NULL is the
client's general pool (any collector of a team granted the client). Set-based UPDATEs throughout.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import Session

from clients.models import Debtor
from provider.core import audit
from provider.core.errors import ServiceError
from provider.core.permissions import Role
from provider.models import TeamClient, User
from worklists.models import CollectorSetting, ItemState, WorkItem

OPEN_STATES = [s.value for s in ItemState if s != ItemState.CLOSED]
DEFAULT_CAPACITY = 150


def _collector(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None or user.role != Role.COLLECTOR.value or not user.active:
        raise ServiceError("choose an active collector", field="owner_id")
    return user


def _team_has_client(session: Session, team_id: int | None, client_id: int) -> bool:
    return team_id is not None and bool(
        session.scalar(
            select(TeamClient.team_id).where(TeamClient.team_id == team_id, TeamClient.client_id == client_id)
        )
    )


def assign(
    session: Session,
    client_id: int,
    *,
    segment: str | None = None,
    owner_id: int | None = None,
    team_id: int | None = None,
    only_unowned: bool = False,
) -> int:
    """Give a client's open items (optionally one debtor segment, optionally only unowned ones) to a
    collector or to a team's pool. Refused when that collector's team (or that team) does not work the client."""
    if (owner_id is None) == (team_id is None):
        raise ServiceError("assign to a collector or to a team", field="owner_id")
    if owner_id is not None:
        team_id = _collector(session, owner_id).team_id
        if not _team_has_client(session, team_id, client_id):
            raise ServiceError("that collector's team does not work this client", field="owner_id")
        values: dict[str, Any] = {"owner_id": owner_id, "team_id": team_id}
    else:
        if not _team_has_client(session, team_id, client_id):
            raise ServiceError("that team does not work this client", field="team_id")
        values = {"owner_id": None, "team_id": team_id}
    stmt = update(WorkItem).where(WorkItem.client_id == client_id, WorkItem.state.in_(OPEN_STATES))
    if segment:
        stmt = stmt.where(
            exists().where(
                Debtor.client_id == WorkItem.client_id, Debtor.id == WorkItem.debtor_id, Debtor.segment == segment
            )
        )
    if only_unowned:
        stmt = stmt.where(WorkItem.owner_id.is_(None))
    count = session.execute(stmt.values(**values).execution_options(synchronize_session=False)).rowcount or 0
    audit.record(
        session,
        "worklist.assign",
        "Client",
        client_id=client_id,
        object_id=client_id,
        after={"segment": segment, "count": count, **values, "only_unowned": only_unowned},
    )
    return count


def team_load(session: Session, team_id: int) -> list[tuple[User, int, int, bool]]:
    """(collector, capacity, open items owned, away) for each active collector of the team."""
    held = (
        select(WorkItem.owner_id, func.count().label("n"))
        .where(WorkItem.state.in_(OPEN_STATES), WorkItem.owner_id.is_not(None))
        .group_by(WorkItem.owner_id)
        .subquery()
    )
    rows = session.execute(
        select(User, CollectorSetting.capacity, CollectorSetting.away, func.coalesce(held.c.n, 0))
        .outerjoin(CollectorSetting, CollectorSetting.user_id == User.id)
        .outerjoin(held, held.c.owner_id == User.id)
        .where(User.team_id == team_id, User.role == Role.COLLECTOR.value, User.active.is_(True))
        .order_by(User.name)
    ).all()
    return [(u, cap or DEFAULT_CAPACITY, int(n), bool(away)) for u, cap, away, n in rows]


def balance(session: Session, team_id: int) -> dict[int, int]:
    """Hand the team's unowned open items, highest score first, to its present collectors: each next item
    to the least loaded one that still has room under its capacity. Returns {collector id: items given}."""
    present = [(u, cap, n) for u, cap, n, away in team_load(session, team_id) if not away and cap > n]
    free = {u.id: cap - n for u, cap, n in present}
    load = {u.id: n for u, _, n in present}
    if not free:
        return {}
    pool = session.scalars(
        select(WorkItem.id)
        .where(
            WorkItem.state.in_(OPEN_STATES),
            WorkItem.owner_id.is_(None),
            (WorkItem.team_id == team_id) | WorkItem.team_id.is_(None),
            exists().where(and_(TeamClient.team_id == team_id, TeamClient.client_id == WorkItem.client_id)),
        )
        .order_by(WorkItem.score.desc(), WorkItem.id)
        .limit(sum(free.values()))
    ).all()
    given: dict[int, list[int]] = {uid: [] for uid in free}
    for item_id in pool:  # the least loaded collector with room takes the next-best item
        open_ = [u for u in free if free[u] > 0]
        if not open_:
            break
        uid = min(open_, key=lambda u: (load[u], u))
        given[uid].append(item_id)
        free[uid] -= 1
        load[uid] += 1
    for uid, ids in given.items():
        for start in range(0, len(ids), 1000):
            session.execute(
                update(WorkItem)
                .where(WorkItem.id.in_(ids[start : start + 1000]))
                .values(owner_id=uid, team_id=team_id)
                .execution_options(synchronize_session=False)
            )
    counts = {uid: len(ids) for uid, ids in given.items() if ids}
    audit.record(session, "worklist.balance", "Team", object_id=team_id, after={str(k): v for k, v in counts.items()})
    return counts


def set_collector(session: Session, user_id: int, capacity: int, away: bool) -> CollectorSetting:
    """Set a collector's capacity and presence. Going away puts their items back in the team's pool and
    rebalances the team."""
    user = _collector(session, user_id)
    if not 0 <= capacity <= 5000:
        raise ServiceError("capacity is 0 to 5,000 accounts", field="capacity")
    setting = session.get(CollectorSetting, user.id) or CollectorSetting(user_id=user.id)
    before = {"capacity": setting.capacity, "away": setting.away} if setting in session else None
    setting.capacity, setting.away = capacity, away
    session.add(setting)
    session.flush()
    audit.record(session, "collector.settings", user, before=before, after={"capacity": capacity, "away": away})
    if away:
        session.execute(
            update(WorkItem)
            .where(WorkItem.owner_id == user.id, WorkItem.state.in_(OPEN_STATES))
            .values(owner_id=None, team_id=user.team_id, claimed_by=None, claim_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        if user.team_id is not None:
            balance(session, user.team_id)
    return setting
