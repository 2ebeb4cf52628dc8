"""Two-factor sign-in (TOTP, RFC 6238, with `pyotp`) and the user's own sign-in sessions.

- A user with two-factor on signs in in two steps: the password opens no session; it leaves the user's id in the
  (signed) pre-login cookie for five minutes, and `/login/code` asks for a 6-digit code from the authenticator
  app or one of ten recovery codes. Only then is the server-side session opened. A code is good once (the last
  accepted time step is stored) and a recovery code is good once (its argon2 hash is dropped when used).
- Failed codes count against the same per-account-and-address limit as failed passwords (LOGIN_RATE_LIMIT).
- Roles in REQUIRE_2FA_ROLES (by default in production: agency admins, managers and client admins) who have not
  enrolled are signed in but sent to the enrolment page, and to nothing else, until they have.
- Enrolment shows a QR code (SVG drawn by `segno`) and the secret as text, and takes effect only when a code from
  the app is entered; the recovery codes are then shown once.
- `/account/sessions` lists the user's live sessions (started, last seen, address, browser) and ends any of them.
"""

from __future__ import annotations

import io
import secrets
import time
from datetime import timedelta
from typing import Any

import pyotp
import segno
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy import select

from provider.core import audit
from provider.core.clock import now_utc
from provider.core.passwords import hash_password, verify_password
from provider.extensions import db, limiter
from provider.models import AuthSession, User

bp = Blueprint("two_factor", __name__)
ISSUER = "AR Ops"
PENDING_SECONDS = 300
RECOVERY_CODES = 10
ENROLMENT_ENDPOINTS = frozenset(
    {"two_factor.setup", "two_factor.sessions", "two_factor.end_session", "auth.logout", "static"}
)


# --- the rules -----------------------------------------------------------------------------------------


def required_for(user: User) -> bool:
    return user.role in current_app.config.get("REQUIRE_2FA_ROLES", frozenset())


def enrolled(user: User) -> bool:
    return bool(user.totp_secret and user.totp_enabled_at)


def _step(at: float | None = None) -> int:
    return int((time.time() if at is None else at) // 30)


def verify_code(user: User, code: str) -> bool:
    """A current TOTP code (one step of clock drift either way), never one already used; or an unused recovery
    code, which is then used up. Flushes the change."""
    code = "".join(code.split()).replace("-", "").lower()
    if not enrolled(user) or not code:
        return False
    if code.isdigit() and len(code) == 6:
        totp = pyotp.TOTP(user.totp_secret or "")
        now = _step()
        for step in (now, now - 1, now + 1):
            if step > (user.totp_last_step or 0) and secrets.compare_digest(totp.at(step * 30), code):
                user.totp_last_step = step
                db.session.flush()
                return True
        return False
    for stored in list(user.recovery_codes or []):
        if verify_password(stored, code):
            user.recovery_codes = [h for h in (user.recovery_codes or []) if h != stored]
            db.session.flush()
            audit.record(db.session, "user.recovery_code_used", user, client_id=user.client_id)
            return True
    return False


def new_recovery_codes(user: User) -> list[str]:
    """Ten fresh codes (shown once); only their argon2 hashes are kept."""
    codes = [secrets.token_hex(6) for _ in range(RECOVERY_CODES)]  # 12 hex characters each
    user.recovery_codes = [hash_password(c) for c in codes]
    return [f"{c[:4]}-{c[4:8]}-{c[8:]}" for c in codes]


def qr_svg(uri: str) -> Markup:
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=False, svgns=True, title="QR code")
    return Markup(out.getvalue().decode())  # noqa: S704 - segno's own SVG of a URI we built


# --- sign-in, second step ------------------------------------------------------------------------------


def begin_second_step(user: User, next_url: str | None) -> Any:
    """Called by the login view once the password is right: remember who, for a few minutes, and ask."""
    session.clear()
    session["2fa_user"] = user.id
    session["2fa_since"] = int(time.time())
    session["2fa_next"] = next_url
    return redirect(url_for("two_factor.verify"))


def _pending_user() -> User | None:
    user_id, since = session.get("2fa_user"), session.get("2fa_since", 0)
    if not user_id or time.time() - since > PENDING_SECONDS:
        return None
    user = db.session.get(User, user_id)
    return user if user is not None and user.active else None


def _pending_key() -> str:
    return f"{session.get('2fa_user')}|{get_remote_address()}"


def _login_limit() -> str:
    return f"{current_app.config['LOGIN_RATE_LIMIT']}/minute"


def _failed(response: Any) -> bool:
    return response.status_code in (401, 403)


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_login_limit, key_func=_pending_key, methods=["POST"], deduct_when=_failed)
@limiter.limit("60/minute", methods=["POST"], deduct_when=_failed)
def verify() -> Any:
    from provider.auth import home_for, start_session

    user = _pending_user()
    if user is None:
        session.clear()
        flash("Sign in again: the sign-in was not finished within five minutes.", "info")
        return redirect(url_for("auth.login"))
    if request.method == "GET":
        return render_template("auth/two_factor_verify.html", error=None)
    code = (request.form.get("code") or "")[:40]
    if not verify_code(user, code):
        db.session.commit()  # nothing changed but the audit of a used recovery code would have
        return render_template(
            "auth/two_factor_verify.html", error="That code is not right, or it was used already."
        ), 401
    next_url = session.get("2fa_next")
    start_session(user)
    db.session.commit()
    left = len(user.recovery_codes or [])
    if left <= 3:
        flash(f"{left} recovery codes left: make new ones on the two-factor page.", "info")
    return redirect(next_url or home_for(user))


# --- enrolment -----------------------------------------------------------------------------------------


@bp.route("/account/two-factor", methods=["GET", "POST"])
@login_required
def setup() -> Any:
    user: User = current_user._get_current_object()
    if request.method == "POST" and request.form.get("action") == "disable":
        if required_for(user):
            abort(403)
        user.totp_secret = user.totp_enabled_at = user.recovery_codes = None
        audit.record(db.session, "user.two_factor_off", user, client_id=user.client_id)
        db.session.commit()
        flash("Two-factor sign-in is off.", "info")
        return redirect(url_for("two_factor.setup"))
    if request.method == "POST" and request.form.get("action") == "new-codes" and enrolled(user):
        codes = new_recovery_codes(user)
        audit.record(db.session, "user.recovery_codes_renewed", user, client_id=user.client_id)
        db.session.commit()
        return render_template("auth/two_factor_codes.html", codes=codes)
    if enrolled(user):
        return render_template(
            "auth/two_factor_setup.html",
            user=user,
            on=True,
            required=required_for(user),
            left=len(user.recovery_codes or []),
        )
    secret = session.get("2fa_new_secret") or pyotp.random_base32()
    session["2fa_new_secret"] = secret
    error = None
    if request.method == "POST":
        code = "".join((request.form.get("code") or "").split())
        if pyotp.TOTP(secret).verify(code, valid_window=1):
            user.totp_secret, user.totp_enabled_at, user.totp_last_step = secret, now_utc(), _step()
            codes = new_recovery_codes(user)
            session.pop("2fa_new_secret", None)
            audit.record(db.session, "user.two_factor_on", user, client_id=user.client_id)
            db.session.commit()
            return render_template("auth/two_factor_codes.html", codes=codes)
        error = "That code is not right. Check the time on your phone and enter the code shown now."
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.email, issuer_name=ISSUER)
    return render_template(
        "auth/two_factor_setup.html",
        user=user,
        on=False,
        required=required_for(user),
        qr=qr_svg(uri),
        secret=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        error=error,
    ), (400 if error else 200)


def enforce_enrolment() -> Any:
    """before_request: a signed-in user whose role requires two-factor and who has not enrolled sees only the
    enrolment page (and can sign out)."""
    if not current_user.is_authenticated or request.endpoint in ENROLMENT_ENDPOINTS:
        return None
    if request.path.startswith("/api/") or not required_for(current_user) or enrolled(current_user):
        return None
    return redirect(url_for("two_factor.setup"))


# --- sessions ------------------------------------------------------------------------------------------


def _live_sessions(user: User) -> list[AuthSession]:
    from provider.auth import SESSION_LIFETIME

    since = now_utc() - SESSION_LIFETIME
    return list(
        db.session.scalars(
            select(AuthSession)
            .where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None), AuthSession.created_at > since)
            .order_by(AuthSession.created_at.desc())
        )
    )


@bp.route("/account/sessions")
@login_required
def sessions() -> Any:
    from provider.auth import current_token_hash

    rows = _live_sessions(current_user)
    return render_template("auth/sessions.html", rows=rows, mine=current_token_hash(), lifetime=timedelta(hours=12))


@bp.route("/account/sessions/<session_id>/end", methods=["POST"])
@login_required
def end_session(session_id: str) -> Any:
    from provider.auth import current_token_hash

    row = db.session.get(AuthSession, session_id[:64])
    if row is None or row.user_id != current_user.id or row.revoked_at is not None:
        abort(404)
    row.revoked_at = now_utc()
    audit.record(db.session, "user.session_end", current_user._get_current_object(), client_id=current_user.client_id)
    db.session.commit()
    if row.token_hash == current_token_hash():
        session.clear()
        return redirect(url_for("auth.login"))
    flash("That session has been ended: it is signed out.", "success")
    return redirect(url_for("two_factor.sessions"))
