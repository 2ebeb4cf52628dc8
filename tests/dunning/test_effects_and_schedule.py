"""The effect of each stage (payments and promises within 14 days), in the monthly report's section; and the
hourly schedule that starts one run per client and local day through the job outbox."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, select

from provider.core.clock import frozen_time
from provider.core.outbox_models import BackgroundJob
from provider.core.tenancy import TenantScope, scoped
from provider.dunning.jobs import dunning_run_job, schedule_dunning_job
from provider.dunning.models import DunningRun
from provider.dunning.queries import report_section, stage_effects
from provider.dunning.run import run_client
from provider.extensions import db
from tests.dunning.helpers import TASKS, approved_policy
from tests.factories import make_client, make_debtor, make_invoice, make_payment, make_work_items


def test_a_payment_within_14_days_counts_for_the_stage_and_a_later_one_does_not(db_session: Any) -> None:
    client = make_client()
    approved_policy(client, TASKS)
    quick, slow, silent = (make_debtor(client, name=n) for n in ("Quick", "Slow", "Silent"))
    for n, debtor in enumerate((quick, slow, silent)):
        make_invoice(client, debtor, f"FX-{n}", 30_000, due_date=date(2026, 2, 20))
    make_work_items(client)
    with scoped(TenantScope.single(client.id), db.session):
        run_client(db.session, client.id, date(2026, 3, 1))  # 9 days late: the first call stage (3 days)
        db.session.commit()
    make_payment(client, quick, "PAY-Q", 12_345, received_on=date(2026, 3, 10))
    make_payment(client, slow, "PAY-S", 30_000, received_on=date(2026, 3, 20))  # 19 days after: no effect
    with scoped(TenantScope.agency(), db.session):
        (effect,) = stage_effects(db.session, client.id, "2026-03")
        assert (effect.stage, effect.sent, effect.paid, effect.paid_minor) == ("Reminder call", 3, 1, 12_345)
        assert effect.paid_pct == 33.3
        (row,) = report_section(db.session, client.id, date(2026, 3, 1), date(2026, 3, 31))
        assert row["paid"] == 1 and row["channel"] == "Call by a collector" and "123.45" in row["paid_amount"]
        assert stage_effects(db.session, client.id, "2026-02") == []


def test_the_schedule_starts_one_run_per_client_after_its_local_hour_and_never_twice(app: Any, db_session: Any) -> None:
    berlin = make_client(timezone="Europe/Berlin")
    tokyo = make_client(timezone="Asia/Tokyo", country="JP", base_currency="JPY")
    approved_policy(berlin, TASKS)
    approved_policy(tokyo, TASKS)
    make_client(timezone="Europe/Berlin")  # no policy: no run
    app.config["JOBS_EAGER_RAISE"] = True
    with frozen_time(datetime(2026, 3, 2, 6, 30, tzinfo=UTC)):  # Berlin 07:30 (too early), Tokyo 15:30
        with scoped(TenantScope.agency(), db.session):
            queued = schedule_dunning_job.__wrapped_job__()  # type: ignore[attr-defined]
            db.session.info.pop("pending_jobs", None)
            db.session.commit()
        assert queued == [f"dunning:{tokyo.id}:2026-03-02"]
        with scoped(TenantScope.agency(), db.session):
            again = schedule_dunning_job.__wrapped_job__()  # type: ignore[attr-defined]
            db.session.info.pop("pending_jobs", None)
            db.session.commit()
        assert again == []  # the same named work is still waiting: not queued twice
        with scoped(TenantScope.agency(), db.session):
            keys = db.session.scalars(select(BackgroundJob.key).where(BackgroundJob.key.like("dunning:%"))).all()
        assert keys == [f"dunning:{tokyo.id}:2026-03-02"]
        dunning_run_job(tokyo.id, "2026-03-02")  # what the worker runs
    with frozen_time(datetime(2026, 3, 2, 9, 0, tzinfo=UTC)):  # Berlin 10:00; Tokyo's run for today is done
        with scoped(TenantScope.agency(), db.session):
            queued = schedule_dunning_job.__wrapped_job__()  # type: ignore[attr-defined]
            db.session.info.pop("pending_jobs", None)
            db.session.commit()
        assert queued == [f"dunning:{berlin.id}:2026-03-02"]
    with scoped(TenantScope.agency(), db.session):
        runs = db.session.scalar(select(func.count()).select_from(DunningRun).where(DunningRun.client_id == tokyo.id))
        assert runs == 1
