"""report notifications: one "your monthly report is ready" message per report and recipient (reporting's outbox)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28

PostgreSQL: row-level security with the policy of 0001 (the table is client-owned).
"""
import sqlalchemy as sa
from alembic import op

POLICY = "((SELECT app_tenant_all()) OR client_id = ANY ((SELECT app_tenant_ids())::bigint[]))"
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('report_notifications',
    sa.Column('id', ID, nullable=False),
    sa.Column('report_id', sa.BigInteger(), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('subject', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('client_id', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("status IN ('recorded', 'sent', 'failed')", name=op.f('ck_report_notifications_status')),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_report_notifications_client_id_clients'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['report_id'], ['monthly_reports.id'], name=op.f('fk_report_notifications_report_id_monthly_reports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_notifications')),
    sa.UniqueConstraint('report_id', 'recipient', name=op.f('uq_report_notifications_report_id_recipient'))
    )
    with op.batch_alter_table('report_notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_report_notifications_client_id_report_id'), ['client_id', 'report_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE report_notifications ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE report_notifications FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON report_notifications USING {POLICY} WITH CHECK {POLICY}")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP POLICY IF EXISTS tenant_isolation ON report_notifications")
    with op.batch_alter_table('report_notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_report_notifications_client_id_report_id'))

    op.drop_table('report_notifications')
