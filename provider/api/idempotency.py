"""The Idempotency-Key store: a retried POST returns the first response instead of doing the work twice.

    same key, same request, first one finished   -> the stored response, with `Idempotent-Replayed: true`
    same key, different request                  -> 422 (the key is bound to the first request's body)
    same key while the first one is still running -> 409 `in-flight` (retry later; only a request that is
                                                     really running concurrently causes it)

The claim is committed *before* the work, in its own short transaction, so that a concurrent twin sees
it (this is the one place where an API request commits twice); the response is stored in the work's
transaction, so a stored response always means the work was committed. Only 2xx responses are stored:
a refusal releases the key, so the corrected request may use it again. A claim left by a crashed process
is taken over after `STALE_AFTER`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import Response, g, request
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from provider.api.contention import retry_on_lock
from provider.api.models import IdempotencyRecord
from provider.api.problems import ApiProblem
from provider.core.clock import now_utc
from provider.extensions import db

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
STALE_AFTER = timedelta(minutes=5)
RELEASE_TRIES = 5
KEY_REGEX = r"^[!-~]([ -~]*[!-~])?$"  # the document's pattern: visible ASCII, spaces only inside
KEY_PATTERN = re.compile(KEY_REGEX)
_INSERT = {"postgresql": pg_insert, "sqlite": sqlite_insert}


def request_hash() -> str:
    """Method, path and the JSON body in canonical form (key order and spacing do not matter)."""
    raw = request.get_data(cache=True)
    try:
        body = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")) if raw else ""
    except ValueError:
        body = raw.decode("utf-8", "replace")
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _key() -> str | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if len(key) > 255 or not KEY_PATTERN.fullmatch(key):
        raise ApiProblem(
            422,
            "Idempotency-Key must be 1 to 255 visible ASCII characters (spaces only inside)",
            kind="validation",
            errors={HEADER: ["invalid"]},
        )
    return key


def _claim(key: str, digest: str) -> IdempotencyRecord | Response:
    """Insert the claim (or find the existing one) and commit; returns the claim or the answer to give."""
    client_id, token_id = g.api_client.id, g.api_token.id
    insert = _INSERT[db.session.connection().dialect.name]
    now = now_utc()
    stmt = (
        insert(IdempotencyRecord)
        .values(
            client_id=client_id,
            token_id=token_id,
            key=key,
            method=request.method,
            path=request.path[:300],
            request_hash=digest,
            created_at=now,
        )
        .on_conflict_do_nothing()
        .returning(IdempotencyRecord.id)
    )
    new_id = db.session.scalar(stmt)
    db.session.commit()
    if new_id is not None:
        return db.session.get_one(IdempotencyRecord, new_id)
    record = db.session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.client_id == client_id,
            IdempotencyRecord.token_id == token_id,
            IdempotencyRecord.key == key,
        )
    )
    if record is None:  # released by a refused twin between our insert and this read: the caller may retry
        raise ApiProblem(409, "a request with this Idempotency-Key is being processed; retry", kind="in-flight")
    if record.request_hash != digest:
        raise ApiProblem(
            422,
            "this Idempotency-Key was used for a different request",
            kind="idempotency-mismatch",
            errors={HEADER: ["used before with a different request"]},
        )
    if record.completed_at is not None:
        return _replay(record)
    if now - record.created_at < STALE_AFTER:
        raise ApiProblem(409, "a request with this Idempotency-Key is still being processed", kind="in-flight")
    taken = db.session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == record.id, IdempotencyRecord.created_at == record.created_at)
        .values(created_at=now)
    ).rowcount
    db.session.commit()
    if not taken:
        raise ApiProblem(409, "a request with this Idempotency-Key is being processed", kind="in-flight")
    return db.session.get_one(IdempotencyRecord, record.id)


def _replay(record: IdempotencyRecord) -> Response:
    response = Response(record.response_body or "", status=record.response_status or 200, mimetype="application/json")
    response.headers[REPLAY_HEADER] = "true"
    if record.response_location:
        response.headers["Location"] = record.response_location
    return response


def _release(record_id: int) -> None:
    """Give the key back (the work failed or was refused). Retried through lock contention: a claim left behind
    would answer the caller's retry 409 "in flight" for STALE_AFTER."""
    db.session.rollback()

    def release() -> None:
        db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
        db.session.commit()

    retry_on_lock(db.session, release, tries=RELEASE_TRIES, backoff_s=0.2, what="releasing an Idempotency-Key")


def run_idempotent(work: Callable[[], Any]) -> Any:
    """Run a write view under the request's Idempotency-Key (if any) and commit once."""
    key = _key() if request.method == "POST" else None
    if key is None:
        response = _as_response(work())
        if response.status_code < 300:
            db.session.commit()
        else:
            db.session.rollback()
        return response
    claimed = _claim(key, request_hash())
    if isinstance(claimed, Response):
        return claimed
    record_id = claimed.id
    try:
        response = _as_response(work())
    except BaseException:
        _release(record_id)
        raise
    if response.status_code >= 300:
        _release(record_id)
        return response
    try:
        db.session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == record_id)
            .values(
                response_status=response.status_code,
                response_body=response.get_data(as_text=True),
                response_location=response.headers.get("Location"),
                completed_at=now_utc(),
            )
        )
        db.session.commit()
    except BaseException:  # the work was not committed: the key is free again for the caller's retry
        _release(record_id)
        raise
    return response


def _as_response(result: Any) -> Response:
    from flask import make_response

    return make_response(result)
