"""Forecast pages: managers see every client's 13-week forecast and how good it has been, each client's forecast,
segments and credit view; a client sees its own in the portal. Both may ask for the forecast as of a past date.

Staff (`forecast`): /forecast, /forecast/clients/<id>, /forecast/clients/<id>/credit (+ .csv), refit (POST),
/forecast/clients/<id>/credit/policy (the client's limit policy, managers).
Portal (`forecast_portal`): /portal/forecast, /portal/credit (+ .csv).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from clients.ledger_list import safe_cell
from clients.models import Client
from provider.core import jobs
from provider.core.clock import today_utc
from provider.core.money import format_money
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_visible_or_404
from provider.extensions import db
from provider.forecast import queries
from provider.forecast.charts import forecast_chart
from provider.forecast.segments import SEGMENT_LABELS
from provider.ui import apply_sort, paginate

bp = Blueprint("forecast", __name__, template_folder="templates")
portal_bp = Blueprint("forecast_portal", __name__, url_prefix="/portal", template_folder="templates")


def _as_of() -> date | None:
    raw = request.args.get("as_of", "").strip()
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        flash(f"“{raw}” is not a date (YYYY-MM-DD); showing the latest forecast.", "error")
        return None
    if day > today_utc():
        flash("A forecast can be made as of today or an earlier day; showing the latest forecast.", "error")
        return None
    return day


def _with_charts(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**v, "chart": forecast_chart(v["weeks"], v["currency"])} for v in views]


def _client_context(client: Client) -> dict[str, Any]:
    as_of = _as_of()
    return {
        "client": client,
        "as_of": as_of,
        "forecasts": _with_charts(queries.forecast_view(db.session, client.id, as_of)),
        "segments": queries.segment_counts(db.session, client.id),
        "moves": queries.recent_moves(db.session, client.id),
        "labels": SEGMENT_LABELS,
    }


@bp.get("/forecast")
@require(Permission.REPORTS_READ)
def index() -> Any:
    clients = list(db.session.scalars(select(Client).order_by(Client.name)))
    rows = [(c, queries.latest_forecasts(db.session, c.id)) for c in clients]
    return render_template("forecast/index.html", rows=rows)


@bp.get("/forecast/clients/<int:client_id>")
@require(Permission.REPORTS_READ)
def client_page(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    return render_template("forecast/client.html", portal=False, **_client_context(client))


@bp.post("/forecast/clients/<int:client_id>/refit")
@require(Permission.REPORTS_MANAGE)
def refit(client_id: int) -> Any:
    from provider.forecast.jobs import refit_client_forecast_job

    client = get_visible_or_404(db.session, Client, client_id)
    jobs.enqueue(refit_client_forecast_job, client.id, job_id=f"forecast:{client.id}:manual")
    db.session.commit()
    flash("The forecast is being made again; this page shows it when it is done.", "success")
    return redirect(url_for("forecast.client_page", client_id=client.id))


def _credit_page(client: Client, template: str) -> Any:
    segment = request.args.get("segment") or None
    alerts_only = request.args.get("alerts") == "1"
    stmt = apply_sort(
        queries.behaviours_stmt(client.id, segment, alerts_only),
        queries.BEHAVIOUR_SORTS,
        "exposure",
        queries.DebtorBehaviour.id,
    )
    if request.args.get("sort") is None:
        stmt = stmt.order_by(None).order_by(queries.DebtorBehaviour.exposure_minor.desc(), queries.DebtorBehaviour.id)
    page = paginate(stmt)
    return render_template(
        template, client=client, page=page, segment=segment, alerts_only=alerts_only, labels=SEGMENT_LABELS,
        alerts=queries.alerts, segments=queries.segment_counts(db.session, client.id),
    )  # fmt: skip


def _credit_csv(client: Client) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["Debtor", "Reference", "Segment", "Why", "Risk grade", "Why this grade", "Currency",
                     "Owes", "Suggested limit", "Alerts", "As of"])  # fmt: skip
    stmt = queries.behaviours_stmt(client.id).order_by(queries.DebtorBehaviour.exposure_minor.desc())
    for b, name, ref in db.session.execute(stmt):
        writer.writerow(
            [safe_cell(name), safe_cell(ref), SEGMENT_LABELS[b.segment], safe_cell("; ".join(b.reasons)), b.risk_grade,
             safe_cell("; ".join(b.grade_reasons)), b.currency, format_money(b.exposure_minor, b.currency),
             format_money(b.credit_limit_minor, b.currency), "; ".join(queries.alerts(b)), b.as_of.isoformat()]
        )  # fmt: skip
    response = Response("\ufeff" + buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="credit-{client.code}.csv"'
    return response


@bp.get("/forecast/clients/<int:client_id>/credit")
@require(Permission.REPORTS_READ)
def credit(client_id: int) -> Any:
    return _credit_page(get_visible_or_404(db.session, Client, client_id), "forecast/credit.html")


@bp.route("/forecast/clients/<int:client_id>/credit/policy", methods=["GET", "POST"])
@require(Permission.REPORTS_MANAGE)
def credit_policy(client_id: int) -> Any:
    """The client's limit policy per currency: months of average invoicing a debtor of each grade may owe, a cap."""
    from provider.core.errors import ServiceError
    from provider.forecast.models import CreditPolicy
    from provider.forecast.segments import DEFAULT_MONTHS, GRADES
    from provider.forecast.services import credit_policy_from_text, set_credit_policy

    client = get_visible_or_404(db.session, Client, client_id)
    values: dict[str, Any] = {"currency": client.base_currency}
    errors: dict[str, list[str]] = {}
    status = 200
    if request.method == "POST":
        values = {k: request.form.get(k, "") for k in ("currency", "cap", *(f"months_{g}" for g in GRADES))}
        try:
            currency, months, cap_minor = credit_policy_from_text(
                values["currency"], {g: values[f"months_{g}"] for g in GRADES}, values["cap"]
            )
            set_credit_policy(db.session, client.id, currency, months, cap_minor)
            db.session.commit()
        except ServiceError as exc:
            db.session.rollback()
            errors, status = {exc.field or "currency": [str(exc)]}, 422
        else:
            flash(f"The limit policy for {currency} is saved; the suggested limits use it now.", "success")
            return redirect(url_for("forecast.credit_policy", client_id=client.id))
    policies = list(
        db.session.scalars(
            select(CreditPolicy).where(CreditPolicy.client_id == client.id).order_by(CreditPolicy.currency)
        )
    )
    return render_template(
        "forecast/credit_policy.html", client=client, policies=policies, values=values, errors=errors,
        grades=GRADES, defaults=DEFAULT_MONTHS,
    ), status  # fmt: skip


@bp.get("/forecast/clients/<int:client_id>/credit.csv")
@require(Permission.REPORTS_READ)
def credit_csv(client_id: int) -> Any:
    return _credit_csv(get_visible_or_404(db.session, Client, client_id))


def _my_client() -> Client:
    client = db.session.get(Client, current_user.client_id)
    if client is None:
        abort(404)
    return client


@portal_bp.get("/forecast")
@require(Permission.PORTAL)
def portal_index() -> Any:
    return render_template("forecast/client.html", portal=True, **_client_context(_my_client()))


@portal_bp.get("/credit")
@require(Permission.PORTAL)
def portal_credit() -> Any:
    return _credit_page(_my_client(), "forecast/credit.html")


@portal_bp.get("/credit.csv")
@require(Permission.PORTAL)
def portal_credit_csv() -> Any:
    return _credit_csv(_my_client())
