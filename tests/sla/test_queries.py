"""What other packages read: monthly SLA compliance per term (monthly report, portal), the open-dispute flag
(worklists), and row-level security on the SLA tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from sla.calendars import calendar_for
from sla.clocks import start_clock, stop_clock
from sla.months import close_month
from sla.queries import month_bounds, monthly_compliance
from sla.sweep import sweep
from tests.factories import make_client, make_contract_terms, make_debtor, make_dispute, make_invoice

MAY_4 = datetime(2026, 5, 4, 7, 0, tzinfo=UTC)  # Monday 9:00 in Berlin


def test_monthly_compliance_per_term(db_session: Any) -> None:
    client = make_client()
    make_contract_terms(client)
    cal = calendar_for(db.session, client)

    def clock(code: str, n: int, stop_after_h: float | None, start: datetime = MAY_4) -> None:
        c = start_clock(db.session, cal, client.id, code, ("query", n), at=start)
        if stop_after_h is not None:
            stop_clock(db.session, c, cal, at=start + timedelta(hours=stop_after_h))

    clock("query_answer", 1, 2)  # met
    clock("query_answer", 2, 3.5)  # met
    clock("query_answer", 3, 6)  # late: due 13:00
    clock("query_answer", 4, None)  # still running, breached by the sweep below
    clock("dispute_ack", 5, 1)  # met
    clock("dispute_ack", 6, None)  # running, not yet due at the sweep: not decided
    clock("query_answer", 7, 1, start=datetime(2026, 4, 30, 20, 0, tzinfo=UTC))  # 22:00 local, stops 23:00 in April
    sweep(db.session, MAY_4 + timedelta(hours=7))
    rows = {r.code: (r.decided, r.met, r.percent) for r in monthly_compliance(db.session, client, 2026, 5)}
    assert rows == {"query_answer": (4, 2, 50.0), "dispute_ack": (1, 1, 100.0)}
    april = {r.code: (r.decided, r.met) for r in monthly_compliance(db.session, client, 2026, 4)}
    assert april == {"query_answer": (1, 1)}


def test_month_bounds_are_local() -> None:
    assert month_bounds("Europe/Berlin", 2026, 5) == (
        datetime(2026, 4, 30, 22, 0, tzinfo=UTC),
        datetime(2026, 5, 31, 22, 0, tzinfo=UTC),
    )
    assert month_bounds("Asia/Tokyo", 2026, 12)[1] == datetime(2026, 12, 31, 15, 0, tzinfo=UTC)


def test_sla_tables_are_separated_by_row_level_security(db_session: Any, backend: str) -> None:
    a, b = make_client(), make_client()
    for client in (a, b):
        make_contract_terms(client)
        debtor = make_debtor(client)
        make_dispute(client, debtor, [make_invoice(client, debtor, f"I-{client.id}", 10_00)])
        close_month(db.session, client, 2026, 4)
    tables = ("disputes", "dispute_invoices", "sla_clocks", "sla_clock_events", "contract_terms", "sla_targets")
    tables += ("sla_month_closes",)
    with scoped(TenantScope.single(a.id), db.session):
        for table in tables:
            owners = db.session.execute(text(f"SELECT DISTINCT client_id FROM {table}")).scalars().all()
            if backend == "postgresql":  # raw SQL bypasses the ORM guard: only RLS stands in the way
                assert owners == [a.id], table
            else:
                assert set(owners) == {a.id, b.id}, table


def test_hooks_start_and_complete_other_slas(db_session: Any) -> None:
    from sla.hooks import sla_completed, sla_started

    client = make_client()
    make_contract_terms(client)
    clock = sla_started(db.session, client, "placement_ack", ("placement", 7), at=MAY_4)
    assert clock is not None and clock.allowance_s == 8 * 3600
    assert sla_started(db.session, client, "recovery_rate", ("placement", 7), at=MAY_4) is None  # outcome target
    done = sla_completed(db.session, client, "placement_ack", ("placement", 7), at=MAY_4 + timedelta(hours=3))
    assert done is clock and clock.state == "stopped" and clock.breached_at is None
    assert sla_completed(db.session, client, "first_contact", ("debtor", 1)) is None
