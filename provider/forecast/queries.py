"""Tenant-scoped reads of the stored forecast, behaviour and credit view (pages, portal, API)."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from clients.models import Debtor
from provider.forecast.models import CashForecast, DebtorBehaviour, SegmentMove
from provider.forecast.segments import SEGMENT_LABELS, SEGMENTS


def latest_forecasts(session: Session, client_id: int) -> list[CashForecast]:
    """The most recent stored forecast of each currency of the client."""
    newest = (
        select(CashForecast.currency, func.max(CashForecast.as_of).label("as_of"))
        .where(CashForecast.client_id == client_id)
        .group_by(CashForecast.currency)
        .subquery()
    )
    stmt = (
        select(CashForecast)
        .join(newest, (newest.c.currency == CashForecast.currency) & (newest.c.as_of == CashForecast.as_of))
        .where(CashForecast.client_id == client_id)
        .order_by(CashForecast.currency)
    )
    return list(session.scalars(stmt))


def forecast_view(session: Session, client_id: int, as_of: date | None) -> list[dict[str, Any]]:
    """Per currency: weeks, backtest, calibration, day. Stored when `as_of` is none or a refit day; otherwise made now
    from what was known on `as_of`."""
    if as_of is not None:
        stored = list(
            session.scalars(
                select(CashForecast).where(CashForecast.client_id == client_id, CashForecast.as_of == as_of)
            )
        )
        if not stored:
            from provider.forecast.services import LIVE_ORIGINS, forecast_client

            result = forecast_client(session, client_id, as_of, max_live=LIVE_ORIGINS)
            return [
                {"currency": cur, "as_of": as_of, "weeks": weeks, "backtest": result.backtest[cur],
                 "calibration": result.calibration[cur]}
                for cur, weeks in sorted(result.weeks.items())
            ]  # fmt: skip
    else:
        stored = latest_forecasts(session, client_id)
    return [
        {
            "currency": f.currency,
            "as_of": f.as_of,
            "weeks": f.weeks,
            "backtest": f.backtest,
            "calibration": f.calibration,
        }
        for f in stored
    ]


def segment_counts(session: Session, client_id: int) -> list[dict[str, Any]]:
    rows = dict(
        session.execute(
            select(DebtorBehaviour.segment, func.count())
            .where(DebtorBehaviour.client_id == client_id)
            .group_by(DebtorBehaviour.segment)
        ).all()
    )
    return [{"segment": s, "label": SEGMENT_LABELS[s], "debtors": int(rows.get(s, 0))} for s in SEGMENTS]


def behaviours_stmt(client_id: int, segment: str | None = None, alerts_only: bool = False) -> Select[Any]:
    stmt: Select[Any] = (  # type: ignore[assignment]
        select(DebtorBehaviour, Debtor.name, Debtor.external_ref)
        .join(Debtor, (Debtor.client_id == DebtorBehaviour.client_id) & (Debtor.id == DebtorBehaviour.debtor_id))
        .where(DebtorBehaviour.client_id == client_id)
    )
    if segment in SEGMENTS:
        stmt = stmt.where(DebtorBehaviour.segment == segment)
    if alerts_only:
        stmt = stmt.where(
            (DebtorBehaviour.exposure_minor > DebtorBehaviour.credit_limit_minor) | DebtorBehaviour.worsened.is_(True)
        )
    return stmt


BEHAVIOUR_SORTS = {
    "debtor": Debtor.name,
    "segment": DebtorBehaviour.segment,
    "grade": DebtorBehaviour.risk_grade,
    "exposure": DebtorBehaviour.exposure_minor,
    "limit": DebtorBehaviour.credit_limit_minor,
    "late": DebtorBehaviour.mean_late_days,
}


def alerts(b: DebtorBehaviour) -> list[str]:
    out = []
    if b.exposure_minor > b.credit_limit_minor:
        out.append("owes more than its suggested limit")
    if b.worsened:
        out.append("behaviour worsened")
    return out


def recent_moves(session: Session, client_id: int, limit: int = 20) -> list[Any]:
    stmt = (
        select(SegmentMove, Debtor.name)
        .join(Debtor, (Debtor.client_id == SegmentMove.client_id) & (Debtor.id == SegmentMove.debtor_id))
        .where(SegmentMove.client_id == client_id)
        .order_by(SegmentMove.on_day.desc(), SegmentMove.id.desc())
        .limit(limit)
    )
    return list(session.execute(stmt).all())
