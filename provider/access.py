"""Which clients a signed-in user may see: the request's tenant scope (DESIGN §2)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from provider.core.permissions import Role
from provider.core.tenancy import TenantScope
from provider.extensions import db
from provider.models import TeamClient


def scope_for_user(user: Any) -> TenantScope:
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return TenantScope.nothing()
    if user.is_client_user:
        return TenantScope.single(user.client_id)
    if user.role in (Role.ADMIN, Role.MANAGER):
        return TenantScope.agency()
    if user.role == Role.COLLECTOR and user.team_id is not None:
        ids = db.session.scalars(select(TeamClient.client_id).where(TeamClient.team_id == user.team_id)).all()
        return TenantScope.granted(ids)
    return TenantScope.nothing()
