"""cash forecast and payment behaviour: debtor behaviours (segment, reasons, risk grade, credit limit), segment
moves, 13-week cash forecasts with their backtest, and the clients' credit limit policies; work items get a behaviour
term

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07

All four tables are client-keyed (DESIGN §6): `client_id` leads the primary key and every unique key, foreign keys
to debtors include `client_id`, row-level security compares `client_id` with the request's setting directly.
`work_items` gets the score's behaviour term and the segment it came from (worklists.scoring).
"""

import sqlalchemy as sa
from alembic import op

from provider.core.schema_rules import enable_rls, key_columns, key_constraints

# revision identifiers, used by Alembic.
revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")
SEGMENTS = "'pays_on_time', 'pays_late', 'slow_and_partial', 'promises_and_breaks', 'silent', 'new'"


def _debtor_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["client_id", "debtor_id"],
        ["debtors.client_id", "debtors.id"],
        name=op.f(f"fk_{table}_client_id_debtors"),
        ondelete="CASCADE",
    )


def upgrade():
    op.create_table(
        "debtor_behaviours",
        *key_columns(),
        sa.Column("debtor_id", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("segment", sa.String(length=24), nullable=False),
        sa.Column("segment_since", sa.Date(), nullable=False),
        sa.Column("reasons", JSON, nullable=False),
        sa.Column("due_invoices", sa.Integer(), nullable=False),
        sa.Column("paid_share_bp", sa.Integer(), nullable=False),
        sa.Column("mean_late_days", sa.Integer(), nullable=True),
        sa.Column("promises_kept", sa.Integer(), nullable=False),
        sa.Column("promises_broken", sa.Integer(), nullable=False),
        sa.Column("disputes", sa.Integer(), nullable=False),
        sa.Column("risk_grade", sa.String(length=1), nullable=False),
        sa.Column("grade_reasons", JSON, nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("exposure_minor", sa.BigInteger(), nullable=False),
        sa.Column("monthly_minor", sa.BigInteger(), nullable=False),
        sa.Column("credit_limit_minor", sa.BigInteger(), nullable=False),
        sa.Column("worsened", sa.Boolean(), nullable=False),
        sa.Column("fitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"segment IN ({SEGMENTS})", name=op.f("ck_debtor_behaviours_segment")),
        sa.CheckConstraint("risk_grade IN ('A', 'B', 'C', 'D', 'E')", name=op.f("ck_debtor_behaviours_risk_grade")),
        _debtor_fk("debtor_behaviours"),
        *key_constraints("debtor_behaviours"),
        sa.UniqueConstraint("client_id", "debtor_id", name=op.f("uq_debtor_behaviours_client_id_debtor_id")),
    )
    enable_rls("debtor_behaviours")
    op.create_table(
        "segment_moves",
        *key_columns(),
        sa.Column("debtor_id", sa.BigInteger(), nullable=False),
        sa.Column("on_day", sa.Date(), nullable=False),
        sa.Column("from_segment", sa.String(length=24), nullable=False),
        sa.Column("to_segment", sa.String(length=24), nullable=False),
        _debtor_fk("segment_moves"),
        *key_constraints("segment_moves"),
        sa.UniqueConstraint(
            "client_id", "debtor_id", "on_day", name=op.f("uq_segment_moves_client_id_debtor_id_on_day")
        ),
    )
    enable_rls("segment_moves")
    op.create_table(
        "cash_forecasts",
        *key_columns(),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("weeks", JSON, nullable=False),
        sa.Column("backtest", JSON, nullable=False),
        sa.Column("calibration", sa.String(length=200), nullable=False),
        sa.Column("origins", JSON, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        *key_constraints("cash_forecasts"),
        sa.UniqueConstraint("client_id", "currency", "as_of", name=op.f("uq_cash_forecasts_client_id_currency_as_of")),
    )
    enable_rls("cash_forecasts")
    op.create_table(
        "credit_policies",
        *key_columns(),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("months", JSON, nullable=False),
        sa.Column("cap_minor", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("cap_minor >= 0", name=op.f("ck_credit_policies_cap")),
        *key_constraints("credit_policies"),
        sa.UniqueConstraint("client_id", "currency", name=op.f("uq_credit_policies_client_id_currency")),
    )
    enable_rls("credit_policies")
    op.add_column("work_items", sa.Column("term_behaviour", sa.Integer(), server_default="0", nullable=False))
    op.add_column("work_items", sa.Column("behaviour_segment", sa.String(length=24), server_default="", nullable=False))


def downgrade():
    for column in ("behaviour_segment", "term_behaviour"):
        op.drop_column("work_items", column)
    for table in ("credit_policies", "cash_forecasts", "segment_moves", "debtor_behaviours"):
        op.drop_table(table)
