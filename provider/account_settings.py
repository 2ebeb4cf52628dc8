"""A signed-in staff user's own settings: the time zone they read times in (provider.formatting). Client users
read their client's zone and have no such setting."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from provider.core import audit
from provider.core.clock import now_utc
from provider.extensions import db
from provider.formatting import agency_timezone, timezone_names, valid_timezone

bp = Blueprint("account", __name__)


def zone_choices() -> list[str]:
    """The zones a user picks from, by region then city ("America/New_York")."""
    return sorted(z for z in timezone_names() if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/")))


@bp.route("/account/settings", methods=["GET", "POST"])
@login_required
def settings() -> Any:
    if current_user.is_client_user:
        abort(404)
    user = current_user._get_current_object()
    errors: dict[str, list[str]] = {}
    chosen = user.timezone or ""
    if request.method == "POST":
        chosen = (request.form.get("timezone") or "").strip()
        if chosen and not valid_timezone(chosen):
            errors["timezone"] = ["Choose a time zone from the list (for example Europe/Berlin)."]
        else:
            before = {"timezone": user.timezone}
            user.timezone = chosen or None
            audit.record(db.session, "user.settings", user, before=before, after={"timezone": user.timezone})
            db.session.commit()
            flash("Settings saved: times are shown in " + (user.timezone or agency_timezone()) + ".", "success")
            return redirect(url_for("account.settings"))
    page = render_template(
        "provider/settings.html",
        values={"timezone": chosen},
        errors=errors,
        zones=zone_choices(),
        agency_zone=agency_timezone(),
        now=now_utc(),
    )
    return page, (422 if errors else 200)
