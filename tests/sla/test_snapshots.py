"""Daily SLA snapshots (the dashboard's at-risk trend): counts at each day's end computed from the clocks'
history, written once per day through the outbox by the sweep's daily job, backfilled, shown as a chart with
its table, and isolated per client."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from provider.core import jobs
from provider.core.clock import frozen_time
from provider.core.outbox_models import BackgroundJob
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from sla import snapshots
from sla.calendars import calendar_for
from sla.clocks import pause_clock, start_clock, stop_clock
from sla.jobs import sweep_sla_clocks_job
from sla.models import SlaDailySnapshot
from sla.sweep import sweep
from tests.conftest import login
from tests.factories import make_client, make_contract_terms, make_user

MONDAY, TUESDAY, WEDNESDAY = date(2026, 5, 18), date(2026, 5, 19), date(2026, 5, 20)
NINE = datetime(2026, 5, 18, 7, 0, tzinfo=UTC)  # Monday 09:00 in Berlin
THURSDAY_10 = datetime(2026, 5, 21, 8, 0, tzinfo=UTC)


@pytest.fixture
def clocks(db_session: Any) -> Any:
    """Monday in Berlin (work 09:00-17:00): X (2 business days, at risk after 12 h) starts at 13:00; W (4 hours)
    starts at 09:00 and breaches at 13:00; Z starts at 09:00 and is paused at 10:00; Y is done by 10:00."""
    client = make_client()
    make_contract_terms(client, targets={"dispute_ack": ("business_days", 2), "query_answer": ("business_hours", 4)})
    with scoped(TenantScope.agency(), db.session):
        cal = calendar_for(db.session, client)
        start_clock(db.session, cal, client.id, "dispute_ack", ("dispute", 1), at=NINE + timedelta(hours=4))
        start_clock(db.session, cal, client.id, "query_answer", ("query", 2), at=NINE)
        z = start_clock(db.session, cal, client.id, "dispute_ack", ("dispute", 3), at=NINE)
        pause_clock(db.session, z, cal, at=NINE + timedelta(hours=1))
        y = start_clock(db.session, cal, client.id, "query_answer", ("query", 4), at=NINE)
        stop_clock(db.session, y, cal, at=NINE + timedelta(hours=1))
        sweep(db.session, THURSDAY_10)
        db.session.commit()
    return client


def test_each_days_end_is_counted_from_the_clocks_history(clocks: Any) -> None:
    with scoped(TenantScope.single(clocks.id), db.session):
        counts = snapshots.counts_on(db.session, clocks, [MONDAY, TUESDAY, WEDNESDAY])
    assert [(c.open_clocks, c.at_risk, c.breached_open) for c in counts] == [(3, 0, 1), (3, 1, 1), (3, 0, 2)]


def test_the_sweep_starts_the_days_snapshots_once_and_they_are_written_once(clocks: Any) -> None:
    with frozen_time(THURSDAY_10):
        sweep_sla_clocks_job()
        db.session.commit()
        sweep_sla_clocks_job()  # five minutes later: the day's snapshot job is not queued again
        db.session.commit()
        with scoped(TenantScope.agency(), db.session):
            keys = db.session.scalars(select(BackgroundJob.key).where(BackgroundJob.key.like("sla-snapshots:%"))).all()
        assert keys == ["sla-snapshots:20260521"]
        jobs.drain()  # the queued job runs (after the commit): Monday to Wednesday, the days the clocks have
        with scoped(TenantScope.single(clocks.id), db.session):
            assert db.session.scalar(select(func.count()).select_from(SlaDailySnapshot)) == 3
        assert snapshots.snapshot_sla_days_job() == 0  # a second run (a retry) writes nothing
    with frozen_time(THURSDAY_10 + timedelta(days=1)):
        assert snapshots.snapshot_sla_days_job() == 1  # Thursday, the next night
    with scoped(TenantScope.single(clocks.id), db.session):
        rows = db.session.scalars(select(SlaDailySnapshot).order_by(SlaDailySnapshot.day)).all()
        assert [(r.day, r.at_risk, r.breached_open) for r in rows][:3] == [
            (MONDAY, 0, 1),
            (TUESDAY, 1, 1),
            (WEDNESDAY, 0, 2),
        ]
    other = make_client(name="Other Client GmbH")
    with scoped(TenantScope.single(other.id), db.session):  # another client sees none of them
        assert db.session.scalar(select(func.count()).select_from(SlaDailySnapshot)) == 0


def test_the_dashboard_draws_the_at_risk_trend_with_its_table(client: FlaskClient, clocks: Any) -> None:
    login(client, make_user("manager").email)
    with frozen_time(THURSDAY_10):
        empty = client.get("/slas").get_data(as_text=True)
        assert "data-risk-empty" in empty
        with scoped(TenantScope.agency(), db.session):
            assert snapshots.backfill(db.session, [clocks]) == 3
            db.session.commit()
        page = client.get("/slas").get_data(as_text=True)
    section = page.split("data-risk-trend")[1].split("</section>")[0]
    assert 'src="data:image/svg+xml' in section and "data-risk-empty" not in section
    tuesday = section.split('data-risk-day="2026-05-19"')[1].split("</tr>")[0]
    assert "19 May 2026" in tuesday and [c for c in tuesday.split("<td") if "num" in c][1].count(">1<") == 1


def test_the_trend_waits_for_a_day_to_be_over_in_every_clients_zone(db_session: Any) -> None:
    from sla.trends import at_risk_by_day

    east, west = make_client(timezone="Australia/Sydney"), make_client(timezone="America/Los_Angeles")
    with scoped(TenantScope.agency(), db.session):
        for client, days in ((east, [MONDAY, TUESDAY]), (west, [MONDAY])):  # Tuesday is over in Sydney only
            for n, day in enumerate(days):
                db.session.add(
                    SlaDailySnapshot(
                        client_id=client.id, day=day, open_clocks=3, at_risk=1 + n, breached_open=1, taken_at=NINE
                    )
                )
        db.session.commit()
        trend = at_risk_by_day(db.session, WEDNESDAY)
    assert [(r.day, r.at_risk, r.clients) for r in trend] == [(MONDAY, 2, 2)]
