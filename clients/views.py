"""Back office: clients list and detail, debtors. Load through the tenant, check, call a service, render."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import func

from clients import import_views, ledger_queries, queries, services
from clients.ledger_queries import account_context
from clients.models import Client, ClientStatus, Debtor, DebtType
from clients.schemas import ClientSchema, DebtorSchema
from provider.core import audit
from provider.core.clock import today_utc
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_for_client, get_visible_or_404
from provider.core.validation import timezone_choices
from provider.extensions import db
from provider.forms import kept_values, submit_form
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
    client, errors = submit_form(ClientSchema(), request.form, lambda data: services.create_client(db.session, data))
    if client is None:
        return _client_form(None, kept_values(request.form), errors, 422)
    flash(f"Client {client.name} created.", "success")
    return redirect(url_for("clients.detail", client_id=client.id))


@bp.get("/clients/<int:client_id>")
@require(Permission.CLIENTS_READ)
def detail(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    search = request.args.get("q", "").strip()
    stmt = apply_sort(queries.debtors_of(client.id, search), queries.DEBTOR_SORTS, "name", tiebreak=Debtor.id)
    page = paginate(stmt)
    total = queries.debtor_count(client.id) if search else page.total  # without a search they are the same count
    return render_template(
        "clients/detail.html",
        client=client,
        page=page,
        search=search,
        debtor_total=total,
        agings=ledger_queries.aging(client.id, today_utc()),
    )


@bp.route("/clients/<int:client_id>/edit", methods=["GET", "POST"])
@require(Permission.CLIENTS_MANAGE)
def edit(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    if request.method == "GET":
        return _client_form(client, {f: getattr(client, f) for f in Client.AUDIT_FIELDS}, {})
    saved, errors = submit_form(
        ClientSchema(), request.form, lambda data: services.update_client(db.session, client, data)
    )
    if saved is None:
        return _client_form(client, kept_values(request.form), errors, 422)
    flash("Client settings saved.", "success")
    return redirect(url_for("clients.detail", client_id=client.id))


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
    debtor, errors = submit_form(
        DebtorSchema(), request.form, lambda data: services.create_debtor(db.session, client, data)
    )
    if debtor is None:
        return _debtor_form(client, None, kept_values(request.form), errors, 422)
    flash(f"Debtor {debtor.name} added.", "success")
    return redirect(url_for("clients.debtor", client_id=client.id, debtor_id=debtor.id))


@bp.get("/clients/<int:client_id>/debtors/<int:debtor_id>")
@require(Permission.DEBTORS_READ)
def debtor(client_id: int, debtor_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    debtor = get_for_client(db.session, Debtor, debtor_id, client.id)
    history = audit.history_of(db.session, debtor, client_id=client.id)
    return render_template(
        "clients/debtor.html", client=client, debtor=debtor, history=history, **account_context(client.id, debtor.id)
    )


@bp.route("/clients/<int:client_id>/debtors/<int:debtor_id>/edit", methods=["GET", "POST"])
@require(Permission.DEBTORS_MANAGE)
def edit_debtor(client_id: int, debtor_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    debtor = get_for_client(db.session, Debtor, debtor_id, client.id)
    if request.method == "GET":
        return _debtor_form(client, debtor, {f: getattr(debtor, f) for f in Debtor.AUDIT_FIELDS}, {})
    form = request.form.copy()
    form["external_ref"] = debtor.external_ref  # the client's key for the debtor never changes here
    saved, errors = submit_form(DebtorSchema(), form, lambda data: services.update_debtor(db.session, debtor, data))
    if saved is None:
        return _debtor_form(client, debtor, kept_values(request.form), errors, 422)
    flash("Debtor saved.", "success")
    return redirect(url_for("clients.debtor", client_id=client.id, debtor_id=debtor.id))


@bp.route("/clients/<int:client_id>/imports", methods=["GET", "POST"])
@require(Permission.DEBTORS_MANAGE)
def imports(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    return import_views.imports_page(client, import_views.back_office_urls(client), "clients/imports.html")


@bp.get("/clients/<int:client_id>/imports/<int:batch_id>")
@require(Permission.DEBTORS_MANAGE)
def import_batch(client_id: int, batch_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    return import_views.batch_page(client, batch_id, import_views.back_office_urls(client), "clients/import_batch.html")
