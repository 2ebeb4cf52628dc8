"""`flask` commands: demo data, workers, user bootstrap, the journal's monthly totals."""

from __future__ import annotations

import os

import click
from flask import Flask, current_app

from provider.core import jobs, outbox
from provider.extensions import db


def register_cli(app: Flask) -> None:
    app.cli.add_command(demo_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(cron_command)
    app.cli.add_command(create_admin_command)
    app.cli.add_command(month_totals_group)
    app.cli.add_command(jobs_group)
    app.cli.add_command(trust_group)

    from provider.comms.cli import mail_inbound_command
    from provider.forecast.cli import forecast_group

    app.cli.add_command(forecast_group)

    app.cli.add_command(mail_inbound_command)

    from flask_migrate.cli import db as migrate_group

    migrate_group.add_command(distribute_command)


@click.command("distribute")
@click.option("--dry-run", is_flag=True, help="only say what would be copied and what sharded")
def distribute_command(dry_run: bool) -> None:
    """On a Citus database: copy the agency's tables to every node and shard the client-owned ones by client
    (idempotent; run after `flask db upgrade`). Elsewhere it changes nothing."""
    import sqlalchemy as sa

    from provider.core import distribution

    engine = sa.create_engine(current_app.config["DATABASE_OWNER_URL"], poolclass=sa.NullPool)
    try:
        with engine.begin() as conn:
            if conn.dialect.name != "postgresql" or not distribution.has_citus(conn):
                click.echo("This database has no Citus extension: nothing to distribute.")
                return
            if dry_run:
                found = distribution.plan(conn)
                for table in found.reference:
                    click.echo(f"copy to every node: {table}{' (done)' if table in found.done else ''}")
                for table in found.distributed:
                    click.echo(f"shard by client: {table}{' (done)' if table in found.done else ''}")
            else:
                found = distribution.distribute(conn, say=click.echo)
    finally:
        engine.dispose()
    if found.problems:
        raise click.ClickException("the schema cannot be distributed yet:\n  " + "\n  ".join(found.problems))
    if not dry_run:
        click.echo(
            f"Distributed: {len(found.distributed)} tables sharded by client, {len(found.reference)} on every node."
        )


@click.command("demo")
@click.option(
    "--scale",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="Multiply the number of debtors (1 = ~3,000).",
)
@click.option("--seed", type=int, default=20261123, show_default=True)
def demo_command(scale: int, seed: int) -> None:
    """Create (or complete) the demo agency. Idempotent and deterministic."""
    from provider.demo import DEMO_PASSWORD, seed_demo

    # Seeding posts thousands of payments, each asking for its client's worklist rescore (one waiting row per
    # client in the job outbox); they are not run during the seeding, which builds the worklists itself at the
    # end, but wait in the outbox and run once the web process starts (idempotent, a second or so each).
    mode = current_app.config.get("JOBS_MODE")
    current_app.config["JOBS_MODE"] = "eager"
    try:
        summary = seed_demo(scale=scale, seed=seed)
    finally:
        current_app.config["JOBS_MODE"] = mode
        db.session.info.pop("ready_jobs", None)
    click.echo(
        f"Demo ready: {summary['clients']} clients, {summary['debtors']} debtors, {summary['users']} users "
        f"({summary['created_debtors']} debtors and {summary['created_invoices']} invoices created now)."
    )
    click.echo(f"Logins (password for all: {DEMO_PASSWORD}):")
    for email, role in summary["logins"]:
        click.echo(f"  {role:<14} {email}")


@click.command("worker")
@click.option("--queue", "-q", "queues", multiple=True, help="Queue names, highest priority first (default: all).")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def worker_command(queues: tuple[str, ...], burst: bool) -> None:
    """Run an RQ worker with the job dispatcher and reaper (it waits out Redis and database outages)."""
    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException("REDIS_URL is not set: without Redis, jobs run inside the web process.")
    unknown = set(queues) - set(jobs.QUEUES)
    if unknown:
        raise click.ClickException(
            f"unknown queue(s) {', '.join(sorted(unknown))}; queues are {', '.join(jobs.QUEUES)}"
        )
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    engine = db.engine
    # RQ forks a work-horse per job: the child must not share the parent's pooled connections
    os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    outbox.run_worker(app, list(queues) or None, burst=burst)


@click.command("cron")
def cron_command() -> None:
    """Run the platform's clock: periodic jobs, the job dispatcher and the reaper (one or more per deployment;
    it never exits on a Redis or database outage)."""
    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException("REDIS_URL is not set: periodic jobs need Redis.")
    outbox.run_cron(current_app._get_current_object())  # type: ignore[attr-defined]


@click.command("create-admin")
@click.option("--email", required=True)
@click.option("--name", default="Administrator", show_default=True)
@click.password_option()
def create_admin_command(email: str, name: str, password: str) -> None:
    """Create the first administrator of a new installation."""
    from provider import services
    from provider.core.audit import Actor, acting_as
    from provider.core.errors import ServiceError
    from provider.extensions import db

    with acting_as(Actor.system("cli")):
        try:
            user = services.create_user(
                db.session, {"email": email, "name": name, "role": "admin", "password": password}
            )
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from None
        db.session.commit()
    click.echo(f"Administrator {user.email} created.")


@click.group("month-totals")
def month_totals_group() -> None:
    """The journal's monthly totals the KPIs read (kept by a database trigger; see clients/month_totals.py)."""


def _client_ids(client_id: int | None) -> list[int]:
    from sqlalchemy import select

    from clients.models import Client

    ids = list(db.session.scalars(select(Client.id).order_by(Client.id)))
    if client_id is None:
        return ids
    if client_id not in ids:
        raise click.ClickException(f"there is no client {client_id}")
    return [client_id]


@month_totals_group.command("check")
@click.option("--client", "client_id", type=int, help="One client (default: all).")
def month_totals_check(client_id: int | None) -> None:
    """Compare the totals with the journal summed again; exit 1 and list the differences if any."""
    from clients import month_totals
    from provider.core.tenancy import TenantScope, scoped

    with scoped(TenantScope.agency(), db.session):
        ids = _client_ids(client_id)
        problems = month_totals.mismatches(db.session, ids)
    if problems:
        for line in problems:
            click.echo(line)
        raise click.ClickException(f"{len(problems)} total(s) differ from the journal; `rebuild` recomputes them")
    click.echo(f"The monthly totals of {len(ids)} client(s) equal their journals.")


@month_totals_group.command("rebuild")
@click.option("--client", "client_id", type=int, help="One client (default: all).")
def month_totals_rebuild(client_id: int | None) -> None:
    """Recompute the totals from the journal (after a load that bypassed the trigger, or to repair)."""
    from clients import month_totals
    from provider.core.tenancy import TenantScope, scoped

    with scoped(TenantScope.agency(), db.session):
        ids = _client_ids(client_id)
        month_totals.rebuild(db.session, ids)
        db.session.commit()
    click.echo(f"Rebuilt the monthly totals of {len(ids)} client(s) from their journals.")


@month_totals_group.command("compact")
def month_totals_compact() -> None:
    """Fold every client's totals into one row per key (the nightly snapshot job does this too)."""
    from clients import month_totals
    from provider.core.tenancy import TenantScope, scoped

    with scoped(TenantScope.agency(), db.session):
        ids = _client_ids(None)
        for client_id in ids:
            month_totals.compact(db.session, client_id)
        db.session.commit()
    click.echo(f"Compacted the monthly totals of {len(ids)} client(s).")


@click.group("jobs")
def jobs_group() -> None:
    """Background work: list what waits, runs or failed; retry or cancel it; hand waiting work over now."""


@jobs_group.command("list")
@click.option("--status", type=click.Choice(["active", "failed", "all"]), default="active")
@click.option("--limit", type=int, default=50)
def jobs_list(status: str, limit: int) -> None:
    """Background work, newest first: waiting and running (default), failed, or all."""
    from sqlalchemy import select

    from provider.core.outbox_models import ACTIVE, BackgroundJob, JobStatus

    stmt = select(BackgroundJob).order_by(BackgroundJob.id.desc()).limit(limit)
    if status == "active":
        stmt = stmt.where(BackgroundJob.status.in_(ACTIVE))
    elif status == "failed":
        stmt = stmt.where(BackgroundJob.status == JobStatus.FAILED.value)
    for row in db.session.scalars(stmt):
        spec = jobs.REGISTRY.get(row.path)
        title = spec.title if spec else row.path
        click.echo(f"#{row.id:<7} {row.status_label:<16} {title:<28} {row.key or '':<32} {row.error[:80]}")


def _act_on_job(job_id: int, action: str) -> None:
    from provider.core.outbox_models import BackgroundJob

    row = db.session.get(BackgroundJob, job_id)
    if row is None:
        raise click.ClickException(f"there is no background work #{job_id}")
    try:
        outcome = outbox.retry(db.session(), row) if action == "retry" else outbox.cancel(db.session(), row)
    except outbox.NotPossible as exc:
        raise click.ClickException(str(exc)) from None
    db.session.commit()
    click.echo(f"#{job_id}: {outcome}")


@jobs_group.command("retry")
@click.argument("job_id", type=int)
def jobs_retry(job_id: int) -> None:
    """Run failed or cancelled work again."""
    _act_on_job(job_id, "retry")


@jobs_group.command("cancel")
@click.argument("job_id", type=int)
def jobs_cancel(job_id: int) -> None:
    """Cancel waiting work, or ask running work to stop."""
    _act_on_job(job_id, "cancel")


@jobs_group.command("dispatch")
def jobs_dispatch() -> None:
    """One pass of the reaper and the dispatcher (what workers and cron do every few seconds)."""
    result = outbox.maintain(current_app._get_current_object())  # type: ignore[attr-defined]
    click.echo(f"reaped {result['reaped']}, handed over {result['sent']}")


@click.group("trust")
def trust_group() -> None:
    """The agency's trust bank accounts and the three-way trust reconciliation (see clients/trust.py)."""


@trust_group.command("reconcile")
@click.option("--date", "day", required=True, help="The day to reconcile (YYYY-MM-DD), at the end of the day.")
@click.option("--currency", default=None, help="One currency (default: every currency with trust money).")
def trust_reconcile(day: str, currency: str | None) -> None:
    """Bank balance = trust ledger = the clients' trust balances, with the causes of any difference."""
    from datetime import date

    from clients.trust import reconcile_all
    from provider.core.audit import Actor, acting_as
    from provider.core.money import format_money
    from provider.core.tenancy import TenantScope, scoped

    try:
        on = date.fromisoformat(day)
    except ValueError:
        raise click.BadParameter(f"{day!r} is not a date like 2026-12-31", param_hint="--date") from None
    failed = False
    with acting_as(Actor.system("cli")), scoped(TenantScope.agency(), db.session):
        rows = reconcile_all(db.session, on, currency)
        db.session.commit()
        if not rows:
            click.echo("No trust accounts and no trust money in the books.")
        for row in rows:
            c = row.currency
            bank = format_money(row.bank_minor, c) if row.bank_minor is not None else "no statement"
            click.echo(
                f"{c} {row.on_day}: {row.status.replace('_', ' ')} · bank {bank} · trust ledger "
                f"{format_money(row.ledger_minor, c)} · clients {format_money(row.clients_minor, c)}"
            )
            if row.details.get("note"):
                click.echo(f"  note: {row.details['note']}")
            for cause in row.details.get("causes", {}).values():
                click.echo(f"  {cause['title']}: {cause['count']}, {format_money(cause['total_minor'], c)}")
                for item in cause["items"][:10]:
                    click.echo(f"    - {item}")
            failed = failed or row.status == "differs"
    if failed:
        raise SystemExit(1)
