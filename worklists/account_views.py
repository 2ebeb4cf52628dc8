"""The one account view of the back office: a debtor's whole account (header, contacts, balances and aging,
open invoices, promises and plans, disputes, the timeline of everything in date order) and its actions.

Collectors and managers alike reach it from the worklist, the debtor page, the ledger and the disputes.
The client user's copy is the portal's debtor page (filtered: `worklists.account.load(for_client=True)`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from babel import Locale
from flask import Flask, render_template, request

from clients.models import Client, Debtor
from provider.core.money import exponent
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_for_client, get_visible_or_404
from provider.extensions import db
from worklists import account, labels
from worklists.views import bp

_ENGLISH = Locale("en")


def language_name(code: str | None) -> str:
    """The language's English name ("de" -> "German"); the code itself when babel does not know it."""
    return _ENGLISH.languages.get(code or "", code or "an unknown language")


def major_units(minor: int, currency: str) -> str:
    """An amount as a form field shows it: major units with the currency's decimals, no symbol (12.50)."""
    places = exponent(currency)
    return f"{Decimal(minor).scaleb(-places):.{places}f}"


@bp.record_once
def _template_helpers(state: Any) -> None:
    app: Flask = state.app
    app.jinja_env.filters.update(
        outcome_label=labels.outcome_label, action_label=labels.action_label, state_label=labels.state_label
    )
    app.jinja_env.filters["major_units"] = major_units
    app.jinja_env.globals.update(language_name=language_name, timeline_sources=account.SOURCES)


@bp.get("/clients/<int:client_id>/debtors/<int:debtor_id>/account")
@require(Permission.DEBTORS_READ)
def account_view(client_id: int, debtor_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    debtor = get_for_client(db.session, Debtor, debtor_id, client.id)
    acct = account.load(client.id, debtor, show=request.args.get("show", ""))
    return render_template("worklists/account.html", client=client, debtor=debtor, acct=acct, **acct.context)
