"""Portal administration of a client's own company: people (invite with a role, change role, disable),
who receives the monthly report, and the audit trail of the client's data. Same blueprint as
`portal.views`; every lookup is inside the signed-in user's client (another client's user is a 404)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from portal import queries, services
from portal.views import _my_client, bp
from provider import services as provider_services
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, Role, require
from provider.extensions import db
from provider.forms import kept_values, submit_form
from provider.models import User
from provider.schemas import PortalUserSchema
from provider.ui import paginate

ROLE_CHOICES = [
    (Role.CLIENT_VIEWER.value, "Viewer (read only)"),
    (Role.CLIENT_ADMIN.value, "Administrator (also manages people, placements and recalls)"),
]


def _colleague(user_id: int) -> User:
    client = _my_client()
    person = db.session.get(User, user_id)
    if person is None or person.client_id != client.id:
        abort(404)
    return person


def _back() -> Any:
    return redirect(url_for("portal.users"))


@bp.get("/users")
@require(Permission.PORTAL)
def users() -> Any:
    client = _my_client()
    people = db.session.scalars(select(User).where(User.client_id == client.id).order_by(User.name, User.id)).all()
    return render_template(
        "portal/users.html",
        client=client,
        people=people,
        receives=queries.report_recipients(client.id),
        role_choices=ROLE_CHOICES,
    )


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
            lambda data: provider_services.create_user(db.session, {**data, "client_id": client.id, "team_id": None}),
        )
        if user is not None:
            flash(f"{user.name} can now sign in as {user.email}.", "success")
            return _back()
        values = kept_values(request.form)
    status = 422 if errors else 200
    return render_template(
        "portal/user_form.html", client=client, values=values, errors=errors, role_choices=ROLE_CHOICES
    ), status


@bp.post("/users/<int:user_id>/access")
@require(Permission.PORTAL_USERS_MANAGE)
def set_access(user_id: int) -> Any:
    """Disable or re-enable a colleague's sign-in (never one's own)."""
    person = _colleague(user_id)
    enable = request.form.get("active") == "1"
    try:
        provider_services.update_user(db.session, person, {"active": enable}, acting_user_id=current_user.id)
        db.session.commit()
        flash(f"{person.name} {'can sign in again' if enable else 'can no longer sign in'}.", "success")
    except ServiceError as exc:
        db.session.rollback()
        flash(f"Not changed: {exc}.", "error")
    return _back()


@bp.post("/users/<int:user_id>/role")
@require(Permission.PORTAL_USERS_MANAGE)
def set_role(user_id: int) -> Any:
    """Make a colleague a viewer or an administrator (never oneself, never a staff role)."""
    person = _colleague(user_id)
    try:
        services.change_role(db.session, person, request.form.get("role", ""), acting_user_id=current_user.id)
        db.session.commit()
        label = dict(ROLE_CHOICES)[person.role].split(" (")[0].lower()
        flash(f"{person.name} is now {'an' if label[0] in 'aeiou' else 'a'} {label}.", "success")
    except ServiceError as exc:
        db.session.rollback()
        flash(f"Not changed: {exc}.", "error")
    return _back()


@bp.post("/users/<int:user_id>/reports")
@require(Permission.PORTAL)
def set_reports(user_id: int) -> Any:
    """Opt in or out of the monthly report: anyone for themselves, an administrator for any colleague."""
    person = _colleague(user_id)
    if person.id != current_user.id and not current_user.can(Permission.PORTAL_USERS_MANAGE):
        abort(404)
    receives = request.form.get("receives") == "1"
    try:
        changed = services.set_receives_reports(db.session, person, receives)
        db.session.commit()
        if changed:
            who = "You" if person.id == current_user.id else person.name
            flash(f"{who} will {'now' if receives else 'no longer'} receive the monthly report.", "success")
    except ServiceError as exc:
        db.session.rollback()
        flash(f"Not changed: {exc}.", "error")
    return _back()


@bp.get("/audit")
@require(Permission.PORTAL_AUDIT)
def audit() -> Any:
    """The audit trail of the client's data (only this client's events; never the agency's internal work)."""
    client = _my_client()
    family = request.args.get("family", "").strip()
    family = family if family in queries.AUDIT_FAMILIES else ""
    page = paginate(queries.audit_trail(client.id, family))
    own = set(db.session.scalars(select(User.id).where(User.client_id == client.id)))
    from provider.audit_text import describe

    return render_template(
        "portal/audit.html",
        client=client,
        page=page,
        rows=describe(page.items, own=own),
        family=family,
        families=queries.AUDIT_FAMILIES,
    )
