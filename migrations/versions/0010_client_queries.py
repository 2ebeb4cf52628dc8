"""client queries: questions a client user asks the agency from the portal (the "query answered" SLA)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28

PostgreSQL: row-level security with the policy of 0001 (the table is client-owned).
"""
import sqlalchemy as sa
from alembic import op

POLICY = "((SELECT app_tenant_all()) OR client_id = ANY ((SELECT app_tenant_ids())::bigint[]))"
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('client_queries',
    sa.Column('id', ID, nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('asked_by_id', sa.BigInteger(), nullable=True),
    sa.Column('asked_by_label', sa.String(length=254), nullable=False),
    sa.Column('asked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('answered_by_id', sa.BigInteger(), nullable=True),
    sa.Column('answered_by_label', sa.String(length=254), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('client_id', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("status IN ('open', 'answered')", name=op.f('ck_client_queries_status')),
    sa.ForeignKeyConstraint(['answered_by_id'], ['users.id'], name=op.f('fk_client_queries_answered_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['asked_by_id'], ['users.id'], name=op.f('fk_client_queries_asked_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_client_queries_client_id_clients'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_client_queries')),
    sa.UniqueConstraint('client_id', 'id', name=op.f('uq_client_queries_client_id_id'))
    )
    with op.batch_alter_table('client_queries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_queries_client_id_status_asked_at'), ['client_id', 'status', 'asked_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_client_queries_status_asked_at'), ['status', 'asked_at'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE client_queries ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE client_queries FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON client_queries USING {POLICY} WITH CHECK {POLICY}")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP POLICY IF EXISTS tenant_isolation ON client_queries")
    with op.batch_alter_table('client_queries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_queries_status_asked_at'))
        batch_op.drop_index(batch_op.f('ix_client_queries_client_id_status_asked_at'))
    op.drop_table('client_queries')
