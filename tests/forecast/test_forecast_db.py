"""The forecast read from the real ledger: as of a past date it uses only what was known then; the refit stores
segments, grades, limits and forecasts, and running it twice changes nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from clients import services
from provider.core.clock import today_utc
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.forecast.models import CashForecast, DebtorBehaviour, SegmentMove
from provider.forecast.services import forecast_client, refit_client
from tests.factories import make_client, make_invoice
from tests.forecast.helpers import post_synthetic


def _seeded(db_session: Any) -> tuple[Any, dict[str, Any]]:
    client = make_client(base_currency="EUR")
    start = today_utc() - timedelta(weeks=40)
    return client, post_synthetic(client, seed=3, debtors=40, weeks=40, start=start, per_week=12)


def test_a_forecast_as_of_a_past_date_ignores_what_was_posted_later(db_session: Any) -> None:
    client, seeded = _seeded(db_session)
    as_of = today_utc() - timedelta(weeks=10)
    with scoped(TenantScope.single(client.id), db.session):
        before = forecast_client(db.session, client.id, as_of, reuse=False)
        assert before.weeks["EUR"][0]["expected"] > 0
        debtor_id = seeded["debtor_ids"][0]
        from clients.models import Debtor

        debtor = db.session.get_one(Debtor, debtor_id)
        later = make_invoice(client, debtor, "LATE-1", 9_999_00, issue_date=as_of + timedelta(days=3),
                             due_date=as_of + timedelta(days=10))  # fmt: skip
        paid = services.record_payments(
            db.session,
            client,
            [{"debtor_id": debtor_id, "external_ref": "LATER-PAY", "received_on": as_of + timedelta(days=12),
              "currency": "EUR", "amount_minor": 9_999_00, "reference": later.number}],
        )  # fmt: skip
        services.auto_allocate_many(db.session, client, [paid[0].payment.id])
        db.session.commit()
        after = forecast_client(db.session, client.id, as_of, reuse=False)
        today = forecast_client(db.session, client.id, today_utc() - timedelta(weeks=1), reuse=False)
    assert after.weeks == before.weeks
    assert after.backtest == before.backtest
    # the same posting does change a forecast made after it (the test can tell a change)
    assert today.weeks["EUR"] != before.weeks["EUR"]


def test_refit_stores_behaviour_and_forecast_and_is_idempotent(db_session: Any) -> None:
    client, _seeded_rows = _seeded(db_session)
    with scoped(TenantScope.single(client.id), db.session):
        counts = refit_client(db.session, client.id)
        db.session.commit()
        rows = db.session.scalar(select(func.count(DebtorBehaviour.id)).where(DebtorBehaviour.client_id == client.id))
        assert rows == counts["debtors"] > 0
        segments = set(
            db.session.scalars(select(DebtorBehaviour.segment).where(DebtorBehaviour.client_id == client.id))
        )
        assert len(segments) >= 3  # debtors of distinct habits land in distinct segments
        forecast = db.session.scalar(select(CashForecast).where(CashForecast.client_id == client.id))
        assert forecast is not None and len(forecast.weeks) == 13
        assert all(w["low"] <= w["expected"] <= w["high"] for w in forecast.weeks)
        assert forecast.backtest["origins"] >= 3
        again = refit_client(db.session, client.id)
        db.session.commit()
        assert again["moves"] == 0
        assert db.session.scalar(select(func.count(CashForecast.id)).where(CashForecast.client_id == client.id)) == 1
        # a debtor whose behaviour changes is moved, and the move is kept
        some = db.session.scalars(select(DebtorBehaviour).where(DebtorBehaviour.client_id == client.id)).first()
        assert some is not None
        some.segment = "silent" if some.segment != "silent" else "pays_on_time"
        db.session.commit()
        refit_client(db.session, client.id)
        db.session.commit()
        assert db.session.scalar(select(func.count(SegmentMove.id)).where(SegmentMove.client_id == client.id)) == 1


def test_a_client_without_invoices_gets_an_empty_forecast(db_session: Any) -> None:
    client = make_client()
    with scoped(TenantScope.single(client.id), db.session):
        result = forecast_client(db.session, client.id, today_utc())
        counts = refit_client(db.session, client.id)
    assert result.weeks == {} and counts["debtors"] == 0


def test_a_past_day_view_fits_few_month_ends_and_reuses_stored_ones(db_session: Any) -> None:
    from provider.forecast.queries import forecast_view
    from provider.forecast.services import LIVE_ORIGINS

    client, _seeded_rows = _seeded(db_session)
    as_of = today_utc() - timedelta(weeks=3)
    with scoped(TenantScope.single(client.id), db.session):
        full = forecast_client(db.session, client.id, as_of, reuse=False)
        assert full.backtest["EUR"]["origins"] > LIVE_ORIGINS  # the test can tell a bounded view from a full one
        # nothing stored yet: the view fits only the newest month-ends and says how many it left out
        (bounded,) = forecast_view(db.session, client.id, as_of)
        assert bounded["backtest"]["origins"] == LIVE_ORIGINS
        assert bounded["backtest"]["month_ends_left_out"] == full.backtest["EUR"]["origins"] - LIVE_ORIGINS
        assert bounded["weeks"][0]["expected"] == full.weeks["EUR"][0]["expected"]
        # after a refit the month-end forecasts are stored, and the same view uses them all
        refit_client(db.session, client.id)
        db.session.commit()
        (reused,) = forecast_view(db.session, client.id, as_of)
    assert reused["backtest"]["origins"] == full.backtest["EUR"]["origins"]
    assert reused["backtest"]["month_ends_left_out"] == 0
    assert [w["expected"] for w in reused["weeks"]] == [w["expected"] for w in full.weeks["EUR"]]
