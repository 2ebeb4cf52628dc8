"""Writes on users, teams and team grants. Services validate, flush and audit; the caller commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from provider.core import audit
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.passwords import hash_password
from provider.core.permissions import CLIENT_ROLES, Role
from provider.models import AuthSession, Team, TeamClient, User


def _check_binding(role: str, team_id: int | None, client_id: int | None) -> None:
    if role in CLIENT_ROLES:
        if client_id is None:
            raise ServiceError("a client user must belong to a client", field="client_id")
        if team_id is not None:
            raise ServiceError("client users do not belong to a collector team", field="team_id")
    else:
        if client_id is not None:
            raise ServiceError("staff users are not bound to a client", field="client_id")
        if role == Role.COLLECTOR and team_id is None:
            raise ServiceError("a collector must belong to a team", field="team_id")


def create_user(session: Session, data: dict[str, Any]) -> User:
    """Create a staff or client user with an argon2id password hash; e-mail addresses are unique."""
    email = data["email"].strip().lower()
    if session.scalar(select(User.id).where(func.lower(User.email) == email)):
        raise ServiceError(f"a user with e-mail {email} already exists", field="email")
    _check_binding(data["role"], data.get("team_id"), data.get("client_id"))
    try:
        password_hash = hash_password(data["password"])
    except ValueError as exc:
        raise ServiceError(str(exc), field="password") from None
    user = User(
        email=email,
        name=data["name"],
        role=data["role"],
        team_id=data.get("team_id"),
        client_id=data.get("client_id"),
        active=data.get("active", True),
        password_hash=password_hash,
    )
    session.add(user)
    session.flush()
    audit.record(session, "user.create", user, client_id=user.client_id, after=audit.snapshot(user, User.AUDIT_FIELDS))
    return user


def update_user(session: Session, user: User, data: dict[str, Any], acting_user_id: int | None = None) -> User:
    """Change name, role, team, active flag or password. Deactivation revokes the user's sessions.

    Nobody can disable themselves or change their own role (an agency must never lock out its last admin
    by accident).
    """
    before = audit.snapshot(user, User.AUDIT_FIELDS)
    role = data.get("role", user.role)
    if acting_user_id == user.id and (data.get("active", True) is False or role != user.role):
        raise ServiceError("you cannot disable yourself or change your own role")
    team_id = None if role in CLIENT_ROLES else data.get("team_id", user.team_id)
    if (role in CLIENT_ROLES) != (user.role in CLIENT_ROLES):
        raise ServiceError("a staff user cannot become a client user or the other way round", field="role")
    _check_binding(role, team_id, user.client_id)
    user.name = data.get("name", user.name)
    user.role, user.team_id = role, team_id
    if "active" in data:
        user.active = bool(data["active"])
    if data.get("password"):
        try:
            user.password_hash = hash_password(data["password"])
        except ValueError as exc:
            raise ServiceError(str(exc), field="password") from None
    if not user.active or data.get("password"):
        session.execute(
            update(AuthSession)
            .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now_utc())
        )
    session.flush()
    after = audit.snapshot(user, User.AUDIT_FIELDS)
    changes_password = bool(data.get("password"))
    if before != after or changes_password:
        after = {**after, "password": "changed"} if changes_password else after
        audit.record(session, "user.update", user, client_id=user.client_id, before=before, after=after)
    return user


def create_team(session: Session, name: str) -> Team:
    name = name.strip()
    if not name:
        raise ServiceError("a team needs a name", field="name")
    if session.scalar(select(Team.id).where(Team.name == name)):
        raise ServiceError(f"a team named {name} already exists", field="name")
    team = Team(name=name)
    session.add(team)
    session.flush()
    audit.record(session, "team.create", team, after={"name": name})
    return team


def set_team_clients(session: Session, team: Team, client_ids: set[int]) -> Team:
    """Replace the set of clients a team works; collectors of the team see exactly these clients."""
    current = set(session.scalars(select(TeamClient.client_id).where(TeamClient.team_id == team.id)))
    for cid in client_ids - current:
        session.add(TeamClient(team_id=team.id, client_id=cid))
    removed = current - client_ids
    if removed:
        session.execute(delete(TeamClient).where(TeamClient.team_id == team.id, TeamClient.client_id.in_(removed)))
    session.flush()
    if client_ids != current:
        audit.record(
            session, "team.clients", team, before={"clients": sorted(current)}, after={"clients": sorted(client_ids)}
        )
    return team
