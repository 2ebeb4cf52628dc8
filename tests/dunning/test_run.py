"""The daily run against the real database (both backends): idempotent, catches up once, records every skip."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import func, select

from provider.core.tenancy import TenantScope, scoped
from provider.dunning.models import DunningDecision, DunningRun
from provider.dunning.run import policy_in_force, run_client
from provider.extensions import db
from tests.dunning.helpers import TASKS, approved_policy
from tests.factories import make_client, make_debtor, make_dispute, make_invoice, make_work_items


def _decisions(client_id: int) -> list[tuple[int, str, int, str, str]]:
    with scoped(TenantScope.agency(), db.session):
        rows = db.session.execute(
            select(
                DunningDecision.debtor_id, DunningDecision.run_date, DunningDecision.stage_days,
                DunningDecision.outcome, DunningDecision.reason,
            )
            .where(DunningDecision.client_id == client_id)
            .order_by(DunningDecision.run_date, DunningDecision.debtor_id)
        )  # fmt: skip
        return [(r[0], r[1].isoformat(), r[2], r[3], r[4]) for r in rows]


def _run(client: Any, day: date) -> DunningRun:
    with scoped(TenantScope.single(client.id), db.session):
        run = run_client(db.session, client.id, day, chunk=2)
        db.session.commit()
        return run


def test_only_an_approved_version_runs(db_session: Any) -> None:
    client = make_client()
    from provider.dunning import services

    with scoped(TenantScope.agency(), db.session):
        services.propose_policy(db.session, client, effective_from=date(2025, 1, 1), stages=TASKS)
        db.session.commit()
        assert policy_in_force(db.session, client.id, date(2026, 3, 1)) is None
    debtor = make_debtor(client)
    make_invoice(client, debtor, "INV-1", 10_000, due_date=date(2026, 2, 4))
    run = _run(client, date(2026, 3, 1))
    assert run.note.startswith("No approved") and _decisions(client.id) == []


def test_twice_the_same_day_sends_nothing_twice_and_downtime_catches_up_once(db_session: Any) -> None:
    client = make_client()
    approved_policy(client, TASKS)
    early = make_debtor(client, name="Early")
    late = make_debtor(client, name="Late")
    make_invoice(client, early, "E-1", 10_000, due_date=date(2026, 2, 1))
    make_invoice(client, late, "L-1", 20_000, due_date=date(2026, 2, 20))
    make_work_items(client)

    _run(client, date(2026, 2, 5))  # early: 4 days late -> stage 3 days
    _run(client, date(2026, 2, 5))  # again: nothing new
    assert _decisions(client.id) == [(early.id, "2026-02-05", 3, "sent", "")]

    # downtime until Mar 10: early is 37 days late (stages 14 and 30 missed), late 18 days (3 and 14 missed)
    _run(client, date(2026, 3, 10))
    _run(client, date(2026, 3, 10))
    _run(client, date(2026, 3, 11))
    assert _decisions(client.id) == [
        (early.id, "2026-02-05", 3, "sent", ""),
        (early.id, "2026-03-10", 30, "sent", ""),
        (late.id, "2026-03-10", 14, "sent", ""),
    ]
    with scoped(TenantScope.agency(), db.session):
        runs = db.session.scalar(select(func.count()).select_from(DunningRun).where(DunningRun.client_id == client.id))
    assert runs == 3


def test_excluded_debtors_get_nothing_and_the_reason_is_recorded(db_session: Any) -> None:
    client = make_client()
    approved_policy(client, TASKS, min_amount_minor=5_000)
    disputed = make_debtor(client, name="Disputed")
    quiet = make_debtor(client, name="Do not contact", do_not_contact=True)
    small = make_debtor(client, name="Small")
    fine = make_debtor(client, name="Fine")
    invoice = make_invoice(client, disputed, "D-1", 10_000, due_date=date(2026, 2, 1))
    make_dispute(client, disputed, [invoice])
    make_invoice(client, quiet, "Q-1", 10_000, due_date=date(2026, 2, 1))
    make_invoice(client, small, "S-1", 1_000, due_date=date(2026, 2, 1))
    make_invoice(client, fine, "F-1", 10_000, due_date=date(2026, 2, 1))
    make_work_items(client)
    _run(client, date(2026, 2, 20))
    got = {d[0]: (d[3], d[4]) for d in _decisions(client.id)}
    assert got == {
        disputed.id: ("skipped", "in_dispute"),
        quiet.id: ("skipped", "do_not_contact"),
        small.id: ("skipped", "under_threshold"),
        fine.id: ("sent", ""),
    }
    # a later day: the skipped ones are skipped again (recorded per day), the sent one is not sent again
    _run(client, date(2026, 2, 21))
    later = [d for d in _decisions(client.id) if d[1] == "2026-02-21"]
    assert {d[0] for d in later} == {disputed.id, quiet.id, small.id}


def test_the_collector_task_stage_puts_the_account_on_todays_list(db_session: Any) -> None:
    from worklists.models import WorkItem

    client = make_client()
    approved_policy(client, TASKS)
    debtor = make_debtor(client)
    make_invoice(client, debtor, "T-1", 10_000, due_date=date(2026, 2, 1))
    make_work_items(client)
    _run(client, date(2026, 2, 5))
    with scoped(TenantScope.agency(), db.session):
        item = db.session.scalars(select(WorkItem).where(WorkItem.debtor_id == debtor.id)).one()
        db.session.refresh(item)
        assert item.next_action_on == date(2026, 2, 5)
        assert "overdue" in item.next_action_note
