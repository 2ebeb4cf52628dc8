"""Contract terms of one client: the versions so far and a form for the next version."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from clients.models import Client
from provider.core.clock import today_utc
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_visible_or_404
from provider.extensions import db
from sla.blueprints import bp
from sla.models import ContractTerms, SlaCode, SlaUnit
from sla.pages import run
from sla.services import STANDARD_TARGETS, add_contract_terms


def _targets_from_form() -> dict[str, tuple[str, int]]:
    targets = {}
    for code in SlaCode:
        raw = request.form.get(f"target_{code.value}", "").strip()
        if not raw:
            continue
        if not raw.isdigit():
            raise ServiceError(f"the target of {code.value.replace('_', ' ')} must be a whole number", field="targets")
        targets[code.value] = (request.form.get(f"unit_{code.value}", ""), int(raw))
    if not targets:
        raise ServiceError("a contract needs at least one target", field="targets")
    return targets


def _versions(client: Client) -> list[ContractTerms]:
    return list(
        db.session.scalars(
            select(ContractTerms)
            .options(selectinload(ContractTerms.targets))
            .where(ContractTerms.client_id == client.id)
            .order_by(ContractTerms.effective_from.desc())
        )
    )


@bp.get("/slas/clients/<int:client_id>/terms")
@require(Permission.SLAS_READ)
def terms(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    versions = _versions(client)
    current = {t.code: (t.unit, t.target) for t in (versions[0].targets if versions else [])} or {
        str(c): (str(u), t) for c, (u, t) in STANDARD_TARGETS.items()
    }
    return render_template(
        "sla/terms.html", client=client, versions=versions, current=current, codes=list(SlaCode), units=list(SlaUnit)
    )


@bp.post("/slas/clients/<int:client_id>/terms")
@require(Permission.SLAS_MANAGE)
def add_terms(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)

    def act() -> None:
        try:
            starts = date.fromisoformat(request.form.get("effective_from", ""))
        except ValueError:
            raise ServiceError("give the first day of the new terms", field="effective_from") from None
        if starts < today_utc():
            raise ServiceError("contract terms cannot start in the past", field="effective_from")
        pct = request.form.get("at_risk_pct", "75")
        add_contract_terms(
            db.session,
            client,
            starts,
            _targets_from_form(),
            at_risk_pct=int(pct) if pct.isdigit() else 0,
            notes=request.form.get("notes", ""),
        )

    run(act, "New contract terms recorded.")
    return redirect(url_for("sla.terms", client_id=client.id))
