"""statistics refresh after bulk loads

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 14:50:00

PostgreSQL only. The application role owns no table, so it cannot ANALYZE one; after a bulk load (a
placement file that brings thousands of new debtors) the planner would otherwise keep the table's old
statistics, and the foreign-key checks of the very next INSERT (planned once per session) may choose a
sequential scan over the table for every row. `app_analyze(name)` runs ANALYZE, as the owner, on one of
a fixed list of tables and nothing else.
"""
from alembic import op
from flask import current_app

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

TABLES = ("debtors", "invoices", "journal_transactions", "journal_entries", "payments", "credit_notes")


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    allowed = ", ".join(f"'{t}'" for t in TABLES)
    op.execute(
        f"""
CREATE OR REPLACE FUNCTION app_analyze(table_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    IF table_name NOT IN ({allowed}) THEN
        RAISE EXCEPTION 'app_analyze: % is not a table the application may analyze', table_name;
    END IF;
    EXECUTE format('ANALYZE %I', table_name);
END
$$
"""
    )
    op.execute("REVOKE ALL ON FUNCTION app_analyze(text) FROM PUBLIC")
    role = current_app.config.get("DATABASE_APP_ROLE", "ar_app")
    op.execute(f"GRANT EXECUTE ON FUNCTION app_analyze(text) TO {role}")


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS app_analyze(text)")
