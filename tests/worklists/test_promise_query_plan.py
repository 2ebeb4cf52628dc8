"""The promise check reads the journal through indexes, never by walking it.

It runs inside every payment posting (and so inside every payment import) and nightly. On the demo's 220k
journal entries its former grouped join took 80 s per check while holding SQLite's write lock, so every save
and sign-in failed with "database is locked". These tests read the database's own plan for the statements
the check runs: on SQLite `EXPLAIN QUERY PLAN`, on PostgreSQL `EXPLAIN` with sequential scans priced out
(the test tables are tiny, so the planner would otherwise rightly prefer a scan): the index must be usable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import event, select

from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from tests.factories import make_payment, make_team, make_user
from tests.worklists.helpers import commercial_client, item_of, overdue_account, rebuild, working_day
from worklists import promises
from worklists.models import Promise
from worklists.promises import DEBTOR_CASH_INDEX

PLAN_INDEX = "ix_promises_client_id_plan_id"


@pytest.fixture
def promised(db_session: Any) -> dict[str, Any]:
    """Two debtors with payments in the journal; the first promised to pay."""
    with working_day():
        client = commercial_client()
        collector = make_user("collector", team=make_team(client))
        debtor, other = overdue_account(client, 1_000_00), overdue_account(client, 2_000_00)
        rebuild(client)
        with scoped(TenantScope.agency(), db.session):
            promises.record_promise(db.session, item_of(debtor), collector, 100_00, date(2026, 3, 20))
            db.session.commit()
    with working_day(datetime(2026, 3, 14, 12, 0, tzinfo=UTC)):
        for n, who in enumerate((debtor, other, other)):
            make_payment(client, who, f"PAY-{n}", 10_00, received_on=date(2026, 3, 12))
    return {"client": client, "debtor": debtor}


@contextmanager
def statements() -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (with their parameters) sent through the session's connection."""
    seen: list[tuple[str, Any]] = []
    engine = db.session.get_bind()

    def capture(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        seen.append((statement, params))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def plan_of(statement: str, params: Any) -> str:
    """The database's plan for a statement, as one text."""
    conn = db.session.connection()
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
        return "\n".join(str(row[-1]) for row in rows)
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    try:
        return "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + statement, params).all())
    finally:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = on")


def _paid_towards_sql(client_ids: list[int], debtor_ids: list[int] | None) -> tuple[str, Any]:
    with statements() as seen, scoped(TenantScope.agency(), db.session):
        rows = promises.paid_towards(db.session, date(2026, 3, 15), client_ids, debtor_ids)
    assert len(rows) == 1 and rows[0][1] == 10_00  # the promised debtor's own payment, not the other's
    (found,) = [(s, p) for s, p in seen if "promises" in s and "journal_entries" in s]
    return found


@pytest.mark.parametrize("by_debtor", [True, False], ids=["a payment posted", "the nightly check"])
def test_the_promise_check_finds_the_debtors_payments_through_an_index(promised: dict, by_debtor: bool) -> None:
    client, debtor = promised["client"], promised["debtor"]
    statement, params = _paid_towards_sql([client.id], [debtor.id] if by_debtor else None)
    with scoped(TenantScope.agency(), db.session):
        plan = plan_of(statement, params)
    if db.session.get_bind().dialect.name == "sqlite":
        assert DEBTOR_CASH_INDEX in plan, plan
        assert "SCAN journal_entries" not in plan and "SCAN journal_transactions" not in plan, plan
        assert "journal_transactions USING INTEGER PRIMARY KEY" in plan, plan  # each entry's date by its key
    else:
        # PostgreSQL picks between the debtor-cash index and (client_id, transaction_id) by the statistics of the
        # moment; in the whole suite, other tests' ANALYZE (its table sizes are not rolled back) tip it at this
        # size. What must hold whatever the statistics: the journal is read through an index, never scanned.
        # Since migration 0040 the primary key (client_id, id) is a third such index of the client's entries.
        assert "Seq Scan on journal" not in plan, plan
        assert any(
            index in plan
            for index in (DEBTOR_CASH_INDEX, "ix_journal_entries_client_id_transaction_id", "pk_journal_entries")
        ), plan


def test_a_plans_instalments_are_read_through_an_index(promised: dict) -> None:
    client = promised["client"]
    stmt = select(Promise.status).where(Promise.client_id == client.id, Promise.plan_id == 1)
    with statements() as seen, scoped(TenantScope.agency(), db.session):
        db.session.execute(stmt).all()
        (statement, params) = next((s, p) for s, p in seen if "promises.plan_id" in s)
        plan = plan_of(statement, params)
    assert PLAN_INDEX in plan, plan
