"""worklist indexes: the queue's order (score descending, then id) for "next account"

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

"Next account" reads the workable items of every client a collector may work in the order
`score DESC, id`: with an index on score PostgreSQL walks the queue backwards in that order (ties by id
in an incremental sort) and stops after the first
batch instead of sorting every open item on each request.
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(op.f('ix_work_items_score'), 'work_items', ['score'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_work_items_score'), table_name='work_items')
