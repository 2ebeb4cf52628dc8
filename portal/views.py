"""The client portal: a client user sees their own company only (scope = their client)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from clients import import_views, ledger_queries, queries
from clients.ledger_queries import account_context
from clients.models import Client, Debtor
from provider import services
from provider.core.clock import today_utc
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, Role, require
from provider.core.tenancy import get_for_client
from provider.extensions import db
from provider.forms import kept_values, submit_form
from provider.models import User
from provider.schemas import PortalUserSchema
from provider.ui import apply_sort, paginate

bp = Blueprint("portal", __name__, url_prefix="/portal", template_folder="templates")


def _my_client() -> Client:
    client = db.session.get(Client, current_user.client_id)
    if client is None:  # scope and binding disagree: never show anything
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
        "portal/index.html",
        client=client,
        debtor_total=queries.debtor_count(client.id),
        segments=segments,
        agings=ledger_queries.aging(client.id, today_utc()),
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
    debtor = get_for_client(db.session, Debtor, debtor_id, client.id)
    return render_template("portal/debtor.html", client=client, debtor=debtor, **account_context(client.id, debtor.id))


@bp.get("/users")
@require(Permission.PORTAL)
def users() -> Any:
    client = _my_client()
    people = db.session.scalars(select(User).where(User.client_id == client.id).order_by(User.name)).all()
    return render_template("portal/users.html", client=client, people=people)


@bp.route("/users/new", methods=["GET", "POST"])
@require(Permission.PORTAL_USERS_MANAGE)
def create_user() -> Any:
    """A client admin invites a colleague: always into their own company, always a client role."""
    client = _my_client()
    values: dict[str, Any] = {"role": Role.CLIENT_VIEWER.value}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        user, errors = submit_form(
            PortalUserSchema(),
            request.form,
            lambda data: services.create_user(db.session, {**data, "client_id": client.id, "team_id": None}),
        )
        if user is not None:
            flash(f"{user.name} can now sign in as {user.email}.", "success")
            return redirect(url_for("portal.users"))
        values = kept_values(request.form)
    status = 422 if errors else 200
    return render_template("portal/user_form.html", client=client, values=values, errors=errors), status


@bp.post("/users/<int:user_id>/access")
@require(Permission.PORTAL_USERS_MANAGE)
def set_access(user_id: int) -> Any:
    """Disable or re-enable a colleague's sign-in (never one's own)."""
    client = _my_client()
    person = db.session.get(User, user_id)
    if person is None or person.client_id != client.id:
        abort(404)
    enable = request.form.get("active") == "1"
    try:
        services.update_user(db.session, person, {"active": enable}, acting_user_id=current_user.id)
        db.session.commit()
        flash(f"{person.name} {'can sign in again' if enable else 'can no longer sign in'}.", "success")
    except ServiceError as exc:
        db.session.rollback()
        flash(f"Not changed: {exc}.", "error")
    return redirect(url_for("portal.users"))


@bp.route("/placements", methods=["GET", "POST"])
@require(Permission.PORTAL_PLACE)
def imports() -> Any:
    return import_views.imports_page(_my_client(), import_views.portal_urls(), "clients/imports.html")


@bp.get("/placements/<int:batch_id>")
@require(Permission.PORTAL_PLACE)
def import_batch(batch_id: int) -> Any:
    return import_views.batch_page(_my_client(), batch_id, import_views.portal_urls(), "clients/import_batch.html")
