"""Back office pages of the agency itself: home, reports landing, user and team admin, audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select, text
from sqlalchemy.orm import selectinload

from clients.models import Client
from provider import services
from provider.auth import home_for
from provider.core.audit import AuditEvent
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_visible_or_404
from provider.extensions import db
from provider.forms import kept_values, submit_form
from provider.models import Team, User
from provider.schemas import ALL_ROLES, TeamSchema, UserCreateSchema, UserUpdateSchema
from provider.ui import apply_sort, paginate

bp = Blueprint("provider", __name__, template_folder="templates")

USER_SORTS = {"name": User.name, "email": User.email, "role": User.role, "last_login": User.last_login_at}


@bp.get("/")
def home() -> Any:
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(home_for(current_user))


@bp.get("/healthz")
def healthz() -> Any:
    """Liveness + database check for load balancers (and the benchmarks' trivial-endpoint baseline)."""
    db.session.execute(text("SELECT 1"))
    return jsonify(status="ok")


@bp.get("/reports")
@require(Permission.REPORTS_READ)
def reports() -> Any:
    return redirect(url_for("reporting.dashboard"))  # the agency dashboard (provider/reporting/views.py)


# --- users -----------------------------------------------------------------------------------------


def _choices() -> dict[str, Any]:
    return {
        "roles": ALL_ROLES,
        "teams": db.session.scalars(select(Team).order_by(Team.name)).all(),
        "clients": db.session.scalars(select(Client).order_by(Client.name)).all(),
    }


@bp.get("/admin/users")
@require(Permission.USERS_MANAGE)
def users() -> Any:
    stmt = select(User)
    search = request.args.get("q", "").strip()
    role = request.args.get("role", "")
    if search:
        like = f"%{search.lower()}%"
        stmt = stmt.where(func.lower(User.name).like(like) | func.lower(User.email).like(like))
    if role in ALL_ROLES:
        stmt = stmt.where(User.role == role)
    stmt = apply_sort(stmt, USER_SORTS, "name", tiebreak=User.id)
    clients = {c.id: c for c in db.session.scalars(select(Client))}
    teams = {t.id: t for t in db.session.scalars(select(Team))}
    return render_template(
        "provider/users.html",
        page=paginate(stmt),
        search=search,
        role=role,
        roles=ALL_ROLES,
        clients=clients,
        teams=teams,
    )


@bp.route("/admin/users/new", methods=["GET", "POST"])
@require(Permission.USERS_MANAGE)
def create_user() -> Any:
    if request.method == "GET":
        return render_template("provider/user_form.html", user=None, values={"active": True}, errors={}, **_choices())
    user, errors = submit_form(UserCreateSchema(), request.form, lambda data: services.create_user(db.session, data))
    if user is None:
        values = kept_values(request.form)
        return render_template("provider/user_form.html", user=None, values=values, errors=errors, **_choices()), 422
    flash(f"User {user.email} created.", "success")
    return redirect(url_for("provider.users"))


@bp.route("/admin/users/<int:user_id>", methods=["GET", "POST"])
@require(Permission.USERS_MANAGE)
def edit_user(user_id: int) -> Any:
    user = db.get_or_404(User, user_id)
    if request.method == "GET":
        values = {"name": user.name, "role": user.role, "team_id": user.team_id, "active": user.active}
        return render_template("provider/user_form.html", user=user, values=values, errors={}, **_choices())
    saved, errors = submit_form(
        UserUpdateSchema(),
        request.form,
        lambda data: services.update_user(db.session, user, data, acting_user_id=current_user.id),
    )
    if saved is None:
        values = kept_values(request.form)
        return render_template("provider/user_form.html", user=user, values=values, errors=errors, **_choices()), 422
    flash(f"User {user.email} saved.", "success")
    return redirect(url_for("provider.users"))


# --- teams -----------------------------------------------------------------------------------------


@bp.route("/admin/teams", methods=["GET", "POST"])
@require(Permission.USERS_MANAGE)
def teams() -> Any:
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        team, errors = submit_form(
            TeamSchema(), request.form, lambda data: services.create_team(db.session, data["name"])
        )
        if team is not None:
            flash(f"Team {team.name} created.", "success")
            return redirect(url_for("provider.team", team_id=team.id))
    all_teams = db.session.scalars(
        select(Team).options(selectinload(Team.members), selectinload(Team.clients)).order_by(Team.name)
    ).all()
    status = 422 if errors else 200
    return render_template("provider/teams.html", teams=all_teams, errors=errors, values=request.form), status


@bp.route("/admin/teams/<int:team_id>", methods=["GET", "POST"])
@require(Permission.USERS_MANAGE)
def team(team_id: int) -> Any:
    team = db.get_or_404(Team, team_id, options=[selectinload(Team.members), selectinload(Team.clients)])
    all_clients = db.session.scalars(select(Client).order_by(Client.name)).all()
    if request.method == "POST":
        valid = {c.id for c in all_clients}
        chosen = {int(v) for v in request.form.getlist("client_id") if v.isdigit()}
        unknown = chosen - valid
        if unknown:
            flash(f"Unknown client ids: {', '.join(map(str, sorted(unknown)))}. Nothing was changed.", "error")
        else:
            services.set_team_clients(db.session, team, chosen)
            db.session.commit()
            flash(f"Clients of {team.name} saved.", "success")
            return redirect(url_for("provider.team", team_id=team.id))
    granted = {c.id for c in team.clients}
    return render_template("provider/team.html", team=team, clients=all_clients, granted=granted)


# --- audit -----------------------------------------------------------------------------------------


@bp.get("/admin/audit")
@require(Permission.AUDIT_READ)
def audit_log() -> Any:
    stmt = select(AuditEvent)
    action = request.args.get("action", "").strip()
    client_id = request.args.get("client", type=int)
    if action:
        stmt = stmt.where(AuditEvent.action.like(f"{action}%"))
    if client_id:
        stmt = stmt.where(AuditEvent.client_id == get_visible_or_404(db.session, Client, client_id).id)
    stmt = stmt.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    clients = {c.id: c for c in db.session.scalars(select(Client))}
    from provider.audit_text import describe

    page = paginate(stmt)
    return render_template(
        "provider/audit.html", page=page, rows=describe(page.items), action=action, client_id=client_id, clients=clients
    )
