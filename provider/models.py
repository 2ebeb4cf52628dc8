"""People of the platform: agency staff (admin, manager, collector in a team) and client users."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_login import UserMixin
from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clients.models import Client
from provider.core.db import UTCDateTime, created_at, intpk
from provider.core.permissions import CLIENT_ROLES, STAFF_ROLES, Permission, Role, has_permission
from provider.extensions import db


def _roles_sql(roles: frozenset[Role]) -> str:
    return ", ".join(repr(r.value) for r in sorted(roles))


class Team(db.Model):
    """A team of collectors. Teams are granted clients; a collector sees the clients of their team."""

    __tablename__ = "teams"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(80), unique=True)
    created_at: Mapped[created_at]

    members: Mapped[list[User]] = relationship(back_populates="team", order_by="User.name")
    clients: Mapped[list[Client]] = relationship(secondary="team_clients", order_by="Client.name", viewonly=True)


class TeamClient(db.Model):
    """Grant: this team works this client's accounts."""

    __tablename__ = "team_clients"
    __table_args__ = (Index(None, "client_id"),)

    team_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("teams.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[created_at]


class User(UserMixin, db.Model):
    """Staff user (client_id NULL) or client user (bound to exactly one client)."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"role IN ({_roles_sql(STAFF_ROLES | CLIENT_ROLES)})", name="role"),
        CheckConstraint(
            f"(role IN ({_roles_sql(STAFF_ROLES)}) AND client_id IS NULL)"
            f" OR (role IN ({_roles_sql(CLIENT_ROLES)}) AND client_id IS NOT NULL AND team_id IS NULL)",
            name="kind_binding",
        ),
        CheckConstraint("role <> 'collector' OR team_id IS NOT NULL", name="collector_team"),
        Index(None, "client_id"),
        Index(None, "team_id"),
    )

    id: Mapped[intpk]
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    team_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("teams.id", ondelete="RESTRICT"))
    client_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("clients.id", ondelete="RESTRICT"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[created_at]
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # two-factor sign-in (provider.two_factor): TOTP secret, the last 30-second step accepted (a code is good
    # once), argon2 hashes of the unused recovery codes
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    recovery_codes: Mapped[list[Any] | None] = mapped_column(JSON)
    # the IANA zone the user reads times in (provider.formatting); None: the agency's (AGENCY_TIMEZONE)
    timezone: Mapped[str | None] = mapped_column(String(64))

    team: Mapped[Team | None] = relationship(back_populates="members")
    client: Mapped[Client | None] = relationship()

    AUDIT_FIELDS = ("email", "name", "role", "team_id", "client_id", "active")

    @property
    def is_active(self) -> bool:  # Flask-Login
        return bool(self.active)

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def is_client_user(self) -> bool:
        return self.role in CLIENT_ROLES

    def can(self, permission: Permission) -> bool:
        return has_permission(self, permission)


class AuthSession(db.Model):
    """A server-side login session. The cookie carries a random token; we store its SHA-256.

    A new row (new token) is made at every login, so the session id changes; logout revokes it, so a
    copied cookie is useless afterwards.
    """

    __tablename__ = "auth_sessions"
    __table_args__ = (Index(None, "user_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[created_at]
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()
