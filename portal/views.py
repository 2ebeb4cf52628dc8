"""The client portal: a client user sees their own company only (scope = their client).

This module: the overview, the receivables (debtors list with filters and exports, the debtor page with
the agency's work on it), recalling an account, and placements. People, report recipients and the audit
trail are in `portal.admin_views` (same blueprint).
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask_login import current_user

from clients import import_views, ledger_list
from clients.ledger_queries import account_context
from clients.models import Client, Debtor
from portal import charts, exports, queries, services
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.core.tenancy import TenantScope, get_for_client, scoped
from provider.extensions import db
from provider.ui import apply_sort, paginate
from worklists import account

bp = Blueprint("portal", __name__, url_prefix="/portal", template_folder="templates")


def _my_client() -> Client:
    client = db.session.get(Client, current_user.client_id)
    if client is None:  # scope and binding disagree: never show anything
        abort(404)
    return client


def _filename_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


def _attachment(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


# --- overview ----------------------------------------------------------------------------------------


@bp.get("/")
@require(Permission.PORTAL)
def index() -> Any:
    client = _my_client()
    today = ledger_list.client_today(client)
    data = queries.overview(client, today, now_utc())
    primary = next((a for a in data.agings if a.currency == client.base_currency), None) or (
        max(data.agings, key=lambda a: a.total) if data.agings else None
    )
    return render_template(
        "portal/index.html",
        client=client,
        today=today,
        data=data,
        primary=primary,
        bars=charts.aging_bars(primary) if primary else [],
        dso_trend=charts.trend_line(data.kpis.trend, "dso") if data.kpis else None,
        cei_trend=charts.trend_line(data.kpis.trend, "cei") if data.kpis else None,
    )


# --- receivables ---------------------------------------------------------------------------------------


def _receivables(client: Client) -> tuple[Any, queries.DebtorFilters]:
    filters = queries.parse_debtor_filters(request.args)
    stmt, sorts = queries.receivables(client.id, filters, ledger_list.client_today(client))
    return apply_sort(stmt, sorts, "name", tiebreak=Debtor.id), filters


@bp.get("/debtors")
@require(Permission.PORTAL)
def debtors() -> Any:
    client = _my_client()
    stmt, filters = _receivables(client)
    return render_template(
        "portal/debtors.html",
        client=client,
        page=paginate(stmt),
        filters=filters,
        search=filters.search,
        statuses=queries.DEBTOR_STATUSES,
        segments=queries.segments(client.id),
    )


@bp.get("/debtors.csv")
@require(Permission.PORTAL)
def debtors_csv() -> Any:
    client = _my_client()
    stmt, _ = _receivables(client)
    client_id = client.id

    def generate() -> Any:
        # the rows are read while the response streams, after the view returned: same client scope again
        with scoped(TenantScope.single(client_id), db.session):
            yield from exports.csv_chunks(exports.DEBTOR_HEADER, exports.debtor_records(stmt))

    name = f"debtors-{_filename_part(client.code)}-{ledger_list.client_today(client).isoformat()}.csv"
    return Response(stream_with_context(generate()), mimetype="text/csv", headers=_attachment(name))


@bp.get("/debtors.xlsx")
@require(Permission.PORTAL)
def debtors_xlsx() -> Any:
    client = _my_client()
    stmt, _ = _receivables(client)
    body = exports.xlsx_bytes("Debtors", exports.DEBTOR_HEADER, exports.debtor_records(stmt))
    name = f"debtors-{_filename_part(client.code)}-{ledger_list.client_today(client).isoformat()}.xlsx"
    return Response(body, mimetype=exports.XLSX_MIME, headers=_attachment(name))


@bp.get("/ledger.xlsx")
@require(Permission.PORTAL)
def ledger_xlsx() -> Any:
    """The filtered invoice ledger (same filters and order as /portal/ledger) as a workbook."""
    client = _my_client()
    filters = ledger_list.parse_filters(request.args)
    as_of = ledger_list.client_today(client)
    records = exports.ledger_records(
        client.id, filters, as_of, request.args.get("sort", ""), request.args.get("dir", "asc")
    )
    body = exports.xlsx_bytes("Invoices", exports.LEDGER_HEADER, records)
    name = f"ledger-{_filename_part(client.code)}-{as_of.isoformat()}.xlsx"
    return Response(body, mimetype=exports.XLSX_MIME, headers=_attachment(name))


@bp.get("/debtors/<int:debtor_id>")
@require(Permission.PORTAL)
def debtor(debtor_id: int) -> Any:
    client = _my_client()
    debtor = get_for_client(db.session, Debtor, debtor_id, client.id)
    acct = account.load(
        client.id, debtor, for_client=True, show=request.args.get("show", "")
    )  # the one account view, the client's copy
    return render_template(
        "portal/debtor.html",
        client=client,
        debtor=debtor,
        acct=acct,
        item=acct.item,
        recalls=queries.recalls_of(client.id, debtor.id),
        **acct.context,
    )


@bp.route("/debtors/<int:debtor_id>/recall", methods=["GET", "POST"])
@require(Permission.PORTAL_RECALL)
def recall(debtor_id: int) -> Any:
    """Take the account back from the agency: a confirmation page with a reason, then the recall."""
    client = _my_client()
    debtor = get_for_client(db.session, Debtor, debtor_id, client.id)
    errors: dict[str, list[str]] = {}
    values = {"reason": ""}
    if request.method == "POST":
        values["reason"] = request.form.get("reason", "")
        if request.form.get("confirm") != "1":
            errors["confirm"] = ["Tick the box to confirm the recall."]
        else:
            try:
                result = services.recall_account(db.session, debtor, values["reason"], current_user)
                db.session.commit()
            except ServiceError as exc:
                db.session.rollback()
                errors[exc.field or "_schema"] = [str(exc)]
            else:
                held = result["held"]
                flash(
                    f"{debtor.name} is recalled: {held} open invoice{'' if held == 1 else 's'} on hold, "
                    "no longer worked by the agency.",
                    "success",
                )
                return redirect(url_for("portal.debtor", debtor_id=debtor.id))
    context = account_context(client.id, debtor.id)
    status = 422 if errors else 200
    return render_template(
        "portal/recall.html",
        client=client,
        debtor=debtor,
        values=values,
        errors=errors,
        balances=context["balances"],
        open_items=context["open_items"],
        item=queries.work_item_of(client.id, debtor.id),
    ), status


# --- placements (the ledger issue's import, with the client's saved mapping) ----------------------------


@bp.route("/placements", methods=["GET", "POST"])
@require(Permission.PORTAL_PLACE)
def imports() -> Any:
    return import_views.imports_page(_my_client(), import_views.portal_urls(), "clients/imports.html")


@bp.get("/placements/<int:batch_id>")
@require(Permission.PORTAL_PLACE)
def import_batch(batch_id: int) -> Any:
    return import_views.batch_page(_my_client(), batch_id, import_views.portal_urls(), "clients/import_batch.html")


from portal import admin_views  # noqa: E402,F401 - registers the people, reports and audit pages on `bp`
