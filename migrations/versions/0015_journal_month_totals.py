"""journal month totals: the journal's sums by month, kept by a trigger, for the KPIs

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03

The KPIs of every client (DSO, CEI, flows, the recovery stair) read `journal_month_totals` instead of the whole
journal. A trigger on `journal_entries` inserts the sums of each statement's entries by key (see
`clients.journal.JournalMonthTotal`): on PostgreSQL once per statement from its transition table, on SQLite once
per entry. Writers only insert, so no posting waits on another; `clients.month_totals.compact()` folds the rows.
The existing journal is summed into the table here (the same mapping as `clients.month_totals.keyed_journal`).
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

POLICY = "((SELECT app_tenant_all()) OR client_id = ANY ((SELECT app_tenant_ids())::bigint[]))"
COLUMNS = "client_id, currency, account, kind, month, due_month, placed_month, amount_minor, entries, last_occurred_on"
TOTALLED = "('receivable', 'cash_agency', 'cash_client', 'write_off', 'sales')"

# one row per entry with its key: {n} names the new entry, {source} joins it to its transaction `t`, and
# {month}/{due}/{placed} are the dialect's month arithmetic
PER_ENTRY = """
SELECT {n}.client_id, {n}.currency, {n}.account, t.kind, {month} AS month,
       CASE WHEN {n}.account = 'receivable' THEN
           (SELECT {due} FROM invoices i WHERE i.client_id = {n}.client_id AND i.id = {n}.invoice_id) END AS due_month,
       CASE WHEN {n}.account = 'receivable' AND {n}.payment_id IS NOT NULL THEN
           (SELECT min({placed}) FROM journal_entries pe
              JOIN journal_transactions pt ON pt.client_id = pe.client_id AND pt.id = pe.transaction_id
             WHERE pe.client_id = {n}.client_id AND pe.invoice_id = {n}.invoice_id AND pe.account = 'receivable'
               AND pt.kind = 'invoice_placed') END AS placed_month,
       {n}.amount_minor, t.occurred_on
  FROM {source}
 WHERE {n}.account IN {totalled} AND ({n}.account <> 'sales' OR {n}.credit_note_id IS NOT NULL)
"""
JOINED = "{entries} n JOIN journal_transactions t ON t.client_id = n.client_id AND t.id = n.transaction_id"
GROUPED = f"""
INSERT INTO journal_month_totals ({COLUMNS})
SELECT client_id, currency, account, kind, month, due_month, placed_month, sum(amount_minor), count(*), max(occurred_on)
  FROM ({{per_entry}}) AS e
 GROUP BY client_id, currency, account, kind, month, due_month, placed_month
"""
# SQLite's trigger runs for each entry: its row goes in as it is (no grouping to pay for)
ONE_ROW = f"""
INSERT INTO journal_month_totals ({COLUMNS})
SELECT client_id, currency, account, kind, month, due_month, placed_month, amount_minor, 1, occurred_on
  FROM ({{per_entry}}) AS e
"""
PG_PARTS = {
    "month": "CAST(date_trunc('month', t.occurred_on) AS date)",
    "due": "CAST(date_trunc('month', i.due_date + 1) AS date)",
    "placed": "CAST(date_trunc('month', pt.occurred_on) AS date)",
    "totalled": TOTALLED,
}
SQLITE_PARTS = {
    "month": "date(t.occurred_on, 'start of month')",
    "due": "date(i.due_date, '+1 days', 'start of month')",
    "placed": "date(pt.occurred_on, 'start of month')",
    "totalled": TOTALLED,
}


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    op.create_table('journal_month_totals',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('account', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('due_month', sa.Date(), nullable=True),
    sa.Column('placed_month', sa.Date(), nullable=True),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.Column('entries', sa.BigInteger(), nullable=False),
    sa.Column('last_occurred_on', sa.Date(), nullable=False),
    sa.Column('client_id', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_month_totals'))
    )
    with op.batch_alter_table('journal_month_totals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_journal_month_totals_client_id_month'), ['client_id', 'month'], unique=False)

    if _is_postgresql():
        op.execute("ALTER TABLE journal_month_totals ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE journal_month_totals FORCE ROW LEVEL SECURITY")
        op.execute(f"CREATE POLICY tenant_isolation ON journal_month_totals USING {POLICY} WITH CHECK {POLICY}")
        per_statement = PER_ENTRY.format(n="n", source=JOINED.format(entries="new_entries"), **PG_PARTS)
        op.execute(
            "CREATE FUNCTION journal_month_totals_add() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            + GROUPED.format(per_entry=per_statement)
            + "; RETURN NULL; END $$"
        )
        op.execute(
            "CREATE TRIGGER journal_entries_month_totals AFTER INSERT ON journal_entries "
            "REFERENCING NEW TABLE AS new_entries FOR EACH STATEMENT EXECUTE FUNCTION journal_month_totals_add()"
        )
        existing = PER_ENTRY.format(n="n", source=JOINED.format(entries="journal_entries"), **PG_PARTS)
        op.execute(GROUPED.format(per_entry=existing))
    else:
        existing = PER_ENTRY.format(n="n", source=JOINED.format(entries="journal_entries"), **SQLITE_PARTS)
        op.execute(GROUPED.format(per_entry=existing))
        new_row = "journal_transactions t WHERE t.client_id = NEW.client_id AND t.id = NEW.transaction_id AND"
        per_row = PER_ENTRY.format(n="NEW", source=new_row, **SQLITE_PARTS).replace("AND\n WHERE", "AND")
        op.execute(
            "CREATE TRIGGER journal_entries_month_totals AFTER INSERT ON journal_entries "
            f"WHEN NEW.account IN {TOTALLED} AND (NEW.account <> 'sales' OR NEW.credit_note_id IS NOT NULL) "
            f"BEGIN {ONE_ROW.format(per_entry=per_row)}; END"
        )


def downgrade():
    if _is_postgresql():
        op.execute("DROP TRIGGER IF EXISTS journal_entries_month_totals ON journal_entries")
        op.execute("DROP FUNCTION IF EXISTS journal_month_totals_add()")
        op.execute("DROP POLICY IF EXISTS tenant_isolation ON journal_month_totals")
    else:
        op.execute("DROP TRIGGER IF EXISTS journal_entries_month_totals")
    with op.batch_alter_table('journal_month_totals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_journal_month_totals_client_id_month'))

    op.drop_table('journal_month_totals')
