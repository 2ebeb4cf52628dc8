"""dunning: policies (versioned, approved by the client), stages, templates, daily runs, decisions, letter batches;
debtors get a language

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07

Every new table is client-keyed (provider.core.schema_rules): client_id first in the primary key and in every
unique key, composite foreign keys, a row-level security policy without subqueries. `debtors.language` is added
with a server default and set, for the debtors there are, from their client's country.
"""
import sqlalchemy as sa
from alembic import op

from provider.core.schema_rules import enable_rls, key_columns, key_constraints

# revision identifiers, used by Alembic.
revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

# clients.models.COUNTRY_LANGUAGES as of this revision (a migration keeps its own copy)
COUNTRY_LANGUAGES = {
    "DE": "de", "AT": "de", "CH": "de", "LI": "de", "FR": "fr", "BE": "fr", "LU": "fr", "MC": "fr",
    "ES": "es", "MX": "es", "AR": "es", "CO": "es", "CL": "es", "IT": "it", "SM": "it", "NL": "nl",
    "PT": "pt", "BR": "pt", "PL": "pl", "SE": "sv", "DK": "da", "NO": "nb", "FI": "fi", "CZ": "cs",
    "JP": "ja", "CN": "zh", "TW": "zh", "KR": "ko", "GR": "el", "TR": "tr", "HU": "hu", "RO": "ro",
}
SENT_ONCE = sa.text("outcome = 'sent'")
TABLES = ("letter_batches", "dunning_decisions", "dunning_runs", "dunning_templates", "dunning_stages", "dunning_policies")


def _fk(table, column, parent, ondelete="CASCADE"):
    return sa.ForeignKeyConstraint(
        ["client_id", column], [f"{parent}.client_id", f"{parent}.id"],
        name=f"fk_{table}_client_id_{parent}", ondelete=ondelete,
    )


def _check(table, name, condition):
    return sa.CheckConstraint(condition, name=f"ck_{table}_{name}")


def upgrade():
    with op.batch_alter_table('debtors', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), server_default='en', nullable=False))
    for country, language in sorted(COUNTRY_LANGUAGES.items()):
        op.execute(
            sa.text("UPDATE debtors SET language = :l WHERE client_id IN (SELECT id FROM clients WHERE country = :c)")
            .bindparams(l=language, c=country)
        )

    op.create_table(
        'dunning_policies',
        *key_columns(),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('effective_from', sa.Date(), nullable=False),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('min_amount_minor', sa.BigInteger(), nullable=False),
        sa.Column('min_gap_days', sa.Integer(), nullable=False),
        sa.Column('notes', sa.String(length=500), nullable=False),
        sa.Column('proposed_by_label', sa.String(length=254), nullable=False),
        sa.Column('decided_by_label', sa.String(length=254), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('decision_note', sa.String(length=500), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        *key_constraints('dunning_policies'),
        sa.UniqueConstraint('client_id', 'version', name='uq_dunning_policies_client_id_version'),
        _check('dunning_policies', 'status', "status IN ('proposed', 'approved', 'rejected')"),
        _check('dunning_policies', 'min_amount', 'min_amount_minor >= 0'),
        _check('dunning_policies', 'min_gap', 'min_gap_days >= 0'),
    )
    op.create_index(
        'ix_dunning_policies_client_id_status_effective_from', 'dunning_policies',
        ['client_id', 'status', 'effective_from'],
    )
    enable_rls('dunning_policies')

    op.create_table(
        'dunning_stages',
        *key_columns(),
        sa.Column('policy_id', sa.BigInteger(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('days_past_due', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=10), nullable=False),
        *key_constraints('dunning_stages'),
        _fk('dunning_stages', 'policy_id', 'dunning_policies'),
        sa.UniqueConstraint('client_id', 'policy_id', 'position', name='uq_dunning_stages_client_id_policy_id_position'),
        sa.UniqueConstraint(
            'client_id', 'policy_id', 'days_past_due', name='uq_dunning_stages_client_id_policy_id_days_past_due'
        ),
        _check('dunning_stages', 'channel', "channel IN ('email', 'letter', 'task')"),
        _check('dunning_stages', 'days', 'days_past_due >= 0'),
    )
    enable_rls('dunning_stages')

    op.create_table(
        'dunning_templates',
        *key_columns(),
        sa.Column('stage_id', sa.BigInteger(), nullable=False),
        sa.Column('language', sa.String(length=8), nullable=False),
        sa.Column('segment', sa.String(length=40), nullable=False),
        sa.Column('tone', sa.String(length=10), nullable=False),
        sa.Column('subject', sa.String(length=200), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('updated_by_label', sa.String(length=254), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        *key_constraints('dunning_templates'),
        _fk('dunning_templates', 'stage_id', 'dunning_stages'),
        sa.UniqueConstraint(
            'client_id', 'stage_id', 'language', 'segment',
            name='uq_dunning_templates_client_id_stage_id_language_segment',
        ),
        _check('dunning_templates', 'tone', "tone IN ('friendly', 'neutral', 'firm')"),
    )
    enable_rls('dunning_templates')

    op.create_table(
        'dunning_runs',
        *key_columns(),
        sa.Column('run_date', sa.Date(), nullable=False),
        sa.Column('policy_id', sa.BigInteger(), nullable=True),
        sa.Column('status', sa.String(length=10), nullable=False),
        sa.Column('sent', sa.Integer(), nullable=False),
        sa.Column('skipped', sa.Integer(), nullable=False),
        sa.Column('note', sa.String(length=300), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        *key_constraints('dunning_runs'),
        sa.UniqueConstraint('client_id', 'run_date', name='uq_dunning_runs_client_id_run_date'),
        _check('dunning_runs', 'status', "status IN ('running', 'done', 'failed')"),
    )
    enable_rls('dunning_runs')

    op.create_table(
        'dunning_decisions',
        *key_columns(),
        sa.Column('run_id', sa.BigInteger(), nullable=False),
        sa.Column('debtor_id', sa.BigInteger(), nullable=False),
        sa.Column('policy_id', sa.BigInteger(), nullable=False),
        sa.Column('stage_id', sa.BigInteger(), nullable=False),
        sa.Column('stage_position', sa.Integer(), nullable=False),
        sa.Column('stage_days', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=10), nullable=False),
        sa.Column('run_date', sa.Date(), nullable=False),
        sa.Column('anchor_due', sa.Date(), nullable=False),
        sa.Column('outcome', sa.String(length=10), nullable=False),
        sa.Column('reason', sa.String(length=24), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('amount_minor', sa.BigInteger(), nullable=False),
        sa.Column('invoice_count', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.BigInteger(), nullable=True),
        sa.Column('letter_batch_id', sa.BigInteger(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        *key_constraints('dunning_decisions'),
        _fk('dunning_decisions', 'run_id', 'dunning_runs'),
        _fk('dunning_decisions', 'debtor_id', 'debtors', 'RESTRICT'),
        _fk('dunning_decisions', 'policy_id', 'dunning_policies', 'RESTRICT'),
        sa.UniqueConstraint(
            'client_id', 'run_date', 'debtor_id', name='uq_dunning_decisions_client_id_run_date_debtor_id'
        ),
        _check('dunning_decisions', 'outcome', "outcome IN ('sent', 'skipped')"),
    )
    op.create_index(
        'uq_dunning_decisions_sent_once', 'dunning_decisions',
        ['client_id', 'debtor_id', 'policy_id', 'stage_position', 'anchor_due'],
        unique=True, postgresql_where=SENT_ONCE, sqlite_where=SENT_ONCE,
    )
    op.create_index(
        'ix_dunning_decisions_client_id_debtor_id_outcome_run_date', 'dunning_decisions',
        ['client_id', 'debtor_id', 'outcome', 'run_date'],
    )
    op.create_index(
        'ix_dunning_decisions_client_id_run_id_outcome', 'dunning_decisions', ['client_id', 'run_id', 'outcome']
    )
    op.create_index(
        'ix_dunning_decisions_client_id_letter_batch_id', 'dunning_decisions', ['client_id', 'letter_batch_id']
    )
    enable_rls('dunning_decisions')

    op.create_table(
        'letter_batches',
        *key_columns(),
        sa.Column('run_date', sa.Date(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('letters', sa.Integer(), nullable=False),
        sa.Column('pages', sa.Integer(), nullable=False),
        sa.Column('pdf', sa.LargeBinary(), nullable=False),
        sa.Column('manifest', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('dispatched_by_label', sa.String(length=254), nullable=False),
        *key_constraints('letter_batches'),
        sa.UniqueConstraint('client_id', 'run_date', name='uq_letter_batches_client_id_run_date'),
        _check('letter_batches', 'status', "status IN ('ready', 'dispatched')"),
    )
    enable_rls('letter_batches')


def downgrade():
    for table in TABLES:
        op.drop_table(table)
    with op.batch_alter_table('debtors', schema=None) as batch_op:
        batch_op.drop_column('language')
