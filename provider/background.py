"""Background work, as people follow it: the managers' page across clients, and Retry / Cancel for one item.

Who may act on an item: managers (and admins) on any; other staff on the work of a client they can see; a
client user on their own company's imports. Anything else is a 404, the same as an item that does not exist.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from clients.models import Client
from provider.core import jobs, outbox
from provider.core.clock import now_utc
from provider.core.outbox_models import ACTIVE, BackgroundJob, JobStatus
from provider.core.permissions import Permission, require
from provider.core.tenancy import get_visible_or_404
from provider.extensions import db
from provider.ui import paginate

bp = Blueprint("background", __name__, template_folder="templates")
portal_bp = Blueprint("portal_background", __name__, template_folder="templates")

STALLED_AFTER = timedelta(seconds=60)  # a running item whose heartbeat is older is shown as stalled
FILTERS = {
    "waiting": BackgroundJob.status.in_((JobStatus.PENDING.value, JobStatus.ENQUEUED.value)),
    "running": BackgroundJob.status == JobStatus.RUNNING.value,
    "failed": BackgroundJob.status == JobStatus.FAILED.value,
    "cancelled": BackgroundJob.status == JobStatus.CANCELLED.value,
    "done": BackgroundJob.status == JobStatus.SUCCEEDED.value,
}
PORTAL_JOBS = ("clients.imports.import_placements_job", "clients.payment_imports.import_payments_job")


def title_of(row: BackgroundJob) -> str:
    spec = jobs.REGISTRY.get(row.path)
    return spec.title if spec else "Background work"


def link_of(row: BackgroundJob) -> str | None:
    """The page of the thing the work belongs to (a batch, a report run), when it has one."""
    spec = jobs.REGISTRY.get(row.path)
    if spec is None or spec.link is None:
        return None
    try:
        target = spec.link(row)
        return url_for(target[0], **target[1]) if target else None
    except Exception:  # an item whose arguments no longer fit a page still lists, without a link
        return None


def is_stalled(row: BackgroundJob) -> bool:
    if row.status != JobStatus.RUNNING.value:
        return False
    if db.session.get_bind().dialect.name == "sqlite":  # no heartbeats there: is the worker's process alive?
        return not outbox.worker_alive(row.worker) and row.id not in jobs._running_here
    beat = row.heartbeat_at or row.started_at
    return beat is not None and now_utc() - beat > STALLED_AFTER


def waits_for_service(row: BackgroundJob) -> bool:
    """Waiting longer than a dispatcher pass takes: the job service (or every worker) is away."""
    return row.status == JobStatus.PENDING.value and now_utc() - row.run_after > timedelta(seconds=30)


def state_of(row: BackgroundJob | None) -> dict[str, Any] | None:
    """What the pages show about one item: a label, a sentence, progress and which ways out apply."""
    if row is None:
        return None
    label, note = row.status_label, ""
    if is_stalled(row):
        label = "Stalled"
        note = (
            "The worker running this stopped responding. It will be started again, or marked failed so you can "
            "retry it, within a minute."
        )
    elif waits_for_service(row):
        note = "The job service is not available right now. This will start as soon as it is back; nothing is lost."
    elif row.status == JobStatus.PENDING.value and row.run_after > now_utc():
        from provider.formatting import format_moment

        note = f"It will be tried again at {format_moment(row.run_after)}."
    elif row.status == JobStatus.RUNNING.value and row.cancel_requested:
        note = "Stopping: it will stop at its next step and save nothing."
    return {
        "row": row,
        "title": title_of(row),
        "label": label,
        "note": note,
        "reason": row.error,
        "progress": row.progress,
        "step": row.step,
        "active": row.status in ACTIVE,
        "can_retry": row.status in (JobStatus.FAILED.value, JobStatus.CANCELLED.value),
        "can_cancel": row.status in ACTIVE and not row.cancel_requested,
    }


# --- the managers' page -----------------------------------------------------------------------------------


@bp.get("/background-work")
@require(Permission.JOBS_MANAGE)
def index() -> Any:
    """Queued, running, failed and stuck work across clients, with the age of the oldest waiting item."""
    outbox.reap(db.session)  # a page that shows stuck work also clears it, even with no worker to do it
    show = request.args.get("show", "attention")
    stmt = select(BackgroundJob)
    if show in FILTERS:
        stmt = stmt.where(FILTERS[show])
    elif show != "all":
        show = "attention"
        stmt = stmt.where(BackgroundJob.status.in_((*ACTIVE, JobStatus.FAILED.value)))
    client_id = request.args.get("client", type=int)
    if client_id:
        stmt = stmt.where(BackgroundJob.client_id == get_visible_or_404(db.session, Client, client_id).id)
    page = paginate(stmt.order_by(BackgroundJob.id.desc()))
    counts: dict[str, int] = {
        status: count
        for status, count in db.session.execute(
            select(BackgroundJob.status, func.count()).group_by(BackgroundJob.status)
        ).all()
    }
    oldest = db.session.scalar(
        select(func.min(BackgroundJob.created_at)).where(
            BackgroundJob.status.in_((JobStatus.PENDING.value, JobStatus.ENQUEUED.value))
        )
    )
    running = db.session.scalars(
        select(BackgroundJob).where(BackgroundJob.status == JobStatus.RUNNING.value).limit(1000)
    ).all()
    stalled = sum(1 for row in running if is_stalled(row))
    clients = {c.id: c for c in db.session.scalars(select(Client).order_by(Client.name))}
    return render_template(
        "provider/background.html",
        page=page,
        states=[state_of(row) for row in page.items],
        links={row.id: link_of(row) for row in page.items},
        counts=counts,
        stalled=stalled or 0,
        oldest_age=(now_utc() - oldest) if oldest else None,
        show=show,
        client_id=client_id,
        clients=clients,
    )


def _row_for_staff(job_id: int) -> BackgroundJob:
    row = db.session.get(BackgroundJob, job_id)
    if row is None:
        abort(404)
    if current_user.can(Permission.JOBS_MANAGE):
        return row
    if row.client_id is None:
        abort(404)
    get_visible_or_404(db.session, Client, row.client_id)  # staff who cannot see the client: 404
    return row


def _row_for_portal(job_id: int) -> BackgroundJob:
    row = db.session.get(BackgroundJob, job_id)
    if row is None or row.client_id != current_user.client_id or row.path not in PORTAL_JOBS:
        abort(404)
    return row


def _back(row: BackgroundJob, fallback: str) -> Any:
    target = request.form.get("next", "")
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc:
        target = fallback
    return redirect(target)


def _act(row: BackgroundJob, action: str) -> None:
    try:
        outcome = outbox.retry(db.session, row) if action == "retry" else outbox.cancel(db.session, row)
    except outbox.NotPossible as exc:
        flash(str(exc), "error")
        return
    db.session.commit()
    messages = {
        "queued": f"{title_of(row)}: queued again.",
        "already waiting": f"{title_of(row)} is already waiting to run.",
        "cancelled": f"{title_of(row)}: cancelled.",
        "stopping": f"{title_of(row)}: asked to stop; it will stop at its next step and save nothing.",
        "already cancelled": f"{title_of(row)} was already cancelled.",
    }
    flash(messages.get(outcome, outcome), "success")


def _staff_act(job_id: int, action: str) -> Any:
    row = _row_for_staff(job_id)
    _act(row, action)
    return _back(row, url_for("background.index"))


def _portal_act(job_id: int, action: str) -> Any:
    row = _row_for_portal(job_id)
    _act(row, action)
    return _back(row, url_for("portal.imports"))


@bp.post("/background-work/<int:job_id>/retry")
@require(Permission.BACKOFFICE)
def retry(job_id: int) -> Any:
    return _staff_act(job_id, "retry")


@bp.post("/background-work/<int:job_id>/cancel")
@require(Permission.BACKOFFICE)
def cancel(job_id: int) -> Any:
    return _staff_act(job_id, "cancel")


@portal_bp.post("/portal/background-work/<int:job_id>/retry")
@require(Permission.PORTAL_PLACE)
def portal_retry(job_id: int) -> Any:
    return _portal_act(job_id, "retry")


@portal_bp.post("/portal/background-work/<int:job_id>/cancel")
@require(Permission.PORTAL_PLACE)
def portal_cancel(job_id: int) -> Any:
    return _portal_act(job_id, "cancel")


def job_state_for(key: str) -> dict[str, Any] | None:
    """The state of the newest run of a named piece of work (`import:3:17`), for the page of its object."""
    return state_of(outbox.latest_for(db.session, key))
