"""The KPI page reads today's daily snapshot when there is one (no journal read), says when it was computed
and whether anything was posted since, and computes live otherwise; a snapshot equals the live figures."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import event, select

from provider.core.clock import frozen_time
from provider.core.money import format_money
from provider.core.tenancy import TenantScope, scoped
from provider.extensions import db
from provider.reporting import figures as fig
from provider.reporting.jobs import take_snapshot
from provider.reporting.models import KpiSnapshot
from tests.conftest import login
from tests.factories import make_user
from tests.reports.ledger_world import at, march_world, pay

NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)  # the march world's client is on UTC: its today is 2026-11-02


@contextmanager
def journal_reads() -> Iterator[list[str]]:
    """The statements that read the journal, or its monthly totals, while the block runs."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "journal_entries" in statement or "journal_month_totals" in statement:
            seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def _snapshot(client: Any) -> KpiSnapshot:
    with frozen_time(NOW), scoped(TenantScope.agency(), db.session):
        snap = take_snapshot(client)
        db.session.commit()
    return snap


def _live(client_id: int, as_of: date) -> dict[str, Any]:
    with scoped(TenantScope.agency(), db.session):
        return fig.derive(fig.collect_inputs(client_id, as_of))


def _dso(figures: dict[str, Any]) -> str:
    return str(figures["currencies"]["EUR"]["current"]["dso"])


def test_snapshot_stores_exactly_the_live_figures(db_session: Any) -> None:
    w = march_world()
    snap = _snapshot(w.client)
    db.session.expire_all()
    with scoped(TenantScope.agency(), db.session):
        stored = db.session.scalar(select(KpiSnapshot).where(KpiSnapshot.id == snap.id))
        assert stored is not None
        assert (stored.as_of, stored.computed_at) == (NOW.date(), NOW)
        assert stored.figures == _live(w.client.id, NOW.date())
    # a re-run the same day refreshes it in place, with the new computation time
    later = datetime(2026, 11, 2, 15, tzinfo=UTC)
    with frozen_time(later), scoped(TenantScope.agency(), db.session):
        again = take_snapshot(w.client)
        db.session.commit()
        assert (again.id, again.computed_at) == (snap.id, later)


def test_kpi_page_reads_todays_snapshot_without_reading_the_journal(client: FlaskClient, db_session: Any) -> None:
    w = march_world(name="Harbour Freight Ltd")
    _snapshot(w.client)
    live = _live(w.client.id, NOW.date())
    login(client, make_user("manager").email)
    with frozen_time(NOW), journal_reads() as reads:
        page = client.get(f"/reports/clients/{w.client.id}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert reads == []
    assert "from the daily snapshot computed at 2 Nov 2026, 10:00 UTC" in body
    assert "postings made after it" not in body
    assert _open_ar(live) in body and "Aging at 2 Nov 2026" in body


def test_kpi_page_says_when_the_snapshot_misses_later_postings_and_computes_live_on_request(
    client: FlaskClient, db_session: Any
) -> None:
    w = march_world()
    _snapshot(w.client)
    before = _live(w.client.id, NOW.date())
    # paid after the snapshot was taken, the same day: the snapshot does not have it
    a = w.client.id
    with scoped(TenantScope.agency(), db.session):
        invoice_c = _invoice(a, "C")
    pay(w.client, w.d2, "P9", 150_000, NOW.date(), invoice_c, posted=at(NOW.date(), 11))
    after = _live(a, NOW.date())
    assert after != before
    login(client, make_user("manager").email)
    with frozen_time(datetime(2026, 11, 2, 12, tzinfo=UTC)):
        stale = client.get(f"/reports/clients/{a}").get_data(as_text=True)
        with journal_reads() as reads:
            fresh = client.get(f"/reports/clients/{a}?live=1").get_data(as_text=True)
    assert "postings made after it" in stale and "Compute now from the ledger" in stale
    assert _open_ar(before) in stale and _open_ar(after) not in stale
    assert reads, "a live page reads the journal"
    assert "computed from the ledger at 2 Nov 2026, 12:00 UTC" in fresh
    assert _open_ar(after) in fresh


def test_a_past_date_is_computed_live_and_later_postings_do_not_leak(client: FlaskClient, db_session: Any) -> None:
    w = march_world()
    _snapshot(w.client)
    login(client, make_user("manager").email)
    with frozen_time(NOW):
        page = client.get(f"/reports/clients/{w.client.id}?as_of=2026-03-31").get_data(as_text=True)
    march = _live(w.client.id, date(2026, 3, 31))
    assert "computed from the ledger" in page and "daily snapshot" not in page
    # P3 (paid 04-05) is not in March's figures; the snapshot of today (it has P3) is not used
    assert march["currencies"]["EUR"]["aging_total"] == 335_000
    assert _dso(march) in page and "Aging at 31 Mar 2026" in page


def test_without_a_snapshot_the_page_is_computed_live(client: FlaskClient, db_session: Any) -> None:
    w = march_world()
    login(client, make_user("manager").email)
    with frozen_time(NOW), journal_reads() as reads:
        page = client.get(f"/reports/clients/{w.client.id}").get_data(as_text=True)
    assert reads and "computed from the ledger at 2 Nov 2026, 10:00 UTC" in page


def _invoice(client_id: int, number: str) -> Any:
    from clients.journal import Invoice

    return db.session.scalar(select(Invoice).where(Invoice.client_id == client_id, Invoice.number == number))


def _open_ar(figures: dict[str, Any]) -> str:
    """The "Open AR" tile as the page prints it."""
    return format_money(figures["currencies"]["EUR"]["current"]["ar_end"], "EUR")
