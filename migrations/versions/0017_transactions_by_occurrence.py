"""journal transactions by the date they occurred, for the KPIs as of a past date

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03

Figures as of a date inside a month read that month up to the date from the journal (the monthly totals do
not split a month), and the aging as of a past date takes out of the cached balances what occurred after it.
Both find those transactions through this index instead of reading the client's whole journal.
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('journal_transactions', schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f('ix_journal_transactions_client_id_occurred_on'), ['client_id', 'occurred_on'], unique=False
        )


def downgrade():
    with op.batch_alter_table('journal_transactions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journal_transactions_client_id_occurred_on'))
