"""work distribution: assignment rules per team, planned absences of collectors, collectors' targets

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07

`assignment_rules` and `collector_targets` are agency-side configuration like `team_clients` and
`collector_settings` (no client's data: no client_id key, no row-level security). A rule may name a client
as one of its criteria; deleting the client or the team deletes its rules.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("collector_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("away_from", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("away_until", sa.Date(), nullable=True))

    op.create_table(
        "assignment_rules",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("team_id", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=True),
        sa.Column("segment", sa.String(length=40), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("min_overdue_minor", sa.BigInteger(), nullable=True),
        sa.Column("max_overdue_minor", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(min_overdue_minor IS NULL AND max_overdue_minor IS NULL) OR currency IS NOT NULL",
            name=op.f("ck_assignment_rules_band_currency"),
        ),
        sa.CheckConstraint(
            "max_overdue_minor IS NULL OR min_overdue_minor IS NULL OR max_overdue_minor >= min_overdue_minor",
            name=op.f("ck_assignment_rules_band_ordered"),
        ),
        sa.CheckConstraint(
            "min_overdue_minor IS NULL OR min_overdue_minor >= 0", name=op.f("ck_assignment_rules_min_nonnegative")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_assignment_rules_client_id_clients"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_assignment_rules_team_id_teams"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignment_rules")),
    )
    op.create_index(op.f("ix_assignment_rules_position"), "assignment_rules", ["position"], unique=False)

    op.create_table(
        "collector_targets",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("accounts_per_day", sa.Integer(), nullable=False),
        sa.Column("promises_per_week", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("collected_per_month_minor", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("accounts_per_day >= 0", name=op.f("ck_collector_targets_accounts_nonnegative")),
        sa.CheckConstraint("collected_per_month_minor >= 0", name=op.f("ck_collector_targets_collected_nonnegative")),
        sa.CheckConstraint("promises_per_week >= 0", name=op.f("ck_collector_targets_promises_nonnegative")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_collector_targets_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_collector_targets")),
    )


def downgrade():
    op.drop_table("collector_targets")
    op.drop_index(op.f("ix_assignment_rules_position"), table_name="assignment_rules")
    op.drop_table("assignment_rules")
    with op.batch_alter_table("collector_settings", schema=None) as batch_op:
        batch_op.drop_column("away_until")
        batch_op.drop_column("away_from")
