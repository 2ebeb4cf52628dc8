"""Pages for people: API tokens (client admins in the portal, agency admins in the back office) and the
client's webhook endpoints with their delivery log and replay. Load, check access, process; one commit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from provider.api import tokens as token_services
from provider.api import webhooks
from provider.api.models import ApiToken, TokenAccess, WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.extensions import db

bp = Blueprint("api_admin", __name__, url_prefix="/admin/api")
portal_bp = Blueprint("api_portal", __name__, url_prefix="/portal/api")
ROTATION_OVERLAP = timedelta(hours=24)


def _token_page(client_id: int | None, template_args: dict[str, Any]) -> Any:
    issued = None
    if request.method == "POST":
        try:
            issued = token_services.create_token(
                db.session,
                name=request.form.get("name", ""),
                access=request.form.get("access", ""),
                client_id=client_id,
                created_by_id=current_user.id,
            )
            db.session.commit()
        except ServiceError as exc:
            db.session.rollback()
            flash(str(exc), "error")
    return render_template(
        "api/tokens.html",
        tokens=token_services.tokens_of(db.session, client_id),
        issued=issued,
        accesses=[a.value for a in TokenAccess],
        **template_args,
    )


def _revoke(token_id: int, client_id: int | None) -> ApiToken:
    token = db.session.get(ApiToken, token_id)
    if token is None or token.client_id != client_id:
        abort(404)
    token_services.revoke_token(db.session, token)
    db.session.commit()
    flash(f"Token {token.prefix} is revoked.", "success")
    return token


# --- back office: staff integration tokens -------------------------------------------------------------


@bp.route("/tokens", methods=["GET", "POST"])
@require(Permission.API_TOKENS_MANAGE)
def tokens() -> Any:
    return _token_page(None, {"revoke_endpoint": "api_admin.revoke_token", "staff": True})


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@require(Permission.API_TOKENS_MANAGE)
def revoke_token(token_id: int) -> Any:
    _revoke(token_id, None)
    return redirect(url_for("api_admin.tokens"))


# --- portal: the client's tokens and webhooks ----------------------------------------------------------


@portal_bp.route("/tokens", methods=["GET", "POST"])
@require(Permission.PORTAL_API_MANAGE)
def tokens_portal() -> Any:
    return _token_page(current_user.client_id, {"revoke_endpoint": "api_portal.revoke_token", "staff": False})


@portal_bp.route("/tokens/<int:token_id>/revoke", methods=["POST"], endpoint="revoke_token")
@require(Permission.PORTAL_API_MANAGE)
def revoke_portal_token(token_id: int) -> Any:
    _revoke(token_id, current_user.client_id)
    return redirect(url_for("api_portal.tokens_portal"))


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    endpoint = db.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.client_id != current_user.client_id:
        abort(404)
    return endpoint


@portal_bp.route("/webhooks", methods=["GET", "POST"])
@require(Permission.PORTAL_API_MANAGE)
def webhooks_index() -> Any:
    if request.method == "POST":
        try:
            endpoint = webhooks.create_endpoint(
                db.session,
                current_user.client_id,
                request.form.get("url", ""),
                request.form.getlist("events"),
                request.form.get("description", ""),
            )
            db.session.commit()
            return redirect(url_for("api_portal.webhook_endpoint", endpoint_id=endpoint.id))
        except ServiceError as exc:
            db.session.rollback()
            flash(str(exc), "error")
    endpoints = db.session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.client_id == current_user.client_id).order_by(WebhookEndpoint.id)
    ).all()
    return render_template("api/webhooks.html", endpoints=endpoints, event_types=webhooks.EVENT_TYPES)


@portal_bp.route("/webhooks/<int:endpoint_id>")
@require(Permission.PORTAL_API_MANAGE)
def webhook_endpoint(endpoint_id: int) -> Any:
    endpoint = _endpoint(endpoint_id)
    rows = db.session.execute(
        select(WebhookDelivery, WebhookEvent.event_type, WebhookEvent.created_at)
        .join(
            WebhookEvent,
            (WebhookEvent.client_id == WebhookDelivery.client_id) & (WebhookEvent.id == WebhookDelivery.event_id),
        )
        .where(WebhookDelivery.client_id == endpoint.client_id, WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.id.desc())
        .limit(100)
    ).all()
    # `hook`, not `endpoint`: base.html sets `endpoint` (the request's endpoint name) for its navigation, and a
    # top-level {% set %} of the base template hides a context variable of the same name from the page
    return render_template("api/webhook_endpoint.html", hook=endpoint, rows=rows)


@portal_bp.route("/webhooks/<int:endpoint_id>/disable", methods=["POST"])
@require(Permission.PORTAL_API_MANAGE)
def disable_webhook(endpoint_id: int) -> Any:
    webhooks.disable_endpoint(db.session, _endpoint(endpoint_id))
    db.session.commit()
    return redirect(url_for("api_portal.webhooks_index"))


@portal_bp.route("/webhooks/<int:endpoint_id>/rotate", methods=["POST"])
@require(Permission.PORTAL_API_MANAGE)
def rotate_webhook_secret(endpoint_id: int) -> Any:
    endpoint = _endpoint(endpoint_id)
    webhooks.rotate_secret(db.session, endpoint, ROTATION_OVERLAP)
    db.session.commit()
    flash(
        "A new signing secret is active. For the next 24 hours deliveries are signed with both the new and the old "
        "secret: put the new one in your receiver meanwhile.",
        "success",
    )
    return redirect(url_for("api_portal.webhook_endpoint", endpoint_id=endpoint.id))


@portal_bp.route("/webhooks/deliveries/<int:delivery_id>")
@require(Permission.PORTAL_API_MANAGE)
def webhook_delivery(delivery_id: int) -> Any:
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.client_id != current_user.client_id:
        abort(404)
    attempts = db.session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.client_id == delivery.client_id, WebhookAttempt.delivery_id == delivery.id)
        .order_by(WebhookAttempt.id.desc())
    ).all()
    event = db.session.get_one(WebhookEvent, delivery.event_id)
    return render_template("api/webhook_delivery.html", delivery=delivery, attempts=attempts, event=event)


@portal_bp.route("/webhooks/deliveries/<int:delivery_id>/replay", methods=["POST"])
@require(Permission.PORTAL_API_MANAGE)
def replay_delivery(delivery_id: int) -> Any:
    delivery = db.session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.client_id != current_user.client_id:
        abort(404)
    queued = webhooks.request_replay(db.session, delivery)
    db.session.commit()
    flash(
        "Replay queued: the attempt appears in the log below once it has been sent."
        if queued
        else "A replay of this delivery is already waiting to be sent.",
        "info",
    )
    return redirect(url_for("api_portal.webhook_delivery", delivery_id=delivery.id))
