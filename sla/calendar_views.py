"""A client's business calendar in the back office: working hours and days, the subdivision whose public
holidays apply, and extra closed days. Anyone with SLA access reads it; managers (SLAS_MANAGE) edit it."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import holidays
from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select

from clients.models import Client
from provider.core.clock import today_utc
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_for_client, get_visible_or_404
from provider.extensions import db
from sla.blueprints import bp
from sla.calendars import Calendar, calendar_for
from sla.models import ClosedDay
from sla.pages import run
from sla.services import CalendarInvalid, add_closed_day, remove_closed_day, set_business_calendar, subdivisions_of

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _holidays_ahead(cal: Calendar, days: int = 90) -> list[tuple[date, str]]:
    start = today_utc()
    end = start + timedelta(days=days)
    try:
        found = holidays.country_holidays(
            cal.country, subdiv=cal.subdivision or None, years=sorted({start.year, end.year})
        )
    except NotImplementedError:
        return []
    return sorted((d, name) for d, name in found.items() if start <= d <= end)


def _page(
    client: Client,
    values: dict[str, Any] | None = None,
    errors: dict[str, list[str]] | None = None,
    closed_values: dict[str, str] | None = None,
    closed_errors: dict[str, list[str]] | None = None,
) -> Any:
    cal = calendar_for(db.session, client)
    closed = db.session.scalars(
        select(ClosedDay)
        .where(ClosedDay.client_id == client.id, ClosedDay.day >= today_utc() - timedelta(days=31))
        .order_by(ClosedDay.day)
        .limit(200)
    ).all()
    if values is None:
        values = {
            "work_start_min": _hhmm(cal.work_start_min),
            "work_end_min": _hhmm(cal.work_end_min),
            "workdays": sorted(cal.workdays),
            "subdivision": cal.subdivision,
        }
    return render_template(
        "sla/calendar.html",
        client=client,
        cal=cal,
        values=values,
        errors=errors or {},
        weekdays=list(enumerate(WEEKDAYS)),
        subdivisions=subdivisions_of(client.country),
        closed=closed,
        holidays_ahead=_holidays_ahead(cal),
        closed_values=closed_values or {},
        closed_errors=closed_errors or {},
    )


@bp.get("/slas/clients/<int:client_id>/calendar")
@require(Permission.SLAS_READ)
def calendar(client_id: int) -> Any:
    return _page(get_visible_or_404(db.session, Client, client_id))


@bp.post("/slas/clients/<int:client_id>/calendar")
@require(Permission.SLAS_MANAGE)
def update_calendar(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    values = {
        "work_start_min": request.form.get("work_start_min", ""),
        "work_end_min": request.form.get("work_end_min", ""),
        "workdays": request.form.getlist("workdays"),
        "subdivision": request.form.get("subdivision", ""),
    }
    try:
        set_business_calendar(db.session, client, values)
        db.session.commit()
    except CalendarInvalid as exc:
        db.session.rollback()
        values["workdays"] = [int(d) for d in values["workdays"] if str(d).isdigit()]
        return _page(client, values, exc.errors), 422
    flash("Business calendar saved. Clocks started from now on use it.", "success")
    return redirect(url_for("sla.calendar", client_id=client.id))


@bp.post("/slas/clients/<int:client_id>/calendar/closed-days")
@require(Permission.SLAS_MANAGE)
def add_closed(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    raw = request.form.get("day", "")
    try:
        day = date.fromisoformat(raw) if raw else None
    except ValueError:
        day = None
    try:
        add_closed_day(db.session, client, day, request.form.get("reason", ""))
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        closed_values = {"day": raw, "reason": request.form.get("reason", "")}
        return _page(client, closed_values=closed_values, closed_errors={exc.field or "day": [str(exc)]}), 422
    flash(f"{day} is now a closed day for {client.name}.", "success")
    return redirect(url_for("sla.calendar", client_id=client.id))


@bp.post("/slas/clients/<int:client_id>/calendar/closed-days/<int:closed_day_id>/remove")
@require(Permission.SLAS_MANAGE)
def remove_closed(client_id: int, closed_day_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    closed = get_for_client(db.session, ClosedDay, closed_day_id, client.id)
    day = closed.day
    run(lambda: remove_closed_day(db.session, closed), f"{day} is a working day again.")
    return redirect(url_for("sla.calendar", client_id=client.id))
