"""The unsubscribe link every e-mail to a debtor carries (`List-Unsubscribe`, RFC 2369, with RFC 8058 one-click).

Contract with the page that serves it (the debtor self-service page):

    URL     {PUBLIC_BASE_URL}/d/unsubscribe/<token>
    token   `unsubscribe_token(client_id, debtor_id, message_id)`: signed with SECRET_KEY (itsdangerous, salt
            "comms.unsubscribe"), no expiry (a mail read a year later must still unsubscribe; RFC 8058).
    GET     shows a confirmation page; POST (body `List-Unsubscribe=One-Click`, sent by mail clients with no
            cookies and no CSRF token) unsubscribes at once. Both: `read_unsubscribe_token(token)` gives
            (client_id, debtor_id, message_id) or None (then 404); the handler calls
            `provider.comms.unsubscribe_message(session, client_id, message_id)`, which suppresses the address the
            message went to, for that client only.

A page that wants another URL (its own signed, expiring self-service link) registers a builder:
`set_url_builder(lambda message: url_or_None)`; None leaves the header out.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from provider.comms.models import Message

_SALT = "comms.unsubscribe"
_builder: Callable[[Message], str | None] | None = None


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def unsubscribe_token(client_id: int, debtor_id: int, message_id: int) -> str:
    return str(_serializer().dumps([int(client_id), int(debtor_id), int(message_id)]))


def read_unsubscribe_token(token: str) -> tuple[int, int, int] | None:
    """(client_id, debtor_id, message_id) of a token made here; None when it is not one (tampered, garbage)."""
    try:
        value = _serializer().loads(token)
    except BadSignature:
        return None
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) for v in value)):
        return None
    return value[0], value[1], value[2]


def set_url_builder(builder: Callable[[Message], str | None] | None) -> None:
    """Replace the default URL (None restores it)."""
    global _builder
    _builder = builder


def unsubscribe_url(message: Message) -> str | None:
    """The one-click URL for a message to a debtor; None for mail to staff and client users (no debtor)."""
    if message.debtor_id is None:
        return None
    if _builder is not None:
        return _builder(message)
    base = current_app.config.get("PUBLIC_BASE_URL", "http://localhost:5000")
    return f"{base}/d/unsubscribe/{unsubscribe_token(message.client_id, message.debtor_id, message.id)}"
