"""`updated_at` NOT NULL with a server default on every resource of the API's change feed

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07

0027 added `updated_at` to invoices, payments, credit notes, disputes, monthly reports and work actions as a
nullable column, filled from each row's creation time; the models set it on every insert and update through
SQLAlchemy. A row written by raw SQL that does not name the column (a benchmark's loader, a bulk path written
later) would still get NULL and fall out of `?updated_since=`. Here the gaps left are filled from the creation
time again, and the column becomes NOT NULL with a server default of "now" (debtors' was NOT NULL already and
gets the default), so such a row gets a change time whatever wrote it.

PostgreSQL: NOT NULL is proved by a CHECK added NOT VALID and validated (no long exclusive lock while scanning),
which `SET NOT NULL` then uses instead of scanning again. SQLite: the stored table SQL is edited in place with
`writable_schema` (the procedure SQLite documents for changing a column's default; NOT NULL holds because every
row has a value by then), so the ledger's tables are not rebuilt. SQLite's default writes the text format
SQLAlchemy writes (`YYYY-MM-DD HH:MM:SS.ffffff`, UTC), so comparisons and the keyset order stay right.
"""

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None

# table -> the creation time its missing updated_at is filled from (as in 0027)
NULLABLE = {
    "invoices": "placed_at",
    "payments": "recorded_at",
    "credit_notes": "recorded_at",
    "disputes": "COALESCE(closed_at, opened_at)",
    "monthly_reports": "generated_at",
    "work_actions": "occurred_at",
}
ALREADY_NOT_NULL = ("debtors",)
SQLITE_NOW = "(strftime('%Y-%m-%d %H:%M:%f000', 'now'))"


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _edit_sqlite_table(table: str, old: str, new: str) -> None:
    bind = op.get_bind()
    sql = bind.execute(
        sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table}
    ).scalar_one()
    if sql.count(old) != 1:
        raise RuntimeError(f"{table}: the column definition {old!r} is not the one this migration expects")
    version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
    bind.execute(sa.text("PRAGMA writable_schema = ON"))
    bind.execute(
        sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :t"),
        {"sql": sql.replace(old, new), "t": table},
    )
    bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
    bind.execute(sa.text("PRAGMA writable_schema = OFF"))


def upgrade():
    for table, source in NULLABLE.items():
        op.execute(f"UPDATE {table} SET updated_at = {source} WHERE updated_at IS NULL")  # noqa: S608 - our names
    if _postgresql():
        for table in NULLABLE:
            check = f"ck_{table}_updated_at_present"
            op.execute(f"ALTER TABLE {table} ALTER COLUMN updated_at SET DEFAULT now()")
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {check} CHECK (updated_at IS NOT NULL) NOT VALID")
            op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {check}")
            op.execute(f"ALTER TABLE {table} ALTER COLUMN updated_at SET NOT NULL")
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {check}")
        for table in ALREADY_NOT_NULL:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN updated_at SET DEFAULT now()")
        return
    for table in NULLABLE:
        _edit_sqlite_table(table, "updated_at DATETIME", f"updated_at DATETIME DEFAULT {SQLITE_NOW} NOT NULL")
    for table in ALREADY_NOT_NULL:
        _edit_sqlite_table(table, "updated_at DATETIME NOT NULL", f"updated_at DATETIME DEFAULT {SQLITE_NOW} NOT NULL")


def downgrade():
    if _postgresql():
        for table in (*NULLABLE, *ALREADY_NOT_NULL):
            op.execute(f"ALTER TABLE {table} ALTER COLUMN updated_at DROP DEFAULT")
        for table in NULLABLE:
            op.execute(f"ALTER TABLE {table} ALTER COLUMN updated_at DROP NOT NULL")
        return
    for table in NULLABLE:
        _edit_sqlite_table(table, f"updated_at DATETIME DEFAULT {SQLITE_NOW} NOT NULL", "updated_at DATETIME")
    for table in ALREADY_NOT_NULL:
        _edit_sqlite_table(table, f"updated_at DATETIME DEFAULT {SQLITE_NOW} NOT NULL", "updated_at DATETIME NOT NULL")
