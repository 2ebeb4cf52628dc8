"""dispute proposals (a resolution the client approves or rejects) and recalled accounts

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03

- `disputes.proposed_*`: the agency proposes a resolution that costs the client money (credit note,
  partial credit, write-off); the dispute waits for the client, who approves (the resolution is posted)
  or rejects it (back to investigating). The proposal's outcome is checked like `resolution`.
- `debtors.recalled_at`: the client took the account back. Closing a dispute no longer lifts the hold of a
  recalled account's invoices.

Both are plain added columns (no table rebuild on SQLite, where the CHECK is declared with the column).
"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

OUTCOMES = "proposed_resolution IN ('credit_note', 'upheld', 'partially_upheld', 'written_off')"


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.add_column("disputes", sa.Column("proposed_resolution", sa.String(length=20), nullable=True))
        op.create_check_constraint(
            op.f("ck_disputes_proposed_resolution"), "disputes", f"proposed_resolution IS NULL OR {OUTCOMES}"
        )
    else:
        op.execute(
            "ALTER TABLE disputes ADD COLUMN proposed_resolution VARCHAR(20) CONSTRAINT "
            f"ck_disputes_proposed_resolution CHECK (proposed_resolution IS NULL OR {OUTCOMES})"
        )
    op.add_column("disputes", sa.Column("proposed_amount_minor", sa.BigInteger(), nullable=True))
    op.add_column("disputes", sa.Column("proposal_note", sa.String(length=500), server_default="", nullable=False))
    op.add_column("disputes", sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("disputes", sa.Column("proposed_by_label", sa.String(length=254), server_default="", nullable=False))
    op.add_column("debtors", sa.Column("recalled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade():
    op.drop_column("debtors", "recalled_at")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f("ck_disputes_proposed_resolution"), "disputes", type_="check")
    for column in ("proposed_by_label", "proposed_at", "proposal_note", "proposed_amount_minor", "proposed_resolution"):
        op.drop_column("disputes", column)
