"""Tenant isolation: which clients' rows the current request or job may touch.

Three layers, all driven by one `TenantScope` held in a context variable:

1. Tenant-scoped lookups (`get_for_client`, `get_visible_or_404`): a miss, including another client's
   object, is a 404.
2. The ORM guard (both databases): every SELECT/UPDATE/DELETE on a `ClientOwned` model (and on the
   tenant root, the `clients` table) gets `client_id = :current` (or `IN (:granted)`) added; a flush that
   would write a row for a client outside the scope is refused.
3. PostgreSQL row-level security (FORCE, policies made by the migrations): at the start of every
   transaction the scope is copied into `app.client_id` / `app.client_ids` with `set_config(..., true)`,
   the equivalent of `SET LOCAL`. No scope set means no rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import abort
from sqlalchemy import BigInteger, Engine, ForeignKey, event, text
from sqlalchemy.orm import (
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    mapped_column,
    scoped_session,
    with_loader_criteria,
)


class TenantViolation(RuntimeError):
    """A write would put a row into a client the current scope may not touch."""


@dataclass(frozen=True)
class TenantScope:
    """What the current unit of work may see.

    client_id set         -> exactly that client (client users; staff acting inside one client; jobs)
    client_ids frozenset  -> those clients (a collector's team grants); empty = nothing
    client_ids None       -> every client (agency-wide: admins and managers)
    """

    client_id: int | None = None
    client_ids: frozenset[int] | None = frozenset()

    @classmethod
    def nothing(cls) -> TenantScope:
        return cls(None, frozenset())

    @classmethod
    def agency(cls) -> TenantScope:
        return cls(None, None)

    @classmethod
    def single(cls, client_id: int) -> TenantScope:
        return cls(int(client_id), None)

    @classmethod
    def granted(cls, client_ids: Iterable[int]) -> TenantScope:
        return cls(None, frozenset(int(c) for c in client_ids))

    def allows(self, client_id: int | None) -> bool:
        if client_id is None:
            return False
        if self.client_id is not None:
            return client_id == self.client_id
        return self.client_ids is None or client_id in self.client_ids

    def gucs(self) -> tuple[str, str]:
        """The values of app.client_id and app.client_ids for PostgreSQL row-level security."""
        if self.client_id is not None:
            return str(self.client_id), ""
        if self.client_ids is None:
            return "", "*"
        return "", ",".join(str(c) for c in sorted(self.client_ids))


_scope: ContextVar[TenantScope] = ContextVar("tenant_scope", default=TenantScope.nothing())  # noqa: B039
_roots: list[type] = []


def current_scope() -> TenantScope:
    return _scope.get()


def _reapply(session: Session | scoped_session[Any] | None) -> None:
    real = session() if isinstance(session, scoped_session) else session
    if real is not None and real.in_transaction():
        _apply_gucs(real.connection())


def set_scope(scope: TenantScope, session: Session | scoped_session[Any] | None = None) -> None:
    """Replace the current scope; if `session` is inside a transaction, re-apply the RLS settings now."""
    _scope.set(scope)
    _reapply(session)


@contextmanager
def scoped(scope: TenantScope, session: Session | scoped_session[Any] | None = None) -> Iterator[TenantScope]:
    """Run a block under another scope (a job acting for one client, the demo seeding all of them)."""
    token = _scope.set(scope)
    _reapply(session)
    try:
        yield scope
    finally:
        _scope.reset(token)
        _reapply(session)


class ClientOwned:
    """Mixin for every client-owned table: `client_id NOT NULL`, guarded by the ORM and by RLS."""

    @declared_attr
    def client_id(cls) -> Mapped[int]:
        return mapped_column(BigInteger, ForeignKey("clients.id", ondelete="RESTRICT"), nullable=False)


def client_id_without_fk() -> Mapped[int]:
    """`client_id` for a client-owned table whose composite FKs ((client_id, parent_id) -> parent) already
    prove the client exists: no FK of its own to `clients`, whose check would lock the same client row on
    every insert. Such FKs are dropped on PostgreSQL by migrations (0012, 0014); SQLite keeps them (dropping one
    there rebuilds the table), and migrations/env.py tells the drift check so."""
    return mapped_column(BigInteger, nullable=False)


def register_tenant_root(model: type) -> type:
    """Mark the model whose primary key *is* the tenant (the `clients` table)."""
    _roots.append(model)
    return model


M = TypeVar("M")


def get_for_client(session: Session, model: type[M], object_id: Any, client_id: int) -> M:
    """Load `model` by id inside one client, or 404 (also when it belongs to another client)."""
    try:
        key = int(object_id)
    except (TypeError, ValueError):
        abort(404)
    obj = session.get(model, key)
    if obj is None or getattr(obj, "client_id", None) != client_id or not current_scope().allows(client_id):
        abort(404)
    return obj


def get_visible_or_404(session: Session, model: type[M], object_id: Any) -> M:
    """Load a tenant-scoped object the current scope may see, or 404 (same as a non-existent id)."""
    try:
        key = int(object_id)
    except (TypeError, ValueError):
        abort(404)
    obj = session.get(model, key)
    if obj is None:
        abort(404)
    owner = obj.id if type(obj) in _roots else getattr(obj, "client_id", None)  # type: ignore[attr-defined]
    if not current_scope().allows(owner):
        abort(404)
    return obj


# --- ORM guard ------------------------------------------------------------------------------------


def _criteria_options(scope: TenantScope) -> list[Any]:
    if scope.client_id is not None:
        cid = scope.client_id
        opts = [with_loader_criteria(ClientOwned, lambda cls: cls.client_id == cid, include_aliases=True)]
        opts += [with_loader_criteria(root, lambda cls: cls.id == cid, include_aliases=True) for root in _roots]
        return opts
    if scope.client_ids is None:
        return []
    ids = sorted(scope.client_ids) or [-1]
    opts = [with_loader_criteria(ClientOwned, lambda cls: cls.client_id.in_(ids), include_aliases=True)]
    opts += [with_loader_criteria(root, lambda cls: cls.id.in_(ids), include_aliases=True) for root in _roots]
    return opts


@event.listens_for(Session, "do_orm_execute")
def _guard_orm_execute(state: ORMExecuteState) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_select and (state.is_column_load or state.is_relationship_load):
        return  # the criteria already travel with the parent query's loader options
    if state.execution_options.get("skip_tenant_guard"):
        return
    options = _criteria_options(current_scope())
    if options:
        state.statement = state.statement.options(*options)


@event.listens_for(Session, "before_flush")
def _guard_flush(session: Session, _ctx: Any, _instances: Any) -> None:
    scope = current_scope()
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        if isinstance(obj, ClientOwned):
            owner = obj.client_id
        elif type(obj) in _roots and obj not in session.new:
            owner = obj.id  # type: ignore[attr-defined]
        else:
            continue
        if not scope.allows(owner):
            raise TenantViolation(f"{type(obj).__name__} of client {owner} is outside the current tenant scope")


# --- PostgreSQL row-level security ----------------------------------------------------------------


_APPLIED = "tenant_gucs"  # connection.info: (root transaction, values last set in it, None = unknown)
_NOTHING = TenantScope.nothing().gucs()


def _apply_gucs(connection: Any, *, at_begin: bool = False) -> None:
    """Copy the scope into the transaction's settings, unless this transaction already has these values (a
    `scoped` block for the client the request already acts for costs no round trip). A transaction begins
    with none, which is the empty scope, so a request's first transaction, begun before it knows its user,
    sets nothing."""
    if connection.dialect.name != "postgresql":
        return
    values = current_scope().gucs()
    transaction = connection.get_transaction()
    applied = connection.info.get(_APPLIED)
    this_transaction = applied is not None and applied[0] is transaction
    if this_transaction and applied[1] == values:
        return
    if at_begin and not this_transaction and values == _NOTHING:
        connection.info[_APPLIED] = (transaction, values)
        return
    connection.execute(
        text("SELECT set_config('app.client_id', :a, true), set_config('app.client_ids', :b, true)"),
        {"a": values[0], "b": values[1]},
    )
    connection.info[_APPLIED] = (transaction, values)


@event.listens_for(Engine, "rollback_savepoint")
def _forget_gucs(connection: Any, _name: Any, _context: Any) -> None:
    """A rolled-back savepoint also rolls back the settings made inside it: set them again next time."""
    applied = connection.info.get(_APPLIED)
    if applied is not None:
        connection.info[_APPLIED] = (applied[0], None)


@event.listens_for(Session, "after_begin")
def _set_local_tenant(_session: Session, _transaction: Any, connection: Any) -> None:
    _apply_gucs(connection, at_begin=True)
