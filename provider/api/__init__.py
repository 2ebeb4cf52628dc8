"""REST API v1 for clients' ERP integrations: token auth, idempotent writes, OpenAPI, signed webhooks."""

from typing import Any


def register(app: Any) -> None:
    """Register the API blueprint (CSRF-exempt: it authenticates by token) and the token/webhook pages."""
    from provider.api import debtors, event_sources, events, forecast, invoices, openapi, views  # noqa: F401 - routes
    from provider.api.base import bp
    from provider.api.pages import bp as pages_bp
    from provider.api.pages import portal_bp

    app.register_blueprint(bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(portal_bp)
    event_sources.connect()  # webhook events from the other areas' signals (connecting twice is a no-op)
