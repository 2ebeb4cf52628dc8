"""open invoices by due date: an index of the open invoices alone, for aging and top debtors

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03

Aging reads every open invoice of a client (its due date, currency and open amount), and the top debtors the
overdue ones (with the debtor). In `ix_invoices_open_by_due` both are index-only range scans over the open
invoices of that one client, instead of visiting the pages of the whole table, where each client's invoices
lie among everyone's. Paid invoices (open 0) leave the index.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None

OPEN = sa.text("open_minor > 0")


def upgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(
            'ix_invoices_open_by_due',
            ['client_id', 'due_date', 'currency', 'debtor_id', 'open_minor'],
            unique=False,
            postgresql_where=OPEN,
            sqlite_where=OPEN,
        )


def downgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index('ix_invoices_open_by_due', postgresql_where=OPEN, sqlite_where=OPEN)
