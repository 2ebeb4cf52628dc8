"""The `/api/v1` blueprint: bearer-token authentication, tenant scope per token, per-token rate limit,
problem+json errors, and `operation(...)`, which registers a view and its OpenAPI description at once.

Request cycle of an API call (DESIGN §5, in three steps):
  1. before_request: the token (Authorization: Bearer ...) becomes the actor of the audit log and fixes
     the tenant scope (a client token: its client; a staff token: the client named by X-Client-Id).
  2. the view parses input with marshmallow, loads objects through the tenant (404 otherwise), calls a
     service (which flushes);
  3. `operation` commits once for a write (after the idempotency store recorded the response).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, current_app, g, request
from flask_limiter.util import get_remote_address
from marshmallow import Schema, ValidationError
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException

from clients.models import Client
from provider.api.contention import is_lock_contention
from provider.api.models import ApiToken
from provider.api.problems import ApiProblem, conflict_kind, field_errors, problem, rule_kind
from provider.api.tokens import find_token
from provider.core.audit import Actor, set_actor
from provider.core.clock import now_utc
from provider.core.errors import ServiceError
from provider.core.tenancy import TenantScope, scoped, set_scope
from provider.extensions import csrf, db, limiter

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)
DEFAULT_RATE_LIMIT = "1200/minute"
PUBLIC_MARK = ("public:api-docs",)  # declared public on purpose: the API's documentation
MAX_ID = 2**63 - 1


def _rate_key() -> str:
    """Per token (the hash of the presented secret, no database needed); anonymous callers per address."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return "api-token:" + hashlib.sha256(header[7:].strip().encode()).hexdigest()[:24]
    return "api-anon:" + (get_remote_address() or "")


def _rate_limit() -> str:
    return str(current_app.config.get("API_RATE_LIMIT", DEFAULT_RATE_LIMIT))


limiter.limit(_rate_limit, key_func=_rate_key)(bp)


@bp.after_request
def _rate_limit_headers(response: Any) -> Any:
    """The token's budget on every answer (IETF draft "RateLimit header fields"): `RateLimit-Policy`
    (`<requests>;w=<window seconds>`), `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` (seconds
    until the window resets); a 429 adds `Retry-After` (seconds)."""
    current = limiter.current_limit
    if current is None:
        return response
    amount, window = current.limit.amount, current.limit.get_expiry()
    reset = min(window, max(0, current.reset_at - int(time.time())))
    response.headers["RateLimit-Policy"] = f"{amount};w={window}"
    response.headers["RateLimit-Limit"] = str(amount)
    response.headers["RateLimit-Remaining"] = str(max(0, current.remaining))
    response.headers["RateLimit-Reset"] = str(reset)
    if response.status_code == 429:
        response.headers["Retry-After"] = str(max(1, reset))
    return response


@dataclass
class Operation:
    path: str
    method: str
    endpoint: str
    summary: str
    tag: str
    body: type[Schema] | Schema | None = None
    query: type[Schema] | None = None
    response: type[Schema] | Schema | None = None
    status: int = 200
    write: bool = False
    idempotent: bool = False
    extra_responses: dict[int, str] = field(default_factory=dict)
    description: str = ""
    content_type: str = "application/json"


OPERATIONS: list[Operation] = []
F = TypeVar("F", bound=Callable[..., Any])


def operation(
    path: str,
    method: str,
    *,
    summary: str,
    tag: str,
    body: Any = None,
    query: type[Schema] | None = None,
    response: Any = None,
    status: int = 200,
    extra_responses: dict[int, str] | None = None,
    description: str = "",
    content_type: str = "application/json",
) -> Callable[[F], F]:
    """Route an API view and describe it for the OpenAPI document. Writes need a read-write token, run
    through the idempotency store (POST) and commit once here; reads never commit."""
    write = method != "GET"

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            token: ApiToken = g.api_token
            if write and not token.can_write:
                raise ApiProblem(403, "this token is read-only; create a read-write token to write", kind="read-only")
            if not write:
                return view(*args, **kwargs)
            from provider.api.idempotency import run_idempotent

            return run_idempotent(lambda: view(*args, **kwargs))

        wrapped.required_permissions = (f"api-token:{'read_write' if write else 'read'}",)  # type: ignore[attr-defined]
        flask_path = path.replace("{", "<int:").replace("}", ">")
        bp.add_url_rule(flask_path, view.__name__, wrapped, methods=[method])
        OPERATIONS.append(
            Operation(
                path,
                method,
                view.__name__,
                summary,
                tag,
                body,
                query,
                response,
                status,
                write,
                write and method == "POST",
                extra_responses or {},
                description or (view.__doc__ or "").strip(),
                content_type,
            )
        )
        return wrapped  # type: ignore[return-value]

    return decorator


# --- authentication and scope -------------------------------------------------------------------------


def current_client() -> Client:
    return g.api_client  # type: ignore[no-any-return]


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


@bp.before_request
def authenticate() -> Any:
    """Every API call except the documentation carries a live token; it alone decides scope and actor."""
    if request.method == "OPTIONS":  # no CORS here: Flask's automatic (HTML) OPTIONS answer becomes a 405
        rule = request.url_rule
        allowed = sorted((rule.methods or set()) - {"OPTIONS"}) if rule is not None else []
        return problem(
            405,
            "This address does not accept that kind of request.",
            headers={"Allow": ", ".join(allowed)} if allowed else None,
        )
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "required_permissions", None) == PUBLIC_MARK:
        return None
    set_scope(TenantScope.nothing(), db.session)
    set_actor(Actor.system("anonymous"))
    presented = _bearer()
    token = find_token(db.session, presented) if presented else None
    if token is None:
        return problem(
            401,
            "send a live API token: Authorization: Bearer <token>",
            kind="unauthorized",
            headers={"WWW-Authenticate": 'Bearer realm="api"'},
        )
    client_id = token.client_id
    if client_id is None:  # a staff integration names the client it acts for
        raw = request.headers.get("X-Client-Id", "")
        if not raw.isdigit() or int(raw) > MAX_ID:
            return problem(400, "a staff token must name the client in the X-Client-Id header", kind="client-required")
        client_id = int(raw)
    with scoped(TenantScope.agency(), db.session):
        client = db.session.get(Client, client_id)
    if client is None:
        return problem(404, "There is nothing here, or this token has no access to it.", kind="not-found")
    g.api_token, g.api_client = token, client
    set_actor(Actor(None, token.actor_label))
    set_scope(TenantScope.single(client.id), db.session)
    if token.last_used_at is None or (now_utc() - token.last_used_at).total_seconds() > 60:
        token.last_used_at = now_utc()  # written at most once a minute, with the request's commit
    return None


# --- errors as problem+json -----------------------------------------------------------------------------


@bp.errorhandler(ApiProblem)
def _api_problem(exc: ApiProblem) -> Any:
    db.session.rollback()
    return problem(exc.status, exc.detail, kind=exc.kind, errors=exc.errors)


@bp.errorhandler(ValidationError)
def _invalid(exc: ValidationError) -> Any:
    """Input that does not match the published schema: 422. A schema-valid body whose only errors are rules the
    schema cannot state (`problems.Rule`, e.g. a due date before the issue date): 409 with the rule's type."""
    db.session.rollback()
    errors = field_errors(exc.messages)
    kind = rule_kind(exc.messages)
    if kind is not None:
        return problem(409, "; ".join(m for ms in errors.values() for m in ms), kind=kind, errors=errors)
    return problem(422, "the request has invalid fields; nothing was written", kind="validation", errors=errors)


@bp.errorhandler(ServiceError)
def _refused(exc: ServiceError) -> Any:
    """A service refused a schema-valid request by a rule of the ledger: 409, its type from the rule or field."""
    db.session.rollback()
    errors = {exc.field: [str(exc)]} if exc.field else None
    return problem(409, str(exc), kind=conflict_kind(exc.field, exc.kind), errors=errors)


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException) -> Any:
    db.session.rollback()
    code = exc.code or 500
    detail = (
        "There is nothing here, or this token has no access to it."
        if code == 404
        else (exc.description or TITLE_FALLBACK)
    )
    allowed = getattr(exc, "valid_methods", None)
    return problem(code, detail, headers={"Allow": ", ".join(sorted(allowed))} if code == 405 and allowed else None)


TITLE_FALLBACK = "the request could not be handled"
for _code in (400, 404, 405, 413, 414, 415, 429):  # code-specific handlers win over the app's HTML pages
    bp.register_error_handler(_code, _http)


BUSY_RETRY_AFTER_S = 2


@bp.errorhandler(DBAPIError)
@bp.errorhandler(500)
def _database(exc: Exception) -> Any:
    db.session.rollback()
    original = getattr(exc, "original_exception", None) or exc  # a 500 wraps what was raised
    if is_lock_contention(original):  # the database is busy (SQLite: another writer): not a server error
        current_app.logger.warning("API call met lock contention: %s", str(original)[:200])
        return problem(
            503,
            "the database is busy; nothing was written. Retry after the delay (with the same Idempotency-Key)",
            kind="busy",
            headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
        )
    current_app.logger.exception("database error in API call")
    return problem(500, "the request could not be completed; nothing was written")


# --- helpers for views ----------------------------------------------------------------------------------


def load(model: type, object_id: int) -> Any:
    """An object of the token's client, or a 404 identical to a missing id."""
    if not 0 < object_id <= MAX_ID:
        raise ApiProblem(404, "There is nothing here, or this token has no access to it.", kind="not-found")
    obj = db.session.get(model, object_id)
    if obj is None or getattr(obj, "client_id", None) != current_client().id:
        raise ApiProblem(404, "There is nothing here, or this token has no access to it.", kind="not-found")
    return obj


def parse_body(schema: Schema, plain: Callable[[Any], Any] | None = None) -> Any:
    """The JSON body loaded by the schema. `plain`, when given, builds what the schema would load for a
    plainly valid body without it (None for any other body, which then goes through the schema).

    A body that is not declared JSON is a 415, a declared JSON body that does not parse a 400: both before
    anything is read or written."""
    if not request.is_json:
        raise ApiProblem(
            415,
            "send the body as JSON with Content-Type: application/json",
            kind="unsupported-media-type",
            errors={"Content-Type": [f"expected application/json, got {request.mimetype or 'nothing'}"]},
        )
    data = request.get_json(silent=True)
    if data is None:
        raise ApiProblem(400, "the body is not valid JSON", kind="malformed-json", errors={"_body": ["not JSON"]})
    if plain is not None:
        loaded = plain(data)
        if loaded is not None:
            return loaded
    return schema.load(data)


def parse_query(schema: Schema) -> Any:
    return schema.load(request.args.to_dict())
