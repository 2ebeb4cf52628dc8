"""The blueprints of the SLA package: back office (`sla`) and the client portal's dispute pages (`sla_portal`)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("sla", __name__, template_folder="templates")
portal_bp = Blueprint("sla_portal", __name__, url_prefix="/portal", template_folder="templates")
