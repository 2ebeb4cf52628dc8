"""SLA daily snapshots (the at-risk trend) and a personal time zone for users

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07

`sla_daily_snapshots`: per client and day (the client's calendar day), the SLA clocks open, at risk and breached at
the day's end; written once per day by the snapshot job the SLA sweep starts through the outbox, backfilled from
the clocks' history. Built by DESIGN §6: `client_id` leads the key and the unique `(client_id, day)`, a direct
RLS policy, no trigger.

`users.timezone`: the zone a staff user reads times in (NULL: the agency's, AGENCY_TIMEZONE).
"""

import sqlalchemy as sa
from alembic import op

from provider.core.schema_rules import enable_rls, key_columns, key_constraints

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "sla_daily_snapshots",
        *key_columns(),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("open_clocks", sa.Integer(), nullable=False),
        sa.Column("at_risk", sa.Integer(), nullable=False),
        sa.Column("breached_open", sa.Integer(), nullable=False),
        sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
        *key_constraints("sla_daily_snapshots"),
        sa.UniqueConstraint("client_id", "day", name="uq_sla_daily_snapshots_client_id_day"),
        sa.CheckConstraint(
            "open_clocks >= 0 AND at_risk >= 0 AND breached_open >= 0 AND at_risk + breached_open <= open_clocks",
            name="ck_sla_daily_snapshots_counts",
        ),
    )
    enable_rls("sla_daily_snapshots")
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("timezone")
    op.drop_table("sla_daily_snapshots")
