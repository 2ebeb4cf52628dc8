"""the API's change feed: `updated_at` on invoices, payments, credit notes, disputes, monthly reports and work
actions, and an index (client_id, updated_at, id) on those and on debtors; webhook secret rotation

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-07

The API lists every resource `?updated_since=...&sort=updated_at` (incremental sync), paging by the keyset
(updated_at, id): the index serves both the filter and the order. The new columns are nullable (SQLite cannot
add a NOT NULL column without a constant default, and rebuilding the ledger's tables for it is not worth it);
they are filled here from each row's creation time and set by the models on every insert and update.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None

# table -> the column the existing rows' updated_at is filled from
NEW_COLUMNS = {
    "invoices": "placed_at",
    "payments": "recorded_at",
    "credit_notes": "recorded_at",
    "disputes": "COALESCE(closed_at, opened_at)",
    "monthly_reports": "generated_at",
    "work_actions": "occurred_at",
}
INDEXED = (*NEW_COLUMNS, "debtors")


def upgrade():
    op.add_column("webhook_endpoints", sa.Column("previous_secret", sa.String(length=80), nullable=True))
    op.add_column("webhook_endpoints", sa.Column("previous_secret_until", sa.DateTime(timezone=True), nullable=True))
    for table, source in NEW_COLUMNS.items():
        op.add_column(table, sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        op.execute(f"UPDATE {table} SET updated_at = {source}")  # noqa: S608 - our own names
    for table in INDEXED:
        op.create_index(op.f(f"ix_{table}_client_id_updated_at_id"), table, ["client_id", "updated_at", "id"])


def downgrade():
    for table in INDEXED:
        op.drop_index(op.f(f"ix_{table}_client_id_updated_at_id"), table_name=table)
    for table in NEW_COLUMNS:
        op.execute(f"ALTER TABLE {table} DROP COLUMN updated_at")
    op.execute("ALTER TABLE webhook_endpoints DROP COLUMN previous_secret_until")
    op.execute("ALTER TABLE webhook_endpoints DROP COLUMN previous_secret")
