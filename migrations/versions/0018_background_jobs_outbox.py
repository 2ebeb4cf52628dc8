"""the job outbox: background work recorded in the business transaction, and the periodic slots

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07

Every piece of background work is a row of `background_jobs`, written in the transaction that asks for it;
Redis only delivers it. `periodic_slots` holds the latest slot of each periodic job that was queued, so the
clock survives a Redis restart. Both are the agency's tables (not client-owned: no row-level security; the
app role has its rights through the default privileges of 0001).
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSONType = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
ACTIVE = "status IN ('pending', 'enqueued', 'running')"

# revision identifiers, used by Alembic.
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('background_jobs',
    sa.Column('id', ID, nullable=False),
    sa.Column('key', sa.String(length=200), nullable=True),
    sa.Column('path', sa.String(length=200), nullable=False),
    sa.Column('queue', sa.String(length=20), nullable=False),
    sa.Column('args', JSONType, nullable=False),
    sa.Column('kwargs', JSONType, nullable=False),
    sa.Column('client_id', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('timeout', sa.Integer(), nullable=False),
    sa.Column('run_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    sa.Column('enqueued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('progress', sa.Integer(), nullable=True),
    sa.Column('step', sa.String(length=200), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('result', sa.String(length=500), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('worker', sa.String(length=200), nullable=False),
    sa.CheckConstraint(
        "status IN ('pending', 'enqueued', 'running', 'succeeded', 'failed', 'cancelled')",
        name=op.f('ck_background_jobs_status'),
    ),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_background_jobs'))
    )
    with op.batch_alter_table('background_jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_background_jobs_status_run_after'), ['status', 'run_after'], unique=False)
        batch_op.create_index(batch_op.f('ix_background_jobs_client_id_created_at'), ['client_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_background_jobs_key_created_at'), ['key', 'created_at'], unique=False)
        batch_op.create_index(
            'uq_background_jobs_active_key', ['key'], unique=True,
            postgresql_where=sa.text(ACTIVE), sqlite_where=sa.text(ACTIVE),
        )

    op.create_table('periodic_slots',
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('last_slot', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_periodic_slots'))
    )


def downgrade():
    op.drop_table('periodic_slots')
    with op.batch_alter_table('background_jobs', schema=None) as batch_op:
        batch_op.drop_index('uq_background_jobs_active_key', postgresql_where=sa.text(ACTIVE), sqlite_where=sa.text(ACTIVE))
        batch_op.drop_index(batch_op.f('ix_background_jobs_key_created_at'))
        batch_op.drop_index(batch_op.f('ix_background_jobs_client_id_created_at'))
        batch_op.drop_index(batch_op.f('ix_background_jobs_status_run_after'))

    op.drop_table('background_jobs')
