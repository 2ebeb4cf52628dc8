"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives: the demo's "outside world" and the
tests' mail server. It speaks the protocol for real, so the platform's sending path is the production one.

`CaptureServer(port=0).start()` listens on 127.0.0.1 (a free port when 0); every mail accepted is kept in
`.received` (and, with `directory`, written there as `<n>.eml`). `refuse` maps a recipient (lower-case) to an
SMTP reply such as "550 5.1.1 No such user" or "451 4.3.0 Try later", to play a refusing server.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.data, policy=email.policy.default)  # type: ignore[return-value]

    @property
    def message_id(self) -> str:
        return str(self.message.get("Message-ID", "")).strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self, server: CaptureServer) -> None:
        self.server = server

    async def handle_RCPT(self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any) -> str:
        answer = self.server.refuse.get(address.lower())
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        item = Received(envelope.mail_from, tuple(envelope.rcpt_tos), bytes(envelope.original_content))
        self.server.keep(item)
        return "250 Message accepted for delivery"


class CaptureServer:
    def __init__(self, port: int = 0, directory: Path | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port()
        self.directory = directory
        self.received: list[Received] = []
        self.refuse: dict[str, str] = {}
        self._lock = threading.Lock()
        self._controller: Any = None

    def keep(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = hashlib.sha256(item.message_id.encode()).hexdigest()[:32] if item.message_id else None
            (self.directory / f"{name or len(self.received)}.eml").write_bytes(item.data)

    def start(self) -> CaptureServer:
        from aiosmtpd.controller import Controller

        self._controller = Controller(
            _Handler(self), hostname=self.host, port=self.port, decode_data=False, ready_timeout=10
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> CaptureServer:
        return self.start()

    def __exit__(self, *_exc: Any) -> None:
        self.stop()


def captured_file(directory: Path, rfc_message_id: str) -> Path | None:
    """The .eml the demo's server kept for a Message-ID, if it received one."""
    path = directory / f"{hashlib.sha256(rfc_message_id.encode()).hexdigest()[:32]}.eml"
    return path if path.exists() else None
