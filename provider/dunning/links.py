"""The signed, expiring link that takes a debtor to its self-service page from any message (no account).

The token binds one client and one debtor, is signed with SECRET_KEY (itsdangerous, its own salt) and expires
after DUNNING_LINK_MAX_AGE_DAYS (default 45). `read_link` gives (client_id, debtor_id) or None for anything
else: expired, tampered, garbage; the pages answer None with a plain 404.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "dunning.debtor-link"
DEFAULT_MAX_AGE_DAYS = 45


def _serializer() -> URLSafeTimedSerializer:
    return _serializer_for(current_app.config["SECRET_KEY"])


@lru_cache(maxsize=4)
def _serializer_for(secret: str | bytes) -> URLSafeTimedSerializer:
    """One serializer per secret (building one derives its keys: a run signs a link per debtor)."""
    return URLSafeTimedSerializer(secret, salt=SALT)


def max_age_seconds() -> int:
    return int(current_app.config.get("DUNNING_LINK_MAX_AGE_DAYS", DEFAULT_MAX_AGE_DAYS)) * 86400


def make_token(client_id: int, debtor_id: int) -> str:
    return str(_serializer().dumps({"c": int(client_id), "d": int(debtor_id)}))


def read_link(token: str, max_age: int | None = None) -> tuple[int, int] | None:
    try:
        value: Any = _serializer().loads(token, max_age=max_age if max_age is not None else max_age_seconds())
    except (SignatureExpired, BadSignature):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("c"), int) or not isinstance(value.get("d"), int):
        return None
    return value["c"], value["d"]


def public_url(token: str) -> str:
    base = str(current_app.config.get("PUBLIC_BASE_URL", "http://localhost:5000")).rstrip("/")
    return f"{base}/d/{token}"
