"""A real SMTP server on loopback (aiosmtpd) as the platform's outgoing mail server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from provider.comms.loopback import CaptureServer


@pytest.fixture
def smtp_server(app: Flask) -> Iterator[CaptureServer]:
    """A loopback aiosmtpd the app sends to for the length of the test (config restored afterwards)."""
    saved: dict[str, Any] = {k: app.config.get(k) for k in ("SMTP_HOST", "SMTP_PORT", "SMTP_STARTTLS", "SMTP_SSL")}
    with CaptureServer() as server:
        app.config.update(SMTP_HOST=server.host, SMTP_PORT=server.port, SMTP_STARTTLS=False, SMTP_SSL=False)
        try:
            yield server
        finally:
            app.config.update(saved)
