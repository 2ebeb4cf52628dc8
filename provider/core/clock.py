"""One clock for the whole platform, so tests can freeze time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

_frozen: datetime | None = None


def now_utc() -> datetime:
    """The current instant as an aware UTC datetime (or the frozen one inside `frozen_time`)."""
    return _frozen if _frozen is not None else datetime.now(UTC)


def today_utc() -> date:
    return now_utc().date()


@contextmanager
def frozen_time(at: datetime) -> Iterator[datetime]:
    """Freeze `now_utc()` at an aware instant for the duration of the block (tests, replays)."""
    global _frozen
    if at.tzinfo is None:
        raise ValueError("frozen_time needs an aware datetime")
    previous, _frozen = _frozen, at.astimezone(UTC)
    try:
        yield _frozen
    finally:
        _frozen = previous
