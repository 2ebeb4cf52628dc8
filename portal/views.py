"""The client portal: a client user sees their own company only (scope = their client)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template, request
from flask_login import current_user
from sqlalchemy import func, select

from clients import queries
from clients.models import Client, Debtor
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_for_client
from provider.extensions import db
from provider.models import User
from provider.ui import apply_sort, paginate

bp = Blueprint("portal", __name__, url_prefix="/portal", template_folder="templates")


def _my_client() -> Client:
    client = db.session.get(Client, current_user.client_id)
    if client is None:  # scope and binding disagree: never show anything
        from flask import abort

        abort(404)
    return client


@bp.get("/")
@require(Permission.PORTAL)
def index() -> Any:
    client = _my_client()
    segments = db.session.execute(
        select(Debtor.segment, func.count(Debtor.id))
        .where(Debtor.client_id == client.id)
        .group_by(Debtor.segment)
        .order_by(func.count(Debtor.id).desc())
    ).all()
    return render_template(
        "portal/index.html", client=client, debtor_total=queries.debtor_count(client.id), segments=segments
    )


@bp.get("/debtors")
@require(Permission.PORTAL)
def debtors() -> Any:
    client = _my_client()
    search = request.args.get("q", "").strip()
    stmt = apply_sort(queries.debtors_of(client.id, search), queries.DEBTOR_SORTS, "name", tiebreak=Debtor.id)
    return render_template("portal/debtors.html", client=client, page=paginate(stmt), search=search)


@bp.get("/debtors/<int:debtor_id>")
@require(Permission.PORTAL)
def debtor(debtor_id: int) -> Any:
    client = _my_client()
    return render_template(
        "portal/debtor.html", client=client, debtor=get_for_client(db.session, Debtor, debtor_id, client.id)
    )


@bp.get("/users")
@require(Permission.PORTAL)
def users() -> Any:
    client = _my_client()
    people = db.session.scalars(select(User).where(User.client_id == client.id).order_by(User.name)).all()
    return render_template("portal/users.html", client=client, people=people)
