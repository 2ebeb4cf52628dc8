"""remittance indexes: a client's payment reversals, and the trust bank's lines by the bank's reference

Revision ID: 0036
Revises: 0034
Create Date: 2026-12-07

The books' catch-up (every payment posting, every remittance run and fee invoice) looks for payment reversals it
has not posted yet; without an index of the reversals alone that read walked every journal transaction the client
ever had. The trust reconciliation's "recorded, not (yet) in the bank" finds a payment's bank line by the line's
reference (unique already) or the bank's own reference, which had no index: a scan of the lines per payment.
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0036'
down_revision = '0034'
branch_labels = None
depends_on = None


def upgrade():
    reversal = sa.text("kind = 'reversal'")
    op.create_index(
        'ix_journal_transactions_reversals',
        'journal_transactions',
        ['client_id', 'id'],
        unique=False,
        postgresql_where=reversal,
        sqlite_where=reversal,
    )
    op.create_index('ix_trust_bank_lines_bank_ref', 'trust_bank_lines', ['bank_ref'], unique=False)


def downgrade():
    op.drop_index('ix_trust_bank_lines_bank_ref', table_name='trust_bank_lines')
    op.drop_index('ix_journal_transactions_reversals', table_name='journal_transactions')
