"""statistics refresh for the tables added since 0004 (the books, communications, dunning, late charges)

Revision ID: 0031
Revises: 0026
Create Date: 2026-12-07

PostgreSQL only. `app_analyze(name)` (0004) may now analyze the tables that jobs fill in bulk since: the agency's
books, messages and their events, dunning decisions, late-charge accruals, trust bank lines and the job outbox
(see provider/core/statistics.py for why). It waits at most 200 ms for the table's lock: when another job is
analysing the same table, this one carries on with the statistics it has rather than queue behind it.
"""
from alembic import op

revision = '0031'
down_revision = '0029'
branch_labels = None
depends_on = None

OLD = ("debtors", "invoices", "journal_transactions", "journal_entries", "payments", "credit_notes")
NEW = (
    *OLD,
    "background_jobs", "comm_messages", "comm_events", "comm_attachments", "dunning_decisions", "payment_fees",
    "agency_transactions", "agency_entries", "charge_accruals", "trust_bank_lines",
)


def _function(tables, patient):
    allowed = ", ".join(f"'{t}'" for t in tables)
    wait = "" if not patient else """
    BEGIN
        EXECUTE format('ANALYZE %I', table_name);
    EXCEPTION WHEN lock_not_available THEN
        RETURN;  -- another session is analysing it: carry on with the statistics there are
    END;"""
    body = wait or "\n    EXECUTE format('ANALYZE %I', table_name);"
    setting = " SET lock_timeout = '200ms'" if patient else ""
    op.execute(
        f"""
CREATE OR REPLACE FUNCTION app_analyze(table_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public{setting} AS $$
BEGIN
    IF table_name NOT IN ({allowed}) THEN
        RAISE EXCEPTION 'app_analyze: % is not a table the application may analyze', table_name;
    END IF;{body}
END
$$
"""
    )


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    _function(NEW, patient=True)


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    _function(OLD, patient=False)
