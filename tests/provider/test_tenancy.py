"""Tenant isolation below the views: the ORM guard (both databases) and row-level security (PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import func, select, update
from werkzeug.exceptions import NotFound

from clients.models import Client, Debtor
from provider.core.tenancy import TenantScope, TenantViolation, get_for_client, get_visible_or_404, scoped
from provider.extensions import db
from tests.factories import make_client, make_debtor


@pytest.fixture
def two_tenants(db_session: Any) -> dict[str, Any]:
    a, b = make_client(name="Alpha GmbH"), make_client(name="Beta Ltd")
    da = [make_debtor(a, name=f"Alpha debtor {i}") for i in range(3)]
    db_ = [make_debtor(b, name=f"Beta debtor {i}") for i in range(2)]
    ids = {"a": a.id, "b": b.id, "da": [d.id for d in da], "db": [d.id for d in db_]}
    db.session.expunge_all()  # nothing cached: every read below goes to the database
    return ids


def test_orm_guard_filters_every_select_to_the_current_client(two_tenants: dict[str, Any]) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    with scoped(TenantScope.single(a), db.session):
        names = db.session.scalars(select(Debtor.name)).all()
        assert sorted(names) == ["Alpha debtor 0", "Alpha debtor 1", "Alpha debtor 2"]
        # even an explicit filter on the other tenant finds nothing
        assert db.session.scalars(select(Debtor).where(Debtor.client_id == b)).all() == []
        assert db.session.get(Debtor, two_tenants["db"][0]) is None
        assert [c.id for c in db.session.scalars(select(Client))] == [a]
        assert db.session.scalar(select(func.count()).select_from(Debtor)) == 3


def test_orm_guard_with_granted_clients_and_with_nothing(two_tenants: dict[str, Any]) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    other = make_client()
    make_debtor(other)
    db.session.expunge_all()
    with scoped(TenantScope.granted([a, b]), db.session):
        assert {d.client_id for d in db.session.scalars(select(Debtor))} == {a, b}
    with scoped(TenantScope.nothing(), db.session):
        assert db.session.scalars(select(Debtor)).all() == []
        assert db.session.scalars(select(Client)).all() == []


def test_orm_guard_limits_bulk_updates_and_refuses_foreign_writes(two_tenants: dict[str, Any]) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    with scoped(TenantScope.single(a), db.session):
        db.session.execute(update(Debtor).values(segment="vip"), execution_options={"synchronize_session": False})
        db.session.flush()
    with scoped(TenantScope.agency(), db.session):
        segments = dict(
            db.session.execute(select(Debtor.client_id, func.max(Debtor.segment)).group_by(Debtor.client_id)).all()
        )
    assert segments == {a: "vip", b: "standard"}

    with scoped(TenantScope.single(a), db.session):
        db.session.add(Debtor(client_id=b, external_ref="SNEAK-1", name="Sneaky"))
        with pytest.raises(TenantViolation):
            db.session.flush()
    db.session.rollback()


def test_lookups_404_for_another_clients_object(two_tenants: dict[str, Any]) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    foreign = two_tenants["db"][0]
    with scoped(TenantScope.single(a), db.session):
        with pytest.raises(NotFound):
            get_for_client(db.session, Debtor, foreign, a)
        with pytest.raises(NotFound):
            get_visible_or_404(db.session, Client, b)
        with pytest.raises(NotFound):
            get_visible_or_404(db.session, Debtor, "not-a-number")
        assert get_for_client(db.session, Debtor, two_tenants["da"][0], a).name == "Alpha debtor 0"


# --- PostgreSQL row-level security, through raw SQL as the application role ------------------------


@pytest.fixture
def pg(backend: str, two_tenants: dict[str, Any]) -> Any:
    if backend != "postgresql":
        pytest.skip("row-level security is a PostgreSQL feature")
    return db.session.connection()


def _gucs(conn: Any, client_id: str = "", client_ids: str = "") -> None:
    conn.execute(
        sa.text("SELECT set_config('app.client_id', :a, true), set_config('app.client_ids', :b, true)"),
        {"a": client_id, "b": client_ids},
    )


def test_app_role_is_not_owner_superuser_or_bypassrls(pg: Any) -> None:
    row = pg.execute(
        sa.text(
            "SELECT r.rolsuper, r.rolbypassrls, current_user, t.tableowner, c.relrowsecurity, c.relforcerowsecurity "
            "FROM pg_roles r, pg_tables t JOIN pg_class c ON c.relname = t.tablename "
            "WHERE r.rolname = current_user AND t.tablename = 'debtors' AND t.schemaname = 'public'"
        )
    ).one()
    superuser, bypass, me, owner, rls, forced = row
    assert (superuser, bypass) == (False, False)
    assert me == "ar_app" and owner != me
    assert rls and forced


def test_raw_sql_sees_only_the_current_tenant(pg: Any, two_tenants: dict[str, Any]) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    _gucs(pg, client_id=str(a))
    rows = pg.execute(sa.text("SELECT DISTINCT client_id FROM debtors")).scalars().all()
    assert rows == [a]
    assert pg.execute(sa.text("SELECT count(*) FROM debtors WHERE client_id = :b"), {"b": b}).scalar() == 0
    assert pg.execute(sa.text("SELECT id FROM clients")).scalars().all() == [a]
    # writes into another tenant are refused by the policy's WITH CHECK
    with pytest.raises(sa.exc.ProgrammingError, match="row-level security"), pg.begin_nested():
        pg.execute(
            sa.text(
                "INSERT INTO debtors (client_id, external_ref, name, segment, do_not_contact, created_at, "
                "updated_at) VALUES (:b, 'X-1', 'x', 'standard', false, now(), now())"
            ),
            {"b": b},
        )
    # updates cannot reach another tenant's rows either
    changed = pg.execute(sa.text("UPDATE debtors SET name = 'hacked' WHERE client_id = :b"), {"b": b}).rowcount
    assert changed == 0


def test_raw_sql_sees_no_rows_without_a_tenant(pg: Any) -> None:
    _gucs(pg)
    assert pg.execute(sa.text("SELECT count(*) FROM debtors")).scalar() == 0
    assert pg.execute(sa.text("SELECT count(*) FROM clients")).scalar() == 0
    assert pg.execute(sa.text("SELECT count(*) FROM debtor_contacts")).scalar() == 0


def test_granted_list_and_agency_scope_in_rls(pg: Any, two_tenants: dict[str, Any]) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    _gucs(pg, client_ids=str(b))
    assert pg.execute(sa.text("SELECT DISTINCT client_id FROM debtors")).scalars().all() == [b]
    _gucs(pg, client_ids="*")
    assert set(pg.execute(sa.text("SELECT DISTINCT client_id FROM debtors")).scalars().all()) >= {a, b}


def test_a_child_row_cannot_point_at_another_tenants_parent(two_tenants: dict[str, Any]) -> None:
    """Composite foreign key (client_id, debtor_id) -> debtors(client_id, id), enforced by the database."""
    from clients.models import DebtorContact

    with scoped(TenantScope.agency(), db.session):
        db.session.add(
            DebtorContact(
                client_id=two_tenants["a"], debtor_id=two_tenants["db"][0], kind="email", value="x@example.test"
            )
        )
        with pytest.raises(sa.exc.IntegrityError):
            db.session.flush()
        db.session.rollback()


@pytest.fixture
def set_configs(pg: Any) -> list[str]:
    """The tenant settings statements sent on the test's connection, while the test runs."""
    sent: list[str] = []

    def record(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        if "set_config('app.client_id'" in statement:
            sent.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    yield sent
    sa.event.remove(db.engine, "before_cursor_execute", record)


def _visible_clients(pg: Any) -> set[int]:
    return set(pg.execute(sa.text("SELECT DISTINCT client_id FROM debtors")).scalars())


def test_the_same_scope_again_costs_no_round_trip(pg: Any, two_tenants: dict[str, Any], set_configs: list[str]) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    with scoped(TenantScope.single(a), db.session):
        assert _visible_clients(pg) == {a}
        sent = len(set_configs)
        with scoped(TenantScope.single(a), db.session):  # a job step for the client the request acts for
            assert _visible_clients(pg) == {a}
        assert len(set_configs) == sent
        with scoped(TenantScope.single(b), db.session):  # another scope is set, and the first one again after it
            assert _visible_clients(pg) == {b}
        assert len(set_configs) == sent + 2
        assert _visible_clients(pg) == {a}


def test_a_rolled_back_savepoint_takes_its_settings_with_it(pg: Any, two_tenants: dict[str, Any]) -> None:
    a, b = two_tenants["a"], two_tenants["b"]
    with scoped(TenantScope.single(a), db.session):
        assert _visible_clients(pg) == {a}
        savepoint = pg.begin_nested()
        with scoped(TenantScope.single(b), db.session):
            assert _visible_clients(pg) == {b}
            savepoint.rollback()  # the database is back to client a's settings
            with scoped(TenantScope.single(b), db.session):  # so the same scope must be set again
                assert _visible_clients(pg) == {b}
        assert _visible_clients(pg) == {a}


def test_a_new_transaction_starts_with_the_empty_scope_and_sends_no_settings_for_it(
    pg: Any, set_configs: list[str]
) -> None:
    """A request's first transaction begins before it knows its user: nothing to set for the empty scope,
    because a transaction starts without settings, which row-level security reads as no client at all."""
    from sqlalchemy.orm import Session

    with Session(db.engine) as fresh, scoped(TenantScope.nothing()):
        tenant = sa.text("SELECT app_tenant_all(), app_tenant_ids()")
        assert fresh.execute(tenant).one() == (False, [])
        assert set_configs == []
        with scoped(TenantScope.single(7), fresh):
            assert fresh.execute(tenant).one() == (False, [7])
        assert len(set_configs) == 2  # the client's scope, then the empty one again
        assert fresh.execute(tenant).one() == (False, [])
        fresh.rollback()
