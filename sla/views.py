"""SLAs. Until contract terms exist (SLA issue) this shows each client's business calendar."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import holidays
from flask import Blueprint, render_template
from sqlalchemy import select

from clients.models import Client
from provider.core.clock import today_utc
from provider.core.permissions import Permission, require
from provider.extensions import db

bp = Blueprint("sla", __name__, template_folder="templates")


def upcoming_holidays(country: str, days: int = 60) -> list[tuple[Any, str]]:
    start = today_utc()
    end = start + timedelta(days=days)
    try:
        calendar = holidays.country_holidays(country, years=sorted({start.year, end.year}))
    except NotImplementedError:
        return []
    return sorted((d, name) for d, name in calendar.items() if start <= d <= end)


@bp.get("/slas")
@require(Permission.SLAS_READ)
def index() -> Any:
    clients = db.session.scalars(select(Client).order_by(Client.name)).all()
    calendars = {c.id: upcoming_holidays(c.country) for c in clients}
    return render_template("sla/index.html", clients=clients, calendars=calendars)
