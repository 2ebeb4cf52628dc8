"""Declarative base, column types and the session-level guards shared by every model."""

from __future__ import annotations

import logging
import re
import time
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Annotated, Any

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, String, event
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, mapped_column, registry
from sqlalchemy.types import TypeDecorator

from provider.core.clock import now_utc

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# BIGINT on PostgreSQL; INTEGER on SQLite so that the primary key is the rowid alias and autoincrements.
BigInt = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on both databases (SQLite stores it naive; we re-attach UTC on load)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use provider.core.clock.now_utc()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


intpk = Annotated[int, mapped_column(BigInt, primary_key=True)]
bigint = Annotated[int, mapped_column(BigInteger)]
str40 = Annotated[str, mapped_column(String(40))]
str200 = Annotated[str, mapped_column(String(200))]
created_at = Annotated[datetime, mapped_column(UTCDateTime(), default=now_utc, nullable=False)]


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime(), int: BigInteger()},
    )

    def __repr__(self) -> str:
        pk = getattr(self, "id", None)
        return f"<{type(self).__name__} {pk}>"


SQLITE_BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for SQLite's write lock before "database is locked"
READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# After a job's chunk commits on SQLite, the write lock stays free this long: longer than the longest sleep
# of SQLite's busy handler (100 ms), so a request waiting for the lock gets it before the job's next chunk.
SQLITE_LOCK_PAUSE_S = 0.15
_READ_FIRST: ContextVar[bool] = ContextVar("sqlite_read_first", default=False)
_WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE|SAVEPOINT|CREATE|DROP|ALTER)\b", re.IGNORECASE)
log = logging.getLogger(__name__)


def sqlite_begin_statement() -> str:
    """How a SQLite transaction starts here: `BEGIN IMMEDIATE` (the write lock, waited for up to the busy
    timeout) everywhere but in a request that only reads (GET, HEAD, OPTIONS), which starts `BEGIN`
    (deferred: a read snapshot, no lock; WAL lets it read while another connection writes).

    Why not deferred everywhere: a deferred transaction that has read and then writes must upgrade its read
    snapshot to the write lock. If another connection wrote in between, the upgrade fails at once with
    SQLITE_BUSY ("database is locked"): the busy timeout is not applied to it, because waiting could not
    help (the snapshot is stale; SQLITE_BUSY_SNAPSHOT in WAL mode). A transaction that takes the lock
    first, with BEGIN IMMEDIATE, waits its turn through the busy timeout instead and never fails that way.
    Jobs, CLI commands and every POST/PUT/PATCH/DELETE request therefore take the lock up front; they hold it
    until their commit, so in-process jobs commit in short chunks (see clients/payment_imports.py)."""
    from flask import has_request_context, request

    if has_request_context() and request.method in READ_ONLY_METHODS:
        return "BEGIN"
    return "BEGIN IMMEDIATE"


def configure_engine(engine: Engine) -> None:
    """Per-connection settings. SQLite: WAL (readers never wait for the writer), synchronous=NORMAL (safe in
    WAL: a power cut can lose the last commits, never corrupt), foreign keys, a busy timeout, and a real
    BEGIN issued by SQLAlchemy (so SAVEPOINTs work) in the mode `sqlite_begin_statement` chooses.
    PostgreSQL with Citus: `SET LOCAL` commands are sent on to the workers (`citus.propagate_set_commands`), so the
    tenant settings reach the shards (provider.core.tenancy); `connection.info["citus"]` says whether it is."""
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _pg_connect(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
            record.info["citus"] = cursor.fetchone() is not None
            if record.info["citus"]:
                cursor.execute("SET citus.propagate_set_commands = 'local'")
                # one connection per worker within a transaction: a transaction that wrote to many shards can
                # then still read them ("placements modified over multiple connections" otherwise)
                cursor.execute("SET citus.multi_shard_modify_mode = 'sequential'")
            cursor.close()
            dbapi_connection.commit()  # the check's own transaction, not the first request's

        return
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy emit BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn: Any) -> None:
        if _READ_FIRST.get():  # a job's read phase (`commit_chunk(..., read_next=True)`): no lock yet
            conn.info["sqlite_read_first"] = True
            conn.exec_driver_sql("BEGIN")
            return
        statement = sqlite_begin_statement()
        conn.info["sqlite_read_only_request"] = statement == "BEGIN"
        conn.exec_driver_sql(statement)

    @event.listens_for(engine, "before_cursor_execute")
    def _sqlite_before_write(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if not (conn.info.get("sqlite_read_first") or conn.info.get("sqlite_read_only_request")):
            return
        if not _WRITES.match(statement):
            return
        if conn.info.pop("sqlite_read_first", False):
            # nothing written yet: end the read snapshot and wait for the write lock, instead of an upgrade
            # that fails at once when someone wrote meanwhile (what was read may be older than the lock:
            # the job's writes re-check what they rely on, as the ledger's verbs do)
            cursor.execute("COMMIT")
            cursor.execute("BEGIN IMMEDIATE")
        else:
            log.warning("a %s request writes on SQLite in a deferred transaction: %s", _method(), statement[:80])
            conn.info["sqlite_read_only_request"] = False

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _sqlite_end(conn: Any) -> None:
        conn.info.pop("sqlite_read_first", None)
        conn.info.pop("sqlite_read_only_request", None)


def _method() -> str:
    from flask import has_request_context, request

    return request.method if has_request_context() else "?"


def commit_chunk(session: Any, read_next: bool = False) -> None:
    """A long job's checkpoint: commit the chunk done so far and, on SQLite, pause so that the requests
    waiting for the write lock take it before the job's next chunk does (SQLite's lock is not fair: a
    waiter only retries between its busy-handler sleeps, so a job that commits and begins again at once
    would keep the lock from them until it ends). For jobs only; services flush and never commit.

    `read_next`: what the job does next starts by reading a while (checking a file against the ledger), so
    on SQLite its next transaction begins deferred, holding no lock, and is turned into a BEGIN IMMEDIATE
    one just before its first write (see `configure_engine`)."""
    session.commit()
    if session.get_bind().dialect.name != "sqlite":
        return
    time.sleep(SQLITE_LOCK_PAUSE_S)
    if read_next:
        token = _READ_FIRST.set(True)
        try:
            session.connection()  # begins the job's next transaction now, in read-first mode
        finally:
            _READ_FIRST.reset(token)


def is_sqlite(session: Any) -> bool:
    return bool(session.get_bind().dialect.name == "sqlite")
