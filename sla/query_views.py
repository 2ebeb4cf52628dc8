"""Client queries: the portal (a client user asks, sees their company's queries and answers) and the back
office (the agency's list of queries, oldest open first, and the answer form)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import Select, case, select

from clients.models import Client
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_for_client, get_visible_or_404
from provider.extensions import db
from provider.ui import paginate
from sla.blueprints import bp, portal_bp
from sla.calendars import calendar_for
from sla.client_queries import answer_query, ask_query
from sla.clocks import status_at
from sla.models import ClientQuery, QueryStatus, SlaClock, SlaCode


def _open_first(stmt: Select[Any]) -> Select[Any]:
    waiting = case((ClientQuery.status == QueryStatus.OPEN.value, 0), else_=1)
    return stmt.order_by(waiting, ClientQuery.asked_at.desc(), ClientQuery.id.desc())


def _clock_of(query: ClientQuery) -> SlaClock | None:
    return db.session.scalar(
        select(SlaClock).where(
            SlaClock.client_id == query.client_id,
            SlaClock.subject_type == "query",
            SlaClock.subject_id == query.id,
            SlaClock.code == SlaCode.QUERY_ANSWER.value,
        )
    )


def _detail(query: ClientQuery, template: str, **extra: Any) -> Any:
    client = db.session.get_one(Client, query.client_id)
    clock = _clock_of(query)
    cal = calendar_for(db.session, client)
    status = status_at(clock, cal, now_utc()) if clock else None
    return render_template(template, query=query, client=client, clock=clock, clock_status=status, tz=cal.tz, **extra)


# --- portal ---------------------------------------------------------------------------------------


def _my_client() -> Client:
    client = db.session.get(Client, current_user.client_id)
    if client is None:
        abort(404)
    return client


@portal_bp.route("/queries", methods=["GET", "POST"], endpoint="queries")
@require(Permission.PORTAL)
def portal_queries() -> Any:
    client = _my_client()
    values: dict[str, str] = {}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values = {"subject": request.form.get("subject", ""), "body": request.form.get("body", "")}
        try:
            query = ask_query(db.session, client, values["subject"], values["body"])
            db.session.commit()
        except ServiceError as exc:
            db.session.rollback()
            errors = getattr(exc, "errors", None) or {exc.field or "body": [str(exc)]}
        else:
            flash("Your question has been sent to the agency.", "success")
            return redirect(url_for("sla_portal.query", query_id=query.id))
    page = paginate(_open_first(select(ClientQuery).where(ClientQuery.client_id == client.id)))
    html = render_template("sla/portal_queries.html", client=client, page=page, values=values, errors=errors)
    return (html, 422) if errors else html


@portal_bp.get("/queries/<int:query_id>", endpoint="query")
@require(Permission.PORTAL)
def portal_query(query_id: int) -> Any:
    return _detail(get_for_client(db.session, ClientQuery, query_id, _my_client().id), "sla/portal_query.html")


# --- back office ----------------------------------------------------------------------------------


@bp.get("/slas/queries")
@require(Permission.SLAS_READ)
def queries() -> Any:
    status = request.args.get("status", "")
    stmt = select(ClientQuery, Client.name.label("client_name")).join(Client, Client.id == ClientQuery.client_id)
    if status in set(QueryStatus):
        stmt = stmt.where(ClientQuery.status == status)
    waiting = case((ClientQuery.status == QueryStatus.OPEN.value, 0), else_=1)
    oldest_open_first = case((ClientQuery.status == QueryStatus.OPEN.value, ClientQuery.asked_at), else_=None)
    stmt = stmt.order_by(waiting, oldest_open_first, ClientQuery.asked_at.desc(), ClientQuery.id.desc())
    return render_template("sla/queries.html", page=paginate(stmt), status=status, statuses=list(QueryStatus))


@bp.route("/slas/queries/<int:query_id>", methods=["GET", "POST"])
@require(Permission.SLAS_READ)
def query(query_id: int) -> Any:
    record = get_visible_or_404(db.session, ClientQuery, query_id)
    if request.method == "GET":
        return _detail(record, "sla/query.html", values={}, errors={})
    if not current_user.can(Permission.DISPUTES_WORK):
        abort(404)
    client = db.session.get_one(Client, record.client_id)
    try:
        answer_query(db.session, client, record, request.form.get("answer", ""))
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        values = {"answer": request.form.get("answer", "")}
        return _detail(record, "sla/query.html", values=values, errors={exc.field or "answer": [str(exc)]}), 422
    flash("Answer sent to the client.", "success")
    return redirect(url_for("sla.query", query_id=record.id))
