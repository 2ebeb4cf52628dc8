"""How a migration builds a client-owned table that is ready to be distributed by `client_id` (DESIGN §6).

Citus (and any engine that shards by tenant) needs `client_id` in every primary and unique key, foreign keys
between client-owned tables that include `client_id`, row-level security policies without subqueries, and no
trigger that writes another table. Every table created from migration 0020 on is built with these helpers,
and its model uses `provider.core.tenancy.ClientKeyed`:

    op.create_table(
        "things",
        *key_columns(),
        sa.Column("debtor_id", sa.BigInteger(), nullable=False),
        ...,
        *key_constraints("things"),
        sa.ForeignKeyConstraint(["client_id", "debtor_id"], ["debtors.client_id", "debtors.id"]),
        sa.UniqueConstraint("client_id", "reference"),
    )
    enable_rls("things")

On PostgreSQL the primary key is `(client_id, id)` and `id` an identity. On SQLite `id` stays the rowid (the
only key SQLite can generate), with a unique `(client_id, id)` beside it so that composite foreign keys have a
key to point at; `migrations/env.py` tells the drift check that this extra unique key is intended.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# The row-level security predicate, comparing `client_id` with the request's settings directly (no
# subquery, no function of ours): the same rules as `app_tenant_all()` / `app_tenant_ids()` of migration 0001.
#   app.client_id set              -> that client only
#   app.client_ids = '*'           -> every client (agency-wide staff)
#   app.client_ids = '3,5'         -> those clients (a team's grants)
#   nothing set                    -> no rows
_ONE = "nullif(current_setting('app.client_id', true), '')"
_MANY = "current_setting('app.client_ids', true)"


def direct_policy(column: str = "client_id") -> str:
    """`DIRECT_POLICY` on another column (`clients` compares its own `id`)."""
    return (
        f"({column} = {_ONE}::bigint OR ({_ONE} IS NULL AND ({_MANY} = '*'"
        f" OR {column} = ANY (string_to_array(nullif(nullif({_MANY}, ''), '*'), ',')::bigint[]))))"
    )


DIRECT_POLICY = direct_policy()


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def key_columns() -> list[sa.Column]:
    """`client_id` (referencing `clients`) and the generated `id`, in key order."""
    return [
        sa.Column("client_id", sa.BigInteger(), sa.ForeignKey("clients.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("id", ID, sa.Identity(), nullable=False),
    ]


def key_constraints(table: str) -> list[sa.Constraint]:
    """The primary key (and, on SQLite, the unique `(client_id, id)` composite foreign keys point at)."""
    if _postgresql():
        return [sa.PrimaryKeyConstraint("client_id", "id", name=f"pk_{table}")]
    return [
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.UniqueConstraint("client_id", "id", name=f"uq_{table}_client_id_id"),
    ]


def enable_rls(table: str) -> None:
    """PostgreSQL only: row-level security forced on `table` with `DIRECT_POLICY`."""
    if not _postgresql():
        return
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON {table} USING {DIRECT_POLICY} WITH CHECK {DIRECT_POLICY}")


def change_check(table: str, name: str, column: str, old: str, new: str) -> None:
    """Replace the CHECK `<column> IN (<old>)` named `name` by `<column> IN (<new>)` (widening it when upgrading,
    narrowing it back when downgrading). PostgreSQL: re-created NOT VALID then validated, without a long exclusive
    lock. SQLite: the table's stored SQL is edited in place with `writable_schema`, the procedure SQLite documents
    for changes that leave stored rows valid, so the table is not rebuilt and its triggers stay (migration 0026
    did the same for the journal)."""
    if _postgresql():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({column} IN ({new})) NOT VALID")
        op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")
        return
    bind = op.get_bind()
    stored = bind.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"), {"t": table})
    sql = stored.scalar_one()
    if f"IN ({old})" not in sql:
        raise RuntimeError(f"{table}: the CHECK constraint {name} is not the one this migration expects")
    version = bind.execute(sa.text("PRAGMA schema_version")).scalar_one()
    bind.execute(sa.text("PRAGMA writable_schema = ON"))
    bind.execute(
        sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = :t"),
        {"sql": sql.replace(f"IN ({old})", f"IN ({new})"), "t": table},
    )
    bind.execute(sa.text(f"PRAGMA schema_version = {int(version) + 1}"))
    bind.execute(sa.text("PRAGMA writable_schema = OFF"))
