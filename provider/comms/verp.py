"""Signed return addresses (VERP): the envelope sender and the Reply-To of each message name it, so a bounce or a
reply that comes back says which message it belongs to, and nobody can forge one for another message.

    bounces+<client>-<message>-<signature>@MAIL_RETURN_DOMAIN      envelope sender (Return-Path): bounces
    reply+<client>-<message>-<signature>@MAIL_RETURN_DOMAIN        Reply-To: the debtor's replies

The signature is the first 16 hex digits of HMAC-SHA256(MAIL_VERP_SECRET, "<kind>:<client>:<message>"), so a
bounce address is not a valid reply address and an edited number breaks the signature. Local parts are compared
case-insensitively (some servers change their case). A wrong signature, domain or shape reads as None: the
mail is then stored as unmatched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

BOUNCE, REPLY = "bounces", "reply"
_SHAPE = re.compile(r"^(bounces|reply)\+(\d{1,18})-(\d{1,18})-([0-9a-f]{16})$")


@dataclass(frozen=True)
class ReturnAddress:
    kind: str  # "bounces" or "reply"
    client_id: int
    message_id: int


def _signature(secret: str, kind: str, client_id: int, message_id: int) -> str:
    payload = f"{kind}:{client_id}:{message_id}".encode()
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()[:16]


def encode(kind: str, client_id: int, message_id: int, *, secret: str, domain: str) -> str:
    """The signed address of `kind` ("bounces" or "reply") for one message."""
    if kind not in (BOUNCE, REPLY):
        raise ValueError(f"unknown return address kind {kind!r}")
    return f"{kind}+{client_id}-{message_id}-{_signature(secret, kind, client_id, message_id)}@{domain}"


def decode(address: str, *, secret: str, domain: str) -> ReturnAddress | None:
    """Read a signed address back; None when it is not one of ours or its signature does not hold."""
    local, _, host = address.strip().strip("<>").rpartition("@")
    if host.lower() != domain.lower():
        return None
    match = _SHAPE.match(local.lower())
    if not match:
        return None
    kind, client, message, signature = match.groups()
    expected = _signature(secret, kind, int(client), int(message))
    if not hmac.compare_digest(expected, signature):
        return None
    return ReturnAddress(kind, int(client), int(message))
