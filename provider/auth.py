"""Sign in and sign out: argon2id, server-side sessions regenerated at login, rate-limited failures."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from provider.core import audit
from provider.core.clock import now_utc
from provider.core.passwords import needs_rehash, verify_password
from provider.extensions import db, limiter, login_manager
from provider.models import AuthSession, User

bp = Blueprint("auth", __name__)
SESSION_LIFETIME = timedelta(hours=12)
FAILED = 401


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The user of this request, only while the server-side session behind the cookie is valid."""
    token = session.get("sid")
    if not token:
        return None
    row = db.session.get(AuthSession, _token_hash(token), options=[joinedload(AuthSession.user)])  # one query
    if row is None or row.revoked_at is not None or str(row.user_id) != user_id:
        return None
    if now_utc() - row.created_at > SESSION_LIFETIME or not row.user.active:
        return None
    return row.user


def _account_ip_key() -> str:
    return f"{(request.form.get('email') or '').strip().lower()}|{get_remote_address()}"


def _login_limit() -> str:
    return f"{current_app.config['LOGIN_RATE_LIMIT']}/minute"


def _failed(response: Any) -> bool:
    return response.status_code in (401, 403)


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


def home_for(user: User) -> str:
    return url_for("portal.index") if user.is_client_user else url_for("clients.index")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, key_func=_account_ip_key, methods=["POST"], deduct_when=_failed)
@limiter.limit("60/minute", methods=["POST"], deduct_when=_failed)
def login() -> Any:
    if current_user.is_authenticated:
        return redirect(home_for(current_user))
    form = LoginForm()
    if request.method == "GET":
        return render_template("auth/login.html", form=form)
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form), 400

    email = form.email.data.strip().lower()
    user = db.session.scalar(select(User).where(func.lower(User.email) == email))
    if not verify_password(user.password_hash if user else None, form.password.data) or user is None:
        form.form_errors.append("Incorrect email or password.")
        return render_template("auth/login.html", form=form), FAILED
    if not user.active:
        form.form_errors.append("This account has been disabled. Ask your administrator to re-enable it.")
        return render_template("auth/login.html", form=form), 403

    next_url = _safe_next(request.args.get("next"))
    if needs_rehash(user.password_hash):
        from provider.core.passwords import hash_password

        user.password_hash = hash_password(form.password.data)
    from provider.two_factor import begin_second_step, enrolled

    if enrolled(user):  # the password opens no session yet: the code from the authenticator app does
        db.session.commit()
        return begin_second_step(user, next_url)
    start_session(user)
    db.session.commit()
    return redirect(next_url or home_for(user))


def start_session(user: User) -> str:
    """Drop everything in the pre-login session, open a new server-side session, log the user in."""
    session.clear()
    token = secrets.token_urlsafe(32)
    now = now_utc()
    db.session.add(
        AuthSession(
            token_hash=_token_hash(token),
            user_id=user.id,
            last_seen_at=now,
            ip=(get_remote_address() or "")[:64],
            user_agent=(request.user_agent.string or "")[:300],
        )
    )
    session["sid"] = token
    login_user(user)
    user.last_login_at = now
    with audit.acting_as(audit.Actor(user.id, user.email)):
        audit.record(db.session, "user.login", user, client_id=user.client_id)
    return token


def current_token_hash() -> str | None:
    token = session.get("sid")
    return _token_hash(token) if token else None


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Any:
    token = session.get("sid")
    if token:
        row = db.session.get(AuthSession, _token_hash(token), options=[joinedload(AuthSession.user)])  # one query
        if row is not None and row.revoked_at is None:
            row.revoked_at = now_utc()
    audit.record(db.session, "user.logout", current_user._get_current_object(), client_id=current_user.client_id)
    db.session.commit()
    logout_user()
    session.clear()
    flash("You have been signed out.", "info")
    return redirect(url_for("auth.login"))
