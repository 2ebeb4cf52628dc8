"""Pages of late-payment charges: a client's late-payment settings per contract terms version, and the agency's
reference rates (the central banks' rates the statutory interest is built on). Thin: load through the tenant,
check a permission, call `clients.interest`, render. Another client's object is a 404."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from clients import interest
from clients.interest_models import LatePaymentTerms, ReferenceRate
from clients.interest_rules import (
    BASIS_LABELS,
    COMPENSATION_LABELS,
    DAY_COUNT_LABELS,
    SERIES_LABELS,
    Compensation,
    DayCount,
    InterestBasis,
    MissingRate,
    RateSeries,
)
from clients.models import Client
from provider.core.clock import today_utc
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.core.tenancy import current_scope, get_visible_or_404
from provider.extensions import db
from sla.models import ContractTerms

bp = Blueprint("charges", __name__, template_folder="templates")

FIELDS = ("terms_id", "basis", "contract_rate", "day_count", "compensation", "fixed_currency", "fixed_minor")
STATUTORY = {InterestBasis.STATUTORY_EU: RateSeries.ECB_MRO, InterestBasis.STATUTORY_UK: RateSeries.BOE_BASE}


def _percent(bp: int) -> str:
    return f"{bp / 100:.2f} %"


def _describe(row: LatePaymentTerms) -> dict[str, str]:
    basis = InterestBasis(row.basis)
    rate = _percent(row.contract_rate_bp) + " a year" if basis == InterestBasis.CONTRACT else ""
    fixed = ""
    if row.compensation == Compensation.FIXED.value:
        from provider.core.money import format_money

        fixed = format_money(row.fixed_minor, row.fixed_currency)
    return {
        "basis": BASIS_LABELS[basis],
        "rate": rate,
        "day_count": DAY_COUNT_LABELS[DayCount(row.day_count)] if basis == InterestBasis.CONTRACT else "",
        "compensation": COMPENSATION_LABELS[Compensation(row.compensation)] + (f": {fixed}" if fixed else ""),
    }


def _statutory_today() -> list[tuple[str, str, str]]:
    """(basis, the reference rate it uses, the statutory rate) for a debt whose interest starts today."""
    from clients.interest_rules import STATUTORY_MARGIN_BP, half_year_start, uk_reference_day

    rates = interest.load_rates(db.session)
    today = today_utc()
    days = {InterestBasis.STATUTORY_EU: half_year_start(today), InterestBasis.STATUTORY_UK: uk_reference_day(today)}
    out = []
    for basis, series in STATUTORY.items():
        day = days[basis]
        try:
            bp = rates.on(series, day)
            reference = f"{_percent(bp)} (on {day.isoformat()})"
            out.append((BASIS_LABELS[basis], reference, _percent(bp + STATUTORY_MARGIN_BP)))
        except MissingRate:
            out.append((BASIS_LABELS[basis], f"not recorded for {day.isoformat()}", "not known"))
    return out


def _page(client: Client, form: dict[str, str], errors: dict[str, list[str]], status: int = 200) -> Any:
    versions = list(
        db.session.scalars(
            sa.select(ContractTerms)
            .where(ContractTerms.client_id == client.id)
            .order_by(ContractTerms.effective_from.desc())
        )
    )
    settings = {
        row.terms_id: row
        for row in db.session.scalars(sa.select(LatePaymentTerms).where(LatePaymentTerms.client_id == client.id))
    }
    today = today_utc()
    in_force = next((v for v in versions if v.effective_from <= today), None)
    # settings can be recorded on the version in force and on later ones, until they are in force themselves
    editable = [
        v
        for v in versions
        if (v.effective_from > today or v is in_force)
        and not (v.id in settings and settings[v.id].effective_from <= today)
    ]
    return (
        render_template(
            "charges/late_payment.html",
            client=client,
            versions=versions,
            settings={k: (row, _describe(row)) for k, row in settings.items()},
            in_force=in_force,
            editable=editable,
            terms_options=[
                (v.id, f"From {v.effective_from.isoformat()}" + (" (in force)" if v is in_force else ""))
                for v in editable
            ],
            statutory=_statutory_today(),
            form=form,
            errors=errors,
            edit=current_user.can(Permission.SLAS_MANAGE),
            bases=[(b.value, BASIS_LABELS[b]) for b in InterestBasis],
            compensations=[(c.value, COMPENSATION_LABELS[c]) for c in Compensation],
            day_counts=[(d.value, DAY_COUNT_LABELS[d]) for d in DayCount],
        ),
        status,
    )


@bp.get("/clients/<int:client_id>/late-payment")
@require(Permission.CLIENTS_READ)
def late_payment(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    return _page(client, {"basis": InterestBasis.NONE.value, "compensation": Compensation.NONE.value}, {})


@bp.post("/clients/<int:client_id>/late-payment")
@require(Permission.SLAS_MANAGE)
def save_late_payment(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    form = {k: request.form.get(k, "").strip() for k in FIELDS}
    terms_id = form["terms_id"]
    terms = (
        db.session.scalar(
            sa.select(ContractTerms).where(ContractTerms.client_id == client.id, ContractTerms.id == int(terms_id))
        )
        if terms_id.isdigit()
        else None
    )
    if terms is None:
        return _page(client, form, {"terms_id": ["choose the contract terms version these settings belong to"]}, 422)
    try:
        interest.set_late_payment_terms(db.session, client, terms, form)
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        return _page(client, form, {exc.field or "_schema": [str(exc)]}, 422)
    flash("Late-payment charges saved.", "success")
    return redirect(url_for("charges.late_payment", client_id=client.id))


# --- reference rates (agency-wide) ---------------------------------------------------------------------------


def _agency_only() -> None:
    if current_scope().client_ids is not None or current_scope().client_id is not None:
        abort(404)  # the central banks' rates are the agency's settings, not a client's


def _rates_page(form: dict[str, str], errors: dict[str, list[str]], status: int = 200) -> Any:
    rows = list(
        db.session.scalars(
            sa.select(ReferenceRate).order_by(ReferenceRate.series, ReferenceRate.effective_from.desc()).limit(400)
        )
    )
    by_series = {s.value: [r for r in rows if r.series == s.value] for s in RateSeries}
    return (
        render_template(
            "charges/reference_rates.html",
            series=[(s.value, SERIES_LABELS[s]) for s in RateSeries],
            by_series=by_series,
            percent=_percent,
            form=form,
            errors=errors,
            edit=current_user.can(Permission.BOOKS_MANAGE),
            backdate=interest.RATE_BACKDATE_DAYS,
        ),
        status,
    )


@bp.get("/reference-rates")
@require(Permission.BOOKS_READ)
def reference_rates() -> Any:
    _agency_only()
    return _rates_page({"series": RateSeries.ECB_MRO.value, "effective_from": today_utc().isoformat()}, {})


@bp.post("/reference-rates")
@require(Permission.BOOKS_MANAGE)
def add_reference_rate() -> Any:
    _agency_only()
    form = {k: request.form.get(k, "").strip() for k in ("series", "effective_from", "rate", "note")}
    try:
        row = interest.add_reference_rate(db.session, form)
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        return _rates_page(form, {exc.field or "_schema": [str(exc)]}, 422)
    flash(
        f"{SERIES_LABELS[RateSeries(row.series)]} of {_percent(row.rate_bp)} from {row.effective_from:%d %b %Y} saved.",
        "success",
    )
    return redirect(url_for("charges.reference_rates"))
