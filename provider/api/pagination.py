"""Cursor (keyset) pagination: `?limit=&sort=[-]field&cursor=`; stable under inserts, O(limit) at any depth.

The cursor is an opaque base64url JSON of the sort it belongs to and the last row's (value, id); a cursor
used with another sort is refused (409 `invalid-cursor`). The order is always total: the id breaks ties.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, or_

from provider.api.problems import ApiProblem
from provider.extensions import db

MAX_LIMIT = 200


def _encode(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


def _cursor(sort: str, value: Any, last_id: int) -> str:
    raw = json.dumps({"s": sort, "v": _encode(value), "i": last_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, sort: str, parse: Callable[[Any], Any]) -> tuple[Any, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data["s"] != sort or not isinstance(data["i"], int):
            raise ValueError("cursor of another sort")
        return (None if data["v"] is None else parse(data["v"])), data["i"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ApiProblem(
            409, "the cursor is not valid for this list and sort", kind="invalid-cursor", errors={"cursor": ["invalid"]}
        ) from None


def keyset_page(
    stmt: Select[Any],
    id_column: Any,
    sorts: Mapping[str, tuple[Any, Callable[[Any], Any]]],
    args: dict[str, Any],
) -> tuple[list[Any], str | None]:
    """One page of `stmt` (a single-entity select) as (items, next cursor or None)."""
    sort = args.get("sort") or "id"
    name = sort.lstrip("-")
    descending = sort.startswith("-")
    column, parse = sorts[name]
    limit = args.get("limit") or 50
    if args.get("cursor"):
        value, last_id = _decode(args["cursor"], sort, parse)
        if column is id_column:
            stmt = stmt.where(id_column < last_id if descending else id_column > last_id)
        else:
            after = column < value if descending else column > value
            tie = id_column < last_id if descending else id_column > last_id
            stmt = stmt.where(or_(after, and_(column == value, tie)))
    order = [column.desc(), id_column.desc()] if descending else [column.asc(), id_column.asc()]
    if column is id_column:
        order = order[:1]
    rows = list(db.session.scalars(stmt.order_by(*order).limit(limit + 1)))
    items = rows[:limit]
    if len(rows) <= limit:
        return items, None
    last = items[-1]
    return items, _cursor(sort, getattr(last, column.key), last.id)


def same(value: Any) -> Any:
    return value


def as_date(value: Any) -> date:
    return date.fromisoformat(value)


def as_int(value: Any) -> int:
    if not isinstance(value, int):
        raise ValueError("not an int")
    return value


def as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def as_datetime(value: Any) -> datetime:
    return datetime.fromisoformat(value)
