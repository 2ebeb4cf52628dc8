"""Back office: clients list and detail, debtors. Load through the tenant, check, call a service, render."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from clients import queries, services
from clients.models import Client, ClientStatus, Debtor, DebtType
from clients.schemas import ClientSchema, DebtorSchema
from provider.core.audit import AuditEvent
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_for_client, get_visible_or_404
from provider.core.validation import timezone_choices
from provider.extensions import db
from provider.forms import load_form
from provider.ui import apply_sort, paginate

bp = Blueprint("clients", __name__, template_folder="templates")


def _client_form(
    template_client: Client | None, values: dict[str, Any], errors: dict[str, list[str]], status: int = 200
) -> Any:
    return (
        render_template(
            "clients/client_form.html",
            client=template_client,
            values=values,
            errors=errors,
            timezones=timezone_choices(),
            debt_types=[d.value for d in DebtType],
            statuses=[s.value for s in ClientStatus],
        ),
        status,
    )


@bp.get("/clients")
@require(Permission.CLIENTS_READ)
def index() -> Any:
    stmt = queries.visible_clients()
    search = request.args.get("q", "").strip()
    if search:
        like = f"%{search.lower()}%"
        stmt = stmt.where(func.lower(Client.name).like(like) | func.lower(Client.code).like(like))
    stmt = apply_sort(stmt, queries.CLIENT_SORTS, "name", tiebreak=Client.id)
    return render_template("clients/index.html", page=queries.with_debtor_counts(paginate(stmt)), search=search)


@bp.route("/clients/new", methods=["GET", "POST"])
@require(Permission.CLIENTS_MANAGE)
def create() -> Any:
    if request.method == "GET":
        return _client_form(None, {"debt_type": "commercial", "status": "active"}, {})
    data, errors = load_form(ClientSchema(), request.form)
    if not errors:
        try:
            client = services.create_client(db.session, data)
            db.session.commit()
            flash(f"Client {client.name} created.", "success")
            return redirect(url_for("clients.detail", client_id=client.id))
        except ServiceError as exc:
            db.session.rollback()
            errors = {exc.field or "_schema": [str(exc)]}
    return _client_form(None, request.form.to_dict(), errors, 422)


@bp.get("/clients/<int:client_id>")
@require(Permission.CLIENTS_READ)
def detail(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    search = request.args.get("q", "").strip()
    stmt = apply_sort(queries.debtors_of(client.id, search), queries.DEBTOR_SORTS, "name", tiebreak=Debtor.id)
    return render_template(
        "clients/detail.html",
        client=client,
        page=paginate(stmt),
        search=search,
        debtor_total=queries.debtor_count(client.id),
    )


@bp.route("/clients/<int:client_id>/edit", methods=["GET", "POST"])
@require(Permission.CLIENTS_MANAGE)
def edit(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    if request.method == "GET":
        return _client_form(client, {f: getattr(client, f) for f in Client.AUDIT_FIELDS}, {})
    data, errors = load_form(ClientSchema(), request.form)
    if not errors:
        try:
            services.update_client(db.session, client, data)
            db.session.commit()
            flash("Client settings saved.", "success")
            return redirect(url_for("clients.detail", client_id=client.id))
        except ServiceError as exc:
            db.session.rollback()
            errors = {exc.field or "_schema": [str(exc)]}
    return _client_form(client, request.form.to_dict(), errors, 422)


def _debtor_form(
    client: Client, debtor: Debtor | None, values: dict[str, Any], errors: dict[str, list[str]], status: int = 200
) -> Any:
    return (
        render_template(
            "clients/debtor_form.html",
            client=client,
            debtor=debtor,
            values=values,
            errors=errors,
            timezones=timezone_choices(),
        ),
        status,
    )


@bp.route("/clients/<int:client_id>/debtors/new", methods=["GET", "POST"])
@require(Permission.DEBTORS_MANAGE)
def create_debtor(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    if request.method == "GET":
        return _debtor_form(client, None, {"segment": "standard"}, {})
    data, errors = load_form(DebtorSchema(), request.form)
    if not errors:
        try:
            debtor = services.create_debtor(db.session, client, data)
            db.session.commit()
            flash(f"Debtor {debtor.name} added.", "success")
            return redirect(url_for("clients.debtor", client_id=client.id, debtor_id=debtor.id))
        except ServiceError as exc:
            db.session.rollback()
            errors = {exc.field or "_schema": [str(exc)]}
    return _debtor_form(client, None, request.form.to_dict(), errors, 422)


@bp.get("/clients/<int:client_id>/debtors/<int:debtor_id>")
@require(Permission.DEBTORS_READ)
def debtor(client_id: int, debtor_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    debtor = get_for_client(db.session, Debtor, debtor_id, client.id)
    history = db.session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.client_id == client.id,
            AuditEvent.object_type == "Debtor",
            AuditEvent.object_id == str(debtor.id),
        )
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(20)
    ).all()
    return render_template("clients/debtor.html", client=client, debtor=debtor, history=history)


@bp.route("/clients/<int:client_id>/debtors/<int:debtor_id>/edit", methods=["GET", "POST"])
@require(Permission.DEBTORS_MANAGE)
def edit_debtor(client_id: int, debtor_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    debtor = get_for_client(db.session, Debtor, debtor_id, client.id)
    if request.method == "GET":
        return _debtor_form(client, debtor, {f: getattr(debtor, f) for f in Debtor.AUDIT_FIELDS}, {})
    form = request.form.copy()
    form["external_ref"] = debtor.external_ref
    data, errors = load_form(DebtorSchema(), form)
    if not errors:
        services.update_debtor(db.session, debtor, data)
        db.session.commit()
        flash("Debtor saved.", "success")
        return redirect(url_for("clients.debtor", client_id=client.id, debtor_id=debtor.id))
    return _debtor_form(client, debtor, request.form.to_dict(), errors, 422)
