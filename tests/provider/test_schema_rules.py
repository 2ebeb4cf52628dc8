"""Tables built with `provider.core.schema_rules` and mapped with `ClientKeyed` (DESIGN §6): `client_id` leads the
primary key on PostgreSQL, ids are generated on both databases, a row loads by `id` alone, composite foreign keys
hold, and the row-level security policy (no subquery) shows each client only its own rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from provider.core import schema_rules
from provider.core.tenancy import ClientKeyed, TenantScope, get_for_client, scoped
from tests.factories import make_client


@pytest.fixture
def probe_tables(database: Any, app: Any) -> Iterator[tuple[str, str]]:
    """Two scratch tables (parent, child) created by the owner through the helpers, dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    parent, child = f"zz_parent_{suffix}", f"zz_child_{suffix}"
    owner = sa.create_engine(database.owner_url, poolclass=sa.NullPool)
    with owner.begin() as conn, Operations.context(MigrationContext.configure(conn)):
        from alembic import op

        op.create_table(
            parent,
            *schema_rules.key_columns(),
            sa.Column("ref", sa.String(20), nullable=False),
            *schema_rules.key_constraints(parent),
            sa.UniqueConstraint("client_id", "ref", name=f"uq_{parent}_ref"),
        )
        schema_rules.enable_rls(parent)
        op.create_table(
            child,
            *schema_rules.key_columns(),
            sa.Column("parent_id", sa.BigInteger(), nullable=False),
            *schema_rules.key_constraints(child),
            sa.ForeignKeyConstraint(
                ["client_id", "parent_id"], [f"{parent}.client_id", f"{parent}.id"], name=f"fk_{child}_parent"
            ),
        )
        schema_rules.enable_rls(child)
    try:
        yield parent, child
    finally:
        with owner.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {child}"))
            conn.execute(sa.text(f"DROP TABLE {parent}"))
        owner.dispose()


def _models(parent: str, child: str) -> tuple[type, type]:
    class Base(DeclarativeBase):
        pass

    sa.Table("clients", Base.metadata, sa.Column("id", sa.BigInteger, primary_key=True))

    class Parent(ClientKeyed, Base):
        __tablename__ = parent
        ref: Mapped[str] = mapped_column(sa.String(20))

    class Child(ClientKeyed, Base):
        __tablename__ = child
        parent_id: Mapped[int] = mapped_column(sa.BigInteger)

    return Parent, Child


def test_client_keyed_tables_generate_ids_load_by_id_and_keep_clients_apart(
    probe_tables: tuple[str, str], database: Any, db_session: Any
) -> None:  # probe_tables first: on SQLite its DDL must come before the test's open write transaction
    Parent, Child = _models(*probe_tables)
    one, two = make_client(), make_client()

    with scoped(TenantScope.single(one.id), db_session):
        first = Parent(client_id=one.id, ref="A-1")
        db_session.add(first)
        db_session.flush()
        db_session.add(Child(client_id=one.id, parent_id=first.id))
        db_session.flush()
    with scoped(TenantScope.single(two.id), db_session):
        second = Parent(client_id=two.id, ref="A-1")  # the same reference in another client is allowed
        db_session.add(second)
        db_session.flush()
    assert first.id and second.id and first.id != second.id
    db_session.expunge_all()

    with scoped(TenantScope.single(one.id), db_session):
        assert get_for_client(db_session, Parent, first.id, one.id).ref == "A-1"
        raw = db_session.execute(sa.text(f"SELECT client_id FROM {probe_tables[0]}")).scalars().all()
        if database.backend == "postgresql":
            assert raw == [one.id]  # the policy alone hides the other client's row
        # a child may not point at another client's parent: the composite key refuses it
        with pytest.raises(sa.exc.IntegrityError), db_session.begin_nested():
            db_session.execute(
                sa.text(f"INSERT INTO {probe_tables[1]} (client_id, parent_id) VALUES (:c, :p)"),
                {"c": one.id, "p": second.id},
            )

    with scoped(TenantScope.granted([two.id]), db_session):
        if database.backend == "postgresql":
            assert db_session.execute(sa.text(f"SELECT id FROM {probe_tables[0]}")).scalars().all() == [second.id]
    with scoped(TenantScope.nothing(), db_session):
        if database.backend == "postgresql":
            assert db_session.execute(sa.text(f"SELECT count(*) FROM {probe_tables[0]}")).scalar_one() == 0

    if database.backend == "postgresql":
        key = db_session.execute(
            sa.text(
                "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index i "
                "CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                "WHERE i.indrelid = CAST(:t AS regclass) AND i.indisprimary"
            ),
            {"t": probe_tables[0]},
        ).scalar_one()
        assert key == ["client_id", "id"]
        policy = db_session.execute(
            sa.text("SELECT qual FROM pg_policies WHERE tablename = :t"), {"t": probe_tables[0]}
        ).scalar_one()
        assert "select" not in policy.lower()


def test_every_key_of_a_client_owned_table_includes_client_id(database: Any) -> None:
    """What a sharding engine needs of every table whose rows always belong to a client (DESIGN §6; migration 0040
    for the tables made before 0020): `client_id` in its primary key and in each unique key, and in each foreign key
    to another such table."""
    if database.backend != "postgresql":
        pytest.skip("SQLite keeps its older keys (it is never distributed)")
    owner = sa.create_engine(database.owner_url, poolclass=sa.NullPool)
    owned = """SELECT c.oid FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
               WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace AND a.attname = 'client_id'
                 AND a.attnotnull"""
    try:
        with owner.connect() as conn:
            tables = conn.execute(sa.text(f"SELECT count(*) FROM ({owned}) o")).scalar_one()
            keys = conn.execute(
                sa.text(
                    f"""SELECT i.indexrelid::regclass::text FROM pg_index i
                        WHERE i.indisunique AND i.indrelid IN ({owned})
                          AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) k JOIN pg_attribute a
                                          ON a.attrelid = i.indrelid AND a.attnum = k WHERE a.attname = 'client_id')"""
                )
            ).scalars()
            foreign = conn.execute(
                sa.text(
                    f"""SELECT conname FROM pg_constraint f
                        WHERE f.contype = 'f' AND f.conrelid IN ({owned}) AND f.confrelid IN ({owned})
                          AND NOT EXISTS (SELECT 1 FROM unnest(f.conkey) k JOIN pg_attribute a
                                          ON a.attrelid = f.conrelid AND a.attnum = k WHERE a.attname = 'client_id')"""
                )
            ).scalars()
            without = sorted(keys), sorted(foreign)
    finally:
        owner.dispose()
    assert tables > 60
    assert without == ([], [])
