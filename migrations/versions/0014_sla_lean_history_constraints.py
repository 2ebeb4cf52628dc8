"""sla: no redundant client FKs on clock history and notifications

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03

`sla_clock_events.client_id -> clients` and `sla_notifications.client_id -> clients` are implied by their
composite FKs to sla_clocks ((client_id, clock_id), whose rows carry the client FK), yet each check locked the
client row (FOR KEY SHARE) on every insert: about a sixth of the breach sweep's time. PostgreSQL drops them;
SQLite keeps them, as for the journal in 0012 (see migrations/env.py).
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

REDUNDANT_FKS = ("sla_clock_events", "sla_notifications")


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    if _is_postgresql():
        for table in REDUNDANT_FKS:
            op.drop_constraint(f"fk_{table}_client_id_clients", table, type_="foreignkey")


def downgrade():
    if _is_postgresql():
        for table in REDUNDANT_FKS:
            op.create_foreign_key(
                f"fk_{table}_client_id_clients", table, "clients", ["client_id"], ["id"], ondelete="RESTRICT"
            )
