"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from provider.config import INSTANCE_DIR, load_settings
from provider.core import jobs
from provider.core.audit import Actor, current_actor, set_actor
from provider.core.db import configure_engine
from provider.core.tenancy import TenantScope, current_scope, set_scope
from provider.extensions import csrf, db, limiter, login_manager, migrate


def create_app(environ: Mapping[str, str] | None = None, **overrides: Any) -> Flask:
    """Build the app. `environ` stands in for the process environment (tests, benchmarks); `overrides` patch
    the Flask config. Reading the environment itself is provider.config's job."""
    settings = load_settings(environ)
    app = Flask("provider", instance_path=str(INSTANCE_DIR), instance_relative_config=False)
    app.config.from_mapping(settings.flask_config())
    app.config.update(overrides)
    if settings.database_url.startswith("sqlite"):
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO if settings.env != "testing" else logging.WARNING)
    for chatty in ("weasyprint", "fontTools"):  # PDF rendering logs every step at INFO
        logging.getLogger(chatty).setLevel(logging.WARNING)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(INSTANCE_DIR.parent / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to continue."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    with app.app_context():
        configure_engine(db.engine)

    _import_models()
    from provider.comms.notices import connect as connect_mail_notices

    connect_mail_notices()  # SLA breach alerts by e-mail (connecting twice is a no-op)
    _register_blueprints(app)
    _register_request_hooks(app)
    _register_error_pages(app)
    _register_template_helpers(app)

    from provider.cli import register_cli

    register_cli(app)
    return app


def _import_models() -> None:
    """Import every model module so that metadata (and Alembic autogenerate) sees all tables."""
    import provider.api.models
    import provider.books.models
    import provider.books.subscribers  # posts the agency's books after the ledger's payments
    import provider.comms.jobs
    import provider.comms.models
    import provider.comms.notices
    import provider.core.audit
    import provider.core.outbox_models
    import provider.dunning.models
    import provider.forecast.jobs  # the nightly refit's periodic slot
    import provider.forecast.models
    import provider.models
    import provider.reporting.models  # noqa: F401
    import sla.models
    import sla.subscribers  # noqa: F401 - starts/stops SLA clocks on placement and contact signals
    import worklists.models
    import worklists.promises  # noqa: F401 - subscribes to the ledger's payments_posted signal


def _register_blueprints(app: Flask) -> None:
    from clients.interest_views import bp as charges_bp
    from clients.ledger_views import bp as ledger_bp
    from clients.ledger_views import portal_bp as portal_ledger_bp
    from clients.payment_views import bp as payments_bp
    from clients.payment_views import portal_bp as portal_payments_bp
    from clients.payout_views import bp as payouts_bp
    from clients.views import bp as clients_bp
    from portal.views import bp as portal_bp
    from provider.account_settings import bp as account_bp
    from provider.auth import bp as auth_bp
    from provider.background import bp as background_bp
    from provider.background import portal_bp as portal_background_bp
    from provider.books.views import bp as books_bp
    from provider.books.views import portal_bp as portal_books_bp
    from provider.comms.views import bp as comms_bp
    from provider.comms.views import portal_bp as comms_portal_bp
    from provider.dunning.debtor_views import bp as debtor_pages_bp
    from provider.dunning.views import bp as dunning_bp
    from provider.dunning.views import portal_bp as dunning_portal_bp
    from provider.forecast.views import bp as forecast_bp
    from provider.forecast.views import portal_bp as forecast_portal_bp
    from provider.reporting.views import bp as reporting_bp
    from provider.reporting.views import portal_bp as portal_reports_bp
    from provider.two_factor import bp as two_factor_bp
    from provider.views import bp as provider_bp
    from sla.views import bp as sla_bp
    from sla.views import portal_bp as sla_portal_bp
    from worklists.views import bp as worklists_bp

    staff = (
        auth_bp,
        two_factor_bp,
        account_bp,
        provider_bp,
        clients_bp,
        ledger_bp,
        payments_bp,
        worklists_bp,
        sla_bp,
        reporting_bp,
        background_bp,
        comms_bp,
        dunning_bp,
        debtor_pages_bp,
        books_bp,
        payouts_bp,
        charges_bp,
        forecast_bp,
    )
    portal = (
        portal_bp,
        portal_ledger_bp,
        portal_payments_bp,
        sla_portal_bp,
        portal_reports_bp,
        portal_background_bp,
        comms_portal_bp,
        dunning_portal_bp,
        portal_books_bp,
        forecast_portal_bp,
    )
    for bp in staff + portal:
        app.register_blueprint(bp)
    from provider.api import register as register_api

    register_api(app)


def _scope_for(user: Any) -> TenantScope:
    from provider.access import scope_for_user

    return scope_for_user(user)


def _register_request_hooks(app: Flask) -> None:
    @app.before_request
    def establish_tenant_scope() -> None:
        """Resolve, once per request, whose rows this request may touch and who is acting."""
        g.outer_scope, g.outer_actor = current_scope(), current_actor()
        set_scope(TenantScope.nothing())
        set_actor(Actor.system("anonymous"))
        if request.endpoint == "static":
            return
        if current_user.is_authenticated:
            set_actor(Actor(current_user.id, current_user.email))
            g.scope = _scope_for(current_user)
            set_scope(g.scope, db.session)

    @app.before_request
    def second_factor_enrolment() -> Any:
        from provider.two_factor import enforce_enrolment

        return enforce_enrolment()

    @app.teardown_request
    def run_eager_jobs(exc: BaseException | None) -> None:
        if exc is None and app.config.get("JOBS_MODE") == "eager":
            jobs.drain()
        set_scope(g.get("outer_scope", TenantScope.nothing()))
        set_actor(g.get("outer_actor", Actor.system("anonymous")))

    @app.before_request
    def start_in_process_dispatcher() -> None:
        """Without Redis, the web process runs the jobs: its dispatcher and reaper start with the first request
        (work a previous process left waiting or running is picked up then)."""
        if app.config.get("JOBS_MODE") == "thread" and not app.extensions.get("ar_job_dispatcher"):
            from provider.core import outbox

            if app.config.get("AR_ENV") == "demo":  # mail goes to a loopback server the demo starts (comms.demo)
                from provider.comms.demo import start_demo_mail

                start_demo_mail(app)
            app.extensions["ar_job_dispatcher"] = outbox.start_maintenance_thread(app)

    @app.after_request
    def say_when_jobs_wait(response: Any) -> Any:
        """A change was saved but the job service could not take its background work: say so, plainly."""
        if g.get("jobs_waiting_for_service") and not request.path.startswith("/api/"):
            from flask import flash

            flash(
                "Saved. The job service is unavailable right now, so the background work for this will start "
                "as soon as it is back; nothing is lost.",
                "info",
            )
        elif g.get("jobs_waiting_for_service"):
            response.headers["X-Background-Work"] = "queued; starts when the job service is back"
        return response

    @app.after_request
    def security_headers(response: Any) -> Any:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
        )
        if request.endpoint != "static":
            response.headers.setdefault("Cache-Control", "no-store")
        max_age = app.config.get("HSTS_MAX_AGE") or 0
        if max_age:  # production only (provider.config): browsers then never speak plain http to us
            response.headers.setdefault("Strict-Transport-Security", f"max-age={int(max_age)}; includeSubDomains")
        return response

    @app.before_request
    def refuse_long_urls() -> Any:
        """A URL longer than MAX_URL_CHARS is a 414 from the app (problem+json under /api/), before the WSGI
        server's own cut-off (gunicorn answers plain text past 4,094 bytes of request line)."""
        if len(request.full_path) > MAX_URL_CHARS:
            from werkzeug.exceptions import RequestURITooLarge

            raise RequestURITooLarge()
        return None


MAX_URL_CHARS = 4000


def _register_error_pages(app: Flask) -> None:
    """HTML pages for people; under /api/ every error is problem+json, whichever part of the stack raised it
    (routing's 404 for an id that does not parse, 405 with Allow, 413, 414, 429, 500)."""
    from werkzeug.exceptions import HTTPException

    from provider.api.problems import problem

    def page(code: int, title: str, message: str, exc: Any = None) -> Any:
        if request.path.startswith("/api/") or request.path == "/api":
            headers = {}
            allowed = getattr(exc, "valid_methods", None)
            if code == 405 and allowed:
                headers["Allow"] = ", ".join(sorted(allowed))
            detail = "There is nothing here, or this token has no access to it." if code == 404 else message
            return problem(code, detail, headers=headers)
        return render_template("error.html", code=code, title=title, message=message), code

    @app.errorhandler(HTTPException)
    def any_http_error(e: HTTPException) -> Any:
        """Codes without a page of their own (414, 400 from the framework ...): problem+json under /api/."""
        if request.path.startswith("/api/"):
            return page(e.code or 500, e.name, e.description or e.name, e)
        return e

    @app.errorhandler(405)
    def not_allowed(e: Exception) -> Any:
        response = page(405, "Method not allowed", "This address does not accept that kind of request.", e)
        return response

    @app.errorhandler(404)
    def not_found(_e: Exception) -> Any:
        return page(404, "Not found", "There is nothing here, or you do not have access to it.")

    @app.errorhandler(414)
    def too_long(_e: Exception) -> Any:
        return page(414, "Address too long", f"Addresses are limited to {MAX_URL_CHARS} characters.")

    @app.errorhandler(413)
    def too_large(_e: Exception) -> Any:
        limit = app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
        return page(413, "File too large", f"Uploads are limited to {limit} MB.")

    @app.errorhandler(429)
    def too_many(_e: Exception) -> Any:
        return page(429, "Too many attempts", "Too many failed attempts. Wait a minute, then try again.")

    @app.errorhandler(CSRFError)
    def csrf_error(e: CSRFError) -> Any:
        return page(400, "Form expired", f"The form could not be accepted ({e.description}). Reload and retry.")

    @app.errorhandler(500)
    def server_error(_e: Exception) -> Any:
        db.session.rollback()
        return page(500, "Something went wrong", "The error was logged. Nothing was saved.")


def _register_template_helpers(app: Flask) -> None:
    from clients.ledger_queries import BUCKETS, bucket_of
    from provider.comms.queries import debtor_timeline
    from provider.core.money import format_money
    from provider.core.permissions import Permission
    from provider.ui import nav_items, sort_link, url_with

    app.jinja_env.globals.update(
        debtor_messages=debtor_timeline,
        Permission=Permission,
        nav_items=nav_items,
        url_with=url_with,
        sort_link=sort_link,
        buckets=BUCKETS,
        bucket_of=bucket_of,
    )
    app.jinja_env.filters["money"] = lambda minor, currency: format_money(minor, currency)
    from provider.formatting import (
        format_clock,
        format_day,
        format_moment,
        format_month,
        format_month_column,
        format_month_short,
        plural,
    )

    # one convention (provider.formatting): dates in the reader's locale, times in the reader's zone, zone named
    app.jinja_env.filters["dt"] = format_moment
    app.jinja_env.filters["day"] = format_day
    app.jinja_env.filters["clock"] = format_clock
    app.jinja_env.filters["month"] = format_month
    app.jinja_env.filters["month_short"] = format_month_short
    app.jinja_env.filters["month_column"] = format_month_column
    app.jinja_env.filters["plural"] = plural
    from sla import labels as sla_labels

    app.jinja_env.filters["sla_term"] = sla_labels.term
    app.jinja_env.filters["dispute_reason"] = sla_labels.reason
    app.jinja_env.filters["dispute_status"] = sla_labels.status
    app.jinja_env.filters["resolution"] = sla_labels.resolution
    app.jinja_env.globals["sla_target"] = sla_labels.target
