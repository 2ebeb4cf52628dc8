"""lean journal constraints: no redundant client FKs on invoices and journal entries, partial document indexes

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28

`invoices.client_id -> clients` and `journal_entries.client_id -> clients` are implied by the composite FKs
((client_id, debtor_id) -> debtors, (client_id, transaction_id) -> journal_transactions, whose own rows carry
the client FK), yet each check locks the same client row (FOR KEY SHARE) on every insert. PostgreSQL drops
them. SQLite keeps them: dropping a constraint there means rebuilding the table, which would also drop the
append-only triggers of 0002, and its FK checks are cheap in-process lookups; migrations/env.py tells
`flask db check` that these two reflected FKs are expected on SQLite.

The (client_id, document) indexes of journal_entries become partial (`WHERE document IS NOT NULL`): most
entries name one document, so each index skips the rows it can never be asked for. credit_note_id gets one
too (its FK had none). Both databases.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

REDUNDANT_FKS = ("invoices", "journal_entries")
DOCUMENTS = ("invoice_id", "payment_id", "credit_note_id")
FULL_BEFORE = ("invoice_id", "payment_id")  # the plain indexes 0002 made


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade():
    if _is_postgresql():
        for table in REDUNDANT_FKS:
            op.drop_constraint(f"fk_{table}_client_id_clients", table, type_="foreignkey")
    for column in FULL_BEFORE:
        op.drop_index(f"ix_journal_entries_client_id_{column}", table_name="journal_entries")
    for column in DOCUMENTS:
        where = sa.text(f"{column} IS NOT NULL")
        op.create_index(
            f"ix_journal_entries_client_id_{column}",
            "journal_entries",
            ["client_id", column],
            unique=False,
            postgresql_where=where,
            sqlite_where=where,
        )


def downgrade():
    for column in DOCUMENTS:
        op.drop_index(f"ix_journal_entries_client_id_{column}", table_name="journal_entries")
    for column in FULL_BEFORE:
        op.create_index(
            f"ix_journal_entries_client_id_{column}", "journal_entries", ["client_id", column], unique=False
        )
    if _is_postgresql():
        for table in REDUNDANT_FKS:
            op.create_foreign_key(
                f"fk_{table}_client_id_clients", table, "clients", ["client_id"], ["id"], ondelete="RESTRICT"
            )
