"""Dunning pages: the back office (`dunning`: policies, templates with live preview, runs, letters, effects)
and the client portal (`dunning_portal`: the versions to approve and the effect of each stage).

The debtor's own pages (no account) are in provider.dunning.debtor_views."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

import provider.dunning.jobs as dunning_jobs
from clients.models import Client, Debtor
from provider.core import jobs
from provider.core.clock import now_utc, today_utc
from provider.core.errors import ServiceError
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_visible_or_404
from provider.dunning import queries, services, templating
from provider.dunning.decide import REASONS
from provider.dunning.links import make_token, public_url
from provider.dunning.models import (
    CHANNEL_LABELS,
    TONE_LABELS,
    DunningDecision,
    DunningPolicy,
    DunningRun,
    DunningStage,
    DunningTemplate,
    LetterBatch,
)
from provider.dunning.run import client_today
from provider.dunning.selection import overdue_lines
from provider.extensions import db
from provider.ui import apply_sort, paginate
from sla.pages import run as run_service

bp = Blueprint("dunning", __name__, template_folder="templates")
portal_bp = Blueprint("dunning_portal", __name__, url_prefix="/portal", template_folder="templates")


def _period() -> str:
    raw = request.args.get("period", "")
    try:
        date.fromisoformat(f"{raw}-01")
        return raw
    except ValueError:
        return today_utc().strftime("%Y-%m")


@bp.get("/dunning")
@require(Permission.CLIENTS_READ)
def index() -> Any:
    clients = list(db.session.scalars(select(Client).order_by(Client.name)))
    period = _period()
    rows = [
        (c, queries.policies_of(db.session, c.id)[:1], queries.stage_effects(db.session, c.id, period)) for c in clients
    ]
    return render_template("dunning/index.html", rows=rows, period=period)


@bp.get("/dunning/clients/<int:client_id>")
@require(Permission.CLIENTS_READ)
def client_page(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    period = _period()
    return render_template(
        "dunning/client.html",
        client=client,
        policies=queries.policies_of(db.session, client.id),
        runs=queries.runs_of(db.session, client.id),
        batches=queries.batches_of(db.session, client.id),
        effects=queries.stage_effects(db.session, client.id, period),
        period=period,
        reasons=REASONS,
        channels=CHANNEL_LABELS,
        standard=services.STANDARD_STAGES,
    )


@bp.get("/dunning/clients/<int:client_id>/runs")
@require(Permission.CLIENTS_READ)
def runs(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    return redirect(url_for("dunning.client_page", client_id=client.id) + "#runs")


def _stages_from_form() -> list[services.StageSpec]:
    specs = []
    for n in range(1, 7):
        name = request.form.get(f"name_{n}", "").strip()
        days = request.form.get(f"days_{n}", "").strip()
        if not name and not days:
            continue
        if not days.isdigit():
            raise ServiceError(f"step {n}: days past due must be a whole number", field="stages")
        specs.append(services.StageSpec(name, int(days), request.form.get(f"channel_{n}", "")))
    return specs


DECISION_SORTS = {"debtor": Debtor.name, "step": DunningDecision.stage_days, "outcome": DunningDecision.outcome,
                  "amount": DunningDecision.amount_minor}  # fmt: skip


@bp.get("/dunning/runs/<int:dunning_run_id>")
@require(Permission.CLIENTS_READ)
def run_page(dunning_run_id: int) -> Any:
    """One day's decisions: who was sent which step, who was skipped and why (paged, sortable, filterable)."""
    run = get_visible_or_404(db.session, DunningRun, dunning_run_id)
    client = db.session.get_one(Client, run.client_id)
    stmt = (
        select(DunningDecision, Debtor.name, Debtor.external_ref, DunningStage.name)
        .join(Debtor, (Debtor.client_id == DunningDecision.client_id) & (Debtor.id == DunningDecision.debtor_id))
        .join(
            DunningStage,
            (DunningStage.client_id == DunningDecision.client_id) & (DunningStage.id == DunningDecision.stage_id),
        )
        .where(DunningDecision.client_id == run.client_id, DunningDecision.run_id == run.id)
    )
    outcome = request.args.get("outcome", "")
    if outcome in ("sent", "skipped"):
        stmt = stmt.where(DunningDecision.outcome == outcome)
    page = paginate(apply_sort(stmt, DECISION_SORTS, "debtor", DunningDecision.id))
    return render_template(
        "dunning/run.html", run=run, client=client, page=page, outcome=outcome, reasons=REASONS, channels=CHANNEL_LABELS
    )


@bp.post("/dunning/clients/<int:client_id>/policies")
@require(Permission.CLIENTS_MANAGE)
def propose(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)

    def act() -> None:
        try:
            starts = date.fromisoformat(request.form.get("effective_from", ""))
        except ValueError:
            raise ServiceError("give the first day of the new version", field="effective_from") from None
        threshold = request.form.get("min_amount", "0").strip() or "0"
        gap = request.form.get("min_gap_days", "7").strip() or "7"
        if not threshold.isdigit() or not gap.isdigit():
            raise ServiceError("the threshold and the days between reminders are whole numbers", field="min_amount")
        latest = queries.policies_of(db.session, client.id)
        services.propose_policy(
            db.session, client, effective_from=starts, stages=_stages_from_form(),
            min_amount_minor=int(threshold) * 100, min_gap_days=int(gap), notes=request.form.get("notes", ""),
            copy_from=latest[0] if latest else None,
        )  # fmt: skip

    run_service(act, "New version proposed; the client approves it in the portal.")
    return redirect(url_for("dunning.client_page", client_id=client.id))


@bp.post("/dunning/clients/<int:client_id>/run")
@require(Permission.CLIENTS_MANAGE)
def run_now(client_id: int) -> Any:
    client = get_visible_or_404(db.session, Client, client_id)
    day = client_today(client, now_utc())
    jobs.enqueue(
        dunning_jobs.dunning_run_job, client.id, day.isoformat(), job_id=dunning_jobs.run_job_id(client.id, day)
    )
    db.session.commit()
    flash(f"Today's run of {client.name} is queued; it sends nothing already sent.", "success")
    return redirect(url_for("dunning.client_page", client_id=client.id))


def _policy_or_404(policy_id: int) -> DunningPolicy:
    return get_visible_or_404(db.session, DunningPolicy, policy_id)


@bp.get("/dunning/policies/<int:policy_id>")
@require(Permission.CLIENTS_READ)
def policy(policy_id: int) -> Any:
    pol = _policy_or_404(policy_id)
    client = db.session.get_one(Client, pol.client_id)
    debtors = list(
        db.session.scalars(select(Debtor).where(Debtor.client_id == client.id).order_by(Debtor.name).limit(200))
    )
    preview = None
    stage_id, debtor_id = request.args.get("stage_id", type=int), request.args.get("debtor_id", type=int)
    template_id = request.args.get("template_id", type=int)
    if stage_id and debtor_id:
        preview = _preview(client, pol, stage_id, debtor_id, template_id)
    return render_template(
        "dunning/policy.html", policy=pol, client=client, debtors=debtors, preview=preview,
        variables=templating.VARIABLES, fields=templating.INVOICE_FIELDS, tones=TONE_LABELS,
        editable=pol.status == "proposed" and current_user.can(Permission.CLIENTS_MANAGE),
    )  # fmt: skip


def _preview(
    client: Client, pol: DunningPolicy, stage_id: int, debtor_id: int, template_id: int | None
) -> dict[str, Any]:
    stage = get_visible_or_404(db.session, DunningStage, stage_id)
    debtor = get_visible_or_404(db.session, Debtor, debtor_id)
    if stage.policy_id != pol.id or debtor.client_id != client.id:
        abort(404)
    template = db.session.get(DunningTemplate, template_id) if template_id else None
    if template is None or template.stage_id != stage.id:
        template = next(iter(stage.templates), None)
    subject = request.args.get("subject", template.subject if template else "")
    body = request.args.get("body", template.body if template else "")
    return render_preview(client, stage, debtor, subject, body)


def render_preview(client: Client, stage: DunningStage, debtor: Debtor, subject: str, body: str) -> dict[str, Any]:
    problems = templating.validate(subject, body)
    today = client_today(client, now_utc())
    lines = overdue_lines(db.session, client.id, today, debtor.id, debtor.id, {debtor.id})[debtor.id]
    locale = templating.locale_for(debtor.language, client.country)
    context = templating.build_context(
        debtor_name=debtor.name, reference=debtor.external_ref, client_name=client.name,
        agency_name=str(__import__("provider.dunning.outbound", fromlist=["x"]).agency_name()),
        stage_name=stage.name, invoices=lines, today=today, locale=locale,
        link=public_url(make_token(client.id, debtor.id)),
    )  # fmt: skip
    out: dict[str, Any] = {
        "stage": stage,
        "debtor": debtor,
        "problems": problems,
        "locale": locale,
        "lines": len(lines),
    }
    if not problems:
        out["subject"], out["text"], _html = templating.render(subject, body, context)
    return out


@bp.post("/dunning/stages/<int:stage_id>/templates")
@require(Permission.CLIENTS_MANAGE)
def save_template(stage_id: int) -> Any:
    stage = get_visible_or_404(db.session, DunningStage, stage_id)
    pol = db.session.get_one(DunningPolicy, stage.policy_id)
    form = request.form

    def act() -> None:
        services.save_template(
            db.session, stage, pol, language=form.get("language", ""), segment=form.get("segment", ""),
            tone=form.get("tone", ""), subject=form.get("subject", ""), body=form.get("body", ""),
        )  # fmt: skip

    run_service(act, f"Template of “{stage.name}” saved.")
    return redirect(url_for("dunning.policy", policy_id=pol.id) + f"#stage-{stage.id}")


@bp.post("/dunning/templates/<int:template_id>/delete")
@require(Permission.CLIENTS_MANAGE)
def delete_template(template_id: int) -> Any:
    template = get_visible_or_404(db.session, DunningTemplate, template_id)
    stage = db.session.get_one(DunningStage, template.stage_id)
    pol = db.session.get_one(DunningPolicy, stage.policy_id)
    run_service(lambda: services.delete_template(db.session, template, pol), "Template removed.")
    return redirect(url_for("dunning.policy", policy_id=pol.id))


def _batch_or_404(batch_id: int) -> LetterBatch:
    return get_visible_or_404(db.session, LetterBatch, batch_id)


@bp.get("/dunning/batches/<int:letter_batch_id>/letters.pdf")
@require(Permission.CLIENTS_READ)
def batch_pdf(letter_batch_id: int) -> Any:
    batch = _batch_or_404(letter_batch_id)
    name = f"letters-{batch.run_date}.pdf"
    return Response(
        batch.pdf, mimetype="application/pdf", headers={"Content-Disposition": f"attachment; filename={name}"}
    )


@bp.get("/dunning/batches/<int:letter_batch_id>/manifest.csv")
@require(Permission.CLIENTS_READ)
def batch_manifest(letter_batch_id: int) -> Any:
    batch = _batch_or_404(letter_batch_id)
    name = f"letters-{batch.run_date}.csv"
    return Response(
        batch.manifest, mimetype="text/csv", headers={"Content-Disposition": f"attachment; filename={name}"}
    )


@bp.post("/dunning/batches/<int:letter_batch_id>/dispatch")
@require(Permission.CLIENTS_MANAGE)
def batch_dispatch(letter_batch_id: int) -> Any:
    batch = _batch_or_404(letter_batch_id)
    run_service(
        lambda: services.mark_batch_dispatched(db.session, batch), "Letters marked as handed to the mail house."
    )
    return redirect(url_for("dunning.client_page", client_id=batch.client_id) + "#letters")


# --- portal ------------------------------------------------------------------------------------------


def _my_client() -> Client:
    client = db.session.get(Client, current_user.client_id)
    if client is None:
        abort(404)
    return client


@portal_bp.get("/dunning")
@require(Permission.PORTAL)
def portal_index() -> Any:
    client = _my_client()
    period = _period()
    return render_template(
        "dunning/portal.html", client=client, policies=queries.policies_of(db.session, client.id),
        effects=queries.stage_effects(db.session, client.id, period), period=period,
        can_decide=current_user.can(Permission.PORTAL_USERS_MANAGE),
    )  # fmt: skip


def _my_policy(policy_id: int) -> DunningPolicy:
    client = _my_client()
    pol = get_visible_or_404(db.session, DunningPolicy, policy_id)
    if pol.client_id != client.id:
        abort(404)
    return pol


@portal_bp.post("/dunning/policies/<int:policy_id>/approve")
@require(Permission.PORTAL_USERS_MANAGE)
def portal_approve(policy_id: int) -> Any:
    pol = _my_policy(policy_id)
    run_service(lambda: services.approve_policy(db.session, pol, current_user, request.form.get("note", "")),
                f"Version {pol.version} approved; it runs from {pol.effective_from}.")  # fmt: skip
    return redirect(url_for("dunning_portal.portal_index"))


@portal_bp.post("/dunning/policies/<int:policy_id>/reject")
@require(Permission.PORTAL_USERS_MANAGE)
def portal_reject(policy_id: int) -> Any:
    pol = _my_policy(policy_id)
    run_service(lambda: services.reject_policy(db.session, pol, current_user, request.form.get("note", "")),
                f"Version {pol.version} rejected; the agency is told why.")  # fmt: skip
    return redirect(url_for("dunning_portal.portal_index"))
