"""`flask` commands: demo data, workers, user bootstrap."""

from __future__ import annotations

import click
from flask import Flask, current_app

from provider.core import jobs
from provider.extensions import db


def register_cli(app: Flask) -> None:
    app.cli.add_command(demo_command)
    app.cli.add_command(worker_command)
    app.cli.add_command(cron_command)
    app.cli.add_command(create_admin_command)


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

    # Seeding posts thousands of payments, each queueing a worklist rescore; the demo builds the worklists
    # itself at the end, so those jobs are collected and dropped instead of racing the seeding on SQLite.
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
    """Run an RQ worker (JSON serializer, with the scheduler) in this app's configuration."""
    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException("REDIS_URL is not set: without Redis, jobs run inside the web process.")
    unknown = set(queues) - set(jobs.QUEUES)
    if unknown:
        raise click.ClickException(
            f"unknown queue(s) {', '.join(sorted(unknown))}; queues are {', '.join(jobs.QUEUES)}"
        )
    jobs.run_worker(current_app._get_current_object(), list(queues) or None, burst=burst)


@click.command("cron")
def cron_command() -> None:
    """Run RQ's cron scheduler over the platform's periodic jobs (run one per deployment)."""
    if not current_app.config.get("REDIS_URL"):
        raise click.ClickException("REDIS_URL is not set: periodic jobs need Redis.")
    jobs.run_cron(current_app._get_current_object())


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
