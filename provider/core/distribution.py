"""Distributing the schema on Citus: `flask db distribute` (DESIGN §6).

A database with the `citus` extension shards the client-owned tables by `client_id` and copies the agency's own
small tables to every node:

- **distributed**, colocated by `client_id`: every table whose `client_id` is never empty (a client's ledger,
  worklist, SLAs, messages, books ...). Their keys all include `client_id` (migrations 0020 on, and 0040 for the
  older tables), so each client's rows of every table live on one shard group and a client's pages and jobs are
  single-shard.
- **reference** (a full copy on every node): the tables without `client_id` or where it may be empty (`clients`,
  `users`, teams, calendars of the agency, tokens, the job outbox ...).

Row-level security: Citus refuses policies with subqueries, so the older tables' policies (which read the tenant
settings through sub-selects, evaluated once per statement) are replaced by `schema_rules.DIRECT_POLICY`, the
form every table since migration 0020 has, on Citus only.

Tables are distributed parents first (foreign keys need their target there already), so the order follows the
foreign-key graph. The command is idempotent: a table Citus already knows is left as it is, so it can run after
every `flask db upgrade`. On a database without Citus it changes nothing and says so.

Triggers: Citus refuses to distribute a table with triggers unless `citus.enable_unsafe_triggers` is on. The
journal's guards only raise (append-only): they stay. The month-totals trigger is dropped and the posting
statements keep the totals instead (`REPLACED_TRIGGERS`). The command turns the setting on for its own
transaction only when every other trigger is one it knows (`KNOWN_TRIGGERS`), and refuses otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from provider.core.schema_rules import direct_policy

# Not the product's data: Alembic's bookkeeping stays on the coordinator only.
LOCAL = frozenset({"alembic_version"})

# Triggers known to be safe on a distributed table: they only raise (the append-only guards).
KNOWN_TRIGGERS = frozenset(
    {
        "journal_entries_append_only",
        "journal_transactions_append_only",
        "sla_clock_events_append_only",
        "audit_events_append_only",
    }
)
# Triggers the application takes over on Citus, dropped by `distribute`: the journal's monthly totals read the
# invoices and the placement entries of the same client, which a trigger on a shard cannot query ("complex table
# expressions"); the posting statements add them there (`clients.month_totals.add_posted`, when the connection
# is to Citus).
REPLACED_TRIGGERS = {"journal_entries_month_totals": "journal_entries"}


@dataclass
class Plan:
    reference: list[str] = field(default_factory=list)
    distributed: list[str] = field(default_factory=list)
    done: set[str] = field(default_factory=set)  # already known to Citus
    problems: list[str] = field(default_factory=list)


def has_citus(conn: sa.Connection) -> bool:
    return conn.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'citus'")).first() is not None


def _tables(conn: sa.Connection) -> dict[str, bool | None]:
    """Every table of the schema -> whether its client_id is never empty (None: it has no client_id)."""
    rows = conn.execute(
        sa.text(
            """SELECT c.relname, a.attnotnull
               FROM pg_class c LEFT JOIN pg_attribute a
                    ON a.attrelid = c.oid AND a.attname = 'client_id' AND NOT a.attisdropped
               WHERE c.relkind IN ('r', 'p') AND c.relnamespace = 'public'::regnamespace AND NOT c.relispartition"""
        )
    )
    return {name: notnull for name, notnull in rows}


def _foreign_keys(conn: sa.Connection) -> list[tuple[str, str, str]]:
    """(constraint, table, referred table) of every foreign key in the schema."""
    rows = conn.execute(
        sa.text(
            """SELECT conname, conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint
               WHERE contype = 'f' AND connamespace = 'public'::regnamespace"""
        )
    )
    return [(n, t, r) for n, t, r in rows]


def _parents_first(tables: Iterable[str], fks: list[tuple[str, str, str]]) -> list[str]:
    wanted = sorted(tables)
    parents = {t: sorted({r for _n, c, r in fks if c == t and r != t and r in wanted}) for t in wanted}
    out: list[str] = []
    seen: set[str] = set()

    def visit(table: str, path: tuple[str, ...]) -> None:
        if table in seen:
            return
        if table in path:
            raise ValueError(f"foreign keys go round in a circle: {' -> '.join((*path, table))}")
        for parent in parents[table]:
            visit(parent, (*path, table))
        seen.add(table)
        out.append(table)

    for table in wanted:
        visit(table, ())
    return out


def plan(conn: sa.Connection) -> Plan:
    tables = {t: n for t, n in _tables(conn).items() if t not in LOCAL}
    fks = _foreign_keys(conn)
    result = Plan()
    distributed = {t for t, notnull in tables.items() if notnull}
    reference = set(tables) - distributed
    for name, table, referred in fks:
        if table in reference and referred in distributed:
            result.problems.append(
                f"{table} is copied to every node but its foreign key {name} points at {referred}, which is "
                "sharded by client: give it a client_id that is never empty, or drop the key"
            )
    triggers = conn.execute(
        sa.text(
            """SELECT tgname, tgrelid::regclass::text FROM pg_trigger
               WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class
                                                     WHERE relnamespace = 'public'::regnamespace)"""
        )
    ).all()
    for trigger, table in triggers:
        if table in tables and trigger not in KNOWN_TRIGGERS and REPLACED_TRIGGERS.get(trigger) != table:
            result.problems.append(f"{table} has a trigger ({trigger}) not known to be safe on a distributed table")
    result.reference = _parents_first(reference, fks)
    result.distributed = _parents_first(distributed, fks)
    result.done = set(conn.execute(sa.text("SELECT logicalrelid::regclass::text FROM pg_dist_partition")).scalars())
    return result


def _foreign_key_definitions(conn: sa.Connection, tables: set[str]) -> list[tuple[str, str, str]]:
    """(constraint, table, definition) of every foreign key from or to one of `tables`."""
    rows = conn.execute(
        sa.text(
            """SELECT conname, conrelid::regclass::text, confrelid::regclass::text, pg_get_constraintdef(oid)
               FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace ORDER BY conname"""
        )
    )
    return [(n, t, d) for n, t, r, d in rows if t in tables or r in tables]


def _subquery_policies(conn: sa.Connection) -> list[tuple[str, str]]:
    """(table, tenant column) of the tenant policies that read the settings through sub-selects (the tables made
    before migration 0020: `(SELECT app_tenant_all()) OR client_id = ANY ((SELECT app_tenant_ids()))`)."""
    rows = conn.execute(
        sa.text(
            "SELECT tablename, qual FROM pg_policies WHERE policyname = 'tenant_isolation' AND qual LIKE '%SELECT%'"
        )
    )
    return [(table, "id" if table == "clients" else "client_id") for table, _qual in rows]


def distribute(conn: sa.Connection, *, say: Any = print) -> Plan:
    """Make the reference tables and distribute the client-owned ones, parents first; idempotent.

    Citus turns a plain table with a foreign key to a new reference table into a "Citus local table", which it
    then cannot distribute when it has an identity column (the tables made from migration 0020 on). So the
    foreign keys of the tables still to do are dropped first (in this transaction), the tables made reference or
    distributed, and the same foreign keys made again: each then joins two reference tables, a distributed table
    and a reference table, or two colocated distributed tables on `client_id`."""
    result = plan(conn)
    if result.problems:
        return result
    todo = {t for t in (*result.reference, *result.distributed) if t not in result.done}
    if not todo:
        return result
    conn.execute(sa.text("SET LOCAL citus.enable_unsafe_triggers = on"))  # KNOWN_TRIGGERS only, checked above
    conn.execute(sa.text("SET LOCAL citus.multi_shard_modify_mode = 'sequential'"))
    for table, column in _subquery_policies(conn):
        # Citus refuses policies with subqueries; plain PostgreSQL keeps the older tables' form, whose sub-selects
        # are evaluated once per statement (the direct form costs a few function calls per row: a bare count of
        # 2M rows under a list of 20 granted clients took 3.8 s instead of 0.25 s)
        predicate = direct_policy(column)
        conn.execute(sa.text(f"DROP POLICY tenant_isolation ON {table}"))
        conn.execute(sa.text(f"CREATE POLICY tenant_isolation ON {table} USING {predicate} WITH CHECK {predicate}"))
    for trigger, table in REPLACED_TRIGGERS.items():
        conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {trigger} ON {table}"))
    keys = _foreign_key_definitions(conn, todo)
    for name, table, _definition in keys:
        conn.execute(sa.text(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"'))
    for table in result.reference:
        if table in todo:
            say(f"copy to every node: {table}")
            conn.execute(sa.text("SELECT create_reference_table(:t)"), {"t": table})
    first = next((t for t in result.distributed if t in result.done), None)
    for table in result.distributed:
        if table in todo:
            say(f"shard by client: {table}")
            conn.execute(
                sa.text("SELECT create_distributed_table(:t, 'client_id', colocate_with => :c)"),
                {"t": table, "c": first or "default"},
            )
        first = first or table
    for name, table, definition in keys:
        conn.execute(sa.text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
    return result
