"""Communications: e-mail and letters the platform sends, stored as rendered, and the mail that comes back.

The public API (other packages call only these; they render the content, this package stores and delivers it):

    queue_email(session, *, client_id, to, subject, text, html=None, debtor_id=None, purpose, dedupe_key,
                attachments=(), language="en", source=None, to_name="") -> Message
    queue_letter(session, *, client_id, debtor_id, address_lines, subject, pdf_bytes, dedupe_key, purpose,
                 source=None, language="en", to_name="") -> Message
    mark_letters_printed(session, client_id, message_ids, batch="") -> list[int]
    mark_letters_dispatched(session, client_id, message_ids, by) -> list[int]
    is_undeliverable(session, client_id, address) -> bool
    suppress_address(session, *, client_id, address, kind, reason="", message_id=None) -> SuppressedAddress
    unsubscribe_message(session, client_id, message_id) -> SuppressedAddress | None
    unsubscribe_token / read_unsubscribe_token / set_url_builder     (the List-Unsubscribe link contract)

See provider.comms.services for the guarantees (idempotent by dedupe_key, immutable once queued, bad addresses
stored as failed with a reason) and provider.comms.sender for delivery (at most once, retries with backoff).
"""

from provider.comms.models import (
    Channel,
    InboundMail,
    Message,
    MessageAttachment,
    MessageEvent,
    MessageStatus,
    SendingIdentity,
    SuppressedAddress,
    SuppressionKind,
)
from provider.comms.services import (
    Attachment,
    Source,
    address_problem,
    is_undeliverable,
    mark_letters_dispatched,
    mark_letters_printed,
    queue_email,
    queue_letter,
    suppress_address,
    unsubscribe_message,
)
from provider.comms.unsubscribe import read_unsubscribe_token, set_url_builder, unsubscribe_token, unsubscribe_url

__all__ = [
    "Attachment",
    "Channel",
    "InboundMail",
    "Message",
    "MessageAttachment",
    "MessageEvent",
    "MessageStatus",
    "SendingIdentity",
    "Source",
    "SuppressedAddress",
    "SuppressionKind",
    "address_problem",
    "is_undeliverable",
    "mark_letters_dispatched",
    "mark_letters_printed",
    "queue_email",
    "queue_letter",
    "read_unsubscribe_token",
    "set_url_builder",
    "suppress_address",
    "unsubscribe_message",
    "unsubscribe_token",
    "unsubscribe_url",
]
