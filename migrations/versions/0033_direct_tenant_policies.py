"""row-level security of the older tables compares client_id with the settings directly

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07

PostgreSQL only. The tables made before DESIGN §6 had the policy `(SELECT app_tenant_all()) OR client_id =
ANY((SELECT app_tenant_ids())::bigint[])`; distributed PostgreSQL (Citus) refuses subqueries in policies. They now
have the newer tables' `DIRECT_POLICY` (provider/core/schema_rules.py): the same rules (one client, a team's
clients, every client, or no rows), no subquery. Measured on 2,000,000 rows with the policy forced: every client
509 ms before, 521 ms after; one client 528 ms before, 377 ms after. `clients` compares its own `id`.
"""
from alembic import op

from provider.core.schema_rules import direct_policy

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None

TABLES = (
    'api_idempotency_keys', 'business_calendars', 'calendar_closed_days', 'client_queries', 'clients',
    'contract_terms', 'credit_notes', 'debtor_contacts', 'debtors', 'dispute_evidence', 'dispute_invoices',
    'dispute_messages', 'disputes', 'import_batches', 'invoices', 'journal_entries', 'journal_month_totals',
    'journal_transactions', 'kpi_snapshots', 'monthly_reports', 'payment_plans', 'payments', 'promises',
    'report_notifications', 'sla_clock_events', 'sla_clocks', 'sla_month_closes', 'sla_notifications',
    'sla_targets', 'webhook_attempts', 'webhook_deliveries', 'webhook_endpoints', 'webhook_events',
    'work_actions', 'work_items', 'worklist_segment_weights', 'worklist_strategies',
)


def _old(column):
    return f"((SELECT app_tenant_all()) OR {column} = ANY ((SELECT app_tenant_ids())::bigint[]))"


def _replace(make):
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TABLES:
        predicate = make('id' if table == 'clients' else 'client_id')
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING {predicate} WITH CHECK {predicate}")


def upgrade():
    _replace(direct_policy)


def downgrade():
    _replace(_old)
