"""Lock contention, told apart from other database errors, and a short write retried through it.

SQLite has one writer at a time: a writer that cannot get the lock within the busy timeout fails with
"database is locked". PostgreSQL's equivalents are a lock timeout, a deadlock and a serialization failure.
None of them is the caller's fault nor a bug: the API answers them 503 with Retry-After (never 500), and the
short bookkeeping writes (the idempotency store, webhook attempts) try again before giving up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError

T = TypeVar("T")
LOCK_SQLSTATES = frozenset({"55P03", "40P01", "40001"})  # lock_not_available, deadlock, serialization failure
log = logging.getLogger(__name__)


def is_lock_contention(exc: BaseException) -> bool:
    """SQLite's "database is locked"/"busy", or PostgreSQL's lock timeout, deadlock or serialization failure."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).lower()
    return (
        "database is locked" in text or "database is busy" in text or getattr(orig, "sqlstate", None) in LOCK_SQLSTATES
    )


def retry_on_lock(session: Any, write: Callable[[], T], *, tries: int, backoff_s: float, what: str) -> T:
    """Run `write` (which commits) up to `tries` times while it fails with lock contention, rolling back between
    tries; any other error, or the last contention, is raised."""
    for attempt in range(1, tries + 1):
        try:
            return write()
        except DBAPIError as exc:
            session.rollback()
            if not is_lock_contention(exc) or attempt == tries:
                raise
            log.warning("%s waits for a database lock (try %d of %d)", what, attempt, tries)
            time.sleep(backoff_s * attempt)
    raise AssertionError("unreachable")
