"""Collector worklists. Until accounts carry balances (ledger issue) this shows who works which clients."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from provider.core.permissions import Permission, require
from provider.extensions import db
from provider.models import Team

bp = Blueprint("worklists", __name__, template_folder="templates")


@bp.get("/worklists")
@require(Permission.WORKLISTS_WORK)
def index() -> Any:
    stmt = select(Team).options(selectinload(Team.members), selectinload(Team.clients)).order_by(Team.name)
    if not current_user.can(Permission.WORKLISTS_MANAGE):
        stmt = stmt.where(Team.id == current_user.team_id)
    return render_template("worklists/index.html", teams=db.session.scalars(stmt).all())
