"""promises by plan: a plan's instalments found through an index when one of them is kept or broken

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07

The promise check (run by every payment posting and nightly) reads the statuses of a plan's instalments each
time one of them is resolved; without this index that read walked every promise the client ever had.
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_promises_client_id_plan_id', 'promises', ['client_id', 'plan_id'], unique=False)


def downgrade():
    op.drop_index('ix_promises_client_id_plan_id', table_name='promises')
