"""API token services: create (the secret is returned once), authenticate, revoke. Flush, never commit."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from provider.api.models import ApiToken, TokenAccess
from provider.core import audit
from provider.core.clock import now_utc
from provider.core.errors import ServiceError

TOKEN_PREFIX = "ark_"  # noqa: S105 - a public marker that makes leaked tokens easy to scan for
PREFIX_CHARS = 8


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown to the user once; only its hash is stored


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    session: Session, *, name: str, access: str, client_id: int | None, created_by_id: int | None
) -> IssuedToken:
    """A new token for one client (or, with client_id None, a staff integration). The secret is in the
    result only: it is never stored, so a lost token is revoked and replaced, not recovered."""
    name = (name or "").strip()
    if not name:
        raise ServiceError("give the token a name (e.g. the system that uses it)", field="name")
    if len(name) > 80:
        raise ServiceError("the name is limited to 80 characters", field="name")
    if access not in {a.value for a in TokenAccess}:
        raise ServiceError("access must be 'read' or 'read_write'", field="access")
    public = secrets.token_hex(PREFIX_CHARS // 2)
    secret = f"{TOKEN_PREFIX}{public}_{secrets.token_urlsafe(32)}"
    token = ApiToken(
        name=name,
        prefix=public,
        secret_hash=secret_hash(secret),
        access=access,
        client_id=client_id,
        created_by_id=created_by_id,
    )
    session.add(token)
    session.flush()
    audit.record(
        session, "api_token.create", token, client_id=client_id, after=audit.snapshot(token, token.AUDIT_FIELDS)
    )
    return IssuedToken(token, secret)


def revoke_token(session: Session, token: ApiToken) -> None:
    """Refuse the token from now on (revocation is final; create a new one to restore access)."""
    if token.revoked_at is not None:
        return
    token.revoked_at = now_utc()
    session.flush()
    audit.record(session, "api_token.revoke", token, client_id=token.client_id, after={"prefix": token.prefix})


def find_token(session: Session, presented: str) -> ApiToken | None:
    """The live token whose secret is `presented`, or None (unknown, malformed or revoked)."""
    if not presented.startswith(TOKEN_PREFIX) or len(presented) > 200:
        return None
    token = session.scalar(
        select(ApiToken).where(ApiToken.secret_hash == secret_hash(presented)),
        execution_options={"skip_tenant_guard": True},
    )
    if token is None or token.revoked_at is not None:
        return None
    return token


def tokens_of(session: Session, client_id: int | None) -> list[ApiToken]:
    """The tokens of one client, or (None) the staff integrations' tokens; newest first."""
    where = ApiToken.client_id.is_(None) if client_id is None else ApiToken.client_id == client_id
    return list(session.scalars(select(ApiToken).where(where).order_by(ApiToken.id.desc())))
