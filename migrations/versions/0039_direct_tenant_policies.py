"""direct tenant policies: the older tables' row-level security compares `client_id` with the settings directly

Revision ID: 0039
Revises: 0032
Create Date: 2026-12-07

PostgreSQL only (SQLite has no row-level security). Tables created before migration 0020 keep the tenant rule in
two SQL functions read through scalar sub-selects (`(SELECT app_tenant_all()) OR client_id = ANY ((SELECT
app_tenant_ids())::bigint[])`, migration 0001). A distributed engine such as Citus refuses policies with
subqueries, so their `tenant_isolation` policy becomes `schema_rules.DIRECT_POLICY`, the predicate every table
since 0020 already has: the same rules (one client set -> that client; '*' -> every client; a list -> those
clients; nothing set -> no rows), with `current_setting` compared in place. `clients` compares its own `id`.

Neither form is an index condition by itself (both are an OR with a term that does not name a column); the
queries name their client where they need an index, so plans keep their indexes. The functions stay (the
downgrade uses them).
"""
from alembic import op

from provider.core.schema_rules import direct_policy

revision = '0039'
down_revision = '0032'
branch_labels = None
depends_on = None

OLD_TABLES = (
    "api_idempotency_keys", "business_calendars", "calendar_closed_days", "client_queries", "contract_terms",
    "credit_notes", "debtor_contacts", "debtors", "dispute_evidence", "dispute_invoices", "dispute_messages",
    "disputes", "import_batches", "invoices", "journal_entries", "journal_month_totals", "journal_transactions",
    "kpi_snapshots", "monthly_reports", "payment_plans", "payments", "promises", "report_notifications",
    "sla_clock_events", "sla_clocks", "sla_month_closes", "sla_notifications", "sla_targets", "webhook_attempts",
    "webhook_deliveries", "webhook_endpoints", "webhook_events", "work_actions", "work_items",
    "worklist_segment_weights", "worklist_strategies",
)
COLUMN = {"clients": "id"}


def _old(column):
    return f"((SELECT app_tenant_all()) OR {column} = ANY ((SELECT app_tenant_ids())::bigint[]))"


def _replace(make):
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in ("clients", *OLD_TABLES):
        predicate = make(COLUMN.get(table, "client_id"))
        op.execute(f"DROP POLICY IF EXISTS tenant_isolation ON {table}")
        op.execute(f"CREATE POLICY tenant_isolation ON {table} USING {predicate} WITH CHECK {predicate}")


def upgrade():
    _replace(direct_policy)


def downgrade():
    _replace(_old)
