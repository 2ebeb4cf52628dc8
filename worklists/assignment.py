"""Who works which accounts: assignment by client, segment or rule; balancing by capacity; absences.

An item's `owner_id` is a collector; `team_id` (owner NULL) puts it in a team's pool; both NULL is the
client's general pool (any collector of a team granted the client). Set-based UPDATEs throughout.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import and_, exists, func, select, update
from sqlalchemy.orm import Session

from clients.models import Debtor
from provider.core import audit
from provider.core.clock import today_utc
from provider.core.errors import ServiceError
from provider.core.money import Money, MoneyError, validate_currency
from provider.core.permissions import Role
from provider.models import Team, TeamClient, User
from worklists import distribution
from worklists.models import AssignmentRule, CollectorSetting, ItemState, WorkItem

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


def set_collector(
    session: Session,
    user_id: int,
    capacity: int,
    away: bool,
    away_from: date | None = None,
    away_until: date | None = None,
) -> CollectorSetting:
    """Set a collector's capacity and presence (away now, or a planned absence from/until). A collector away
    today hands their open items back to the team, whose present collectors share them at once (the nightly
    rebuild does the same when a planned absence starts)."""
    user = _collector(session, user_id)
    if not 0 <= capacity <= 5000:
        raise ServiceError("capacity is 0 to 5,000 accounts", field="capacity")
    if away_until is not None and away_from is None:
        raise ServiceError("give the first day of the absence", field="away_from")
    if away_from is not None and away_until is not None and away_until < away_from:
        raise ServiceError("the absence ends before it starts", field="away_until")
    setting = session.get(CollectorSetting, user.id) or CollectorSetting(user_id=user.id)
    fields = ("capacity", "away", "away_from", "away_until")
    before = {f: _plain(getattr(setting, f)) for f in fields} if setting in session else None
    setting.capacity, setting.away, setting.away_from, setting.away_until = capacity, away, away_from, away_until
    session.add(setting)
    session.flush()
    audit.record(
        session, "collector.settings", user, before=before, after={f: _plain(getattr(setting, f)) for f in fields}
    )
    today = today_utc()
    if setting.is_away(today) and user.team_id is not None:
        clients = list(session.scalars(select(TeamClient.client_id).where(TeamClient.team_id == user.team_id)))
        distribution.release_orphans(session, clients, today)
        distribution.hand_out(session, clients, today)
    return setting


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _rule_values(session: Session, data: dict[str, Any]) -> dict[str, Any]:
    """A rule's columns from the form's values, validated. Refused when the team does not exist or does not work
    the rule's client, or when a balance band has no currency, an amount that is not one, or ends below its
    start. Amounts arrive as text in major units."""
    if session.get(Team, data["team_id"]) is None:
        raise ServiceError("choose a team", field="team_id")
    client_id = data.get("client_id")
    if client_id is not None and not _team_has_client(session, data["team_id"], client_id):
        raise ServiceError("that team does not work this client", field="client_id")
    band = [data.get("min_overdue"), data.get("max_overdue")]
    currency = (data.get("currency") or "").strip().upper() or None
    bounds: list[int | None] = [None, None]
    if any(band):
        if currency is None:
            raise ServiceError("give the currency of the balance band", field="currency")
        try:
            currency = validate_currency(currency)
            bounds = [Money.parse(b, currency).minor if b else None for b in band]
        except MoneyError as exc:
            raise ServiceError(str(exc), field="min_overdue") from None
        if bounds[0] is not None and bounds[1] is not None and bounds[1] < bounds[0]:
            raise ServiceError("the band's upper end is below its lower end", field="max_overdue")
    return {
        "team_id": data["team_id"],
        "position": data.get("position", 100),
        "client_id": client_id,
        "segment": (data.get("segment") or "").strip() or None,
        "language": (data.get("language") or "").strip().lower() or None,
        "currency": currency if any(band) else None,
        "min_overdue_minor": bounds[0],
        "max_overdue_minor": bounds[1],
    }


def add_rule(session: Session, data: dict[str, Any]) -> AssignmentRule:
    """A team's assignment rule (audited), validated as `_rule_values` says."""
    rule = AssignmentRule(**_rule_values(session, data))
    session.add(rule)
    session.flush()
    audit.record(session, "worklist.rule_added", rule, after=audit.snapshot(rule, RULE_FIELDS))
    return rule


def update_rule(session: Session, rule_id: int, data: dict[str, Any]) -> AssignmentRule:
    """Change a rule (audited with what changed), validated like a new one; nothing changes when refused.
    Applies from the next worklist rebuild, like a new rule."""
    rule = session.get(AssignmentRule, rule_id)
    if rule is None:
        raise ServiceError("no such rule", field="rule_id")
    values = _rule_values(session, data)
    before = audit.snapshot(rule, RULE_FIELDS)
    for name, value in values.items():
        setattr(rule, name, value)
    session.flush()
    audit.record(session, "worklist.rule_changed", rule, before=before, after=audit.snapshot(rule, RULE_FIELDS))
    return rule


RULE_FIELDS = (
    "team_id",
    "position",
    "client_id",
    "segment",
    "language",
    "currency",
    "min_overdue_minor",
    "max_overdue_minor",
)


def rule_form_values(rule: AssignmentRule) -> dict[str, str]:
    """A rule as its form shows it (amounts in major units)."""

    def amount(minor: int | None) -> str:
        return "" if minor is None or rule.currency is None else f"{Money(minor, rule.currency).amount:f}"

    return {
        "team_id": str(rule.team_id),
        "position": str(rule.position),
        "client_id": "" if rule.client_id is None else str(rule.client_id),
        "segment": rule.segment or "",
        "language": rule.language or "",
        "currency": rule.currency or "",
        "min_overdue": amount(rule.min_overdue_minor),
        "max_overdue": amount(rule.max_overdue_minor),
    }


def delete_rule(session: Session, rule_id: int) -> None:
    rule = session.get(AssignmentRule, rule_id)
    if rule is None:
        raise ServiceError("no such rule", field="rule_id")
    audit.record(session, "worklist.rule_removed", rule, before=audit.snapshot(rule, RULE_FIELDS))
    session.delete(rule)
    session.flush()


def rules(session: Session) -> list[AssignmentRule]:
    return list(session.scalars(select(AssignmentRule).order_by(AssignmentRule.position, AssignmentRule.id)))
