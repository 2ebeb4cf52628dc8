"""the agency's books: fee schedules, fees per payment, the agency's journal, remittance runs, fee invoices

Revision ID: 0025
Revises: 0019
Create Date: 2026-12-08

Every client-owned table is built with provider.core.schema_rules (DESIGN §6). The agency's journal is
append-only: the ORM guard refuses UPDATE/DELETE on both databases and, on PostgreSQL, the application role
is not granted UPDATE or DELETE on it (no trigger: Citus refuses triggers on distributed tables).
"""
import sqlalchemy as sa
from alembic import op
from flask import current_app

from provider.core.schema_rules import enable_rls, key_columns, key_constraints

# revision identifiers, used by Alembic.
revision = '0025'
down_revision = '0019'
branch_labels = None
depends_on = None

TABLES = (
    'fee_schedules', 'fee_tiers', 'payment_fees', 'agency_transactions', 'agency_entries', 'remittance_runs',
    'fee_invoices',
)


def _in(column, values):
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _fk(table, column, target):
    return sa.ForeignKeyConstraint(
        ['client_id', column], [f'{target}.client_id', f'{target}.id'], name=f'fk_{table}_client_id_{target}'
    )



def upgrade():
    op.create_table('fee_schedules',
    *key_columns(),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('effective_from', sa.Date(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('tax_rate_bp', sa.Integer(), nullable=False),
    sa.Column('per_placement_minor', sa.BigInteger(), nullable=False),
    sa.Column('per_letter_minor', sa.BigInteger(), nullable=False),
    sa.Column('monthly_minimum_minor', sa.BigInteger(), nullable=False),
    sa.Column('remittance_cycle', sa.String(length=10), nullable=False),
    sa.Column('note', sa.String(length=300), nullable=False),
    sa.Column('bill_to', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=254), nullable=False),
    *key_constraints('fee_schedules'),
    sa.CheckConstraint(_in('remittance_cycle', ('weekly', 'monthly')), name='ck_fee_schedules_cycle'),
    sa.CheckConstraint('tax_rate_bp >= 0 AND tax_rate_bp <= 10000', name='ck_fee_schedules_tax_rate'),
    sa.CheckConstraint('per_placement_minor >= 0 AND per_letter_minor >= 0 AND monthly_minimum_minor >= 0',
                       name='ck_fee_schedules_flat_fees'),
    sa.UniqueConstraint('client_id', 'version', name='uq_fee_schedules_client_id_version'),
    sa.UniqueConstraint('client_id', 'effective_from', name='uq_fee_schedules_client_id_effective_from'),
    )
    op.create_table('fee_tiers',
    *key_columns(),
    sa.Column('schedule_id', sa.BigInteger(), nullable=False),
    sa.Column('min_age_days', sa.Integer(), nullable=False),
    sa.Column('max_age_days', sa.Integer(), nullable=True),
    sa.Column('min_amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('max_amount_minor', sa.BigInteger(), nullable=True),
    sa.Column('rate_bp', sa.Integer(), nullable=False),
    sa.Column('direct_rate_bp', sa.Integer(), nullable=False),
    *key_constraints('fee_tiers'),
    _fk('fee_tiers', 'schedule_id', 'fee_schedules'),
    sa.UniqueConstraint('client_id', 'schedule_id', 'min_age_days', 'min_amount_minor',
                        name='uq_fee_tiers_schedule_bounds'),
    sa.CheckConstraint('min_age_days >= 0 AND (max_age_days IS NULL OR max_age_days >= min_age_days)',
                       name='ck_fee_tiers_ages'),
    sa.CheckConstraint('min_amount_minor >= 0 AND (max_amount_minor IS NULL OR max_amount_minor >= min_amount_minor)',
                       name='ck_fee_tiers_amounts'),
    sa.CheckConstraint('rate_bp BETWEEN 0 AND 10000 AND direct_rate_bp BETWEEN 0 AND 10000', name='ck_fee_tiers_rates'),
    )
    op.create_table('payment_fees',
    *key_columns(),
    sa.Column('payment_id', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('direct', sa.Boolean(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('schedule_id', sa.BigInteger(), nullable=True),
    sa.Column('tier_id', sa.BigInteger(), nullable=True),
    sa.Column('age_days', sa.Integer(), nullable=True),
    sa.Column('placed_minor', sa.BigInteger(), nullable=True),
    sa.Column('rate_bp', sa.Integer(), nullable=True),
    sa.Column('tax_rate_bp', sa.Integer(), nullable=True),
    sa.Column('fee_minor', sa.BigInteger(), nullable=False),
    sa.Column('tax_minor', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    *key_constraints('payment_fees'),
    _fk('payment_fees', 'payment_id', 'payments'),
    sa.UniqueConstraint('client_id', 'payment_id', name='uq_payment_fees_client_id_payment_id'),
    sa.CheckConstraint(_in('status', ('priced', 'unpriced', 'void')), name='ck_payment_fees_status'),
    )
    op.create_index('ix_payment_fees_client_id_status', 'payment_fees', ['client_id', 'status'])
    op.create_table('agency_transactions',
    *key_columns(),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=10), nullable=False),
    sa.Column('source_id', sa.BigInteger(), nullable=False),
    sa.Column('payment_id', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('occurred_on', sa.Date(), nullable=False),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_label', sa.String(length=254), nullable=False),
    sa.Column('memo', sa.String(length=300), nullable=False),
    *key_constraints('agency_transactions'),
    sa.UniqueConstraint('client_id', 'source', 'source_id', 'kind',
                        name='uq_agency_transactions_client_id_source_source_id_kind'),
    sa.CheckConstraint(_in('kind', ('collection', 'fee', 'direct_fee', 'reversal', 'period_fee', 'remittance',
                                    'remittance_paid')), name='ck_agency_transactions_kind'),
    sa.CheckConstraint(_in('source', ('payment', 'month', 'run')), name='ck_agency_transactions_source'),
    )
    op.create_index('ix_agency_transactions_client_id_payment_id', 'agency_transactions', ['client_id', 'payment_id'],
                    postgresql_where=sa.text('payment_id IS NOT NULL'), sqlite_where=sa.text('payment_id IS NOT NULL'))
    op.create_table('agency_entries',
    *key_columns(),
    sa.Column('transaction_id', sa.BigInteger(), nullable=False),
    sa.Column('account', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('payment_id', sa.BigInteger(), nullable=True),
    *key_constraints('agency_entries'),
    _fk('agency_entries', 'transaction_id', 'agency_transactions'),
    sa.CheckConstraint(_in('account', ('trust_bank', 'trust_liability', 'fees_earned', 'tax_payable',
                                       'fees_receivable', 'due_from_client', 'remit_clearing', 'agency_bank')),
                       name='ck_agency_entries_account'),
    sa.CheckConstraint('amount_minor <> 0', name='ck_agency_entries_amount_nonzero'),
    )
    op.create_index('ix_agency_entries_client_id_transaction_id', 'agency_entries', ['client_id', 'transaction_id'])
    op.create_index('ix_agency_entries_client_id_account_currency', 'agency_entries',
                    ['client_id', 'account', 'currency'])
    op.create_table('remittance_runs',
    *key_columns(),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('cycle', sa.String(length=10), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('from_tx_id', sa.BigInteger(), nullable=False),
    sa.Column('upto_tx_id', sa.BigInteger(), nullable=False),
    sa.Column('brought_forward_minor', sa.BigInteger(), nullable=False),
    sa.Column('collected_minor', sa.BigInteger(), nullable=False),
    sa.Column('reversed_minor', sa.BigInteger(), nullable=False),
    sa.Column('fees_minor', sa.BigInteger(), nullable=False),
    sa.Column('tax_minor', sa.BigInteger(), nullable=False),
    sa.Column('net_minor', sa.BigInteger(), nullable=False),
    sa.Column('remit_minor', sa.BigInteger(), nullable=False),
    sa.Column('carried_forward_minor', sa.BigInteger(), nullable=False),
    sa.Column('netted_minor', sa.BigInteger(), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('approved_by', sa.String(length=254), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('paid_on', sa.Date(), nullable=True),
    sa.Column('bank_reference', sa.String(length=140), nullable=False),
    sa.Column('status_reason', sa.String(length=300), nullable=False),
    *key_constraints('remittance_runs'),
    sa.CheckConstraint(_in('status', ('draft', 'approved', 'paid', 'cancelled')), name='ck_remittance_runs_status'),
    sa.CheckConstraint(_in('cycle', ('weekly', 'monthly')), name='ck_remittance_runs_cycle'),
    )
    op.create_index('uq_remittance_runs_open_period', 'remittance_runs', ['client_id', 'currency', 'period_end'],
                    unique=True, postgresql_where=sa.text("status <> 'cancelled'"),
                    sqlite_where=sa.text("status <> 'cancelled'"))
    op.create_index('ix_remittance_runs_client_id_currency_status', 'remittance_runs',
                    ['client_id', 'currency', 'status'])
    op.create_table('fee_invoices',
    *key_columns(),
    sa.Column('number', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('period_start', sa.Date(), nullable=False),
    sa.Column('period_end', sa.Date(), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('from_tx_id', sa.BigInteger(), nullable=False),
    sa.Column('upto_tx_id', sa.BigInteger(), nullable=False),
    sa.Column('fees_minor', sa.BigInteger(), nullable=False),
    sa.Column('tax_minor', sa.BigInteger(), nullable=False),
    sa.Column('total_minor', sa.BigInteger(), nullable=False),
    sa.Column('lines', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    *key_constraints('fee_invoices'),
    sa.UniqueConstraint('client_id', 'number', name='uq_fee_invoices_client_id_number'),
    sa.UniqueConstraint('client_id', 'currency', 'period_end', name='uq_fee_invoices_client_id_currency_period_end'),
    )
    op.create_table('agency_counters',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name='pk_agency_counters'),
    )
    op.execute("INSERT INTO agency_counters (name, value) VALUES ('fee_invoice', 0)")
    for table in TABLES:
        enable_rls(table)
    if op.get_bind().dialect.name == 'postgresql':
        role = current_app.config.get('DATABASE_APP_ROLE', 'ar_app')
        for table in ('agency_transactions', 'agency_entries'):
            op.execute(f'REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {role}')
        op.execute(f'REVOKE DELETE, TRUNCATE ON agency_counters FROM {role}')


def downgrade():
    op.drop_table('agency_counters')
    op.drop_table('fee_invoices')
    op.drop_index('ix_remittance_runs_client_id_currency_status', table_name='remittance_runs')
    op.drop_index('uq_remittance_runs_open_period', table_name='remittance_runs')
    op.drop_table('remittance_runs')
    op.drop_index('ix_agency_entries_client_id_account_currency', table_name='agency_entries')
    op.drop_index('ix_agency_entries_client_id_transaction_id', table_name='agency_entries')
    op.drop_table('agency_entries')
    op.drop_index('ix_agency_transactions_client_id_payment_id', table_name='agency_transactions')
    op.drop_table('agency_transactions')
    op.drop_index('ix_payment_fees_client_id_status', table_name='payment_fees')
    op.drop_table('payment_fees')
    op.drop_table('fee_tiers')
    op.drop_table('fee_schedules')
