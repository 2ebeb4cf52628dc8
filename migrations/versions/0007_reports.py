"""reports: monthly client reports (frozen, versioned, with their PDF), report runs, daily KPI snapshots

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28

PostgreSQL: row-level security with the policy of 0001 on the two client-owned tables (monthly_reports,
kpi_snapshots); report_runs is agency-level (which clients were scheduled), like teams.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

POLICY = "((SELECT app_tenant_all()) OR client_id = ANY ((SELECT app_tenant_ids())::bigint[]))"
TENANT_TABLES = ("monthly_reports", "kpi_snapshots")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('report_runs',
    sa.Column('id', ID, nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('client_ids', JSON, nullable=False),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_runs'))
    )
    with op.batch_alter_table('report_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_runs_period'), ['period'], unique=False)

    op.create_table('monthly_reports',
    sa.Column('id', ID, nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('posted_by', sa.DateTime(timezone=True), nullable=False),
    sa.Column('inputs', JSON, nullable=False),
    sa.Column('figures', JSON, nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('pdf', sa.LargeBinary(), nullable=False),
    sa.Column('pdf_pages', sa.Integer(), nullable=False),
    sa.Column('pdf_sha256', sa.String(length=64), nullable=False),
    sa.Column('run_id', sa.BigInteger(), nullable=True),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('generated_by', sa.String(length=254), nullable=False),
    sa.Column('generated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('client_id', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("status IN ('current', 'superseded')", name=op.f('ck_monthly_reports_status')),
    sa.CheckConstraint('version >= 1', name=op.f('ck_monthly_reports_version_positive')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_monthly_reports_client_id_clients'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['run_id'], ['report_runs.id'], name=op.f('fk_monthly_reports_run_id_report_runs'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_monthly_reports')),
    sa.UniqueConstraint('client_id', 'period', 'version', name=op.f('uq_monthly_reports_client_id_period_version'))
    )
    with op.batch_alter_table('monthly_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_monthly_reports_client_id_period_status'), ['client_id', 'period', 'status'], unique=False)

    op.create_table('kpi_snapshots',
    sa.Column('id', ID, nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('figures', JSON, nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('client_id', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_kpi_snapshots_client_id_clients'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kpi_snapshots')),
    sa.UniqueConstraint('client_id', 'as_of', name=op.f('uq_kpi_snapshots_client_id_as_of'))
    )

    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
            op.execute(f"CREATE POLICY tenant_isolation ON {table} USING {POLICY} WITH CHECK {POLICY}")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        for table in TENANT_TABLES:
            op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
    op.drop_table('kpi_snapshots')
    with op.batch_alter_table('monthly_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_monthly_reports_client_id_period_status'))

    op.drop_table('monthly_reports')
    with op.batch_alter_table('report_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_runs_period'))

    op.drop_table('report_runs')
