"""Alembic environment: migrations run as the schema owner (DATABASE_OWNER_URL), not the app role."""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app
from sqlalchemy import create_engine, pool

config = context.config
fileConfig(config.config_file_name, disable_existing_loggers=False)
logger = logging.getLogger("alembic.env")

owner_url = current_app.config["DATABASE_OWNER_URL"]
config.set_main_option("sqlalchemy.url", owner_url.replace("%", "%%"))
target_metadata = current_app.extensions["migrate"].db.metadata


# (table, referred table, columns) of FKs the models leave out but SQLite keeps (migrations 0012 and 0014 drop them
# on PostgreSQL only: on SQLite dropping one means rebuilding the table and losing its append-only triggers).
SQLITE_ONLY_FKS = {
    (table, "clients", ("client_id",))
    for table in ("invoices", "journal_entries", "sla_clock_events", "sla_notifications")
}


def _sqlite_only_fk(obj, type_, reflected, compare_to):
    if type_ != "foreign_key_constraint" or not reflected or compare_to is not None:
        return False
    if context.get_bind().dialect.name != "sqlite":
        return False
    return (obj.table.name, obj.referred_table.name, tuple(obj.column_keys)) in SQLITE_ONLY_FKS


def _sqlite_key_twin(obj, type_, reflected, compare_to):
    """On SQLite a client-keyed table (provider.core.schema_rules) keeps its rowid `id` as primary key and a
    unique `(client_id, id)` beside it for composite foreign keys; the model's key is `(client_id, id)`."""
    if type_ != "unique_constraint" or not reflected or compare_to is not None:
        return False
    if context.get_bind().dialect.name != "sqlite":
        return False
    return tuple(c.name for c in obj.columns) == ("client_id", "id")


# Keys migration 0040 gave `client_id` on PostgreSQL only (SQLite is never distributed, and changing a key there
# rebuilds the table): on SQLite the database keeps the older key and the model's newer one is not made.
# (type, table, columns, referred table or None) -> the SQLite twin of the model's key
SQLITE_KEPT_KEYS = {
    ("unique_constraint", "journal_transactions", ("client_id", "reverses_id"), None): ("reverses_id",),
    ("unique_constraint", "report_notifications", ("client_id", "report_id", "recipient"), None): (
        "report_id",
        "recipient",
    ),
    ("foreign_key_constraint", "journal_transactions", ("client_id", "reverses_id"), "journal_transactions"): (
        "reverses_id",
    ),
    ("foreign_key_constraint", "report_notifications", ("client_id", "report_id"), "monthly_reports"): ("report_id",),
}


def _signature(obj, type_):
    if type_ == "foreign_key_constraint":
        return obj.table.name, tuple(obj.column_keys), obj.referred_table.name
    return obj.table.name, tuple(c.name for c in obj.columns), None


def _sqlite_kept_key(obj, type_, reflected, compare_to):
    """On SQLite: the model's 0040 key (not made there) or the older key SQLite keeps in its place."""
    if type_ not in ("unique_constraint", "foreign_key_constraint") or compare_to is not None:
        return False
    if context.get_bind().dialect.name != "sqlite":
        return False
    table, columns, referred = _signature(obj, type_)
    if not reflected:
        return (type_, table, columns, referred) in SQLITE_KEPT_KEYS
    return any(
        (kind, name, old, ref) == (type_, table, columns, referred)
        for (kind, name, _new, ref), old in SQLITE_KEPT_KEYS.items()
    )


def include_object(obj, name, type_, reflected, compare_to):
    """Not model drift: PostgreSQL-only indexes made by hand in migrations (trigram search, and the `id` lookup
    of the tables migration 0040 re-keyed), the redundant client FKs SQLite keeps (SQLITE_ONLY_FKS), the key
    twin of client-keyed tables on SQLite and the older keys SQLite keeps (SQLITE_KEPT_KEYS)."""
    if type_ == "index" and name and (name.endswith("_trgm") or name.endswith("_id_lookup")):
        return False
    if _sqlite_key_twin(obj, type_, reflected, compare_to) or _sqlite_kept_key(obj, type_, reflected, compare_to):
        return False
    return not _sqlite_only_fk(obj, type_, reflected, compare_to)


def run_migrations_offline():
    context.configure(url=owner_url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    def process_revision_directives(context, revision, directives):
        if getattr(config.cmd_opts, "autogenerate", False):
            script = directives[0]
            if script.upgrade_ops.is_empty():
                directives[:] = []
                logger.info("No changes in schema detected.")

    conf_args = dict(current_app.extensions["migrate"].configure_args)
    conf_args.setdefault("process_revision_directives", process_revision_directives)
    conf_args.setdefault("include_object", include_object)
    engine = create_engine(owner_url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, **conf_args)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
