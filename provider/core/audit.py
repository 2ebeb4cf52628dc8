"""Append-only audit log: who did what to which object, when, and what changed.

Every service write calls `record(...)`. The table refuses UPDATE and DELETE: an ORM guard on both
databases and a trigger made by the migrations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, Session, mapped_column

from provider.core.db import Base, created_at, intpk


class AppendOnlyViolation(RuntimeError):
    """An UPDATE or DELETE was attempted on an append-only table."""


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    label: str  # e-mail of a person, or "system:<what>"

    @classmethod
    def system(cls, what: str) -> Actor:
        return cls(None, f"system:{what}")


_actor: ContextVar[Actor] = ContextVar("audit_actor", default=Actor.system("unknown"))  # noqa: B039


def set_actor(actor: Actor) -> None:
    _actor.set(actor)


def current_actor() -> Actor:
    return _actor.get()


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = _actor.set(actor)
    try:
        yield actor
    finally:
        _actor.reset(token)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index(None, "client_id", "occurred_at"),
        Index(None, "object_type", "object_id"),
        Index(None, "occurred_at"),
    )

    id: Mapped[intpk]
    occurred_at: Mapped[created_at]
    actor_user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    actor_label: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(80))
    object_type: Mapped[str] = mapped_column(String(80))
    object_id: Mapped[str] = mapped_column(String(80))
    client_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("clients.id", ondelete="RESTRICT"))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON().with_variant(JSONB(), "postgresql"), default=dict)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def snapshot(obj: Any, fields: Iterable[str]) -> dict[str, Any]:
    """A JSON-able dict of the named attributes, for the before/after summary."""
    return {name: _jsonable(getattr(obj, name)) for name in fields}


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """Keep only the fields that changed: {"field": [old, new]}; creation/deletion keep everything."""
    if before is None:
        return {"after": after or {}}
    if after is None:
        return {"before": before}
    return {k: [before.get(k), after.get(k)] for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)}


def record(
    session: Session,
    action: str,
    obj: Any,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    client_id: int | None = None,
    object_id: Any = None,
) -> AuditEvent:
    """Append an audit event for `obj` (flushing is the caller's unit of work)."""
    actor = current_actor()
    if client_id is None:
        client_id = getattr(obj, "client_id", None)
    oid = object_id if object_id is not None else getattr(obj, "id", None)
    event_row = AuditEvent(
        actor_user_id=actor.user_id,
        actor_label=actor.label,
        action=action,
        object_type=type(obj).__name__ if not isinstance(obj, str) else obj,
        object_id=str(oid) if oid is not None else "",
        client_id=client_id,
        changes=_jsonable(diff(before, after)),
    )
    session.add(event_row)
    return event_row


def history_of(session: Session, obj: Any, *, client_id: int | None, limit: int = 20) -> list[AuditEvent]:
    """The latest audit events of one object, newest first (within its client)."""
    from sqlalchemy import select

    stmt = (
        select(AuditEvent)
        .where(
            AuditEvent.client_id == client_id,
            AuditEvent.object_type == type(obj).__name__,
            AuditEvent.object_id == str(obj.id),
        )
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    return list(session.scalars(stmt))


_append_only: list[type] = [AuditEvent]


def register_append_only(model: type) -> type:
    _append_only.append(model)
    return model


@event.listens_for(Session, "before_flush")
def _refuse_changes(session: Session, _ctx: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, tuple(_append_only)) and (obj in session.deleted or session.is_modified(obj)):
            raise AppendOnlyViolation(f"{type(obj).__name__} rows are append-only; post a correction instead")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: Any) -> None:
    if state.is_update or state.is_delete:
        for mapper in state.all_mappers:
            if issubclass(mapper.class_, tuple(_append_only)):
                raise AppendOnlyViolation(f"{mapper.class_.__name__} rows are append-only; post a correction instead")
