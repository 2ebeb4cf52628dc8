"""fee invoice payments: what a client paid against the agency's fee invoices, and the books' kind that posts it

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07

A payment received from a client for a fee invoice (a bank reference, a day, an amount in the invoice's currency)
is posted to the agency's books as `fee_settled` (agency bank +, fees receivable -) with source `fee_paid`.
The CHECKs of `agency_transactions.kind` and `.source` are widened with `change_check` (no table rebuild).
"""
import sqlalchemy as sa
from alembic import op

from provider.core.schema_rules import change_check, enable_rls, key_columns, key_constraints

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None

OLD_KINDS = "'collection', 'fee', 'direct_fee', 'reversal', 'period_fee', 'remittance', 'remittance_paid'"
NEW_KINDS = OLD_KINDS + ", 'fee_settled'"
OLD_SOURCES = "'payment', 'month', 'run'"
# 0025 named them with the full name under the naming convention, which prefixed it again
KIND_CHECK = 'ck_agency_transactions_ck_agency_transactions_kind'
SOURCE_CHECK = 'ck_agency_transactions_ck_agency_transactions_source'
NEW_SOURCES = OLD_SOURCES + ", 'fee_paid'"


def upgrade():
    change_check('agency_transactions', KIND_CHECK, 'kind', OLD_KINDS, NEW_KINDS)
    change_check('agency_transactions', SOURCE_CHECK, 'source', OLD_SOURCES, NEW_SOURCES)
    op.create_table(
        'fee_invoice_payments',
        *key_columns(),
        sa.Column('invoice_id', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('amount_minor', sa.BigInteger(), nullable=False),
        sa.Column('paid_on', sa.Date(), nullable=False),
        sa.Column('reference', sa.String(length=140), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_by', sa.String(length=254), nullable=False),
        *key_constraints('fee_invoice_payments'),
        sa.ForeignKeyConstraint(
            ['client_id', 'invoice_id'], ['fee_invoices.client_id', 'fee_invoices.id'],
            name='fk_fee_invoice_payments_client_id_fee_invoices',
        ),
        sa.UniqueConstraint(
            'client_id', 'invoice_id', 'reference', name='uq_fee_invoice_payments_client_id_invoice_id_reference'
        ),
        sa.CheckConstraint('amount_minor > 0', name='ck_fee_invoice_payments_amount_positive'),
    )
    enable_rls('fee_invoice_payments')


def downgrade():
    op.drop_table('fee_invoice_payments')
    op.execute("DELETE FROM agency_entries WHERE transaction_id IN "
               "(SELECT id FROM agency_transactions WHERE kind = 'fee_settled')")
    op.execute("DELETE FROM agency_transactions WHERE kind = 'fee_settled'")
    change_check('agency_transactions', SOURCE_CHECK, 'source', NEW_SOURCES, OLD_SOURCES)
    change_check('agency_transactions', KIND_CHECK, 'kind', NEW_KINDS, OLD_KINDS)
