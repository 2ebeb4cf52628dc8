"""distribution keys: `client_id` in every key of the tables made before migration 0020

Revision ID: 0040
Revises: 0036
Create Date: 2026-12-07

A sharding engine such as Citus (DESIGN §6) needs the distribution column in every primary and unique key and in
every foreign key between two distributed tables. Tables made from 0020 on are built that way
(`provider.core.schema_rules`); this migration brings the older client-owned tables (those whose `client_id` is
never empty) to the same form.

PostgreSQL only. On SQLite the tables keep their keys: SQLite is never distributed, and changing a key there
means rebuilding the table (and, for the journal, losing its append-only triggers); `migrations/env.py` tells
the drift check which SQLite keys are kept on purpose.

1. The two foreign keys that named a parent by `id` alone include `client_id`: a journal transaction's
   `reverses_id` (and its "reversed at most once" unique key) and a report notification's `report_id` (and
   its "once per report and recipient" key).
2. For each table: the primary key `(id)` becomes `(client_id, id)`; the separate unique `(client_id, id)` that
   composite foreign keys pointed at is dropped and those foreign keys are made again on the primary key (so
   the table keeps two indexes: the key and the lookup below); a plain index on `id`
   (`<table>_id_lookup`) keeps loading a row by its id alone (`session.get`) an index scan.
   `dispute_invoices` (keyed by dispute and invoice) gets `client_id` in front of its key.

Row counts do not change; the data is not rewritten, only indexes are built.
"""
import sqlalchemy as sa
from alembic import op

revision = '0040'
down_revision = '0036'
branch_labels = None
depends_on = None

TABLES = (
    "api_idempotency_keys", "business_calendars", "calendar_closed_days", "client_queries", "contract_terms",
    "credit_notes", "debtor_contacts", "debtors", "dispute_evidence", "dispute_messages", "disputes",
    "import_batches", "invoices", "journal_entries", "journal_month_totals", "journal_transactions", "kpi_snapshots",
    "monthly_reports", "payment_plans", "payments", "promises", "report_notifications", "sla_clock_events",
    "sla_clocks", "sla_notifications", "sla_targets", "webhook_attempts", "webhook_deliveries", "webhook_endpoints",
    "webhook_events", "work_actions", "work_items", "worklist_segment_weights", "worklist_strategies",
)
# the tables that had a unique (client_id, id) beside their primary key (the downgrade makes it again)
TWINS = (
    "webhook_endpoints", "webhook_events", "webhook_deliveries", "debtors", "invoices", "payments", "credit_notes",
    "journal_transactions", "work_items", "payment_plans", "contract_terms", "sla_clocks", "disputes",
    "dispute_evidence", "client_queries",
)


def _pg():
    return op.get_bind().dialect.name == "postgresql"


def _foreign_keys_to(table):
    """(name, table, definition) of every foreign key that points at `table` (from another table or itself)."""
    rows = op.get_bind().execute(
        sa.text(
            "SELECT conname, conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contype = 'f' AND confrelid = CAST(:t AS regclass) ORDER BY conname"
        ),
        {"t": table},
    )
    return [tuple(r) for r in rows]


def _has_constraint(table, name):
    return op.get_bind().execute(
        sa.text("SELECT 1 FROM pg_constraint WHERE conrelid = CAST(:t AS regclass) AND conname = :n"),
        {"t": table, "n": name},
    ).first() is not None


def _rekey(table, key, twin):
    """Primary key `key`; the unique `twin` (if any) dropped with the foreign keys on it, which are made again
    once the new primary key is there."""
    children = _foreign_keys_to(table)
    for name, child, _definition in children:
        op.execute(f"ALTER TABLE {child} DROP CONSTRAINT {name}")
    if twin and _has_constraint(table, twin):
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {twin}")
    op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}")
    op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({', '.join(key)})")
    return children


def _restore(children):
    for name, child, definition in children:
        op.execute(f"ALTER TABLE {child} ADD CONSTRAINT {name} {definition}")


def upgrade():
    if not _pg():
        return
    op.drop_constraint("uq_journal_transactions_reverses_id", "journal_transactions", type_="unique")
    op.drop_constraint("fk_journal_transactions_reverses_id_journal_transactions", "journal_transactions",
                       type_="foreignkey")
    op.drop_constraint("uq_report_notifications_report_id_recipient", "report_notifications", type_="unique")
    op.drop_constraint("fk_report_notifications_report_id_monthly_reports", "report_notifications",
                       type_="foreignkey")

    for table in TABLES:
        op.execute(f"CREATE INDEX {table}_id_lookup ON {table} (id)")
        _restore(_rekey(table, ("client_id", "id"), f"uq_{table}_client_id_id"))
    _restore(_rekey("dispute_invoices", ("client_id", "dispute_id", "invoice_id"), None))

    op.create_unique_constraint("uq_journal_transactions_client_id_reverses_id", "journal_transactions",
                                ["client_id", "reverses_id"])
    op.create_foreign_key("fk_journal_transactions_client_id_journal_transactions", "journal_transactions",
                          "journal_transactions", ["client_id", "reverses_id"], ["client_id", "id"])
    op.create_unique_constraint("uq_report_notifications_client_id_report_id_recipient", "report_notifications",
                                ["client_id", "report_id", "recipient"])
    op.create_foreign_key("fk_report_notifications_client_id_monthly_reports", "report_notifications",
                          "monthly_reports", ["client_id", "report_id"], ["client_id", "id"], ondelete="CASCADE")


def downgrade():
    if not _pg():
        return
    op.drop_constraint("fk_report_notifications_client_id_monthly_reports", "report_notifications",
                       type_="foreignkey")
    op.drop_constraint("uq_report_notifications_client_id_report_id_recipient", "report_notifications",
                       type_="unique")
    op.drop_constraint("fk_journal_transactions_client_id_journal_transactions", "journal_transactions",
                       type_="foreignkey")
    op.drop_constraint("uq_journal_transactions_client_id_reverses_id", "journal_transactions", type_="unique")

    _restore(_rekey("dispute_invoices", ("dispute_id", "invoice_id"), None))
    for table in reversed(TABLES):
        children = _rekey(table, ("id",), None)
        if table in TWINS:
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT uq_{table}_client_id_id UNIQUE (client_id, id)")
        _restore(children)
        op.execute(f"DROP INDEX {table}_id_lookup")

    op.create_unique_constraint("uq_report_notifications_report_id_recipient", "report_notifications",
                                ["report_id", "recipient"])
    op.create_foreign_key("fk_report_notifications_report_id_monthly_reports", "report_notifications",
                          "monthly_reports", ["report_id"], ["id"], ondelete="CASCADE")
    op.create_unique_constraint("uq_journal_transactions_reverses_id", "journal_transactions", ["reverses_id"])
    op.create_foreign_key("fk_journal_transactions_reverses_id_journal_transactions", "journal_transactions",
                          "journal_transactions", ["reverses_id"], ["id"])
