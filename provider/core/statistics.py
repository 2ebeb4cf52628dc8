"""The planner's statistics after bulk writes (PostgreSQL).

The application role owns no table, so it cannot ANALYZE; `app_analyze(name)` (migrations 0004, 0031) runs it,
as the owner, on the tables of `ANALYZABLE` only. Why it matters: PostgreSQL plans the foreign-key check of an
INSERT once per session and keeps that plan until the referenced table's statistics change. A table that was
empty when the plan was made is checked by a sequential scan, so a job that writes tens of thousands of rows into
a young table (the agency's books, the dunning run's messages) slows down with the square of its size: measured,
200,000 agency entries took 52 s, then 3 s once the statistics were fresh.

`GrowthWatch` is for a job that writes in chunks inside one transaction: the statistics counters only move at
commit, so it counts the rows itself and refreshes a table's statistics once it has grown by autovacuum's
threshold (50 rows + 10 %). ANALYZE inside the transaction sees the transaction's own new rows. `app_analyze`
waits at most a moment for the table's lock (another job analysing it) and otherwise carries on without.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

# the tables `app_analyze` accepts; migrations/versions/0031_analyze_new_tables.py holds the same list
ANALYZABLE = (
    "debtors", "invoices", "journal_transactions", "journal_entries", "payments", "credit_notes",
    "background_jobs", "comm_messages", "comm_events", "comm_attachments", "dunning_decisions", "payment_fees",
    "agency_transactions", "agency_entries", "charge_accruals", "trust_bank_lines",
)  # fmt: skip


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def refresh_statistics(session: Session, *tables: str) -> None:
    """After a bulk load, let the planner see the new size of these tables (PostgreSQL; see migration 0004)."""
    if not _postgresql(session):
        return
    for table in tables:
        session.execute(sa.text("SELECT app_analyze(:t)"), {"t": table})


def refresh_statistics_if_stale(session: Session, *tables: str) -> None:
    """Refresh the statistics of those tables that changed by more than autovacuum's analyze threshold
    (50 rows + 10% of the table) since their last ANALYZE: many small loads pay for one ANALYZE per 10%
    of growth instead of one each (PostgreSQL; the counters are approximate, as autovacuum's are, and count
    committed work only). Read from pg_class and the statistics function directly: the pg_stat_user_tables
    view costs ms to plan."""
    if not _postgresql(session):
        return
    stale = session.scalars(
        sa.text(
            "SELECT c.relname FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace "
            "AND c.relname = ANY(:tables) AND c.relkind = 'r' "
            "AND pg_stat_get_mod_since_analyze(c.oid) > 50 + 0.1 * greatest(c.reltuples, 0)"
        ),
        {"tables": list(tables)},
    ).all()
    refresh_statistics(session, *stale)


class GrowthWatch:
    """Counts the rows a chunked job writes into some tables and refreshes a table's statistics whenever it
    has grown past autovacuum's threshold since the last refresh (PostgreSQL; nothing elsewhere)."""

    def __init__(self, session: Session, *tables: str) -> None:
        unknown = set(tables) - set(ANALYZABLE)
        if unknown:
            raise ValueError(f"not in ANALYZABLE: {sorted(unknown)}")
        self.session = session
        self.enabled = _postgresql(session)
        self.added = dict.fromkeys(tables, 0)
        self.size = self._sizes(tables) if self.enabled else {}

    def _sizes(self, tables: tuple[str, ...] | list[str]) -> dict[str, float]:
        rows = self.session.execute(
            sa.text(
                "SELECT relname, greatest(reltuples, 0) FROM pg_class "
                "WHERE relnamespace = current_schema()::regnamespace AND relname = ANY(:t) AND relkind = 'r'"
            ),
            {"t": list(tables)},
        )
        return {name: float(size) for name, size in rows}

    def wrote(self, table: str, rows: int) -> None:
        """`rows` more rows are in `table`; refresh its statistics if that makes them stale."""
        if not self.enabled or rows <= 0:
            return
        self.added[table] += rows
        if self.added[table] > 50 + 0.1 * self.size.get(table, 0.0):
            refresh_statistics(self.session, table)
            self.size[table] = self._sizes([table]).get(table, 0.0)
            self.added[table] = 0
